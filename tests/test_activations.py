"""Activations: derivative against jax.grad, supremum against a dense grid, names and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib
from vgplib.activations import ACTIVATIONS

XS = jnp.linspace(-8.0, 8.0, 4001)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_autodiff(name):
    act = vgplib.get_activation(name)
    xs = XS[XS != 0]  # relu-type kinks: the subgradient at 0 is a convention, tested below
    auto = jax.vmap(jax.grad(act.fn))(xs)
    np.testing.assert_allclose(act.grad(xs), auto, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_sup_grad_is_the_supremum(name):
    act = vgplib.get_activation(name)
    with jax.enable_x64(True):
        xs = jnp.linspace(-12.0, 12.0, 240001, dtype=jnp.float64)
        grid_max = float(jnp.max(jnp.abs(act.grad(xs))))
    # The grid maximum approaches the supremum from below; the supremum is never exceeded.
    assert grid_max <= act.sup_grad * (1 + 1e-9)
    assert grid_max >= act.sup_grad * (1 - 1e-6)


def test_known_values():
    assert vgplib.get_activation("sigmoid").sup_grad == 0.25
    assert vgplib.get_activation("tanh").sup_grad == 1.0
    assert vgplib.get_activation("silu").fn is vgplib.get_activation("swish").fn
    assert float(vgplib.get_activation("relu").grad(jnp.asarray(0.0))) == float(jax.grad(jax.nn.relu)(0.0))
    # GELU is the exact x * Phi(x), not the tanh approximation.
    np.testing.assert_allclose(vgplib.get_activation("gelu").fn(XS), jax.nn.gelu(XS, approximate=False), atol=1e-6)


def test_elu_gradient_finite_for_large_inputs():
    act = vgplib.get_activation("elu")
    g = jax.grad(lambda x: act.fn(x))(jnp.asarray(200.0))
    assert np.isfinite(float(g))


def test_custom_activation_passes_through():
    act = vgplib.Activation("cube", lambda x: x**3, lambda x: 3 * x**2, float("inf"))
    assert vgplib.get_activation(act) is act


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="activation.*sigmoid"):
        vgplib.get_activation("sigmoidd")
    with pytest.raises(TypeError, match="activation"):
        vgplib.get_activation(3)


def test_activation_by_index_matches_get_activation():
    names = ("tanh", "relu", "sigmoid", "linear", "gelu")
    pick = jax.jit(lambda i, x: vgplib.activations.activation_by_index(i, x, names))
    for i, name in enumerate(names):
        act = vgplib.get_activation(name)
        phi, dphi = pick(np.int32(i), XS)  # one trace for every index
        # the same functions; XLA may fuse a compiled branch differently: rounding of float32 terms of
        # size |x| <= 8 (gelu's x * (1 + erf) cancels to 0 or 1e-7 near x = -5.4), so atol = 16 eps
        np.testing.assert_allclose(phi, act.fn(XS), rtol=1e-6, atol=16 * np.finfo(np.float32).eps)
        np.testing.assert_allclose(dphi, act.grad(XS), rtol=1e-6, atol=16 * np.finfo(np.float32).eps)
    phi, dphi = vgplib.activations.activation_by_index(3, XS)  # default order: ACTIVATION_NAMES
    act = vgplib.get_activation(vgplib.ACTIVATION_NAMES[3])
    np.testing.assert_array_equal(phi, act.fn(XS))
    np.testing.assert_array_equal(dphi, act.grad(XS))


def test_activation_by_index_bad_input():
    f = vgplib.activations.activation_by_index
    with pytest.raises(ValueError, match=r"index must be in 0..2"):
        f(3, XS, ("tanh", "relu", "sigmoid"))
    with pytest.raises(ValueError, match=r"index must be in"):
        f(-1, XS, ("tanh", "relu"))
    with pytest.raises(TypeError, match="index must be an integer"):
        f(1.0, XS, ("tanh", "relu"))
    with pytest.raises(ValueError, match="unknown activation"):
        f(0, XS, ("tanh", "tanhh"))
    with pytest.raises(TypeError, match="names must be a non-empty tuple"):
        f(0, XS, "tanh")
