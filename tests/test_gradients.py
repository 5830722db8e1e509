"""Parameter-gradient norms and the explicit delta recursion against jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib

KEY = jax.random.PRNGKey(3)


def _loss(params, x, y, activation="tanh"):
    return 0.5 * jnp.sum((vgplib.mlp_forward(params, x, activation) - y) ** 2)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("batched", [False, True])
def test_deltas_give_jax_grad(activation, batched):
    # float64: the identity is algebraic; in float32 a small entry that is a difference of larger
    # terms missed atol=1e-7 by 2.7e-8 on an AVX-512 CPU under the JAX floor.
    with jax.enable_x64(True):
        params = vgplib.init_mlp(KEY, [5, 8, 8, 3], "glorot_normal", sigma_b=0.2)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x = jax.random.normal(KEY, (4, 5) if batched else (5,), dtype=jnp.float64)
        y = jnp.ones(x.shape[:-1] + (3,))
        out = vgplib.mlp_forward(params, x, activation)
        deltas = vgplib.backprop_deltas(params, x, out - y, activation)
        grads = vgplib.deltas_to_param_grads(deltas, params, x, activation)
        ref = jax.grad(_loss)(params, x, y, activation)
        for g, r in zip(grads, ref):
            np.testing.assert_allclose(g["W"], r["W"], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(g["b"], r["b"], rtol=1e-12, atol=1e-14)


def test_layer_gradient_norms_against_manual():
    params = vgplib.init_mlp(KEY, [5, 8, 8, 3])
    x, y = jnp.ones(5), jnp.zeros(3)
    norms = vgplib.layer_gradient_norms(_loss, params, x, y)
    ref = jax.grad(_loss)(params, x, y)
    manual = [np.sqrt(np.sum(np.square(r["W"])) + np.sum(np.square(r["b"]))) for r in ref]
    np.testing.assert_allclose(norms, manual, rtol=1e-6)


def test_layer_gradient_norms_any_pytree():
    # Layers with different structures: a dict of gates and a bare array.
    params = [{"gates": {"i": jnp.ones((2, 2)), "f": 2 * jnp.ones(2)}}, jnp.arange(3.0)]

    def loss(p):
        return jnp.sum(p[0]["gates"]["i"] ** 2) + jnp.sum(p[0]["gates"]["f"]) + jnp.sum(p[1] ** 3)

    norms = vgplib.layer_gradient_norms(loss, params)
    np.testing.assert_allclose(norms, [np.sqrt(4 * 4 + 2 * 1), np.sqrt(np.sum((3 * np.arange(3.0) ** 2) ** 2))], rtol=1e-6)


def test_tree_and_layer_norms():
    assert float(vgplib.tree_norm({"a": jnp.array([3.0]), "b": jnp.array([4.0])})) == pytest.approx(5.0)
    np.testing.assert_allclose(vgplib.layer_norms([jnp.array([3.0, 4.0]), jnp.array([1.0])]), [5.0, 1.0])


def test_bad_input():
    params = vgplib.init_mlp(KEY, [5, 8, 3])
    with pytest.raises(TypeError, match="loss_fn"):
        vgplib.layer_gradient_norms("loss", params)
    with pytest.raises(TypeError, match="params"):
        vgplib.layer_gradient_norms(_loss, {"W": 1})
    with pytest.raises(ValueError, match="scalar"):
        vgplib.layer_gradient_norms(lambda p: p[0]["W"], params)
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        vgplib.layer_gradient_norms(lambda p: jnp.sum(jnp.sqrt(p[0]["W"] - 10.0)), params)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        vgplib.backprop_deltas(params, jnp.ones(5), jnp.ones(4))
    with pytest.raises(ValueError, match="x has width"):
        vgplib.backprop_deltas(params, jnp.ones(4), jnp.ones(3))
