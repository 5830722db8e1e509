"""Batch and layer normalization in an MLP, and the exact Jacobian of a normalized layer's whole batch.

A normalized layer normalizes its pre-activations before the activation (DESIGN.md 2b notation):

    a_l = W_l h_{l-1} + b_l,    h_l = phi(N(a_l)),    h_0 = x,

where ``N`` is

- **BatchNorm** (Ioffe & Szegedy 2015, without the learned scale and shift):
  each unit ``i`` is normalized over the ``B`` examples of the batch,
  ``N(a)_{b i} = (a_{b i} - mu_i) / sqrt(s_i^2 + eps)``, ``mu_i = (1/B) sum_b a_{b i}``,
  ``s_i^2 = (1/B) sum_b (a_{b i} - mu_i)^2`` (the biased batch variance);
- **LayerNorm** (Ba, Kiros & Hinton 2016, without gain and bias): each example is normalized over
  its ``n`` units, ``N(a)_{b i} = (a_{b i} - m_b) / sqrt(v_b + eps)`` with the mean and biased
  variance over ``i``.

``eps`` (default :data:`DEFAULT_EPS` ``= 1e-5``, PyTorch's and Flax's default) keeps a constant
column finite; ``eps=0`` gives the textbook map exactly. A learned scale and shift
``gamma * N(a) + beta`` is applied only when a layer's dict holds ``"gamma"`` and/or ``"beta"``
(shape ``(n_out,)``).

**The batch Jacobian.** BatchNorm couples the examples: ``h_l[b]`` depends on every ``h_{l-1}[c]``
through ``mu`` and ``s``. The Jacobian of layer ``l``'s whole output batch with respect to layer
``l-1``'s is ``(B, n_l, B, n_{l-1})``, with cross-example blocks ``dh_l[b]/dh_{l-1}[c]``, ``c != b``,
that per-example autodiff (``jax.vmap`` of ``jax.jacrev`` of one example) never shows. For one unit
with centered batch vector ``c = P a`` (``P = I - 1 1^T / B``) and ``sigma = sqrt(s^2 + eps)``,

    dN(a)/da = (1/sigma) (P - c c^T / (B sigma^2)),

which for ``eps = 0`` is ``(1/sigma)`` times the orthogonal projection that removes the batch mean
and the direction of the centered batch vector itself (rank ``B - 2``). LayerNorm has the same form
over the units of one example and no cross-example blocks.
"""

from __future__ import annotations

import math
from functools import cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import as_array, check_finite_many, check_name, check_positive
from vgplib.activations import Activation, function_by_index, get_activation
from vgplib.jacobians import renormalized_step
from vgplib.networks import check_mlp_shapes, dense, stack_layers

Array = jax.Array

#: The normalizations :func:`vgplib.mlp_forward` accepts as ``norm`` (besides ``None``).
NORM_NAMES: tuple[str, ...] = ("batch", "layer")
#: ``eps`` added to the variance (PyTorch's ``BatchNorm1d``/``LayerNorm`` default).
DEFAULT_EPS = 1e-5
#: Index order of the traced ``norm_idx`` in :func:`masked_gradient_log_norms`.
NORM_INDEX: tuple[str | None, ...] = (None, "batch", "layer")


# --------------------------------------------------------------------------- the normalizations


def _batch_norm(a: Array, eps, mask: Array | None = None) -> Array:
    """BatchNorm over axis 0 of ``a`` ``(B, n)``; with ``mask`` ``(B,)`` (1 = in the batch) the
    statistics are taken over the masked rows only (the other rows are normalized with them)."""
    if mask is None:
        mu = jnp.mean(a, axis=0)
        c = a - mu
        var = jnp.mean(c * c, axis=0)
    else:
        m = mask.astype(a.dtype)[:, None]
        count = jnp.maximum(jnp.sum(m), 1.0)
        mu = jnp.sum(m * a, axis=0) / count
        c = a - mu
        var = jnp.sum(m * c * c, axis=0) / count
    return c / jnp.sqrt(var + eps)


def _layer_norm(a: Array, eps) -> Array:
    mu = jnp.mean(a, axis=-1, keepdims=True)
    c = a - mu
    return c / jnp.sqrt(jnp.mean(c * c, axis=-1, keepdims=True) + eps)


