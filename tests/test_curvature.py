"""Exact Hessians of small models against independent paths: a closed form, finite differences of
jax.grad (float64 central differences), and Hessian-vector products; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import vgplib
from vgplib.curvature import hessian_index, hessian_matrix, hessian_vector_product

KEY = jax.random.PRNGKey(5)


def _mlp_loss(params, x, y):
    out = vgplib.mlp_forward(params, x, "tanh", linear_output=True)
    return 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=-1))


@jax.jit
def _fd_hessian(params, x, y, eps=1e-5):
    """Central differences of jax.grad on the flat float64 parameter vector (test oracle)."""
    theta, unravel = ravel_pytree(params)

    def grad(t):
        return ravel_pytree(jax.grad(_mlp_loss)(unravel(t), x, y))[0]

    steps = eps * jnp.eye(theta.size, dtype=theta.dtype)
    return (jax.vmap(grad)(theta + steps) - jax.vmap(grad)(theta - steps)).T / (2 * eps)


def test_quadratic_closed_form():
    a = jnp.array([[3.0, 1.0], [1.0, -2.0]])

    def loss(p):
        v = jnp.concatenate([p["u"], p["w"]])
        return 0.5 * v @ jnp.kron(jnp.eye(1), a) @ v

    params = {"u": jnp.array([0.3]), "w": jnp.array([-1.2])}
    np.testing.assert_allclose(hessian_matrix(loss, params), np.asarray(a), rtol=1e-6)
    lam = vgplib.hessian_eigenvalues(loss, params)
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(np.asarray(a, np.float64)), rtol=1e-6)
    assert hessian_index(lam) == (1, 0, 1)


@settings(max_examples=6, deadline=None)
@given(widths=st.sampled_from([[3, 4, 2], [2, 3, 3, 2]]), seed=st.integers(0, 50))
def test_mlp_hessian_equals_finite_differences_of_grad(widths, seed):
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), vgplib.init_mlp(key, widths, sigma_b=0.3))
        x = jax.random.normal(jax.random.fold_in(key, 1), (5, widths[0]), jnp.float64)
        y = jax.random.normal(jax.random.fold_in(key, 2), (5, widths[-1]), jnp.float64)
        h = hessian_matrix(_mlp_loss, params, x, y)
        ref = np.asarray(_fd_hessian(params, x, y))
        np.testing.assert_allclose(h, ref, atol=1e-7 * max(1.0, np.abs(ref).max()))
        lam = vgplib.hessian_eigenvalues(_mlp_loss, params, x, y)
        np.testing.assert_allclose(lam, np.linalg.eigvalsh(0.5 * (ref + ref.T)), atol=1e-7 * max(1.0, np.abs(ref).max()))


def test_hessian_vector_products_build_the_same_matrix():
    params = vgplib.init_mlp(KEY, [4, 5, 3], sigma_b=0.2)
    x = jax.random.normal(KEY, (6, 4))
    y = jax.random.normal(jax.random.fold_in(KEY, 1), (6, 3))
    h = hessian_matrix(_mlp_loss, params, x, y)
    theta, unravel = ravel_pytree(params)
    for k in range(3):  # H v by forward-over-reverse equals the matrix times v
        v = jax.random.normal(jax.random.fold_in(KEY, 10 + k), theta.shape)
        hv = ravel_pytree(hessian_vector_product(_mlp_loss, params, unravel(v), x, y))[0]
        np.testing.assert_allclose(hv, h @ np.asarray(v, np.float64), rtol=1e-4, atol=1e-5 * np.abs(h).max())
    # eigenvalues ascending, symmetric input, trace preserved
    lam = vgplib.hessian_eigenvalues(_mlp_loss, params, x, y)
    assert np.all(np.diff(lam) >= 0)
    np.testing.assert_allclose(lam.sum(), np.trace(h), rtol=1e-6, atol=1e-6)


def test_saddle_at_zero_weights_has_negative_eigenvalues():
    # A one-hidden-layer tanh net at W = 0 has zero gradient on W_1, W_2 but cross curvature
    # d^2E/dW_1 dW_2 != 0: a strict saddle, eigenvalues in +- pairs on that block.
    params = [{"W": jnp.zeros((3, 4)), "b": jnp.zeros(3)}, {"W": jnp.zeros((2, 3)), "b": jnp.zeros(2)}]
    x = jax.random.normal(KEY, (8, 4))
    y = jax.random.normal(jax.random.fold_in(KEY, 1), (8, 2))
    lam = vgplib.hessian_eigenvalues(_mlp_loss, params, x, y)
    idx = hessian_index(lam)
    assert idx.negative > 0 and idx.positive > 0 and sum(idx) == lam.size


def test_hessian_index_counts():
    assert hessian_index([-1.0, 1e-9, 2.0]) == (1, 1, 1)
    assert hessian_index([0.5, 1.0], rel_tol=0.6) == (0, 1, 1)


def test_bad_input():
    params = vgplib.init_mlp(KEY, [3, 2])
    x, y = jnp.ones((2, 3)), jnp.ones((2, 2))
    with pytest.raises(TypeError, match="loss_fn"):
        vgplib.hessian_eigenvalues("not a function", params, x, y)
    with pytest.raises(ValueError, match="scalar"):
        vgplib.hessian_eigenvalues(lambda p, x, y: vgplib.mlp_forward(p, x), params, x, y)
    with pytest.raises(ValueError, match="max_params"):
        vgplib.hessian_eigenvalues(_mlp_loss, params, x, y, max_params=4)
    with pytest.raises(TypeError, match="max_params"):
        vgplib.hessian_eigenvalues(_mlp_loss, params, x, y, max_params=2.5)
    with pytest.raises(TypeError, match="params"):
        vgplib.hessian_eigenvalues(_mlp_loss, [{"W": "a"}], x, y)
    with pytest.raises(TypeError, match="params"):
        vgplib.hessian_eigenvalues(_mlp_loss, [], x, y)
    bad = [{"W": params[0]["W"].at[0, 0].set(jnp.nan), "b": params[0]["b"]}]
    with pytest.raises(ValueError, match="params"):
        vgplib.hessian_eigenvalues(_mlp_loss, bad, x, y)
    with pytest.raises(ValueError, match="non-finite"):
        vgplib.hessian_eigenvalues(lambda p, x, y: _mlp_loss(p, x, y) + jnp.inf, params, x, y)
    with pytest.raises(ValueError, match="structure"):
        hessian_vector_product(_mlp_loss, params, {"W": params[0]["W"]}, x, y)
    with pytest.raises(ValueError, match="shapes"):
        hessian_vector_product(_mlp_loss, params, [{"W": jnp.ones((3, 2)), "b": jnp.ones(2)}], x, y)
    with pytest.raises(ValueError, match="eigenvalues"):
        hessian_index([])
    with pytest.raises(ValueError, match="eigenvalues"):
        hessian_index([1.0, np.nan])
    with pytest.raises(ValueError, match="rel_tol"):
        hessian_index([1.0], rel_tol=-1)
