"""vgplib.normalization and mlp_forward(norm=...): exact batch Jacobians, streaming gradient norms, bad input.

Oracles: jax.jacrev of the whole batch map, the closed form of one BatchNorm layer, jax.grad of a
loss through the whole network, explicit loops, and the per-example layer_jacobians.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib
from vgplib import normalization as nz

TANH = vgplib.get_activation("tanh")


def _params(widths, seed=0, dtype=jnp.float64):
    keys = jax.random.split(jax.random.PRNGKey(seed), len(widths))
    return [{"W": jax.random.normal(k, (m, n), dtype) / np.sqrt(n), "b": 0.1 * jnp.ones(m, dtype)}
            for k, n, m in zip(keys, widths[:-1], widths[1:])]


@pytest.fixture(scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_batch_jacobians_equal_jacrev_of_the_batch_map(x64, norm):
    B, n, L = 5, 4, 2
    params = _params([n] * (L + 1))
    X = jax.random.normal(jax.random.PRNGKey(9), (B, n), jnp.float64)
    J = vgplib.batch_layer_jacobians(params, X, "tanh", norm=norm)
    assert J.shape == (L, B, n, B, n)
    h = X
    for l, layer in enumerate(params):
        ref = jax.jit(jax.jacrev(lambda z, layer=layer: vgplib.mlp_forward([layer], z, "tanh", norm=norm)))(h)
        np.testing.assert_allclose(J[l], ref, atol=1e-12)
        h = vgplib.mlp_forward([layer], h, "tanh", norm=norm)
    off = J * (1 - jnp.eye(B))[None, :, None, :, None]  # the cross-example blocks b != c
    if norm == "batch":
        assert float(jnp.abs(off).max()) > 1e-2
    else:
        assert float(jnp.abs(off).max()) == 0.0
    if norm is None:  # the diagonal blocks are the per-example Jacobians
        per_example = vgplib.layer_jacobians(params, X, "tanh")  # (B, L, n, n)
        diag = jnp.stack([J[:, b, :, b, :] for b in range(B)])
        np.testing.assert_allclose(diag, per_example, atol=1e-12)


def test_unequal_widths_give_a_list(x64):
    params = _params([3, 5, 2])
    X = jax.random.normal(jax.random.PRNGKey(1), (4, 3), jnp.float64)
    Js = vgplib.batch_layer_jacobians(params, X, "relu", norm="batch")
    assert [J.shape for J in Js] == [(4, 5, 4, 3), (4, 2, 4, 5)]
    h1 = vgplib.mlp_forward(params[:1], X, "relu", norm="batch")
    ref = jax.jit(jax.jacrev(lambda z: vgplib.mlp_forward(params[1:], z, "relu", norm="batch")))(h1)
    np.testing.assert_allclose(Js[1], ref, atol=1e-12)
    G = jax.random.normal(jax.random.PRNGKey(2), (4, 2), jnp.float64)  # the unrolled streaming path
    v1 = jnp.einsum("bi,bicj->cj", G, Js[1])
    expected = [jnp.linalg.norm(jnp.einsum("bi,bicj->cj", v1, Js[0])), jnp.linalg.norm(v1), jnp.linalg.norm(G)]
    for cross in (True, False):
        logs = vgplib.batch_gradient_norms(params, X, G, "relu", norm="batch", cross_example=cross)
        if cross:
            np.testing.assert_allclose(np.exp(logs), np.array(expected), rtol=1e-10)
        else:  # the diagonal blocks only
            diag = [jnp.stack([J[b, :, b, :] for b in range(4)]) for J in Js]  # (B, n_l, n_{l-1})
            d1 = jnp.einsum("bi,bij->bj", G, diag[1])
            d0 = jnp.einsum("bi,bij->bj", d1, diag[0])
            np.testing.assert_allclose(np.exp(logs), [jnp.linalg.norm(d0), jnp.linalg.norm(d1), jnp.linalg.norm(G)],
                                       rtol=1e-10)


@pytest.mark.parametrize("eps", [0.0, 1e-5, 0.3])
def test_batch_norm_closed_form(x64, eps):
    B, n = 6, 3
    a = jax.random.normal(jax.random.PRNGKey(2), (B, n), jnp.float64) * 2 + 1
    blocks = vgplib.batch_norm_jacobian(a, eps)  # (n, B, B)
    ref = jax.jit(jax.jacrev(lambda z: vgplib.normalize(z, "batch", eps)))(a)  # (B, n, B, n)
    np.testing.assert_allclose(jnp.einsum("ibc,ij->bicj", blocks, jnp.eye(n)), ref, atol=1e-12)
    if eps == 0.0:  # sigma times the Jacobian is an orthogonal projection of rank B - 2
        c = a - a.mean(0)
        sigma = jnp.sqrt(jnp.mean(c * c, axis=0))
        for i in range(n):
            Pi = blocks[i] * sigma[i]
            np.testing.assert_allclose(Pi @ Pi, Pi, atol=1e-12)
            np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(Pi)), [0, 0] + [1] * (B - 2), atol=1e-12)
            np.testing.assert_allclose(Pi @ jnp.ones(B), 0, atol=1e-12)
            np.testing.assert_allclose(Pi @ c[:, i], 0, atol=1e-12)


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_streaming_norms_equal_jax_grad_and_the_jacobians(x64, norm):
    B, n, L = 6, 5, 4
    params = _params([n] * (L + 1), seed=3)
    X = jax.random.normal(jax.random.PRNGKey(4), (B, n), jnp.float64)
    G = jax.random.normal(jax.random.PRNGKey(5), (B, n), jnp.float64)
    logs = vgplib.batch_gradient_norms(params, X, G, "tanh", norm=norm)
    assert logs.shape == (L + 1,)
    def energy(perturb):  # E = sum(G * h_L) with h_l + e_l: dE/de_l = g_l = dE/dh_l, through the whole batch
        h = X + perturb[0]
        for layer, e in zip(params, perturb[1:]):
            h = vgplib.mlp_forward([layer], h, "tanh", norm=norm) + e
        return jnp.sum(G * h)

    gs = jax.jit(jax.grad(energy))([jnp.zeros_like(X)] * (L + 1))
    for l in range(L + 1):
        np.testing.assert_allclose(float(logs[l]), math.log(float(jnp.linalg.norm(gs[l]))), atol=1e-10)
    # cross_example=False keeps only the diagonal blocks of the exact Jacobians
    J = vgplib.batch_layer_jacobians(params, X, "tanh", norm=norm)
    diag = J * jnp.eye(B)[None, :, None, :, None]
    v, expected = G, [jnp.linalg.norm(G)]
    for l in range(L - 1, -1, -1):
        v = jnp.einsum("bi,bicj->cj", v, diag[l])
        expected.append(jnp.linalg.norm(v))
    got = vgplib.batch_gradient_norms(params, X, G, "tanh", norm=norm, cross_example=False)
    np.testing.assert_allclose(np.exp(got), np.array(expected[::-1]), rtol=1e-10)
    if norm != "batch":
        np.testing.assert_allclose(got, logs, atol=1e-12)


@pytest.mark.parametrize("norm", ["batch", "layer", None])
def test_masked_kernel_equals_streaming_norms(norm):
    B, B_max, n, L, L_max = 5, 8, 6, 3, 5
    acts = ("linear", "relu", "tanh")
    params = _params([n] * (L + 1), seed=6, dtype=jnp.float32)
    X = jax.random.normal(jax.random.PRNGKey(7), (B_max, n))
    G = jax.random.normal(jax.random.PRNGKey(8), (B_max, n))
    mask = (jnp.arange(B_max) < B).astype(jnp.float32)
    W = jnp.stack([p["W"] for p in params] + [jnp.eye(n)] * (L_max - L))
    b = jnp.stack([p["b"] for p in params] + [jnp.zeros(n)] * (L_max - L))
    for i, act in enumerate(acts):
        if norm != "batch" and act != "tanh":
            continue  # every activation with BatchNorm; the other norms with one (test time)
        got = nz.masked_gradient_log_norms(W, b, X, G * mask[:, None], i, nz.NORM_INDEX.index(norm), L, mask,
                                           1e-5, acts)
        ref = vgplib.batch_gradient_norms(params, X[:B], G[:B], act, norm=norm)
        np.testing.assert_allclose(got[: L + 1], ref, atol=2e-5)
        np.testing.assert_allclose(got[L + 1:], ref[-1], atol=2e-5)


def test_mlp_forward_norm_options(x64):
    params = _params([4, 6, 6, 3], seed=10)
    X = jax.random.normal(jax.random.PRNGKey(11), (7, 4), jnp.float64)
    h = X
    for layer in params:  # explicit BatchNorm, biased variance, eps
        a = h @ layer["W"].T + layer["b"]
        h = jnp.tanh((a - a.mean(0)) / jnp.sqrt(a.var(0) + 1e-5))
    np.testing.assert_allclose(vgplib.mlp_forward(params, X, "tanh", norm="batch"), h, atol=1e-12)
    h = X
    for layer in params:  # explicit LayerNorm, eps = 0
        a = h @ layer["W"].T + layer["b"]
        h = jnp.tanh((a - a.mean(-1, keepdims=True)) / a.std(-1, keepdims=True))
    np.testing.assert_allclose(vgplib.mlp_forward(params, X, "tanh", norm="layer", eps=0.0), h, atol=1e-12)
    # LayerNorm works on one example; BatchNorm does not
    np.testing.assert_allclose(vgplib.mlp_forward(params, X[2], "tanh", norm="layer"),
                               vgplib.mlp_forward(params, X, "tanh", norm="layer")[2], atol=1e-12)
    # the linear output layer is not normalized; the trace keeps the raw pre-activations
    tr = vgplib.mlp_forward(params, X, "relu", norm="batch", linear_output=True, return_all=True)
    np.testing.assert_allclose(tr.post[-1], tr.post[-2] @ params[-1]["W"].T + params[-1]["b"], atol=1e-12)
    np.testing.assert_allclose(tr.pre[0], X @ params[0]["W"].T + params[0]["b"], atol=1e-12)
    # a learned scale and shift only when asked
    with_affine = [dict(p, gamma=2.0 * jnp.ones(p["b"].shape), beta=0.5 * jnp.ones(p["b"].shape)) for p in params]
    z = vgplib.normalize(X @ params[0]["W"].T + params[0]["b"], "batch")
    np.testing.assert_allclose(vgplib.mlp_forward(with_affine[:1], X, "linear", norm="batch"), 2 * z + 0.5,
                               atol=1e-12)
    # BatchNorm makes the bias irrelevant
    no_bias = [dict(p, b=jnp.zeros_like(p["b"])) for p in params]
    np.testing.assert_allclose(vgplib.mlp_forward(no_bias, X, "tanh", norm="batch"),
                               vgplib.mlp_forward(params, X, "tanh", norm="batch"), atol=1e-12)


def test_growth_theory():
    assert nz.normalized_gradient_growth("relu", "batch") == pytest.approx(math.pi / (math.pi - 1), rel=1e-10)
    assert nz.normalized_gradient_growth("linear", "batch") == pytest.approx(1.0, rel=1e-10)
    assert nz.normalized_gradient_growth("linear", "batch", 10) == pytest.approx(8 / 7, rel=1e-10)
    assert nz.normalized_gradient_growth("relu", "layer") == pytest.approx(1.0, rel=1e-10)
    for act in ("tanh", "sigmoid", "gelu", "swish"):  # Gaussian Poincare: Var(phi) <= E[phi'^2]
        assert nz.normalized_gradient_growth(act, "batch") > 1.0
    # tanh is odd: E[tanh] = 0, so BatchNorm's and LayerNorm's factors agree
    assert nz.normalized_gradient_growth("tanh", "batch") == pytest.approx(
        nz.normalized_gradient_growth("tanh", "layer"), rel=1e-9)


def test_bad_input():
    params = _params([3, 3, 3], dtype=jnp.float32)
    X = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="norm"):
        vgplib.mlp_forward(params, X, norm="group")
    with pytest.raises(TypeError, match="norm"):
        vgplib.mlp_forward(params, X, norm=1)
    with pytest.raises(ValueError, match="eps"):
        vgplib.mlp_forward(params, X, norm="batch", eps=-1.0)
    with pytest.raises(ValueError, match="B >= 2"):
        vgplib.mlp_forward(params, X[0], norm="batch")
    with pytest.raises(ValueError, match="B >= 2"):
        vgplib.batch_layer_jacobians(params, X[:1], norm="batch")
    with pytest.raises(ValueError, match="X must"):
        vgplib.batch_layer_jacobians(params, X[0], norm="layer")
    with pytest.raises(ValueError, match="activation"):
        vgplib.batch_layer_jacobians(params, X, activation="nope")
    with pytest.raises(ValueError, match="X"):
        vgplib.batch_layer_jacobians(params, X.at[0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="g_out"):
        vgplib.batch_gradient_norms(params, X, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="g_out"):
        vgplib.batch_gradient_norms(params, X, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="g_out"):
        vgplib.batch_gradient_norms(params, X, jnp.full((4, 3), jnp.inf))
    with pytest.raises(TypeError, match="cross_example"):
        vgplib.batch_gradient_norms(params, X, jnp.ones((4, 3)), cross_example=1)
    with pytest.raises(ValueError, match="a must"):
        vgplib.batch_norm_jacobian(jnp.ones(3))
    with pytest.raises(ValueError, match="eps"):
        vgplib.batch_norm_jacobian(jnp.ones((3, 2)), eps=float("nan"))
    with pytest.raises(ValueError, match="norm"):
        vgplib.normalize(X, "instance")
    with pytest.raises(ValueError, match="norm"):
        nz.normalized_gradient_growth("relu", "group")
    with pytest.raises(ValueError, match="batch_size"):
        nz.normalized_gradient_growth("relu", "batch", 3)
    with pytest.raises(TypeError, match="batch_size"):
        nz.normalized_gradient_growth("relu", "batch", 8.0)
