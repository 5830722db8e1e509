"""Tests of vgplib.landscapes: the one-unit recurrent loss cliff of Pascanu, Mikolov & Bengio (2013).

Oracles, each independent of the jax.grad / lax.scan path under test: closed forms (T = 1, 2 for the
sigmoid map; any T for the linear map), an explicit NumPy float64 forward-mode tangent recursion,
float64 central finite differences, a Python loop for the orbit and for gradient descent, and the
fixed-point property of the closed-form wall.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vgplib.landscapes import (
    CLIFF_A0,
    CLIFF_T,
    CLIFF_TARGET,
    cliff_descent,
    cliff_descents,
    cliff_grad,
    cliff_grid,
    cliff_loss,
    cliff_map,
    cliff_wall,
)


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_tangents(w: float, b: float, a0: float, T: int):
    """a_T, da_T/dw, da_T/db by forward-mode recursion in NumPy float64 (no JAX involved)."""
    x, dw, db = a0, 0.0, 0.0
    for _ in range(T):
        s = sig(x)
        ds = s * (1 - s)
        x, dw, db = w * s + b, s + w * ds * dw, 1.0 + w * ds * db
    return x, dw, db


def numpy_loss_grad(w, b, a0, T, target):
    x, dw, db = numpy_tangents(w, b, a0, T)
    s = sig(x)
    outer = 2 * (s - target) * s * (1 - s)
    return (s - target) ** 2, np.array([outer * dw, outer * db])


f64 = jnp.float64


# --------------------------------------------------------------------------- the map


def test_defaults_are_the_papers():
    assert (CLIFF_A0, CLIFF_T, CLIFF_TARGET) == (0.5, 50, 0.7)


def test_orbit_matches_a_python_loop_float64():
    with jax.enable_x64(True):
        orbit = np.asarray(cliff_map(f64(5.0), f64(-2.5), a0=0.5, T=20, return_orbit=True))
        assert orbit.dtype == np.float64 and orbit.shape == (21,)
        x, expected = 0.5, [0.5]
        for _ in range(20):
            x = 5.0 * sig(x) - 2.5
            expected.append(x)
        np.testing.assert_allclose(orbit, expected, rtol=1e-13)
        assert float(cliff_map(f64(5.0), f64(-2.5), T=20)) == orbit[-1]


def test_map_is_elementwise_over_broadcast_arrays():
    w = np.array([1.0, 3.0, 6.0])
    b = np.array([[-1.0], [0.5]])
    out = np.asarray(cliff_map(w, b, T=7))
    assert out.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert out[i, j] == pytest.approx(float(cliff_map(w[j], b[i, 0], T=7)), rel=1e-6)


def test_float32_by_default():
    assert cliff_map(5.0, -2.5).dtype == jnp.float32
    assert cliff_grad(5.0, -2.5).dtype == jnp.float32


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("w, b", [(5.0, -2.5), (-3.0, 1.2), (0.7, 0.1)])
def test_gradient_closed_form_T1_and_T2(w, b):
    """T = 1: x_1 = w s0 + b. T = 2: dx_2/dw = s(x_1) + w s'(x_1) s0, dx_2/db = 1 + w s'(x_1)."""
    a0, t = 0.3, 0.7
    s0 = sig(a0)
    x1 = w * s0 + b
    outer1 = 2 * (sig(x1) - t) * sig(x1) * (1 - sig(x1))
    x2 = w * sig(x1) + b
    ds1 = sig(x1) * (1 - sig(x1))
    outer2 = 2 * (sig(x2) - t) * sig(x2) * (1 - sig(x2))
    with jax.enable_x64(True):
        g1 = np.asarray(cliff_grad(f64(w), f64(b), a0=a0, T=1, target=t))
        g2 = np.asarray(cliff_grad(f64(w), f64(b), a0=a0, T=2, target=t))
        l2 = float(cliff_loss(f64(w), f64(b), a0=a0, T=2, target=t))
    np.testing.assert_allclose(g1, [outer1 * s0, outer1], rtol=1e-12)
    np.testing.assert_allclose(g2, [outer2 * (sig(x1) + w * ds1 * s0), outer2 * (1 + w * ds1)], rtol=1e-12)
    assert l2 == pytest.approx((sig(x2) - t) ** 2, rel=1e-12)


@pytest.mark.parametrize("w, b, T", [(1.1, 0.0, 50), (0.9, 0.3, 30), (-1.05, -0.2, 25)])
def test_linear_map_closed_form_any_T(w, b, T):
    """phi = identity: a_T = w^T a0 + b sum_{k<T} w^k; da_T/dw = T w^(T-1) a0 + b sum_k k w^(k-1).

    With b = 0 this is Pascanu et al.'s da_t/dw = t a0 w^(t-1): the first derivative explodes with t.
    """
    a0, t = 0.5, 0.7
    k = np.arange(T)
    a_T = w**T * a0 + b * np.sum(w**k)
    dw = T * w ** (T - 1) * a0 + b * np.sum(k[1:] * w ** (k[1:] - 1))
    db = np.sum(w**k)
    outer = 2 * (sig(a_T) - t) * sig(a_T) * (1 - sig(a_T))
    with jax.enable_x64(True):
        got_x = float(cliff_map(f64(w), f64(b), a0=a0, T=T, activation="linear"))
        got_g = np.asarray(cliff_grad(f64(w), f64(b), a0=a0, T=T, target=t, activation="linear"))
    assert got_x == pytest.approx(a_T, rel=1e-12)
    np.testing.assert_allclose(got_g, [outer * dw, outer * db], rtol=1e-10)


# T is a static argument (each new T compiles the loss and the gradient): it comes from a menu that
# keeps the extremes 1 and 60, so examples share compilations (the test 14.9 -> 11.5 s CPU at load 19).
@settings(max_examples=30, deadline=None)
@given(
    w=st.floats(-8, 8, allow_nan=False),
    b=st.floats(-5, 5, allow_nan=False),
    a0=st.floats(-2, 2, allow_nan=False),
    T=st.sampled_from([1, 2, 3, 10, 26, 60]),
)
def test_gradient_matches_numpy_forward_mode(w, b, a0, T):
    with jax.enable_x64(True):
        loss = float(cliff_loss(f64(w), f64(b), a0=a0, T=T))
        grad = np.asarray(cliff_grad(f64(w), f64(b), a0=a0, T=T))
    ref_loss, ref_grad = numpy_loss_grad(w, b, a0, T, CLIFF_TARGET)
    assert loss == pytest.approx(ref_loss, rel=1e-9, abs=1e-300)
    scale = np.abs(ref_grad).max()
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-10 * scale)


@pytest.mark.parametrize("w, b", [(2.0, -1.0), (4.5, -1.5), (6.0, -2.0), (8.0, -6.0), (5.0, -2.9), (3.0, 0.5)])
def test_gradient_matches_float64_central_differences(w, b):
    """Points off the wall (at least 0.2 in b away from it), where the loss is smooth on the scale h."""
    h = 1e-6
    with jax.enable_x64(True):
        E = lambda ww, bb: float(cliff_loss(f64(ww), f64(bb)))
        fd = np.array([(E(w + h, b) - E(w - h, b)) / (2 * h), (E(w, b + h) - E(w, b - h)) / (2 * h)])
        grad = np.asarray(cliff_grad(f64(w), f64(b)))
    if w * 0.25 > 1.0 and w * sig(0.5) * (1 - sig(0.5)) > 1:
        assert abs(b - float(cliff_wall(w))) > 0.2
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------- grid


def test_grid_matches_pointwise_values_and_layout():
    ws = np.array([2.0, 4.0, 5.5, 7.0])
    bs = np.array([-4.0, -2.6, -1.0])
    with jax.enable_x64(True):
        grid = cliff_grid(ws.astype(np.float64), bs.astype(np.float64))
        assert grid.loss.shape == (3, 4) and grid.loss.dtype == jnp.float64
        for i, b in enumerate(bs):
            for j, w in enumerate(ws):
                assert float(grid.w[i, j]) == w and float(grid.b[i, j]) == b
                assert float(grid.loss[i, j]) == pytest.approx(float(cliff_loss(f64(w), f64(b))), rel=1e-12)
                g = np.asarray(cliff_grad(f64(w), f64(b)))
                np.testing.assert_allclose([grid.grad_w[i, j], grid.grad_b[i, j]], g, rtol=1e-10, atol=1e-300)
                assert float(grid.grad_norm[i, j]) == pytest.approx(float(np.hypot(*g)), rel=1e-12)


# --------------------------------------------------------------------------- the wall


@pytest.mark.parametrize("w", [5.0, 6.0, 8.0])
def test_wall_is_where_x0_is_an_unstable_fixed_point_and_the_loss_jumps(w):
    with jax.enable_x64(True):
        bw = float(cliff_wall(f64(w)))
        assert bw == pytest.approx(0.5 - w * sig(0.5), rel=1e-14)
        orbit = np.asarray(cliff_map(f64(w), f64(bw), T=5, return_orbit=True))
        np.testing.assert_allclose(orbit, 0.5, atol=1e-12)  # a0 is a fixed point there
        eps = 1e-3
        high = float(cliff_map(f64(w), f64(bw + eps)))
        low = float(cliff_map(f64(w), f64(bw - eps)))
        # Above the wall the orbit climbs to the upper stable state, below it falls to the lower one.
        assert high > 0.5 + 0.5 and low < 0.5 - 0.5
        assert abs(float(cliff_loss(f64(w), f64(bw + eps))) - float(cliff_loss(f64(w), f64(bw - eps)))) > 0.05
        # The gradient on the wall's band is orders of magnitude above the gradient off it.
        bs = bw + np.linspace(-1e-3, 1e-3, 2001)
        peak = float(cliff_grid(np.array([w]), bs).grad_norm.max())
        off = float(np.hypot(*np.asarray(cliff_grad(f64(w), f64(bw + 0.3)))))
        assert peak > 100 * off


def test_wall_rejects_w_where_x0_is_stable():
    with pytest.raises(ValueError, match="w"):
        cliff_wall(4.0)  # sigmoid'(0.5) = 0.235: needs w > 4.25
    with pytest.raises(ValueError, match="w"):
        cliff_wall(np.array([5.0, 3.0]))


# --------------------------------------------------------------------------- gradient descent


def test_descent_matches_a_python_loop():
    with jax.enable_x64(True):
        path = cliff_descent(f64(6.0), f64(-3.0), lr=0.5, steps=12)
        assert path.params.shape == (13, 2) and path.loss.shape == (13,) and path.grad_norm.shape == (13,)
        p = np.array([6.0, -3.0])
        for k in range(13):
            np.testing.assert_allclose(np.asarray(path.params[k]), p, rtol=1e-12)
            g = np.asarray(cliff_grad(f64(p[0]), f64(p[1])))
            assert float(path.grad_norm[k]) == pytest.approx(float(np.hypot(*g)), rel=1e-10)
            assert float(path.loss[k]) == pytest.approx(float(cliff_loss(f64(p[0]), f64(p[1]))), rel=1e-12)
            p = p - 0.5 * g


def test_unclipped_step_on_the_wall_is_thrown_far_and_clipping_bounds_every_step():
    """From (5.6, -2.4) with lr = 0.5 (float64) an iterate lands on the wall's band: the gradient there
    exceeds 1e4 and the next iterate is more than 1e3 away, on the flat upper plateau (loss 0.09)."""
    with jax.enable_x64(True):
        path = cliff_descent(f64(5.6), f64(-2.4), lr=0.5, steps=40)
        steps = np.linalg.norm(np.diff(np.asarray(path.params), axis=0), axis=1)
        k = int(np.argmax(steps))
        assert float(path.grad_norm[k]) > 1e4 and steps[k] > 1e3
        assert float(path.loss[-1]) == pytest.approx((1 - 0.7) ** 2, abs=1e-6)
        clipped = cliff_descent(f64(5.6), f64(-2.4), lr=0.5, steps=40, clip_norm=1.0)
        clipped_steps = np.linalg.norm(np.diff(np.asarray(clipped.params), axis=0), axis=1)
        assert clipped_steps.max() <= 0.5 * 1.0 * (1 + 1e-12)
        # Identical until the first gradient above the threshold.
        first = int(np.argmax(np.asarray(path.grad_norm) > 1.0))
        np.testing.assert_allclose(np.asarray(clipped.params[: first + 1]), np.asarray(path.params[: first + 1]))


def test_clipping_is_optax_clip_by_global_norm_and_pascanus_formula():
    """One implementation: every clipped step equals optax.clip_by_global_norm's update, which is
    Pascanu et al.'s algorithm 1 (g <- c g / ||g|| when ||g|| >= c), checked step by step in NumPy."""
    import optax

    with jax.enable_x64(True):
        c, lr = 0.3, 0.5
        path = cliff_descent(f64(5.6), f64(-2.4), lr=lr, steps=30, clip_norm=c)
        pts = np.asarray(path.params)
        clipped_any = False
        for k in range(30):
            g = np.asarray(cliff_grad(f64(pts[k, 0]), f64(pts[k, 1])))
            norm = float(np.hypot(*g))
            formula = g * c / norm if norm >= c else g
            clipped_any |= norm >= c
            via_optax = np.asarray(optax.clip_by_global_norm(c).update(jnp.asarray(g), optax.EmptyState())[0])
            np.testing.assert_allclose(via_optax, formula, rtol=1e-13)
            np.testing.assert_allclose(pts[k + 1], pts[k] - lr * formula, rtol=1e-10, atol=1e-12)
        assert clipped_any


