"""Highway layers: forward pass, exact Jacobians against jax.jacrev and the closed form, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib
from vgplib.highway import highway_jacobian_parts

KEY = jax.random.PRNGKey(3)


@pytest.fixture(scope="module")
def net():
    return vgplib.init_highway(KEY, width=6, depth=5, sigma_w=1.3, gate_bias=-1.0)


def test_forward_matches_the_formula(net):
    x = jax.random.normal(KEY, (6,))
    tr = vgplib.highway_forward(net, x, "tanh", return_all=True)
    h = x
    for l, p in enumerate(net):
        T = jax.nn.sigmoid(p["W_T"] @ h + p["b_T"])
        h = T * jnp.tanh(p["W"] @ h + p["b"]) + (1 - T) * h
        np.testing.assert_allclose(tr.gate[l], T, rtol=1e-6)
        np.testing.assert_allclose(tr.post[l + 1], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vgplib.highway_forward(net, x), h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_product_of_jacobians_equals_jacrev_float64(activation):
    with jax.enable_x64(True):
        params = vgplib.init_highway(KEY, width=5, depth=7, sigma_w=1.5, gate_bias=-0.5, dtype=jnp.float64)
        x = jax.random.normal(KEY, (5,), dtype=jnp.float64)
        J = vgplib.highway_jacobians(params, x, activation)
        assert J.shape == (7, 5, 5) and J.dtype == jnp.float64
        P = vgplib.backward_products(J)
        full = jax.jacrev(lambda v: vgplib.highway_forward(params, v, activation))(x)
        np.testing.assert_allclose(P[0], full, rtol=1e-12, atol=1e-14)
        parts = highway_jacobian_parts(params, x, activation)
        np.testing.assert_allclose(parts.carry + parts.transform + parts.gate, J, rtol=1e-12, atol=1e-14)
        # log-space sweep agrees with the direct product
        ln = vgplib.log_norms(J)
        np.testing.assert_allclose(ln.frobenius[0], np.log(np.linalg.norm(P[0])), rtol=1e-10)


def test_batched_jacobians(net):
    xb = jax.random.normal(KEY, (3, 6))
    J = vgplib.highway_jacobians(net, xb)
    assert J.shape == (3, 5, 6, 6)
    np.testing.assert_allclose(J[1], vgplib.highway_jacobians(net, xb[1]), rtol=1e-5, atol=1e-6)  # float32 ulps


def test_closed_carry_gate_is_the_identity():
    # A very negative gate bias and zero gate weights: T = sigmoid(-30) ~ 1e-13, J = I to rounding.
    params = vgplib.init_highway(KEY, width=4, depth=3, gate_bias=-30.0)
    params = [dict(p, W_T=jnp.zeros((4, 4))) for p in params]
    J = vgplib.highway_jacobians(params, jnp.ones(4))
    np.testing.assert_allclose(J, np.broadcast_to(np.eye(4), J.shape), atol=1e-6)
    parts = highway_jacobian_parts(params, jnp.ones(4))
    np.testing.assert_allclose(np.diagonal(parts.carry, axis1=1, axis2=2), 1 - jax.nn.sigmoid(-30.0), rtol=1e-6)


def test_bad_input(net):
    x = jnp.ones(6)
    with pytest.raises(TypeError, match="params"):
        vgplib.highway_forward([], x)
    with pytest.raises(TypeError, match="params\\[0\\]"):
        vgplib.highway_jacobians([{"W": jnp.eye(6), "b": jnp.zeros(6)}], x)
    with pytest.raises(ValueError, match="params\\[1\\]"):
        vgplib.highway_jacobians([net[0], dict(net[1], b_T=jnp.zeros(5))], x)
    with pytest.raises(ValueError, match="x has width"):
        vgplib.highway_forward(net, jnp.ones(5))
    with pytest.raises(ValueError, match="params"):
        vgplib.highway_jacobians([dict(net[0], W=net[0]["W"].at[0, 0].set(jnp.nan))], x)
    with pytest.raises(ValueError, match="x"):
        vgplib.highway_forward(net, x.at[2].set(jnp.inf))
    with pytest.raises(ValueError, match="activation"):
        vgplib.highway_forward(net, x, "nope")
    with pytest.raises(ValueError, match="gate_bias"):
        vgplib.init_highway(KEY, 4, 2, gate_bias=float("nan"))
    with pytest.raises(ValueError, match="width"):
        vgplib.init_highway(KEY, 0, 2)
    with pytest.raises(ValueError, match="one input"):
        highway_jacobian_parts(net, jnp.ones((2, 6)))
