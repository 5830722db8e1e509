"""Initializers: variances and means against their formulas, orthogonality, reproducibility, errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib

KEY = jax.random.PRNGKey(0)
FAN_IN, FAN_OUT = 400, 300

# Expected Var(W_ij) for each init (sigma_w = 1.5 where it applies).
EXPECTED_VAR = {
    "gaussian": 1.5**2 / FAN_IN,
    "standard": 1.0 / (3 * FAN_IN),
    "glorot_uniform": 2.0 / (FAN_IN + FAN_OUT),
    "glorot_normal": 2.0 / (FAN_IN + FAN_OUT),
    "he": 2.0 / FAN_IN,
    "balanced": 1.5**2 * 2.0 / (FAN_IN + FAN_OUT),
    "orthogonal": 1.5**2 / FAN_IN,  # rows orthonormal (fan_out < fan_in): each row has norm 1.5
    "negative_mean": 0.1**2,
    "lecun": 1.5**2 / FAN_IN,
}


@pytest.mark.parametrize("init", vgplib.INIT_NAMES)
def test_variance_matches_formula(init):
    layer = vgplib.init_layer(KEY, FAN_IN, FAN_OUT, init, sigma_w=1.5)
    W = np.asarray(layer["W"], dtype=np.float64)
    assert W.shape == (FAN_OUT, FAN_IN) and layer["b"].shape == (FAN_OUT,)
    n = W.size
    # The sample variance of n = 120,000 entries has relative standard error about sqrt(2/n) ~ 0.004
    # (Gaussian; smaller for uniform); 5 standard errors is 0.02.
    assert W.var() == pytest.approx(EXPECTED_VAR[init], rel=0.02)
    expected_mean = -8.0 / FAN_IN if init == "negative_mean" else 0.0
    assert abs(W.mean() - expected_mean) < 5 * math.sqrt(EXPECTED_VAR[init] / n)
    assert vgplib.init_variance(init, FAN_IN, FAN_OUT, sigma_w=1.5) == pytest.approx(EXPECTED_VAR[init], rel=1e-12)


def test_negative_mean_formula_and_cap():
    """mu = max(-1, -8/fan_in): -8/64 for a 64-unit layer, capped at -1 below 8 inputs; sd 0.1."""
    assert vgplib.negative_mean_value(64) == -0.125
    assert vgplib.negative_mean_value(4) == -1.0 and vgplib.negative_mean_value(8) == -1.0
    assert vgplib.negative_mean_value(64, mean_scale=4.0) == -0.0625
    W = np.asarray(vgplib.init_layer(KEY, 4, 20000, "negative_mean")["W"], np.float64)
    assert W.mean() == pytest.approx(-1.0, abs=5 * 0.1 / math.sqrt(W.size))
    assert W.std() == pytest.approx(0.1, rel=0.02)


def test_forward_and_backward_variance_ratios_on_unequal_widths():
    """fan_in Var(W) and fan_out Var(W): Glorot splits the difference, He/LeCun keep the forward one."""
    n_in, n_out = 100, 400
    ratios = {name: (n_in * vgplib.init_variance(name, n_in, n_out), n_out * vgplib.init_variance(name, n_in, n_out))
              for name in ("lecun", "he", "glorot_normal")}
    assert ratios["lecun"] == pytest.approx((1.0, 4.0))
    assert ratios["he"] == pytest.approx((2.0, 8.0))
    assert ratios["glorot_normal"] == pytest.approx((0.4, 1.6))  # 2 n_in/(n_in+n_out), 2 n_out/(n_in+n_out)
    # measured on a linear layer: forward Var(a) / Var(x) and backward Var(W^T d) / Var(d)
    W = vgplib.init_layer(KEY, n_in, n_out, "glorot_normal")["W"]
    x = jax.random.normal(jax.random.PRNGKey(1), (2000, n_in))
    d = jax.random.normal(jax.random.PRNGKey(2), (2000, n_out))
    assert float(jnp.var(x @ W.T)) == pytest.approx(0.4, rel=0.05)
    assert float(jnp.var(d @ W)) == pytest.approx(1.6, rel=0.05)


@pytest.mark.parametrize(
    "fn, kwargs, exc, match",
    [
        ("init_variance", {"init": "xavier", "fan_in": 3, "fan_out": 4}, ValueError, "init"),
        ("init_variance", {"init": "he", "fan_in": 0, "fan_out": 4}, ValueError, "fan_in"),
        ("init_variance", {"init": "he", "fan_in": 3, "fan_out": 4.0}, TypeError, "fan_out"),
        ("init_variance", {"init": "gaussian", "fan_in": 3, "fan_out": 4, "sigma_w": -1.0}, ValueError, "sigma_w"),
        ("negative_mean_value", {"fan_in": -3}, ValueError, "fan_in"),
        ("negative_mean_value", {"fan_in": 3, "mean_scale": float("inf")}, ValueError, "mean_scale"),
    ],
)
def test_variance_helpers_bad_input(fn, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(vgplib, fn)(**kwargs)


def test_uniform_bounds():
    W = vgplib.init_layer(KEY, FAN_IN, FAN_OUT, "standard")["W"]
    assert float(jnp.max(jnp.abs(W))) <= 1 / math.sqrt(FAN_IN)
    a = math.sqrt(6 / (FAN_IN + FAN_OUT))
    W = vgplib.init_layer(KEY, FAN_IN, FAN_OUT, "glorot_uniform")["W"]
    assert float(jnp.max(jnp.abs(W))) <= a and float(jnp.max(jnp.abs(W))) > 0.99 * a


@pytest.mark.parametrize("shape", [(64, 64), (30, 50), (50, 30)])
def test_orthogonal_singular_values_equal_sigma_w(shape):
    fan_in, fan_out = shape
    W = vgplib.init_layer(KEY, fan_in, fan_out, "orthogonal", sigma_w=2.0)["W"]
    s = jnp.linalg.svd(W, compute_uv=False)
    np.testing.assert_allclose(s, 2.0, rtol=1e-5)


def test_bias_scale_and_default_zero():
    assert float(jnp.abs(vgplib.init_layer(KEY, 10, 1000)["b"]).max()) == 0.0
    b = vgplib.init_layer(KEY, 10, 20000, sigma_b=0.5)["b"]
    assert float(b.std()) == pytest.approx(0.5, rel=0.03)


def test_init_mlp_widths_and_reproducibility():
    p1 = vgplib.init_mlp(KEY, [5, 7, 3], "he")
    p2 = vgplib.init_mlp(KEY, [5, 7, 3], "he")
    assert [q["W"].shape for q in p1] == [(7, 5), (3, 7)]
    assert all(bool(jnp.all(a["W"] == b["W"])) for a, b in zip(p1, p2))
    assert not bool(jnp.all(p1[0]["W"][:3, :3] == vgplib.init_mlp(jax.random.PRNGKey(1), [5, 7, 3], "he")[0]["W"][:3, :3]))


def test_dtype_float64():
    with jax.enable_x64(True):
        p = vgplib.init_mlp(KEY, [3, 4], dtype=jnp.float64)
        assert p[0]["W"].dtype == jnp.float64


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"init": "xavier"}, ValueError, "init.*glorot_uniform"),
        ({"sigma_w": 0.0}, ValueError, "sigma_w"),
        ({"sigma_w": -1.0}, ValueError, "sigma_w"),
        ({"sigma_w": float("nan")}, ValueError, "sigma_w"),
        ({"sigma_b": -0.1}, ValueError, "sigma_b"),
        ({"fan_in": 0}, ValueError, "fan_in"),
        ({"fan_out": 2.5}, TypeError, "fan_out"),
        ({"dtype": jnp.int32}, TypeError, "dtype"),
    ],
)
def test_init_layer_bad_input(kwargs, exc, match):
    args = {"key": KEY, "fan_in": 3, "fan_out": 4, **kwargs}
    with pytest.raises(exc, match=match):
        vgplib.init_layer(**args)


@pytest.mark.parametrize(
    "widths, exc, match",
    [([5], ValueError, "widths"), ([5, 0, 3], ValueError, r"widths\[1\]"), ("55", TypeError, "widths"), ([5, -2], ValueError, "widths")],
)
def test_init_mlp_bad_widths(widths, exc, match):
    with pytest.raises(exc, match=match):
        vgplib.init_mlp(KEY, widths)
