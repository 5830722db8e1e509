"""Exact per-layer Jacobians and every backward product, directly or in log-space.

For an MLP ``h_l = phi(a_l)``, ``a_l = W_l h_{l-1} + b_l``, ``h_0 = x``, the chain rule gives

    P_l = d h_L / d h_l = J_L J_{L-1} ... J_{l+1},   J_l = d h_l / d h_{l-1} = diag(phi'(a_l)) W_l,

and the back-propagated gradient of a loss is ``g_l = dE/dh_l = P_l^T g_L`` (Rumelhart, Hinton &
Williams 1986). Every suffix product comes from ONE backward sweep ``P_{l-1} = P_l J_l`` starting
at ``P_L = I``, which costs L matrix products (the naive per-l product costs L^2/2).

Products of more than a few dozen factors leave floating point: ``0.25**64`` underflows in
float32. The log-space functions carry the scale separately, ``P_l = exp(s_l) M_l`` with
``||M_l||_F = 1``, so the log-norms stay exact at any depth; :func:`lyapunov_spectrum` uses QR
re-orthonormalization (Benettin et al. 1980; Shimada & Nagashima 1979) for every direction.

Shapes: stacked Jacobians are ``(L, n, n)`` or, with a leading batch axis, ``(B, L, n, n)``;
layers of unequal widths come as a list of ``(n_l, n_{l-1})`` (or ``(B, n_l, n_{l-1})``) arrays.
All matmuls run at ``Precision.HIGHEST`` (no TF32 on GPUs).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vgplib._validate import check_finite, check_finite_many
from vgplib.activations import Activation, get_activation
from vgplib.networks import check_mlp_shapes, check_residual_scale, dense, stack_layers

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST


def _mm(a: Array, b: Array) -> Array:
    return jnp.matmul(a, b, precision=HIGHEST)


# --------------------------------------------------------------------------- layer Jacobians


def _one_layer(layer, x: Array, act: Activation, residual: bool, residual_scale=1.0) -> Array:
    out = act.fn(dense(layer, x))
    return x + residual_scale * out if residual else out


@partial(jax.jit, static_argnames=("act", "residual"))
def _stacked_jacobians(stacked, x: Array, act: Activation, residual: bool,
                       residual_scale=1.0) -> tuple[Array, Array]:
    """Scan over equal-shape layers; ``jax.jacfwd`` of each layer map at its own input."""

    def step(x_prev, layer):
        J = jax.jacfwd(_one_layer, argnums=1)(layer, x_prev, act, residual, residual_scale)
        return _one_layer(layer, x_prev, act, residual, residual_scale), J

    x_L, Js = jax.lax.scan(step, x, stacked)
    return Js, x_L


def layer_jacobians(params, x, activation: str | Activation = "tanh", residual: bool = False,
                    residual_scale: float = 1.0):
    """Exact per-layer Jacobians ``J_l = d h_l / d h_{l-1}``, ``l = 1..L``, by autodiff.

    For ``h_l = phi(a_l)``, ``a_l = W_l h_{l-1} + b_l``, this equals ``diag(phi'(a_l)) W_l``; with
    ``residual=True`` (``h_l = h_{l-1} + alpha phi(a_l)``, He et al. 2016, ``alpha = residual_scale``)
    it is ``I + alpha diag(phi'(a_l)) W_l``. ``params`` is a list of
    ``{"W", "b"}`` layers or a stacked ``{"W": (L, n, n), "b": (L, n)}`` dict. ``residual_scale``
    may be a traced scalar inside ``jax.jit`` (one compilation for every ``alpha``).

    Returns ``(L, n, n)`` (or ``(B, L, n, n)`` for a batch ``x`` of shape ``(B, n_0)``) when all
    layers are square of one width, else a list of L arrays ``(n_l, n_{l-1})`` (``(B, ...)``).
    """
    act = get_activation(activation)
    residual_scale = check_residual_scale(residual_scale, residual)
    if isinstance(params, dict):
        stacked = params
        W, b = jnp.asarray(stacked.get("W")), jnp.asarray(stacked.get("b"))
        if W.ndim != 3 or b.ndim != 2 or W.shape[1] != W.shape[2] or b.shape != W.shape[:2]:
            raise ValueError(f"stacked params must be W (L, n, n) and b (L, n); got {W.shape}, {b.shape}")
        x, _ = check_mlp_shapes([{"W": W[0], "b": b[0]}], x, residual)
        check_finite_many(("params", stacked), ("x", x))
    else:
        x, shapes = check_mlp_shapes(params, x, residual)
        if len(set(shapes)) == 1 and shapes[0][0] == shapes[0][1]:
            stacked = stack_layers(params)
            try:  # validate the stacked arrays the sweep uses: one reduction each, one host sync
                check_finite_many(("params", stacked), ("x", x))
            except ValueError:
                check_finite_many(("params", params), ("x", x))  # failure path: name the bad layer
                raise
        else:
            stacked = None
            check_finite_many(("params", params), ("x", x))
    if stacked is not None:
        fn = lambda xi: _stacked_jacobians(stacked, xi, act, residual, residual_scale)[0]
        return fn(x) if x.ndim == 1 else jax.vmap(fn)(x)
    # Unequal widths: one autodiff Jacobian per layer, in a Python loop.
    jac = jax.jacfwd(_one_layer, argnums=1)
    batched_jac = jax.vmap(jac, in_axes=(None, 0, None, None, None))
    Js = []
    for layer in params:
        args = (layer, x, act, residual, residual_scale)
        Js.append(jac(*args) if x.ndim == 1 else batched_jac(*args))
        x = _one_layer(*args)
    return Js


# --------------------------------------------------------------------------- input checks


def _check_stacked(jacobians, name: str = "jacobians") -> Array:
    """Validate stacked square Jacobians ``(L, n, n)`` or ``(B, L, n, n)``."""
    if isinstance(jacobians, (list, tuple)):
        raise TypeError(f"{name} must be stacked square Jacobians (L, n, n) for this function; "
                        "layers of unequal widths are supported by backward_products only")
    J = jnp.asarray(jacobians)
    if not jnp.issubdtype(J.dtype, jnp.floating):
        J = J.astype(jnp.result_type(float))
    if J.ndim not in (3, 4) or J.shape[-1] != J.shape[-2]:
        raise ValueError(f"{name} must have shape (L, n, n) or (B, L, n, n); got {J.shape}")
    if J.shape[-3] == 0 or J.shape[-1] == 0:
        raise ValueError(f"{name} must hold at least one layer of width >= 1; got shape {J.shape}")
    check_finite(name, J)
    return J


def _batched(fn, J: Array, *args):
    return fn(J, *args) if J.ndim == 3 else jax.vmap(fn, in_axes=(0,) + (None,) * len(args))(J, *args)


# --------------------------------------------------------------------------- direct products


@jax.jit
def _suffix_products(J: Array) -> Array:
    eye = jnp.eye(J.shape[-1], dtype=J.dtype)

    def step(P, J_l):  # P_{l-1} = P_l J_l
        P_prev = _mm(P, J_l)
        return P_prev, P_prev

    _, Ps = jax.lax.scan(step, eye, J, reverse=True)
    return jnp.concatenate([Ps, eye[None]], axis=0)


def backward_products(jacobians):
    """Every suffix product ``P_l = d h_L / d h_l = J_L ... J_{l+1}``, ``l = 0..L``, in one sweep.

    ``P_L = I`` and ``P_{l-1} = P_l J_l``: L matrix products in all, so the cost is linear in L.
    Stacked input ``(L, n, n)`` gives ``(L+1, n, n)`` (``(B, L+1, n, n)`` for a batch); a list of
    layers of unequal widths gives a list of L+1 arrays ``(n_L, n_l)``. ``P_0`` is the
    input-output Jacobian, equal to ``jax.jacrev`` of the whole network.
    """
    if isinstance(jacobians, (list, tuple)):
        if len(jacobians) == 0:
            raise ValueError("jacobians must hold at least one layer; got an empty list")
        Js = [jnp.asarray(J) for J in jacobians]
        batched = Js[0].ndim == 3
        for i, J in enumerate(Js):
            if J.ndim != (3 if batched else 2) or (i and J.shape[-1] != Js[i - 1].shape[-2]):
                raise ValueError(f"jacobians[{i}] has shape {J.shape}, which does not chain with its neighbours")
        check_finite("jacobians", Js)
        eye = jnp.eye(Js[-1].shape[-2], dtype=Js[-1].dtype)
        P = jnp.broadcast_to(eye, Js[-1].shape[:-2] + eye.shape)
        out = [P]
        for J in reversed(Js):
            P = _mm(P, J)
            out.append(P)
        return out[::-1]
    return _batched(_suffix_products, _check_stacked(jacobians))


@jax.jit
def _vector_products(J: Array, g: Array) -> Array:
    def step(v, J_l):  # v_{l-1} = J_l^T v_l
        v_prev = _mm(v, J_l)
        return v_prev, v_prev

    _, vs = jax.lax.scan(step, g, J, reverse=True)
    return jnp.concatenate([vs, g[None]], axis=0)


def backward_vector_products(jacobians, grad_output) -> Array:
    """The back-propagated gradients ``g_l = dE/dh_l = P_l^T g_L`` for ``l = 0..L``.

    ``grad_output`` is ``g_L = dE/dh_L`` of shape ``(n,)`` (or ``(B, n)`` for batched Jacobians). One
    matrix-vector product per layer, as backpropagation itself does. Returns ``(L+1, n)``.
    """
    J = _check_stacked(jacobians)
    g = jnp.asarray(grad_output, dtype=J.dtype)
    expected = J.shape[:-3] + J.shape[-1:]
    if g.shape != expected:
        raise ValueError(f"grad_output must have shape {expected}; got {g.shape}")
    check_finite("grad_output", g)
    if J.ndim == 3:
        return _vector_products(J, g)
    return jax.vmap(_vector_products)(J, g)


@jax.jit
def _suffix_singular_values(J: Array) -> Array:
    eye = jnp.eye(J.shape[-1], dtype=J.dtype)

    def step(P, J_l):
        P_prev = _mm(P, J_l)
        return P_prev, jnp.linalg.svd(P_prev, compute_uv=False)

    _, svs = jax.lax.scan(step, eye, J, reverse=True)
    return jnp.concatenate([svs, jnp.ones_like(svs[:1])], axis=0)


def backward_singular_values(jacobians) -> Array:
    """Singular values (descending) of every ``P_l``, ``l = 0..L``, streamed: ``(L+1, n)``.

    Memory is O(n^2) for the sweep, not O(L n^2). The products are formed directly, so they
    underflow exactly as float arithmetic does (float32 below ~1e-38, subnormals flushed on
    CPU); :func:`log_singular_values` is the version that never underflows.
    """
    return _batched(_suffix_singular_values, _check_stacked(jacobians))


# --------------------------------------------------------------------------- log space


def _max_scale(x: Array, axis: int) -> tuple[Array, Array]:
    m = jnp.max(jnp.abs(x), axis=axis)
    ok = (m > 0) & jnp.isfinite(m)
    return m, jnp.where(ok, m, 1.0)


def stable_norm(x, axis: int = -1) -> Array:
    """Euclidean norm over ``axis`` computed as ``m ||x / m||``, ``m = max |x_i|``, in ``x``'s dtype.

    ``jnp.linalg.norm`` squares the entries first, so in float32 a vector of entries around 1e-20 has
    norm 0 (the squares underflow) although it is not 0. Scaling by the largest entry first avoids
    that: the result is 0 exactly when every entry is 0, and inf when an entry is inf (or the norm
    itself exceeds the dtype's range). Traceable (a building block of jitted sweeps).
    """
    x = jnp.asarray(x)
    m, scale = _max_scale(x, axis)
    scaled = m * jnp.linalg.norm(x / jnp.expand_dims(scale, axis), axis=axis)
    return jnp.where((m > 0) & jnp.isfinite(m), scaled, jnp.where(m > 0, m, 0.0 * m))


def stable_log_norm(x, axis: int = -1) -> Array:
    """``log ||x||`` over ``axis`` as ``log m + log ||x / m||``: no under- or overflow of the squares or
    of the norm itself; ``-inf`` for a zero vector. Traceable."""
    x = jnp.asarray(x)
    m, scale = _max_scale(x, axis)
    log = jnp.log(scale) + jnp.log(jnp.linalg.norm(x / jnp.expand_dims(scale, axis), axis=axis))
    return jnp.where(m > 0, jnp.where(jnp.isfinite(m), log, jnp.inf), -jnp.inf)



def renormalized_step(direction, log_scale, image, active=True) -> tuple[Array, Array]:
    """One step of a renormalized (log-space) backward sweep over vectors; traceable.

    A backward sweep ``g_{l-1} = J_l^T g_l`` is kept as ``g_l = exp(s_l) u_l`` with ``||u_l|| = 1``:
    given the image ``w = J_l^T u_l`` of the current unit ``direction`` (rows: a batch), this returns
    ``(w / ||w||, log_scale + log ||w||)``, so the scale never under- or overflows at any depth.
    A zero image gives direction 0 and ``log_scale = -inf`` (never NaN). Where ``active`` is False
    (a layer beyond a masked depth, so one compiled sweep serves every depth) the carry
    ``(direction, log_scale)`` is returned unchanged. ``log_scale`` has the shape of ``image``
    without its last axis.
    """
    r = jnp.linalg.norm(image, axis=-1, keepdims=True)
    unit = jnp.where(r > 0, image / jnp.where(r > 0, r, 1), 0)
    return jnp.where(active, unit, direction), jnp.where(active, log_scale + jnp.log(r[..., 0]), log_scale)


class LogNorms(NamedTuple):
    """``log ||P_l||_F`` and ``log sigma_max(P_l)`` for ``l = 0..L``."""

    frobenius: Array
    spectral: Array


def _kahan_add(total: Array, comp: Array, term: Array) -> tuple[Array, Array]:
    """Compensated summation (Kahan 1965): the running log-scale of 10,000 factors keeps its
    last digits (plain float32 summation drifts by about 1e-5 relative over 2,000 terms)."""
    y = term - comp
    t = total + y
    # -inf terms (a zero factor) pass through without turning the compensation into NaN.
    comp = jnp.where(jnp.isfinite(t), (t - total) - y, 0.0)
    return t, comp


@jax.jit
def _log_sweep(J: Array) -> tuple[Array, Array]:
    """Renormalized sweep ``P_l = exp(s_l) M_l``, ``||M_l||_F = 1``; returns ``s`` and ``sigma(M_l)``."""
    n = J.shape[-1]
    M0 = jnp.eye(n, dtype=J.dtype) / jnp.sqrt(jnp.asarray(n, J.dtype))
    s0 = 0.5 * jnp.log(jnp.asarray(n, J.dtype))

    def step(carry, J_l):
        M, s, comp = carry
        A = _mm(M, J_l)
        scale = jnp.linalg.norm(A)
        # A zero factor makes the product exactly 0: log-norm -inf, no NaN from 0/0.
        M_next = jnp.where(scale > 0, A / jnp.where(scale > 0, scale, 1), 0)
        s_next, comp = _kahan_add(s, comp, jnp.log(scale))
        return (M_next, s_next, comp), (s_next, jnp.linalg.svd(M_next, compute_uv=False))

    _, (s, sv) = jax.lax.scan(step, (M0, s0, jnp.zeros_like(s0)), J, reverse=True)
    s = jnp.concatenate([s, s0[None]])
    sv = jnp.concatenate([sv, jnp.linalg.svd(M0, compute_uv=False)[None]], axis=0)
    return s, sv


def log_singular_values(jacobians) -> Array:
    """Natural-log singular values of every ``P_l = J_L ... J_{l+1}``, ``l = 0..L``: ``(L+1, n)``.

    One backward sweep that renormalizes after every factor: ``P_l = exp(s_l) M_l`` with
    ``||M_l||_F = 1``, so ``log sigma_i(P_l) = s_l + log sigma_i(M_l)`` never under- or overflows,
    at depth 10,000 as at depth 1. The largest singular value and the Frobenius norm are exact
    to rounding at any depth; a singular value below ``eps * sigma_max`` (eps = 1.2e-7 in float32)
    is at the rounding floor of ``M_l`` and only its order of magnitude is meaningful (use
    :func:`lyapunov_spectrum` for the growth rate of every direction). A zero singular value
    gives ``-inf``.
    """
    J = _check_stacked(jacobians)
    s, sv = _batched(_log_sweep, J)
    return s[..., None] + jnp.log(sv)


@jax.jit
def _first_layers_log_sv(J: Array, depth: Array) -> Array:
    n = J.shape[-1]
    layers = jnp.arange(1, J.shape[0] + 1)
    M0 = jnp.eye(n, dtype=J.dtype) / jnp.sqrt(jnp.asarray(n, J.dtype))
    s0 = 0.5 * jnp.log(jnp.asarray(n, J.dtype))

    def step(carry, inputs):
        M, s, comp = carry
        J_l, l = inputs
        A = _mm(M, J_l)
        scale = jnp.linalg.norm(A)
        M_next = jnp.where(scale > 0, A / jnp.where(scale > 0, scale, 1), 0)
        s_next, comp_next = _kahan_add(s, comp, jnp.log(scale))
        keep = l <= depth  # layers above `depth` are left out of the product
        return (jnp.where(keep, M_next, M), jnp.where(keep, s_next, s), jnp.where(keep, comp_next, comp)), None

    (M, s, _), _ = jax.lax.scan(step, (M0, s0, jnp.zeros_like(s0)), (J, layers), reverse=True)
    return s + jnp.log(jnp.linalg.svd(M, compute_uv=False))


def first_layers_log_singular_values(jacobians, depth=None) -> Array:
    """Natural-log singular values (descending) of ``J_depth ... J_1``: the input-output Jacobian
    ``d h_depth / d h_0`` of the network made of the first ``depth`` layers. ``(n,)`` (``(B, n)``).

    The same renormalized sweep as :func:`log_singular_values` (``P = exp(s) M``, ``||M||_F = 1``,
    exact log-scale at any depth), without a decomposition per layer: one SVD at the end. Layers
    above ``depth`` are masked, so inside ``jax.jit`` a traced ``depth`` serves every depth with one
    compilation (a live panel's depth slider). ``depth=None`` takes all L layers, and then this
    equals ``log_singular_values(jacobians)[0]``. Singular values below ``eps * sigma_max`` are at
    the rounding floor of ``M`` (see :func:`log_singular_values`).
    """
    J = _check_stacked(jacobians)
    L = J.shape[-3]
    if depth is None:
        depth = L
    elif not isinstance(depth, jax.core.Tracer):
        integer = jnp.ndim(depth) == 0 and jnp.issubdtype(jnp.result_type(depth), jnp.integer)
        if isinstance(depth, bool) or not integer:
            raise TypeError(f"depth must be an integer; got {depth!r}")
        if not 1 <= int(depth) <= L:
            raise ValueError(f"depth must be between 1 and the number of layers {L}; got {int(depth)}")
    return _batched(_first_layers_log_sv, J, jnp.asarray(depth, jnp.int32))


def log_norms(jacobians) -> LogNorms:
    """``log ||P_l||_F`` and ``log ||P_l||_2`` for ``l = 0..L``, exact at any depth (log-space)."""
    J = _check_stacked(jacobians)
    s, sv = _batched(_log_sweep, J)
    return LogNorms(frobenius=s, spectral=s + jnp.log(sv[..., 0]))


@jax.jit
def _qr_sweep(J: Array) -> Array:
    n = J.shape[-1]

    def step(carry, J_l):
        Q, c, comp = carry
        # A_{l-1} = J_l^T A_l with A_l = P_l^T = Q R: re-orthonormalize J_l^T Q = Q' R'.
        Q_next, R = jnp.linalg.qr(_mm(J_l.T, Q))
        c_next, comp = _kahan_add(c, comp, jnp.log(jnp.abs(jnp.diagonal(R))))
        return (Q_next, c_next, comp), c_next

    c0 = jnp.zeros(n, J.dtype)
    _, cs = jax.lax.scan(step, (jnp.eye(n, dtype=J.dtype), c0, c0), J, reverse=True)
    return jnp.concatenate([cs, c0[None]], axis=0)


def lyapunov_spectrum(jacobians) -> Array:
    """Cumulative log stretching factors of ``P_l`` by QR re-orthonormalization: ``(L+1, n)``.

    ``c_l = sum_{k>l} log|diag R_k|`` where ``J_k^T Q_k = Q_{k-1} R_k`` (Benettin et al. 1980).
    Their sum is ``log|det P_l|`` exactly; for diagonal Jacobians they are exactly the log
    singular values; for long products ``c_l / (L - l)`` converges to the Lyapunov exponents,
    the per-layer growth rates of every direction. Never under- or overflows. Entries are in
    the QR order, not sorted.
    """
    return _batched(_qr_sweep, _check_stacked(jacobians))
