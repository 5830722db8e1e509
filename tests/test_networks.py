"""MLP forward pass: the convention x_l = phi(W_l x_{l-1} + b_l), traces, residual, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib

KEY = jax.random.PRNGKey(1)


def test_forward_matches_explicit_loop():
    params = vgplib.init_mlp(KEY, [4, 6, 5, 3], sigma_b=0.3)
    x = jnp.linspace(-1, 1, 4)
    h = x
    for layer in params:
        h = jnp.tanh(np.asarray(layer["W"]) @ h + layer["b"])
    np.testing.assert_allclose(vgplib.mlp_forward(params, x, "tanh"), h, rtol=1e-6)


def test_trace_and_batch():
    params = vgplib.init_mlp(KEY, [4, 6, 5])
    xb = jax.random.normal(KEY, (3, 4))
    tr = vgplib.mlp_forward(params, xb, "relu", return_all=True)
    assert [a.shape for a in tr.pre] == [(3, 6), (3, 5)]
    assert [a.shape for a in tr.post] == [(3, 4), (3, 6), (3, 5)]
    np.testing.assert_allclose(tr.post[2], jax.nn.relu(tr.pre[1]))
    single = vgplib.mlp_forward(params, xb[1], "relu")
    np.testing.assert_allclose(tr.post[-1][1], single, rtol=1e-6)


def test_residual_and_linear_output():
    params = vgplib.init_mlp(KEY, [5, 5, 5])
    x = jnp.ones(5)
    x1 = x + jnp.tanh(vgplib.dense(params[0], x))
    x2 = x1 + jnp.tanh(vgplib.dense(params[1], x1))
    np.testing.assert_allclose(vgplib.mlp_forward(params, x, residual=True), x2, rtol=1e-6)
    logits = vgplib.mlp_forward(params, x, linear_output=True)
    np.testing.assert_allclose(logits, vgplib.dense(params[1], jnp.tanh(vgplib.dense(params[0], x))), rtol=1e-6)


def test_stack_roundtrip():
    params = vgplib.init_mlp(KEY, [3, 3, 3])
    st = vgplib.stack_params(params)
    assert st["W"].shape == (2, 3, 3)
    back = vgplib.unstack_params(st)
    assert all(bool(jnp.all(a["W"] == b["W"])) for a, b in zip(params, back))
    with pytest.raises(ValueError, match="one shape"):
        vgplib.stack_params(vgplib.init_mlp(KEY, [3, 4, 3]))


def test_bad_input():
    params = vgplib.init_mlp(KEY, [4, 6, 5])
    with pytest.raises(ValueError, match="x has width 3"):
        vgplib.mlp_forward(params, jnp.ones(3))
    with pytest.raises(ValueError, match="x must have 1 or 2 dimensions"):
        vgplib.mlp_forward(params, jnp.ones((2, 2, 4)))
    with pytest.raises(ValueError, match="x must be finite"):
        vgplib.mlp_forward(params, jnp.array([1.0, jnp.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="params must be finite"):
        vgplib.mlp_forward([{"W": jnp.full((2, 4), jnp.inf), "b": jnp.zeros(2)}], jnp.ones(4))
    with pytest.raises(ValueError, match="residual=True needs square"):
        vgplib.mlp_forward(params, jnp.ones(4), residual=True)
    with pytest.raises(ValueError, match=r"params\[1\]"):
        vgplib.mlp_forward([params[0], {"W": jnp.ones((2, 3)), "b": jnp.ones(2)}], jnp.ones(4))
    with pytest.raises(TypeError, match="params"):
        vgplib.mlp_forward([], jnp.ones(4))
    with pytest.raises(TypeError, match=r"params\[0\]"):
        vgplib.mlp_forward([{"W": jnp.ones((2, 4))}], jnp.ones(4))
    with pytest.raises(ValueError, match="b has 3 entries"):
        vgplib.mlp_forward([{"W": jnp.ones((2, 4)), "b": jnp.ones(3)}], jnp.ones(4))
    with pytest.raises(ValueError, match="unknown activation"):
        vgplib.mlp_forward(params, jnp.ones(4), "softplus")
    with pytest.raises(TypeError, match="x must be an array"):
        vgplib.mlp_forward(params, "abcd")


def test_public_functions_work_inside_jit_with_closed_over_params():
    params = vgplib.init_mlp(KEY, [4, 4, 4])
    x = jnp.linspace(-1.0, 1.0, 4)
    jitted = jax.jit(lambda v: vgplib.log_norms(vgplib.layer_jacobians(params, v)).spectral)
    np.testing.assert_allclose(jitted(x), vgplib.log_norms(vgplib.layer_jacobians(params, x)).spectral, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda v: vgplib.mlp_forward(params, v))(x), vgplib.mlp_forward(params, x), rtol=1e-6)