def _normalize(a: Array, norm: str | None, eps, mask: Array | None = None) -> Array:
    """Traceable dispatch on a (static) ``norm`` name; no checks."""
    if norm is None:
        return a
    if norm == "batch":
        return _batch_norm(a, eps, mask)
    return _layer_norm(a, eps)


def check_norm(norm, eps) -> float:
    """Validate ``norm`` (``None`` or one of :data:`NORM_NAMES`) and ``eps >= 0``; return ``eps``."""
    if norm is not None:
        check_name("norm", norm, NORM_NAMES)
    return check_positive("eps", eps, allow_zero=True)


def _check_batch_axis(norm: str | None, x: Array) -> None:
    if norm == "batch" and (x.ndim != 2 or x.shape[0] < 2):
        raise ValueError(f"norm='batch' normalizes over a batch: x must have shape (B, n_0) with B >= 2; "
                         f"got {x.shape}")


def normalize(a, norm: str | None = "batch", eps: float = DEFAULT_EPS) -> Array:
    """``N(a)`` for pre-activations ``a`` of shape ``(B, n)`` (LayerNorm also takes ``(n,)``).

    ``norm="batch"``: ``(a - mu) / sqrt(s^2 + eps)`` per unit over the batch axis 0 (biased
    variance, Ioffe & Szegedy 2015); ``"layer"``: the same per example over the units
    (Ba et al. 2016); ``None``: ``a`` unchanged. No learned scale or shift.
    """
    eps = check_norm(norm, eps)
    a = as_array("a", a, (1, 2))
    _check_batch_axis(norm, a)
    check_finite_many(("a", a))
    return _normalize(a, norm, eps)


def batch_norm_jacobian(a, eps: float = DEFAULT_EPS) -> Array:
    """Closed form of BatchNorm's Jacobian, one ``(B, B)`` block per unit: ``(n, B, B)``.

    For unit ``i`` with centered batch vector ``c = P a[:, i]``, ``P = I - 1 1^T / B``, and
    ``sigma^2 = |c|^2 / B + eps``: ``dN(a)[:, i] / da[:, i] = (P - c c^T / (B sigma^2)) / sigma``.
    Units do not mix, so the full ``(B, n, B, n)`` Jacobian is zero off these blocks. With
    ``eps = 0`` the bracket is the orthogonal projection onto the complement of ``1`` and ``c``.
    """
    eps = check_positive("eps", eps, allow_zero=True)
    a = as_array("a", a, (2,))
    _check_batch_axis("batch", a)
    check_finite_many(("a", a))
    B = a.shape[0]
    c = (a - jnp.mean(a, axis=0)).T  # (n, B)
    sigma2 = jnp.sum(c * c, axis=1) / B + eps  # (n,)
    P = jnp.eye(B, dtype=a.dtype) - 1.0 / B
    outer = c[:, :, None] * c[:, None, :] / (B * sigma2)[:, None, None]
    return (P[None] - outer) / jnp.sqrt(sigma2)[:, None, None]


# --------------------------------------------------------------------------- layer maps


def _affine(layer, z: Array) -> Array:
    if "gamma" in layer:
        z = z * layer["gamma"]
    if "beta" in layer:
        z = z + layer["beta"]
    return z


def norm_layer(layer, h: Array, act: Activation, norm: str | None, eps) -> Array:
    """One layer ``h -> phi(gamma * N(W h + b) + beta)`` on a batch ``h`` ``(B, n_in)``; traceable, unchecked.

    ``gamma``/``beta`` only where the layer dict holds them. The map of :func:`vgplib.mlp_forward`'s
    hidden layers with ``norm=``.
    """
    return act.fn(_affine(layer, _normalize(dense(layer, h), norm, eps)))


def _check_inputs(params, X, activation, norm, eps):
    act = get_activation(activation)
    eps = check_norm(norm, eps)
    X, shapes = check_mlp_shapes(params, X)
    if X.ndim != 2:
        raise ValueError(f"X must be a batch of shape (B, n_0); got shape {X.shape}")
    _check_batch_axis(norm, X)
    check_finite_many(("params", params), ("X", X))
    return act, eps, X, shapes