def test_no_clip_norm_and_infinite_clip_norm_are_the_plain_descent():
    with jax.enable_x64(True):
        plain = cliff_descent(f64(5.6), f64(-2.4), lr=0.5, steps=25)
        inf = cliff_descent(f64(5.6), f64(-2.4), lr=0.5, steps=25, clip_norm=math.inf)
        np.testing.assert_array_equal(np.asarray(plain.params), np.asarray(inf.params))


def test_many_starts_equal_one_start_each():
    with jax.enable_x64(True):
        w0 = np.array([5.6, 6.0, 4.8])
        b0 = np.array([-2.4, -3.0, -2.0])
        for clip in (None, 1.0):
            many = cliff_descents(w0, b0, lr=0.5, steps=20, clip_norm=clip)
            assert many.params.shape == (3, 21, 2) and many.loss.shape == (3, 21)
            for i in range(3):
                one = cliff_descent(f64(w0[i]), f64(b0[i]), lr=0.5, steps=20, clip_norm=clip)
                np.testing.assert_allclose(np.asarray(many.params[i]), np.asarray(one.params), rtol=1e-12)
                np.testing.assert_allclose(np.asarray(many.grad_norm[i]), np.asarray(one.grad_norm), rtol=1e-10)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: cliff_map(math.nan, 0.0), ValueError, "w"),
        (lambda: cliff_map(1.0, np.array([0.0, np.inf])), ValueError, "b"),
        (lambda: cliff_map("1", 0.0), TypeError, "w"),
        (lambda: cliff_map(1.0, None), TypeError, "b"),
        (lambda: cliff_map(np.ones(3), np.ones(2)), ValueError, "broadcast"),
        (lambda: cliff_map(1.0, 0.0, T=0), ValueError, "T"),
        (lambda: cliff_map(1.0, 0.0, T=2.5), TypeError, "T"),
        (lambda: cliff_map(1.0, 0.0, a0=math.inf), ValueError, "a0"),
        (lambda: cliff_map(1.0, 0.0, activation="softsign"), ValueError, "activation"),
        (lambda: cliff_map(1.0, 0.0, return_orbit="yes"), TypeError, "return_orbit"),
        (lambda: cliff_loss(1.0, 0.0, target=math.nan), ValueError, "target"),
        (lambda: cliff_grad(np.ones(2), 0.0), TypeError, "w"),
        (lambda: cliff_grid(np.ones((2, 2)), np.ones(3)), ValueError, "ws"),
        (lambda: cliff_grid(np.ones(2), np.ones(0)), ValueError, "bs"),
        (lambda: cliff_descent(5.0, -2.0, lr=0.0, steps=3), ValueError, "lr"),
        (lambda: cliff_descent(5.0, -2.0, lr=0.1, steps=0), ValueError, "steps"),
        (lambda: cliff_descent(5.0, -2.0, lr=0.1, steps=3, clip_norm=-1.0), ValueError, "clip_norm"),
        (lambda: cliff_descent(math.nan, -2.0, lr=0.1, steps=3), ValueError, "w0"),
        (lambda: cliff_descent(5.0, -2.0, lr=0.1, steps=3, clip_norm=math.nan), ValueError, "clip_norm"),
        (lambda: cliff_descents(np.ones(2), np.ones(3), lr=0.1, steps=3), ValueError, "w0"),
        (lambda: cliff_descents(np.ones((2, 2)), np.ones((2, 2)), lr=0.1, steps=3), ValueError, "1-D"),
        (lambda: cliff_descents(np.ones(2), np.ones(2), lr=-0.1, steps=3), ValueError, "lr"),
        (lambda: cliff_wall(5.0, a0=math.nan), ValueError, "a0"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
