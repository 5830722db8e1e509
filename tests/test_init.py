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
    "negative_mean": 1.0 / (3 * FAN_IN),
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
    expected_mean = -1.0 / FAN_IN if init == "negative_mean" else 0.0
    assert abs(W.mean() - expected_mean) < 5 * math.sqrt(EXPECTED_VAR[init] / n)


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