def batch_layer_jacobians(params, X, activation: str | Activation = "tanh", norm: str | None = "batch",
                          eps: float = DEFAULT_EPS):
    """Exact Jacobians of every layer's whole output batch: ``dh_l[b, i] / dh_{l-1}[c, j]``.

    ``h_l = phi(N(W_l h_{l-1} + b_l))`` on the batch ``X = h_0`` of shape ``(B, n_0)`` (see the
    module docstring for ``N``). Returns ``(L, B, n, B, n)`` when every layer is square of one width
    ``n``, else a list of ``(B, n_l, B, n_{l-1})`` arrays. Entry ``[l-1, b, :, c, :]`` is the block
    ``dh_l[b] / dh_{l-1}[c]``: with ``norm="batch"`` the blocks ``c != b`` are not zero (the batch
    statistics couple the examples); with ``norm="layer"`` or ``None`` they are exactly zero and
    the diagonal blocks are the per-example Jacobians of :func:`vgplib.layer_jacobians`.
    Forward-mode autodiff of each layer's batch map (``jax.jacfwd``), so ``B * n`` JVPs per layer:
    for large ``B`` and ``n`` use :func:`batch_gradient_norms`, which never forms the matrices.
    """
    act, eps, X, shapes = _check_inputs(params, X, activation, norm, eps)
    if len(set(shapes)) == 1 and shapes[0][0] == shapes[0][1] and all(set(p) <= {"W", "b"} for p in params):
        return _stacked_batch_jacobians(stack_layers(params), X, act, norm, eps)
    Js = []
    for layer in params:
        Js.append(_layer_batch_jacobian(layer, X, act, norm, eps))
        X = norm_layer(layer, X, act, norm, eps)
    return Js


@partial(jax.jit, static_argnames=("act", "norm"))
def _layer_batch_jacobian(layer, X, act, norm, eps):
    return jax.jacfwd(lambda h: norm_layer(layer, h, act, norm, eps))(X)


@partial(jax.jit, static_argnames=("act", "norm"))
def _stacked_batch_jacobians(stacked, X, act, norm, eps):
    def step(h, layer):
        J = jax.jacfwd(lambda z: norm_layer(layer, z, act, norm, eps))(h)
        return norm_layer(layer, h, act, norm, eps), J

    return jax.lax.scan(step, X, stacked)[1]


# --------------------------------------------------------------------------- streaming gradient norms


def _diagonal_vjp(layer, h, v, act, norm, eps):
    """``g[b] = J_bb^T v[b]``: the per-example gradient that keeps only the diagonal blocks
    ``dh_l[b] / dh_{l-1}[b]`` (the example's own path, including its own share of the statistics)."""

    def one(b):
        def f(row):
            return norm_layer(layer, h.at[b].set(row), act, norm, eps)[b]

        return jax.vjp(f, h[b])[1](v[b])[0]

    return jax.vmap(one)(jnp.arange(h.shape[0]))


@partial(jax.jit, static_argnames=("act", "norm", "cross_example"))
def _gradient_log_norms(params, X, g_out, act, norm, eps, cross_example):
    inputs = [X]
    for layer in params[:-1]:
        inputs.append(norm_layer(layer, inputs[-1], act, norm, eps))
    s = jnp.log(jnp.linalg.norm(g_out))
    v = g_out / jnp.linalg.norm(g_out)
    logs = [s]
    for layer, h in zip(params[::-1], inputs[::-1]):
        if cross_example:
            w = jax.vjp(lambda z, layer=layer: norm_layer(layer, z, act, norm, eps), h)[1](v)[0]
        else:
            w = _diagonal_vjp(layer, h, v, act, norm, eps)
        # the direction argument only matters for an inactive step; widths may change from layer to layer
        flat, s = renormalized_step(w.reshape(-1), s, w.reshape(-1))
        v = flat.reshape(w.shape)
        logs.append(s)
    return jnp.stack(logs[::-1])


