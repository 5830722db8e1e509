"""Self-attention with a residual, its exact Jacobian, and pre-LN/post-LN transformer blocks.

One head (Vaswani et al. 2017, section 3.2.1, scaled dot-product attention) on a sequence
``X`` of shape ``(T, d)`` (row ``t`` is ``x_t``), with ``params`` a dict of ``(d, d)`` matrices
``"Wq"``, ``"Wk"``, ``"Wv"``, ``"Wo"``::

    q_t = Wq x_t,   k_k = Wk x_k,   v_k = Wv x_k,   s_tk = q_t . k_k / sqrt(d)
    P_t = softmax(s_t)  (over k <= t when causal),   y_t = x_t + Wo sum_k P_tk v_k

Every output ``y_t`` reads every input ``x_k`` through ONE step (the weight ``P_tk``), whatever
the distance ``t - k``: :func:`attention_jacobian` returns ``d y_t / d x_k`` for all pairs.

Transformer blocks (attention, then a ReLU feed-forward net ``W2 relu(W1 z)``, each sub-layer
with a residual) in the two placements of layer normalization compared by Xiong et al. (2020):
post-LN (Vaswani et al. 2017) ``x <- LN(x + F(x))``; pre-LN ``x <- x + F(LN(x))`` with a final
``LN`` before the output. The layer norm is :mod:`vgplib.normalization`'s (no learned gain).
All matmuls run at ``Precision.HIGHEST``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import (
    check_finite,
    check_name,
    check_positive,
    check_positive_int,
)
from vgplib.normalization import _layer_norm

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST

ATTENTION_KEYS: tuple[str, ...] = ("Wq", "Wk", "Wv", "Wo")
BLOCK_KEYS: tuple[str, ...] = ("Wq", "Wk", "Wv", "Wo", "W1", "W2")
LN_PLACEMENTS: tuple[str, ...] = ("pre", "post")
LN_EPS = 1e-5


def _mm(a: Array, b: Array) -> Array:
    return jnp.matmul(a, b, precision=HIGHEST)


# --------------------------------------------------------------------------- validation


def _check_X(X: Any, d: int | None = None) -> Array:
    if isinstance(X, (str, bytes, Mapping)) or X is None:
        raise TypeError(f"X must be an array of shape (T, d); got {type(X).__name__}")
    try:
        arr = jnp.asarray(X)
    except TypeError as err:
        raise TypeError(f"X must be an array of numbers; got {type(X).__name__}") from err
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"X must be a floating array; got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"X must have shape (T, d) with T, d >= 1; got {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"X has d = {arr.shape[1]} features but params are ({d}, {d})")
    check_finite("X", arr)
    return arr


def _check_params(params: Any, keys: tuple[str, ...], stacked: bool = False) -> int:
    if not isinstance(params, Mapping) or any(k not in params for k in keys):
        raise TypeError(f"params must be a dict with the keys {list(keys)}")
    lead = np.shape(params[keys[0]])[:1] if stacked else ()
    d = np.shape(params["Wq"])[-1]
    for key in keys:
        shape = np.shape(params[key])
        want = {"W1": (len(shape) and shape[-2], d), "W2": (d, len(shape) and shape[-1])}.get(key, (d, d))
        if len(shape) != 2 + stacked or shape[len(lead):] != want or d == 0 or (
                stacked and shape[:1] != lead):
            expect = ("(L, " if stacked else "(") + ", ".join(map(str, want)) + ")"
            raise ValueError(f"params['{key}'] must have shape {expect}; got {shape}")
        if not jnp.issubdtype(jnp.result_type(params[key]), jnp.floating):
            raise TypeError(f"params['{key}'] must be a floating array")
    if "W1" in keys and np.shape(params["W1"])[-2] != np.shape(params["W2"])[-1]:
        raise ValueError(f"params['W1'] (d_ff, d) and params['W2'] (d, d_ff) disagree on d_ff: "
                         f"{np.shape(params['W1'])} and {np.shape(params['W2'])}")
    check_finite("params", params)
    return int(d)


def _check_causal(causal: Any) -> bool:
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be True or False; got {causal!r}")
    return bool(causal)


# --------------------------------------------------------------------------- softmax


def _softmax_jac(p: Array) -> Array:
    return p[..., :, None] * jnp.eye(p.shape[-1], dtype=p.dtype) - p[..., :, None] * p[..., None, :]


def softmax_jacobian(z) -> Array:
    """The Jacobian of ``p = softmax(z)``: ``d p / d z = diag(p) - p p^T`` (``(..., T, T)``).

    Its entries are bounded by ``p_k (1 - p_k) <= 1/4``; as the logits spread (a scale ``c`` times
    fixed logits, ``c -> infinity``) ``p`` tends to a one-hot vector and every entry to 0: the
    softmax saturates. Vaswani et al. (2017, section 3.2.1) scale the dot products by
    ``1/sqrt(d_k)`` for this reason. ``z``: ``(T,)`` or a batch ``(..., T)``.
    """
    z = jnp.asarray(z) if not isinstance(z, (str, bytes, Mapping)) and z is not None else None
    if z is None or not jnp.issubdtype(z.dtype, jnp.floating) or z.ndim < 1 or z.shape[-1] == 0:
        raise TypeError("z must be a floating array of logits with a last axis of length T >= 1")
    check_finite("z", z)
    return _softmax_jac(jax.nn.softmax(z, axis=-1))


def _softmax_saturation(logit_scales: Array, G: Array) -> Array:
    """Mean Frobenius norm of ``softmax_jacobian(c * G)`` over the rows of ``G``, per scale ``c``."""
    def one(c):
        return jnp.mean(jnp.sqrt(jnp.sum(_softmax_jac(jax.nn.softmax(c * G, axis=-1)) ** 2, axis=(-2, -1))))
    return jax.vmap(one)(logit_scales)


def softmax_saturation(logit_scales, key: Array, T: int = 16, samples: int = 256) -> Array:
    """Mean ``||softmax_jacobian(c z)||_F`` over ``samples`` logit vectors ``z ~ N(0, I_T)``, per scale ``c``.

    The unscaled dot product ``q . k`` of two vectors with independent unit-variance entries has
    variance ``d`` (Vaswani et al. 2017, footnote 4), so its logits have scale ``c = sqrt(d)``;
    dividing by ``sqrt(d)`` brings ``c`` back to 1 for every ``d``. Returns an array of the shape of
    ``logit_scales``. At ``c = 0`` the value is exactly ``sqrt(T - 1) / T`` (uniform ``p``).
    """
    c = jnp.asarray(logit_scales)
    if not jnp.issubdtype(c.dtype, jnp.floating) and not jnp.issubdtype(c.dtype, jnp.integer):
        raise TypeError("logit_scales must be real numbers")
    if c.ndim > 1 or c.size == 0 or not bool(jnp.all(jnp.isfinite(c) & (c >= 0))):
        raise ValueError(f"logit_scales must be a non-empty 1-D array of finite numbers >= 0; got {c}")
    T = check_positive_int("T", T)
    samples = check_positive_int("samples", samples)
    G = jax.random.normal(key, (samples, T), jnp.result_type(float))
    return _softmax_saturation(c.astype(G.dtype).reshape(-1), G).reshape(c.shape)


# --------------------------------------------------------------------------- one attention layer


def init_attention(key: Array, d: int, scale: float = 1.0, dtype=jnp.float32) -> dict[str, Array]:
    """``{"Wq", "Wk", "Wv", "Wo"}``, each ``(d, d)`` with entries ``N(0, scale^2 / d)``."""
    d = check_positive_int("d", d)
    scale = check_positive("scale", scale)
    keys = jax.random.split(key, 4)
    return {name: scale / math.sqrt(d) * jax.random.normal(k, (d, d), dtype) for name, k in zip(ATTENTION_KEYS, keys)}


def _attention_weights(params, X: Array, causal: bool) -> Array:
    d = X.shape[-1]
    Q, K = _mm(X, params["Wq"].T), _mm(X, params["Wk"].T)
    S = _mm(Q, K.T) / jnp.sqrt(jnp.asarray(d, X.dtype))
    if causal:
        S = jnp.where(jnp.tril(jnp.ones(S.shape, bool)), S, -jnp.inf)
    return jax.nn.softmax(S, axis=-1)


def _attention(params, X: Array, causal: bool) -> Array:
    """The attention sub-layer WITHOUT the residual: row ``t`` is ``Wo sum_k P_tk v_k``."""
    P = _attention_weights(params, X, causal)
    return _mm(_mm(P, _mm(X, params["Wv"].T)), params["Wo"].T)


def attention_layer(params, X, causal: bool = False) -> Array:
    """``Y`` with rows ``y_t = x_t + Wo sum_k softmax_k(q_t . k_k / sqrt(d)) v_k`` (one head, residual).

    Vaswani et al. (2017), eq. 1 (scaled dot-product attention), with a residual connection.
    ``params``: ``{"Wq", "Wk", "Wv", "Wo"}`` each ``(d, d)``; ``X``: ``(T, d)``; ``causal=True``
    lets ``y_t`` attend only to ``k <= t``. Returns ``(T, d)``.
    """
    d = _check_params(params, ATTENTION_KEYS)
    X = _check_X(X, d)
    return X + _attention(params, X, _check_causal(causal))


def attention_weights(params, X, causal: bool = False) -> Array:
    """The attention matrix ``P`` ``(T, T)``, ``P[t, k] = softmax_k(q_t . k_k / sqrt(d))``."""
    d = _check_params(params, ATTENTION_KEYS)
    X = _check_X(X, d)
    return _attention_weights(params, X, _check_causal(causal))


@partial(jax.jit, static_argnames=("causal",))
def _attention_jacobian(params, X: Array, causal: bool) -> Array:
    T, d = X.shape
    Wq, Wk, Wv, Wo = (params[k] for k in ATTENTION_KEYS)
    P = _attention_weights(params, X, causal)
    Q, K, V = _mm(X, Wq.T), _mm(X, Wk.T), _mm(X, Wv.T)
    S = _softmax_jac(P)                                         # (T, T, T): S[t] = dP_t / ds_t
    r = 1.0 / jnp.sqrt(jnp.asarray(d, X.dtype))
    VS = jnp.einsum("kb,tkl->tlb", V, S, precision=HIGHEST)     # (T, T, d): [t, l] = V^T S_t[:, l]
    # through the query of x_t: d/dx_t of s_tl = k_l . Wq x_t * r
    A = r * jnp.einsum("ab,tlb,lc,ce->tae", Wo, VS, K, Wq, precision=HIGHEST)   # (T, d, d)
    # through the values: P_tj Wo Wv;  through the key of x_j: r Wo (V^T S_t[:, j]) (Wk^T q_t)^T
    WoWv = _mm(Wo, Wv)
    J = jnp.einsum("tj,ab->tajb", P, WoWv, precision=HIGHEST)
    J = J + r * jnp.einsum("ab,tjb,te->taje", Wo, VS, _mm(Q, Wk), precision=HIGHEST)
    diag = jnp.eye(d, dtype=X.dtype) + A                       # (T, d, d)
    idx = jnp.arange(T)
    return J.at[idx, :, idx, :].add(diag)


def attention_jacobian(params, X, causal: bool = False) -> Array:
    """Exact Jacobian ``J[t, :, k, :] = d y_t / d x_k`` of :func:`attention_layer`, shape ``(T, d, T, d)``.

    In closed form, with ``P_t`` the attention weights of row ``t``, ``S_t = diag(P_t) - P_t P_t^T``
    (:func:`softmax_jacobian`), ``V``, ``K``, ``Q`` the ``(T, d)`` matrices of values, keys and queries
    and ``r = 1/sqrt(d)``::

        d y_t / d x_k = [t = k] (I + r Wo V^T S_t K Wq)          (residual; the query of x_t)
                        + P_tk Wo Wv                              (the value of x_k)
                        + r Wo V^T S_t[:, k] q_t^T Wk             (the key of x_k)

    Masked pairs (``k > t`` with ``causal=True``) have ``P_tk = 0`` and ``S_t[:, k] = 0``. The second
    term does not depend on the distance ``t - k`` except through ``P_tk``: one Jacobian factor links
    any two positions, where a recurrent network multiplies ``t - k`` step Jacobians.
    """
    d = _check_params(params, ATTENTION_KEYS)
    X = _check_X(X, d)
    return _attention_jacobian(params, X, _check_causal(causal))


def distance_gradient_norms(params, X, causal: bool = True) -> Array:
    """``||d y_T / d x_k||_F`` for ``k = 1..T`` (the last output against every input), shape ``(T,)``.

    Row ``T`` of :func:`attention_jacobian`; index ``k - 1`` is at distance ``T - k``.
    """
    J = attention_jacobian(params, X, causal)
    return jnp.sqrt(jnp.sum(J[-1] ** 2, axis=(0, 2)))


# --------------------------------------------------------------------------- transformer blocks


def init_transformer(key: Array, d: int, depth: int, d_ff: int | None = None, dtype=jnp.float32) -> dict[str, Array]:
    """Stacked parameters of ``depth`` blocks: ``{"Wq", "Wk", "Wv", "Wo": (L, d, d), "W1": (L, d_ff, d), "W2": (L, d, d_ff)}``.

    Xavier/Glorot-normal entries, variance ``2 / (fan_in + fan_out)``. ``d_ff`` defaults to ``4 d``.
    """
    d = check_positive_int("d", d)
    depth = check_positive_int("depth", depth)
    d_ff = 4 * d if d_ff is None else check_positive_int("d_ff", d_ff)
    shapes = {"Wq": (d, d), "Wk": (d, d), "Wv": (d, d), "Wo": (d, d), "W1": (d_ff, d), "W2": (d, d_ff)}
    keys = jax.random.split(key, len(shapes))
    return {name: math.sqrt(2.0 / sum(shape)) * jax.random.normal(k, (depth,) + shape, dtype)
            for (name, shape), k in zip(shapes.items(), keys)}


def _ffn(layer, Z: Array) -> Array:
    return _mm(jax.nn.relu(_mm(Z, layer["W1"].T)), layer["W2"].T)


def _block(layer, X: Array, ln: str, causal: bool) -> Array:
    if ln == "post":
        Z = _layer_norm(X + _attention(layer, X, causal), LN_EPS)
        return _layer_norm(Z + _ffn(layer, Z), LN_EPS)
    Z = X + _attention(layer, _layer_norm(X, LN_EPS), causal)
    return Z + _ffn(layer, _layer_norm(Z, LN_EPS))


def _transformer(params, X: Array, ln: str, causal: bool) -> Array:
    def body(h, layer):
        return _block(layer, h, ln, causal), None

    out, _ = jax.lax.scan(body, X, params)
    return _layer_norm(out, LN_EPS) if ln == "pre" else out


def transformer_forward(params, X, ln: str = "pre", causal: bool = False) -> Array:
    """Run ``L`` transformer blocks (one head, ReLU feed-forward) on ``X`` ``(T, d)``; return ``(T, d)``.

    ``ln="post"``: ``Z = LN(X + Attn(X))``, ``X' = LN(Z + FFN(Z))`` (Vaswani et al. 2017: "LayerNorm(x +
    Sublayer(x))"). ``ln="pre"``: ``Z = X + Attn(LN(X))``, ``X' = Z + FFN(LN(Z))``, and a final
    ``LN`` on the output (the pre-LN Transformer of Xiong et al. 2020). ``params`` as from :func:`init_transformer`.
    """
    check_name("ln", ln, LN_PLACEMENTS)
    d = _check_params(params, BLOCK_KEYS, stacked=True)
    X = _check_X(X, d)
    return _transformer(params, X, ln, _check_causal(causal))


@partial(jax.jit, static_argnames=("ln", "causal"))
def _block_grad_norms(params, X: Array, Y: Array, ln: str, causal: bool) -> dict[str, Array]:
    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((_transformer(p, X, ln, causal) - Y) ** 2, axis=-1))

    grads = jax.grad(loss)(params)
    return {k: jnp.sqrt(jnp.sum(g ** 2, axis=(1, 2))) for k, g in grads.items()}


def transformer_gradient_norms(params, X, Y, ln: str = "pre", causal: bool = False) -> dict[str, Array]:
    """Per-layer Frobenius norms ``||dE/dW^l||`` of every weight of every block, ``{name: (L,)}``.

    ``E = (1/2T) sum_t ||y_t - Y_t||^2`` on the output of :func:`transformer_forward`. Xiong et al.
    (2020, abstract) prove with mean field theory that at initialization "the expected gradients of
    the parameters near the output layer are large" for post-LN, while for pre-LN "the gradients are
    well-behaved"; this function measures it for one network exactly.
    """
    check_name("ln", ln, LN_PLACEMENTS)
    d = _check_params(params, BLOCK_KEYS, stacked=True)
    X = _check_X(X, d)
    Y = _check_X(Y, d)
    if Y.shape != X.shape:
        raise ValueError(f"Y must have the shape of X {X.shape}; got {Y.shape}")
    return _block_grad_norms(params, X, Y, ln, _check_causal(causal))
