"""Tests of vgplib.monitor: norms against NumPy float64, flags on constructed gradients, no raising."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vgplib import (
    DEFAULT_THRESHOLDS,
    GradientRecord,
    MonitorThresholds,
    init_mlp,
    layer_gradient_norms,
    mlp_forward,
    monitor_step,
    stack_records,
    summarize,
)


def _grads(scales, key=0, width=3):
    """A list-of-layers gradient whose layer l has entries of size about scales[l]."""
    keys = jax.random.split(jax.random.PRNGKey(key), len(scales))
    out = []
    for k, s in zip(keys, scales):
        kw, kb = jax.random.split(k)
        out.append({"W": s * jax.random.normal(kw, (width, width)), "b": s * jax.random.normal(kb, (width,))})
    return out


def _np_layer_norms(grads):
    return np.array(
        [np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2) for v in layer.values())) for layer in grads]
    )


def test_norms_match_numpy_float64():
    grads = _grads([0.5, 2.0, 3e-3, 7.0])
    rec = monitor_step(grads)
    expected = _np_layer_norms(grads)
    np.testing.assert_allclose(np.asarray(rec.layer_norms), expected, rtol=1e-6)
    np.testing.assert_allclose(float(rec.global_norm), np.sqrt(np.sum(expected**2)), rtol=1e-6)
    np.testing.assert_allclose(float(rec.ratio), expected[0] / expected[-1], rtol=1e-6)
    assert bool(rec.finite)


def test_norms_match_layer_gradient_norms_of_a_real_loss():
    params = init_mlp(jax.random.PRNGKey(3), [5, 7, 7, 2], init="glorot_uniform")
    x = jax.random.normal(jax.random.PRNGKey(4), (6, 5))

    @jax.jit
    def loss(p, x):
        return jnp.sum(mlp_forward(p, x, "tanh") ** 2)

    rec = monitor_step(jax.grad(loss)(params, x))
    expected = np.asarray(layer_gradient_norms(loss, params, x))
    np.testing.assert_allclose(np.asarray(rec.layer_norms), expected, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(log_scale=st.floats(min_value=-30.0, max_value=30.0), seed=st.integers(0, 2**16))
def test_norm_is_exact_over_sixty_decades(log_scale, seed):
    """Max-rescaled norms: correct where the naive sum of squares under- or overflows float32."""
    g = 10.0**log_scale * np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (4, 4)), np.float64)
    grads = [{"W": jnp.asarray(g, jnp.float32)}, {"W": jnp.ones((2,), jnp.float32)}]
    rec = monitor_step(grads)
    expected = np.sqrt(np.sum(np.asarray(grads[0]["W"], np.float64) ** 2))
    np.testing.assert_allclose(float(rec.layer_norms[0]), expected, rtol=1e-5)
    assert bool(rec.finite)


def test_overflowing_squares_still_give_a_finite_norm():
    grads = [{"W": jnp.full((3, 3), 1e20, jnp.float32)}, {"W": jnp.ones((3,), jnp.float32)}]
    assert not np.isfinite(float(jnp.sqrt(jnp.sum(grads[0]["W"] ** 2))))  # the naive norm overflows
    rec = monitor_step(grads)
    np.testing.assert_allclose(float(rec.layer_norms[0]), 3e20, rtol=1e-6)
    assert bool(rec.finite) and bool(rec.exploding) and not bool(rec.vanishing)


def test_healthy_gradient_has_no_flag():
    rec = monitor_step(_grads([0.3, 0.5, 0.4]))
    assert not bool(rec.vanishing) and not bool(rec.exploding) and bool(rec.finite)


def test_vanishing_by_norm_and_by_ratio():
    by_norm = monitor_step(_grads([1e-9, 1e-2, 1.0]))
    assert bool(by_norm.vanishing) and not bool(by_norm.exploding)
    by_ratio = monitor_step(_grads([1e-5, 1e-2, 1.0]))  # all norms above 1e-7, ratio about 1e-5
    assert float(by_ratio.layer_norms.min()) > DEFAULT_THRESHOLDS.vanish_norm
    assert bool(by_ratio.vanishing)
    lenient = MonitorThresholds(vanish_norm=1e-7, vanish_ratio=1e-6)
    assert not bool(monitor_step(_grads([1e-5, 1e-2, 1.0]), lenient).vanishing)


def test_exploding_by_global_norm_and_by_ratio():
    big = monitor_step(_grads([1e3, 1e3, 1e3]))
    assert bool(big.exploding) and not bool(big.vanishing)
    steep = monitor_step(_grads([1e2, 1.0, 1e-2]))  # global norm below 1e3, ratio about 1e4
    assert float(steep.global_norm) < DEFAULT_THRESHOLDS.explode_norm
    assert bool(steep.exploding)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_nonfinite_gradients_are_recorded_and_flagged_not_raised(bad):
    grads = _grads([1.0, 1.0, 1.0])
    grads[1]["W"] = grads[1]["W"].at[0, 0].set(bad)
    for rec in (monitor_step(grads), jax.jit(monitor_step)(grads)):
        assert not bool(rec.finite)
        assert bool(rec.exploding) and not bool(rec.vanishing)
        norm = float(rec.layer_norms[1])
        assert np.isnan(norm) if np.isnan(bad) else norm == np.inf
        assert np.isfinite(float(rec.layer_norms[0])) and np.isfinite(float(rec.layer_norms[2]))
    summary = summarize(rec)
    assert summary.first_nonfinite == 0 and summary.first_exploding == 0


def test_zero_gradients():
    rec = monitor_step([{"W": jnp.zeros((2, 2))}, {"W": jnp.zeros((2,))}])
    assert float(rec.global_norm) == 0.0 and bool(rec.vanishing) and not bool(rec.exploding)
    assert np.isnan(float(rec.ratio))
    only_last = monitor_step([{"W": jnp.ones((2, 2))}, {"W": jnp.zeros((2,))}])
    assert float(only_last.ratio) == np.inf and bool(only_last.exploding)


def test_jit_and_scan_agree_with_eager():
    grads_seq = [_grads([10.0**-k, 0.1, 1.0], key=k) for k in range(5)]
    eager = stack_records([monitor_step(g) for g in grads_seq])
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *grads_seq)
    _, scanned = jax.lax.scan(lambda c, g: (c, monitor_step(g)), 0, stacked)
    for a, b in zip(eager, scanned):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_summarize_counts_and_first_indices():
    seq = [[1.0, 1.0, 1.0], [1e-9, 1e-3, 1.0], [1e-9, 1e-3, 1.0], [1e3, 1e3, 1e3]]
    records = stack_records([monitor_step(_grads(s, key=i)) for i, s in enumerate(seq)])
    s = summarize(records)
    assert s.n_records == 4
    assert s.vanishing.tolist() == [False, True, True, False]
    assert s.exploding.tolist() == [False, False, False, True]
    assert s.nonfinite.tolist() == [False] * 4
    assert (s.first_vanishing, s.first_exploding, s.first_nonfinite) == (1, 3, None)
    np.testing.assert_allclose(s.min_layer_norm, float(records.layer_norms.min()), rtol=1e-6)
    np.testing.assert_allclose(s.max_global_norm, float(records.global_norm.max()), rtol=1e-6)
    assert "first at record 1" in s.describe() and "non-finite: never" in s.describe()
    # recomputing with stricter thresholds flags more records
    strict = summarize(records, MonitorThresholds(vanish_norm=10.0, vanish_ratio=1e-3))
    assert strict.vanishing.tolist() == [True, True, True, False]


def test_summarize_accepts_numpy_history_records():
    rec = monitor_step(_grads([1e-9, 1.0]))
    as_numpy = GradientRecord(*[np.asarray(f)[None] for f in rec])
    assert summarize(as_numpy).first_vanishing == 0


def test_bad_input():
    with pytest.raises(TypeError, match="grads"):
        monitor_step({"W": jnp.ones(3)})
    with pytest.raises(TypeError, match="grads"):
        monitor_step([])
    with pytest.raises(ValueError, match="grads"):
        monitor_step([{"W": jnp.ones(2)}, {}])
    with pytest.raises(TypeError, match="thresholds"):
        monitor_step(_grads([1.0]), thresholds=(1e-7, 1e-3, 1e3, 1e3))
    with pytest.raises(ValueError, match="thresholds.explode_norm"):
        monitor_step(_grads([1.0]), MonitorThresholds(explode_norm=-1.0))
    with pytest.raises(ValueError, match="thresholds.vanish_ratio"):
        monitor_step(_grads([1.0]), MonitorThresholds(vanish_ratio=10.0, explode_ratio=5.0))
    with pytest.raises(TypeError, match="records"):
        summarize([monitor_step(_grads([1.0]))])
    with pytest.raises(TypeError, match="records"):
        stack_records([])
    with pytest.raises(TypeError, match="records"):
        stack_records([1, 2])