def batch_gradient_norms(params, X, g_out, activation: str | Activation = "tanh", norm: str | None = "batch",
                         eps: float = DEFAULT_EPS, cross_example: bool = True) -> Array:
    """``log ||g_l||_F`` for ``l = 0..L``: the back-propagated batch gradient ``g_l = dE/dh_l`` ``(B, n_l)``.

    ``g_out = dE/dh_L`` ``(B, n_L)`` is given (a loss's gradient at the output). The streaming form of
    :func:`batch_layer_jacobians`: one vector-Jacobian product per layer through the whole batch map,
    ``g_{l-1}[c] = sum_b (dh_l[b]/dh_{l-1}[c])^T g_l[b]``, renormalized after every layer and its scale
    kept as a logarithm (:func:`vgplib.jacobians.renormalized_step`), so any depth, batch and width
    fit in memory and nothing overflows. ``cross_example=False`` keeps only the diagonal blocks
    (``g_{l-1}[b] = (dh_l[b]/dh_{l-1}[b])^T g_l[b]``): the gradient that ignores the coupling of
    the examples, for comparison. Returns natural logs ``(L + 1,)``; ``-inf`` where the gradient is 0.
    """
    act, eps, X, shapes = _check_inputs(params, X, activation, norm, eps)
    g_out = as_array("g_out", g_out, (2,))
    if g_out.shape != (X.shape[0], shapes[-1][0]):
        raise ValueError(f"g_out must have shape (B, n_L) = {(X.shape[0], shapes[-1][0])}; got {g_out.shape}")
    check_finite_many(("g_out", g_out))
    if not bool(jnp.any(g_out != 0)):
        raise ValueError("g_out must not be all zeros (its norm is the starting scale)")
    if not isinstance(cross_example, bool):
        raise TypeError(f"cross_example must be a bool; got {type(cross_example).__name__}")
    if len(set(shapes)) == 1 and shapes[0][0] == shapes[0][1] and all(set(p) <= {"W", "b"} for p in params):
        # equal square layers: one scanned layer body to compile instead of L unrolled ones
        return _stacked_gradient_log_norms(stack_layers(params), X, g_out, act, norm, eps, cross_example)
    return _gradient_log_norms(list(params), X, g_out, act, norm, eps, cross_example)


@partial(jax.jit, static_argnames=("act", "norm", "cross_example"))
def _stacked_gradient_log_norms(stacked, X, g_out, act, norm, eps, cross_example):
    def forward(h, layer):
        return norm_layer(layer, h, act, norm, eps), h

    _, inputs = jax.lax.scan(forward, X, stacked)  # inputs[l-1] = h_{l-1}
    r0 = jnp.linalg.norm(g_out)

    def backward(carry, xs):
        v, s = carry
        layer, h = xs
        if cross_example:
            w = jax.vjp(lambda z: norm_layer(layer, z, act, norm, eps), h)[1](v)[0]
        else:
            w = _diagonal_vjp(layer, h, v, act, norm, eps)
        flat, s = renormalized_step(v.reshape(-1), s, w.reshape(-1))
        return (flat.reshape(w.shape), s), s

    _, logs = jax.lax.scan(backward, (g_out / r0, jnp.log(r0)), (stacked, inputs), reverse=True)
    return jnp.concatenate([logs, jnp.log(r0)[None]])


