"""Tests of vgplib.clipping and of the optax clippings chapter 11 uses, against their formulas.

Oracles: the formulas written out in NumPy float64 (Pascanu et al. 2013, algorithm 1; element-wise
clipping; Brock et al. 2021, section 4, row by row), float64 arccos away from 0 and 180 degrees,
exact angles of small vectors, and optax's own adaptive clipping on the transposed (n_in, n_out) layout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vgplib.clipping import fan_in_adaptive_clip, tree_angle


def grads_tree(seed: int = 0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return [{"W": jnp.asarray(scale * rng.standard_normal((4, 3)), jnp.float32),
             "b": jnp.asarray(scale * rng.standard_normal(4), jnp.float32)},
            {"W": jnp.asarray(scale * rng.standard_normal((2, 4)), jnp.float32),
             "b": jnp.asarray(scale * rng.standard_normal(2), jnp.float32)}]


def flat(tree) -> np.ndarray:
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree_util.tree_leaves(tree)])


# --------------------------------------------------------------------------- optax against the formulas


@pytest.mark.parametrize("c", [0.5, 2.0, 100.0])
def test_clip_by_global_norm_is_pascanus_algorithm_1(c):
    g = grads_tree(1)
    out, _ = optax.clip_by_global_norm(c).update(g, optax.EmptyState())
    v = flat(g)
    norm = np.linalg.norm(v)
    expected = v * c / norm if norm >= c else v  # algorithm 1: g <- threshold g / ||g|| if ||g|| >= threshold
    np.testing.assert_allclose(flat(out), expected, rtol=1e-6)
    assert (norm >= c) == (c < 100.0)  # both branches are exercised
    assert np.linalg.norm(flat(out)) <= c * (1 + 1e-6)


@pytest.mark.parametrize("c", [0.1, 0.7, 10.0])
def test_clip_is_element_wise_clipping(c):
    g = grads_tree(2)
    out, _ = optax.clip(c).update(g, optax.EmptyState())
    np.testing.assert_array_equal(flat(out), np.clip(flat(g), -c, c).astype(np.float32))


# --------------------------------------------------------------------------- tree_angle


def test_angle_exact_small_cases():
    assert float(tree_angle(jnp.array([1.0, 0.0]), jnp.array([0.0, 2.0]))) == pytest.approx(90.0, abs=1e-4)
    assert float(tree_angle(jnp.array([1.0, 1.0]), jnp.array([-3.0, -3.0]))) == pytest.approx(180.0, abs=1e-4)
    # value clipping (3, 4) to [-1, 1] gives (1, 1): cos = 7 / (5 sqrt 2), 8.130 degrees
    g = jnp.array([3.0, 4.0])
    clipped, _ = optax.clip(1.0).update(g, optax.EmptyState())
    expected = math.degrees(math.acos(7 / (5 * math.sqrt(2))))
    assert float(tree_angle(g, clipped)) == pytest.approx(expected, rel=1e-5)
    assert abs(expected - 8.130) < 1e-3


def test_norm_clipping_keeps_the_direction_value_clipping_turns_it():
    g = grads_tree(3, scale=10.0)
    by_norm, _ = optax.clip_by_global_norm(1.0).update(g, optax.EmptyState())
    by_value, _ = optax.clip(1.0).update(g, optax.EmptyState())
    assert float(tree_angle(g, by_norm)) < 1e-3  # rounding only (float32), where arccos reads ~0.02
    cos = flat(g) @ flat(by_value) / np.linalg.norm(flat(g)) / np.linalg.norm(flat(by_value))
    assert float(tree_angle(g, by_value)) == pytest.approx(math.degrees(math.acos(cos)), rel=1e-4)
    assert float(tree_angle(g, by_value)) > 5.0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40))
def test_angle_matches_float64_arccos(seed, n):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    with jax.enable_x64(True):
        got = float(tree_angle({"x": jnp.asarray(a)}, {"x": jnp.asarray(b)}))
    assert got == pytest.approx(math.degrees(math.acos(cos)), abs=1e-9)


def test_angle_is_jittable():
    g = grads_tree(4)
    h = jax.tree_util.tree_map(lambda x: 2 * x, g)
    assert float(jax.jit(tree_angle)(g, h)) < 1e-3


@pytest.mark.parametrize(
    "g, h, error, match",
    [
        ({"a": jnp.ones(2)}, {"b": jnp.ones(2)}, ValueError, "structure"),
        (jnp.ones(2), jnp.ones(3), ValueError, "shape"),
        (jnp.zeros(2), jnp.ones(2), ValueError, "non-zero"),
        (jnp.array([1.0, jnp.nan]), jnp.ones(2), ValueError, "g"),
        (jnp.ones(2), jnp.array([1.0, jnp.inf]), ValueError, "h"),
        (jnp.ones(2, jnp.int32), jnp.ones(2), TypeError, "g"),
        ([], [], TypeError, "no leaves"),
    ],
)
def test_angle_bad_input(g, h, error, match):
    with pytest.raises(error, match=match):
        tree_angle(g, h)


# --------------------------------------------------------------------------- adaptive clipping


def rnn_like(seed: int, grad_scale: float):
    rng = np.random.default_rng(seed)
    p = {"W": rng.standard_normal((5, 5)), "U": rng.standard_normal((5, 2)), "b": rng.standard_normal(5),
         "v": rng.standard_normal(5), "c": np.array(0.3)}
    g = {k: grad_scale * rng.standard_normal(np.shape(v)) for k, v in p.items()}
    return ({k: jnp.asarray(v, jnp.float32) for k, v in p.items()},
            {k: jnp.asarray(v, jnp.float32) for k, v in g.items()})


def brock_rows(G: np.ndarray, W: np.ndarray, lam: float, eps: float) -> np.ndarray:
    """Brock et al. (2021), section 4: each row (unit) of G clipped against the same row of W."""
    G, W = np.atleast_2d(G).astype(np.float64), np.atleast_2d(W).astype(np.float64)
    out = G.copy()
    for i in range(G.shape[0]):
        wn, gn = max(np.linalg.norm(W[i]), eps), np.linalg.norm(G[i])
        if gn / wn > lam:
            out[i] = lam * wn / gn * G[i]
    return out


@pytest.mark.parametrize("lam", [0.05, 0.5, 5.0])
def test_fan_in_adaptive_clip_is_brocks_formula_row_by_row(lam):
    p, g = rnn_like(0, grad_scale=1.0)
    out, _ = fan_in_adaptive_clip(lam).update(g, fan_in_adaptive_clip(lam).init(p), p)
    for k in ("W", "U"):
        np.testing.assert_allclose(np.asarray(out[k]), brock_rows(np.asarray(g[k]), np.asarray(p[k]), lam, 1e-3),
                                   rtol=1e-5)
    for k in ("b", "v", "c"):  # a vector (or scalar) is one unit
        expected = brock_rows(np.asarray(g[k]).reshape(1, -1), np.asarray(p[k]).reshape(1, -1), lam, 1e-3)
        np.testing.assert_allclose(np.asarray(out[k]).reshape(1, -1), expected, rtol=1e-5)


def test_fan_in_adaptive_clip_equals_optax_on_the_transposed_layout():
    p, g = rnn_like(1, grad_scale=3.0)
    t = lambda tree: {k: (v.T if v.ndim == 2 else v) for k, v in tree.items()}
    tx = fan_in_adaptive_clip(0.1)
    ours, _ = tx.update(g, tx.init(p), p)
    theirs, _ = optax.adaptive_grad_clip(0.1).update(t(g), optax.EmptyState(), t(p))
    for k in p:
        np.testing.assert_allclose(np.asarray(t(ours)[k]), np.asarray(theirs[k]), rtol=1e-6)
    # ...and optax's default on vgplib's (n_out, n_in) matrices clips columns instead: different
    cols, _ = optax.adaptive_grad_clip(0.1).update(g, optax.EmptyState(), p)
    assert not np.allclose(np.asarray(cols["W"]), np.asarray(ours["W"]))


def test_fan_in_adaptive_clip_skips_named_leaves_and_chains():
    p, g = rnn_like(2, grad_scale=100.0)
    tx = fan_in_adaptive_clip(0.01, skip=("v", "c"))
    out, _ = tx.update(g, tx.init(p), p)
    for k in ("v", "c"):
        np.testing.assert_array_equal(np.asarray(out[k]), np.asarray(g[k]))
    assert float(jnp.linalg.norm(out["W"])) < float(jnp.linalg.norm(g["W"]))
    opt = optax.chain(fan_in_adaptive_clip(0.01), optax.sgd(0.1))
    upd, _ = jax.jit(opt.update)(g, opt.init(p), p)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(upd))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: fan_in_adaptive_clip(0.0), ValueError, "clipping"),
        (lambda: fan_in_adaptive_clip(math.nan), ValueError, "clipping"),
        (lambda: fan_in_adaptive_clip(0.1, eps=-1.0), ValueError, "eps"),
        (lambda: fan_in_adaptive_clip(0.1, skip="v"), TypeError, "skip"),
        (lambda: fan_in_adaptive_clip("0.1"), TypeError, "clipping"),
    ],
)
def test_fan_in_adaptive_clip_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fan_in_adaptive_clip_rejects_3d_leaves():
    p = {"W": jnp.ones((2, 2, 2))}
    tx = fan_in_adaptive_clip(0.1)
    with pytest.raises(ValueError, match="axes"):
        tx.update(p, tx.init(p), p)
