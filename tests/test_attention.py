"""vgplib.attention: the exact attention Jacobian, the softmax Jacobian, pre-LN/post-LN blocks, bad input.

Oracles: jax.jacrev of the layer, the closed form of one position's softmax, an explicit per-pair
loop, jax.grad through the blocks, and central finite differences in float64.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib
from vgplib import attention as at


@pytest.fixture(scope="module")
def x64():
    with jax.enable_x64(True):
        yield


def _setup(T=6, d=4, seed=0):
    p = at.init_attention(jax.random.key(seed), d, dtype=jnp.float64)
    X = jax.random.normal(jax.random.key(seed + 1), (T, d), jnp.float64)
    return p, X


@pytest.mark.parametrize("causal", [False, True])
def test_jacobian_equals_jacrev(x64, causal):
    p, X = _setup()
    J = vgplib.attention_jacobian(p, X, causal=causal)
    ref = jax.jacrev(lambda Z: vgplib.attention_layer(p, Z, causal=causal))(X)
    assert J.shape == (6, 4, 6, 4)
    np.testing.assert_allclose(J, ref, atol=1e-12)
    if causal:  # no dependence of y_t on x_k for k > t
        future = np.triu(np.ones((6, 6), bool), 1)
        assert float(jnp.abs(J.transpose(0, 2, 1, 3)[future]).max()) == 0.0


# the shapes of _setup(): the compiled Jacobian of test_jacobian_equals_jacrev is reused (no new compile)
@pytest.mark.parametrize("T, d, seed, causal", [(6, 4, 3, True), (6, 4, 7, False)])
def test_jacobian_matches_pairwise_closed_form(T, d, seed, causal):
    with jax.enable_x64(True):
        p, X = _setup(T, d, seed)
        J = np.asarray(vgplib.attention_jacobian(p, X, causal=causal))
        Wq, Wk, Wv, Wo = (np.asarray(p[k]) for k in ("Wq", "Wk", "Wv", "Wo"))
        Xn = np.asarray(X)
        Q, K, V = Xn @ Wq.T, Xn @ Wk.T, Xn @ Wv.T
        r = 1 / math.sqrt(d)
        for t in range(T):
            s = Q[t] @ K.T * r
            if causal:
                s[t + 1:] = -np.inf
            P = np.exp(s - s.max())
            P /= P.sum()
            S = np.diag(P) - np.outer(P, P)
            for k in range(T):
                ref = P[k] * Wo @ Wv + r * np.outer(Wo @ V.T @ S[:, k], Q[t] @ Wk)
                if t == k:
                    ref = ref + np.eye(d) + r * Wo @ V.T @ S @ K @ Wq
                np.testing.assert_allclose(J[t, :, k, :], ref, atol=1e-12)


def test_distance_norms_are_the_last_row(x64):
    p, X = _setup()
    J = vgplib.attention_jacobian(p, X, causal=True)
    norms = at.distance_gradient_norms(p, X)
    np.testing.assert_allclose(norms, [np.linalg.norm(J[-1, :, k, :]) for k in range(6)], rtol=1e-12)


def test_softmax_jacobian(x64):
    z = jnp.array([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]], jnp.float64)
    J = vgplib.softmax_jacobian(z)
    for row in range(2):
        ref = jax.jacfwd(jax.nn.softmax)(z[row])
        np.testing.assert_allclose(J[row], ref, atol=1e-14)
    c = jnp.array([0.0, 1.0, 10.0, 100.0])
    sat = np.asarray(vgplib.softmax_saturation(c, jax.random.key(0), T=16, samples=64))
    np.testing.assert_allclose(sat[0], math.sqrt(15) / 16, rtol=1e-12)
    assert sat[3] < sat[2] < sat[1] and sat[3] < 0.2 * sat[1], sat  # saturated (the mean falls like 1/c)


def _np_blocks(params, X, ln):
    """A plain NumPy loop over the blocks (the oracle of transformer_forward)."""
    def norm(a):
        c = a - a.mean(-1, keepdims=True)
        return c / np.sqrt((c * c).mean(-1, keepdims=True) + at.LN_EPS)

    def attn(p, Z):
        S = (Z @ p["Wq"].T) @ (Z @ p["Wk"].T).T / np.sqrt(Z.shape[1])
        P = np.exp(S - S.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        return P @ (Z @ p["Wv"].T) @ p["Wo"].T

    def ffn(p, Z):
        return np.maximum(Z @ p["W1"].T, 0) @ p["W2"].T

    h = np.asarray(X)
    for l in range(params["Wq"].shape[0]):
        p = {k: np.asarray(v[l]) for k, v in params.items()}
        if ln == "post":
            z = norm(h + attn(p, h))
            h = norm(z + ffn(p, z))
        else:
            z = h + attn(p, norm(h))
            h = z + ffn(p, norm(z))
    return norm(h) if ln == "pre" else h


@pytest.mark.parametrize("ln", ["pre", "post"])
def test_transformer_forward_and_gradient_norms(x64, ln):
    params = at.init_transformer(jax.random.key(0), 4, 3, d_ff=6, dtype=jnp.float64)
    X = jax.random.normal(jax.random.key(1), (5, 4), jnp.float64)
    Y = jax.random.normal(jax.random.key(2), (5, 4), jnp.float64)
    out = vgplib.transformer_forward(params, X, ln=ln)
    np.testing.assert_allclose(out, _np_blocks(params, X, ln), atol=1e-12)
    norms = vgplib.transformer_gradient_norms(params, X, Y, ln=ln)
    g = jax.grad(lambda p: 0.5 * jnp.mean(jnp.sum((vgplib.transformer_forward(p, X, ln=ln) - Y) ** 2, -1)))(params)
    for key, val in g.items():
        np.testing.assert_allclose(norms[key], jnp.linalg.norm(val.reshape(3, -1), axis=1), rtol=1e-10)


def test_bad_input():
    p = at.init_attention(jax.random.key(0), 3)
    X = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="X"):
        vgplib.attention_jacobian(p, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="X"):
        vgplib.attention_jacobian(p, jnp.ones((0, 3)))
    with pytest.raises(TypeError, match="X"):
        vgplib.attention_jacobian(p, "x")
    with pytest.raises(ValueError, match="X must be finite"):
        vgplib.attention_jacobian(p, X.at[0, 0].set(jnp.nan))
    with pytest.raises(TypeError, match="params"):
        vgplib.attention_jacobian({"Wq": p["Wq"]}, X)
    with pytest.raises(ValueError, match="Wo"):
        vgplib.attention_jacobian(dict(p, Wo=jnp.ones((3, 2))), X)
    with pytest.raises(TypeError, match="causal"):
        vgplib.attention_jacobian(p, X, causal="yes")
    with pytest.raises(ValueError, match="d"):
        at.init_attention(jax.random.key(0), 0)
    with pytest.raises(TypeError, match="z"):
        vgplib.softmax_jacobian("z")
    with pytest.raises(ValueError, match="z must be finite"):
        vgplib.softmax_jacobian(jnp.array([0.0, jnp.inf]))
    with pytest.raises(ValueError, match="logit_scales"):
        vgplib.softmax_saturation(jnp.array([-1.0]), jax.random.key(0))
    tp = at.init_transformer(jax.random.key(0), 3, 2)
    with pytest.raises(ValueError, match="unknown ln"):
        vgplib.transformer_forward(tp, X, ln="middle")
    with pytest.raises(ValueError, match="W1"):
        vgplib.transformer_forward(dict(tp, W1=jnp.ones((2, 5, 4))), X)
    with pytest.raises(ValueError, match="Y"):
        vgplib.transformer_gradient_norms(tp, X, jnp.ones((5, 3)))