@partial(jax.jit, static_argnames=("activations",))
def masked_gradient_log_norms(W: Array, b: Array, X: Array, g_out: Array, act_idx, norm_idx, depth,
                              batch_mask: Array, eps, activations: tuple[str, ...] = ("tanh",)) -> Array:
    """Jit-friendly twin of :func:`batch_gradient_norms` for panels: one compilation for every setting.

    ``W`` ``(L_max, n, n)``, ``b`` ``(L_max, n)``: the first ``depth`` layers form the network (the
    others act as the identity); ``batch_mask`` ``(B_max,)``: the rows of ``X`` ``(B_max, n)`` with
    mask 1 form the batch (the statistics of BatchNorm are taken over them; ``g_out`` should be 0 on
    the other rows); ``act_idx`` indexes ``activations`` and ``norm_idx`` :data:`NORM_INDEX`
    (0 none, 1 batch, 2 layer). ``depth``, ``act_idx``, ``norm_idx``, ``batch_mask`` and ``eps`` are
    traced. Returns ``log ||g_l||_F`` ``(L_max + 1,)``; entries above ``depth`` equal the output's.
    No argument checks (the caller's job); tested against :func:`batch_gradient_norms`.
    """
    L = W.shape[0]

    def layer_map(layer, h):
        a = jnp.matmul(h, layer["W"].T, precision=jax.lax.Precision.HIGHEST) + layer["b"]
        z = jax.lax.switch(norm_idx, [lambda x: x, lambda x: _batch_norm(x, eps, batch_mask),
                                      lambda x: _layer_norm(x, eps)], a)
        return function_by_index(act_idx, z, activations)

    def forward(h, inputs):
        layer, l = inputs
        h_new = layer_map(layer, h)
        return jnp.where(l <= depth, h_new, h), h

    layers = {"W": W, "b": b}
    _, hs = jax.lax.scan(forward, X, (layers, jnp.arange(1, L + 1)))  # hs[l-1] = h_{l-1}

    r0 = jnp.linalg.norm(g_out)
    v0 = (g_out / r0).reshape(-1)

    def backward(carry, inputs):
        v, s = carry
        layer, h, l = inputs
        w = jax.vjp(lambda z: layer_map(layer, z), h)[1](v.reshape(h.shape))[0]
        v, s = renormalized_step(v, s, w.reshape(-1), active=l <= depth)
        return (v, s), s

    _, s_all = jax.lax.scan(backward, (v0, jnp.log(r0)), (layers, hs, jnp.arange(1, L + 1)), reverse=True)
    return jnp.concatenate([s_all, jnp.log(r0)[None]])


# --------------------------------------------------------------------------- mean-field growth


@cache
def _moments(activation: str) -> tuple[float, float, float]:
    """``E[phi'(z)^2]``, ``E[phi(z)^2]``, ``E[phi(z)]`` for ``z ~ N(0, 1)`` (float64 quadrature)."""
    from vgplib.theory import gaussian_expectation

    act = get_activation(activation)
    d2 = gaussian_expectation(lambda z: act.grad(z) ** 2, 1.0)
    m2 = gaussian_expectation(lambda z: act.fn(z) ** 2, 1.0)
    m1 = gaussian_expectation(act.fn, 1.0)
    return d2, m2, m1


def normalized_gradient_growth(activation: str, norm: str, batch_size: int | None = None) -> float:
    """Mean-field factor by which one normalized layer multiplies ``E ||g_l||^2`` at initialization.

    Our derivation (the book's chapter 8), for a wide layer ``h_l = phi(N(W_l h_{l-1}))`` with
    ``W ~ N(0, sigma_w^2 / n)`` and unit-variance normalized pre-activations ``z ~ N(0, 1)``:
    backward, ``W_l^T`` multiplies the squared norm by ``sigma_w^2``, ``phi'`` by ``E[phi'(z)^2]`` and
    the normalization divides by the variance of ``a_l``, which is ``sigma_w^2 Var(phi(z))`` over the
    batch (BatchNorm) and ``sigma_w^2 E[phi(z)^2]`` over the units (LayerNorm): ``sigma_w`` cancels and

        batch:  E[phi'(z)^2] / Var(phi(z)),        layer:  E[phi'(z)^2] / E[phi(z)^2].

    By the Gaussian Poincare inequality ``Var(phi(z)) <= E[phi'(z)^2]``, so the BatchNorm factor is
    at least 1 for every activation (equality only for a linear one): ReLU ``pi / (pi - 1)``.
    With ``batch_size=B`` the BatchNorm factor is multiplied by the finite-batch correction
    ``(B - 2) / (B - 3)`` (``E[1/s^2]`` of a variance with ``B - 1`` degrees of freedom, times the
    ``(B - 2)/(B - 1)`` that the projection keeps), exact for a linear BN network whose batch is
    spread evenly (``B > 3``).
    """
    check_name("norm", norm, NORM_NAMES)
    d2, m2, m1 = _moments(get_activation(activation).name)
    if norm == "layer":
        return d2 / m2
    lam = d2 / (m2 - m1 * m1)
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an integer > 3; got {batch_size!r}")
        if batch_size <= 3:
            raise ValueError(f"batch_size must be > 3 (the correction (B-2)/(B-3)); got {batch_size}")
        lam *= (batch_size - 2) / (batch_size - 3)
    return float(lam)


RELU_BN_GROWTH = math.pi / (math.pi - 1.0)
