"""Recurrent cells (vanilla RNN, LSTM, GRU) as pure functions, unrolled with ``lax.scan``.

Parameters are one dict ``{"W": (k n, n), "U": (k n, d), "b": (k n,)}`` per network, with the
``k`` gate blocks stacked along the rows (``k = 1`` RNN, ``4`` LSTM, ``3`` GRU):

- RNN (Elman 1990): ``a_t = W h_{t-1} + U x_t + b``, ``h_t = phi(a_t)``.
- LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000), gate
  blocks in the order of :data:`LSTM_GATES` (input, forget, cell candidate, output)::

      i, f, o = sigmoid(W_. h_{t-1} + U_. x_t + b_.),   g = phi(W_g h_{t-1} + U_g x_t + b_g)
      c_t = f * c_{t-1} + i * g,    h_t = o * phi(c_t)

  The recurrent state is ``s_t = [h_t; c_t]`` (size ``2n``).
- GRU (Cho et al. 2014, eqs. 5-8), gate blocks in the order of :data:`GRU_GATES`::

      z, r = sigmoid(W_. h_{t-1} + U_. x_t + b_.),   h~ = phi(W_h (r * h_{t-1}) + U_h x_t + b_h)
      h_t = z * h_{t-1} + (1 - z) * h~

``phi`` is ``tanh`` by default (any name of :data:`vgplib.ACTIVATION_NAMES`); gates are always
logistic sigmoids. Backpropagation through time (Werbos 1990) multiplies the step Jacobians
``J_t = d s_t / d s_{t-1}`` (for the RNN ``s_t = h_t`` and ``J_t = diag(phi'(a_t)) W``):
``d s_T / d s_k = J_T J_{T-1} ... J_{k+1}`` (Bengio, Simard &
Frasconi 1994; Pascanu, Mikolov & Bengio 2013), which :func:`step_jacobians` returns in the
stacked ``(T, m, m)`` layout of :func:`vgplib.backward_products` and :func:`vgplib.log_norms`.
All matmuls run at ``Precision.HIGHEST``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import (
    check_finite,
    check_float_dtype,
    check_name,
    check_positive,
    check_positive_int,
)
from vgplib.activations import Activation, get_activation
from vgplib.jacobians import _check_stacked

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST

CELL_NAMES: tuple[str, ...] = ("rnn", "lstm", "gru")
LSTM_GATES: tuple[str, ...] = ("input", "forget", "cell", "output")
GRU_GATES: tuple[str, ...] = ("update", "reset", "candidate")
RECURRENT_INIT_NAMES: tuple[str, ...] = ("gaussian", "spectral_radius", "orthogonal", "identity")

_BLOCKS = {"rnn": 1, "lstm": 4, "gru": 3}


# --------------------------------------------------------------------------- cells (internal)


def _mv(x: Array, M: Array) -> Array:
    """``M x`` for ``x`` of shape ``(..., k)`` (row vectors), at full precision."""
    return jnp.matmul(x, M.T, precision=HIGHEST)


def _pre(params, h: Array, x: Array) -> Array:
    return _mv(h, params["W"]) + _mv(x, params["U"]) + params["b"]


def _lstm_gates(params, h: Array, x: Array, act: Activation):
    a_i, a_f, a_g, a_o = jnp.split(_pre(params, h, x), 4, axis=-1)
    return jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), act.fn(a_g), jax.nn.sigmoid(a_o)


def _gru_parts(params, h: Array, x: Array, act: Activation):
    n = h.shape[-1]
    W, U, b = params["W"], params["U"], params["b"]
    z = jax.nn.sigmoid(_mv(h, W[:n]) + _mv(x, U[:n]) + b[:n])
    r = jax.nn.sigmoid(_mv(h, W[n:2 * n]) + _mv(x, U[n:2 * n]) + b[n:2 * n])
    cand = act.fn(_mv(r * h, W[2 * n:]) + _mv(x, U[2 * n:]) + b[2 * n:])
    return z, r, cand


def _step(params, s: Array, x: Array, cell: str, act: Activation) -> Array:
    """One step on the flat state ``s`` (``(..., m)``; ``[h; c]`` for the LSTM)."""
    if cell == "rnn":
        return act.fn(_pre(params, s, x))
    if cell == "gru":
        z, _, cand = _gru_parts(params, s, x, act)
        return z * s + (1.0 - z) * cand
    h, c = jnp.split(s, 2, axis=-1)
    i, f, g, o = _lstm_gates(params, h, x, act)
    c_new = f * c + i * g
    return jnp.concatenate([o * act.fn(c_new), c_new], axis=-1)


@partial(jax.jit, static_argnames=("cell", "act"))
def _unroll(params, xs: Array, s0: Array, cell: str, act: Activation) -> Array:
    def body(s, x):
        s_new = _step(params, s, x, cell, act)
        return s_new, s_new

    _, ss = jax.lax.scan(body, s0, jnp.moveaxis(xs, -2, 0))
    return jnp.moveaxis(ss, 0, -2)


@partial(jax.jit, static_argnames=("cell", "act"))
def _jacobians_one(params, xs: Array, s0: Array, cell: str, act: Activation) -> Array:
    def body(s, x):
        J = jax.jacfwd(_step, argnums=1)(params, s, x, cell, act)
        return _step(params, s, x, cell, act), J

    _, Js = jax.lax.scan(body, s0, xs)
    return Js


# --------------------------------------------------------------------------- validation


def _check_cell(cell: Any) -> str:
    check_name("cell", cell, CELL_NAMES)
    return cell


def check_recurrent_params(params, cell: str = "rnn") -> tuple[int, int]:
    """Validate ``{"W": (k n, n), "U": (k n, d), "b": (k n,)}`` for ``cell``; return ``(n, d)``."""
    cell = _check_cell(cell)
    if not isinstance(params, Mapping) or not all(key in params for key in ("W", "U", "b")):
        raise TypeError("params must be a dict with keys 'W' (k n, n), 'U' (k n, d) and 'b' (k n,)")
    W, U, b = (params[key] for key in ("W", "U", "b"))
    if np.ndim(W) != 2 or np.ndim(U) != 2 or np.ndim(b) != 1:
        raise ValueError(f"params: W and U must be 2-D and b 1-D; got shapes {np.shape(W)}, {np.shape(U)}, "
                         f"{np.shape(b)}")
    rows, n = np.shape(W)
    k = _BLOCKS[cell]
    if n == 0 or rows != k * n:
        guess = [name for name, kk in _BLOCKS.items() if n and rows == kk * n]
        hint = f" (these params look like a {guess[0]!r} cell)" if guess else ""
        raise ValueError(f"params['W'] must have shape ({k} n, n) for cell={cell!r}; got {np.shape(W)}{hint}")
    if np.shape(U)[0] != rows or np.shape(U)[1] == 0:
        raise ValueError(f"params['U'] must have shape ({rows}, d) with d >= 1; got {np.shape(U)}")
    if np.shape(b)[0] != rows:
        raise ValueError(f"params['b'] must have shape ({rows},); got {np.shape(b)}")
    for key in ("W", "U", "b"):
        if not jnp.issubdtype(jnp.result_type(params[key]), jnp.floating):
            raise TypeError(f"params['{key}'] must be a floating array; got {jnp.result_type(params[key])}")
    check_finite("params", params)
    return int(n), int(np.shape(U)[1])


def state_size(params, cell: str = "rnn") -> int:
    """Size ``m`` of the recurrent state ``s_t``: ``n`` for RNN and GRU, ``2n`` (``[h; c]``) for LSTM."""
    n, _ = check_recurrent_params(params, cell)
    return 2 * n if cell == "lstm" else n


def _float_array(arg: str, x: Any, dtype) -> Array:
    if isinstance(x, (str, bytes, Mapping)) or x is None:
        raise TypeError(f"{arg} must be an array; got {type(x).__name__}")
    try:
        arr = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"{arg} must be an array of numbers; got {type(x).__name__}") from err
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)):
        raise TypeError(f"{arg} must hold real numbers; got dtype {arr.dtype}")
    return arr.astype(dtype)


def _check_inputs(params, xs, h0, cell: str) -> tuple[Array, Array, int]:
    """Validate a sequence ``xs`` ``(T, d)``/``(B, T, d)`` and an initial state; return ``xs, s0, n``."""
    n, d = check_recurrent_params(params, cell)
    dtype = jnp.result_type(params["W"])
    xs = _float_array("xs", xs, dtype)
    if xs.ndim not in (2, 3):
        raise ValueError(f"xs must have shape (T, d) or (B, T, d); got {xs.shape}")
    if xs.shape[-1] != d:
        raise ValueError(f"xs has {xs.shape[-1]} input channels but params['U'] expects d = {d}")
    if xs.shape[-2] == 0:
        raise ValueError(f"xs must hold a sequence of length T >= 1; got shape {xs.shape}")
    if xs.ndim == 3 and xs.shape[0] == 0:
        raise ValueError(f"xs must hold a batch of B >= 1 sequences; got shape {xs.shape}")
    check_finite("xs", xs)
    m = 2 * n if cell == "lstm" else n
    batch = xs.shape[:-2]
    if h0 is None:
        s0 = jnp.zeros(batch + (m,), dtype)
    else:
        s0 = _float_array("h0", h0, dtype)
        sizes = f"{m}" if m == n else f"{n} (h_0, with c_0 = 0) or {m} ([h_0; c_0])"
        if s0.ndim not in (1, 2) or s0.shape[-1] not in (n, m):
            raise ValueError(f"h0 must have shape (size,) or (B, size) with size {sizes}; got {s0.shape}")
        if s0.ndim == 2 and (xs.ndim == 2 or s0.shape[0] != xs.shape[0]):
            raise ValueError(f"h0 has a batch axis of {s0.shape[0]} but xs has shape {xs.shape}; "
                             "give a batched h0 only with xs of shape (B, T, d) and the same B")
        check_finite("h0", s0)
        if s0.shape[-1] != m:  # LSTM: h_0 alone, c_0 = 0
            s0 = jnp.concatenate([s0, jnp.zeros_like(s0)], axis=-1)
        s0 = jnp.broadcast_to(s0, batch + (m,))
    return xs, s0, n


# --------------------------------------------------------------------------- public cells


class LSTMGates(NamedTuple):
    """The LSTM gate activations at one step: input ``i``, forget ``f``, candidate ``g``, output ``o``."""

    i: Array
    f: Array
    g: Array
    o: Array


def _check_cell_args(params, h, x, cell: str, c=None):
    n, d = check_recurrent_params(params, cell)
    dtype = jnp.result_type(params["W"])
    h = _float_array("h", h, dtype)
    x = _float_array("x", x, dtype)
    if h.ndim not in (1, 2) or h.shape[-1] != n:
        raise ValueError(f"h must have shape ({n},) or (B, {n}); got {h.shape}")
    if x.ndim not in (1, 2) or x.shape[-1] != d:
        raise ValueError(f"x must have shape ({d},) or (B, {d}); got {x.shape}")
    if h.ndim == 2 and x.ndim == 2 and h.shape[0] != x.shape[0]:
        raise ValueError(f"h and x must have the same batch size; got shapes {h.shape} and {x.shape}")
    check_finite("h", h)
    check_finite("x", x)
    if c is not None:
        c = _float_array("c", c, dtype)
        if c.shape != h.shape:
            raise ValueError(f"c must have the shape of h {h.shape}; got {c.shape}")
        check_finite("c", c)
    return h, x, c


def rnn_cell(params, h, x, activation: str | Activation = "tanh") -> Array:
    """One vanilla RNN step ``h_t = phi(a_t)``, ``a_t = W h_{t-1} + U x_t + b`` (Elman 1990); ``h`` ``(n,)``/``(B, n)``."""
    act = get_activation(activation)
    h, x, _ = _check_cell_args(params, h, x, "rnn")
    return _step(params, h, x, "rnn", act)


def lstm_cell(params, h, c, x, activation: str | Activation = "tanh") -> tuple[Array, Array]:
    """One LSTM step with forget gate (Hochreiter & Schmidhuber 1997; Gers et al. 2000): ``(h_t, c_t)``.

    ``c_t = f_t * c_{t-1} + i_t * g_t`` and ``h_t = o_t * phi(c_t)``; see :func:`lstm_gates`.
    """
    act = get_activation(activation)
    h, x, c = _check_cell_args(params, h, x, "lstm", c)
    s = _step(params, jnp.concatenate([h, c], axis=-1), x, "lstm", act)
    return tuple(jnp.split(s, 2, axis=-1))


def lstm_gates(params, h, x, activation: str | Activation = "tanh") -> LSTMGates:
    """The gates of the LSTM step from ``h_{t-1} = h`` and ``x_t = x``: ``LSTMGates(i, f, g, o)``.

    ``f`` is the forget gate: ``d c_t / d c_{t-1}`` at fixed ``h_{t-1}`` is exactly ``diag(f_t)``,
    the constant error carousel of Hochreiter & Schmidhuber (1997) as gated by Gers et al. (2000).
    """
    act = get_activation(activation)
    h, x, _ = _check_cell_args(params, h, x, "lstm")
    return LSTMGates(*_lstm_gates(params, h, x, act))


def gru_cell(params, h, x, activation: str | Activation = "tanh") -> Array:
    """One GRU step (Cho et al. 2014): ``h_t = z * h_{t-1} + (1 - z) * phi(W_h (r * h_{t-1}) + U_h x + b_h)``."""
    act = get_activation(activation)
    h, x, _ = _check_cell_args(params, h, x, "gru")
    return _step(params, h, x, "gru", act)


# --------------------------------------------------------------------------- unrolling and Jacobians


def unroll(params, xs, h0=None, cell: str = "rnn", activation: str | Activation = "tanh") -> Array:
    """Run the recurrence over ``xs`` with ``lax.scan``; return every state ``s_1, ..., s_T``.

    ``xs`` is ``(T, d)`` or a batch ``(B, T, d)``. ``h0`` is the initial state: ``None`` (zeros),
    ``(m,)`` or ``(B, m)`` with ``m`` = :func:`state_size` (for the LSTM ``[h_0; c_0]``, or just
    ``h_0`` of size ``n`` with ``c_0 = 0``); an unbatched ``h0`` is shared by a batch of sequences.
    Returns ``(T, m)`` or ``(B, T, m)``; for the LSTM split with :func:`lstm_split`.
    """
    act = get_activation(activation)
    xs, s0, _ = _check_inputs(params, xs, h0, cell)
    return _unroll(params, xs, s0, cell, act)


def lstm_split(states) -> tuple[Array, Array]:
    """Split LSTM states ``[h; c]`` of shape ``(..., 2n)`` into ``(h, c)``, each ``(..., n)``."""
    s = jnp.asarray(states)
    if s.ndim < 1 or s.shape[-1] % 2 or s.shape[-1] == 0:
        raise ValueError(f"states must have an even, non-zero last axis (2n for [h; c]); got shape {s.shape}")
    return tuple(jnp.split(s, 2, axis=-1))


def step_jacobians(params, xs, h0=None, cell: str = "rnn", activation: str | Activation = "tanh") -> Array:
    """Exact step Jacobians ``J_t = d s_t / d s_{t-1}``, ``t = 1..T``, of the full recurrent state.

    By forward-mode autodiff (``jax.jacfwd``) of one step at the state the recurrence reaches,
    inside one ``lax.scan``. For the RNN ``J_t = diag(phi'(a_t)) W`` with ``a_t = W h_{t-1} + U x_t + b``. For the
    LSTM ``s = [h; c]`` and ``J_t`` is ``(2n, 2n)``; its ``c``-to-``c`` block is ``diag(f_t)``
    (see :func:`lstm_blocks`). The result is stacked like layer Jacobians, so
    ``vgplib.backward_products(J)[k] = d s_T / d s_k`` for every ``k = 0..T`` in one sweep, and
    :func:`vgplib.log_norms` / :func:`vgplib.log_singular_values` stay exact at any ``T``.

    ``xs``/``h0`` as in :func:`unroll`. Returns ``(T, m, m)`` or ``(B, T, m, m)`` for a batch.
    Memory is ``T m^2`` floats per sequence (164 MB for T = 10,000, m = 64, float32).
    """
    act = get_activation(activation)
    xs, s0, _ = _check_inputs(params, xs, h0, cell)
    if xs.ndim == 2:
        return _jacobians_one(params, xs, s0, cell, act)
    return jax.vmap(_jacobians_one, in_axes=(None, 0, 0, None, None))(params, xs, s0, cell, act)


class LSTMBlocks(NamedTuple):
    """Blocks of an LSTM Jacobian of ``[h; c]``: ``h_c = d h_t / d c_{t-1}`` and so on (``(..., n, n)``)."""

    h_h: Array
    h_c: Array
    c_h: Array
    c_c: Array


def lstm_blocks(jacobians) -> LSTMBlocks:
    """Split LSTM Jacobians ``(..., 2n, 2n)`` of ``s = [h; c]`` into their four ``(..., n, n)`` blocks.

    Works on step Jacobians and on their products alike: for a step Jacobian ``c_c`` is
    ``d c_t / d c_{t-1} = diag(f_t)`` (the direct path of the constant error carousel), and
    ``h_c = diag(o_t phi'(c_t) f_t)``; for a product ``backward_products(J)[k]`` the ``c_c``
    block is the full ``d c_T / d c_k``, paths through ``h`` included.
    Slicing by hand: ``J[..., :n, :n]`` is ``h_h``, ``J[..., :n, n:]`` is ``h_c``,
    ``J[..., n:, :n]`` is ``c_h``, ``J[..., n:, n:]`` is ``c_c``.
    """
    J = jnp.asarray(jacobians)
    if J.ndim < 2 or J.shape[-1] != J.shape[-2] or J.shape[-1] % 2 or J.shape[-1] == 0:
        raise ValueError(f"jacobians must have shape (..., 2n, 2n) with n >= 1; got {J.shape}")
    n = J.shape[-1] // 2
    return LSTMBlocks(J[..., :n, :n], J[..., :n, n:], J[..., n:, :n], J[..., n:, n:])


@partial(jax.jit, static_argnames=("spectral",))
def _pairwise(J: Array, spectral: bool) -> Array:
    T, m = J.shape[0], J.shape[-1]
    M0 = jnp.eye(m, dtype=J.dtype) / jnp.sqrt(jnp.asarray(m, J.dtype))
    s0 = 0.5 * jnp.log(jnp.asarray(m, J.dtype))
    nan = jnp.asarray(jnp.nan, J.dtype)

    def value(M, s):
        if spectral:
            return s + jnp.log(jnp.linalg.svd(M, compute_uv=False)[..., 0])
        return s

    def column(k):  # log ||d s_t / d s_k|| for t = 0..T (NaN above the diagonal, t < k)
        def step(carry, inp):
            M, s = carry
            t, J_t = inp
            A = jnp.matmul(J_t, M, precision=HIGHEST)  # Q_{t,k} = J_t Q_{t-1,k}, renormalized
            scale = jnp.linalg.norm(A)
            M_new = jnp.where(scale > 0, A / jnp.where(scale > 0, scale, 1), 0)
            active = t > k
            M_new = jnp.where(active, M_new, M0)
            s_new = jnp.where(active, s + jnp.log(scale), s0)
            return (M_new, s_new), jnp.where(t >= k, value(M_new, s_new), nan)

        _, vals = jax.lax.scan(step, (M0, s0), (jnp.arange(1, T + 1), J))
        first = jnp.where(k == 0, value(M0, s0), nan)
        return jnp.concatenate([first[None], vals])

    return jax.vmap(column, out_axes=1)(jnp.arange(T + 1))


def pairwise_log_norms(jacobians, ord: str | int = "fro") -> Array:
    """``L[t, k] = log ||d s_t / d s_k||`` for every ``0 <= k <= t <= T``: the BPTT heat map.

    ``d s_t / d s_k = J_t J_{t-1} ... J_{k+1}`` (the identity for ``t = k``); entries with
    ``t < k`` are NaN (no dependence of the past on the future; ``imshow`` leaves them blank).
    ``ord="fro"`` gives the Frobenius norm, ``ord=2`` the spectral norm, the one bounded by
    ``(gamma ||W||_2)^(t-k)`` in Pascanu, Mikolov & Bengio (2013). Every product is carried in
    log-space (renormalized after each factor, as in :func:`vgplib.log_norms`), so no entry under-
    or overflows. Cost: ``T^2 / 2`` matrix products (plus as many ``m x m`` SVDs for ``ord=2``),
    all with fixed shapes in one compiled function. Measured on 2 shared CPU cores, T = 100 and
    m = 64: 0.17 s for ``"fro"``, 3 s for ``ord=2``; for one row (fixed ``t = T``) use the one-sweep
    :func:`vgplib.log_norms` instead. ``jacobians`` as from :func:`step_jacobians`:
    ``(T, m, m)`` gives ``(T+1, T+1)``, ``(B, T, m, m)`` gives ``(B, T+1, T+1)``.
    """
    if isinstance(ord, bool) or ord not in ("fro", 2):
        raise ValueError(f"ord must be 'fro' or 2; got {ord!r}")
    J = _check_stacked(jacobians)
    fn = partial(_pairwise, spectral=ord == 2)
    return fn(J) if J.ndim == 3 else jax.vmap(fn)(J)


# --------------------------------------------------------------------------- BPTT contributions


@partial(jax.jit, static_argnames=("cell", "act", "loss_fn"))
def _contributions(params, xs: Array, s0: Array, g: Array, cell: str, act: Activation, loss_fn) -> Any:
    T = xs.shape[-2]
    n = params["W"].shape[1]
    untied = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (T,) + a.shape), params)

    def loss(untied_params):
        def body(s, inp):
            p, x = inp
            return _step(p, s, x, cell, act), None

        s_T, _ = jax.lax.scan(body, s0, (untied_params, jnp.moveaxis(xs, -2, 0)))
        h_T = s_T[..., :n]
        return jnp.sum(g * h_T) if loss_fn is None else loss_fn(h_T)

    return jax.grad(loss)(untied)


def bptt_contributions(
    params,
    xs,
    h0=None,
    loss_fn: Callable[[Array], Array] | None = None,
    grad_output=None,
    cell: str = "rnn",
    activation: str | Activation = "tanh",
) -> dict[str, Array]:
    """The T terms of backpropagation through time whose sum is ``dE/dtheta`` (Werbos 1990).

    The weights are shared by every step, so ``dE/dW = sum_t dE/dW_t`` where ``W_t`` is the copy
    used at step ``t``. For a loss on the last hidden state,
    ``dE/dW_t = ((d h_T / d h_t)^T dE/dh_T  * phi'(a_t)) h_{t-1}^T`` for the RNN: the term from step
    ``t`` carries the product of the ``T - t`` later step Jacobians, which is why the long-range
    terms (small ``t``) vanish when those products do (Pascanu, Mikolov & Bengio 2013, eqs. 5-7).
    Computed exactly by autodiff with respect to untied per-step copies of every parameter.

    The loss is on the last hidden state ``h_T`` (for the LSTM the ``h`` part of ``s_T``): give
    either ``loss_fn(h_T) -> scalar`` (``h_T`` is ``(n,)`` or ``(B, n)`` for a batch ``xs``; it must
    be traceable by JAX; pass the same function object on every call, since each new function
    compiles anew) or ``grad_output = dE/dh_T`` of the
    shape of ``h_T`` (the loss ``sum(grad_output * h_T)``). Returns a dict with the keys of
    ``params``, each with a leading time axis: ``{"W": (T, k n, n), "U": (T, k n, d), "b": (T, k n)}``;
    entry ``t - 1`` is the contribution of step ``t``. For a batch the terms are of the batch loss.
    """
    act = get_activation(activation)
    xs, s0, n = _check_inputs(params, xs, h0, cell)
    if (loss_fn is None) == (grad_output is None):
        raise ValueError("give exactly one of loss_fn (a function of h_T) and grad_output (dE/dh_T)")
    h_shape = xs.shape[:-2] + (n,)
    if grad_output is not None:
        g = _float_array("grad_output", grad_output, xs.dtype)
        if g.shape != h_shape:
            raise ValueError(f"grad_output must have the shape of h_T {h_shape}; got {g.shape}")
        check_finite("grad_output", g)
    else:
        g = jnp.zeros((), xs.dtype)
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be a function of h_T; got {type(loss_fn).__name__}")
        try:
            out = jax.eval_shape(loss_fn, jax.ShapeDtypeStruct(h_shape, xs.dtype))
        except Exception as err:
            raise TypeError(f"loss_fn must map h_T of shape {h_shape} to a scalar; calling it failed: {err}") from err
        if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(f"loss_fn must return a real scalar; got {getattr(out, 'shape', type(out))}")
    return _contributions(params, xs, s0, g, cell, act, loss_fn)


# --------------------------------------------------------------------------- one sigmoid neuron


def sigmoid_neuron_fold(h) -> tuple[np.ndarray, np.ndarray]:
    """The fold (saddle-node) curve of the one-neuron map ``h -> sigmoid(w h + b)``, in closed form.

    A fixed point ``h* = sigmoid(w h* + b)`` has the per-step factor ``d h_t / d h_{t-1} =
    w sigmoid'(a) = w h*(1 - h*)``; the factor is exactly 1 where two fixed points meet and vanish
    (a fold). Taking the fixed point ``h`` in ``(0, 1)`` as the parameter, the two conditions give

        w = 1 / (h (1 - h)),        b = logit(h) - w h = log(h / (1 - h)) - 1 / (1 - h).

    The curve has two branches that meet at the cusp ``h = 1/2``: ``(w, b) = (4, -2)``. For each
    ``w > 4`` the map has three fixed points (two stable, one unstable) for ``b`` strictly between
    the branch ``h > 1/2`` (lower ``b``) and the branch ``h < 1/2`` (upper ``b``), and one outside;
    for ``w <= 4`` it always has exactly one. The lines ``b = const`` through the cusp (for example
    ``b = -2``) touch the bistable region only at the cusp. The same map, written for the
    pre-activation ``x -> w sigmoid(x) + b``, is the one-unit recurrence of Pascanu et al. (2013).

    ``h``: a number or array of numbers strictly between 0 and 1. Returns ``(w, b)`` as float64
    NumPy arrays of the shape of ``h`` (computed with ``log`` and ``log1p``, so accurate near 0 and 1).
    """
    if isinstance(h, (str, bytes, Mapping, bool)) or h is None:
        raise TypeError(f"h must be a number or an array of numbers in (0, 1); got {type(h).__name__}")
    try:
        arr = np.asarray(h)
    except (TypeError, ValueError) as err:
        raise TypeError(f"h must be a number or an array of numbers in (0, 1); got {type(h).__name__}") from err
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"h must hold real numbers; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0 or not np.all((arr > 0) & (arr < 1)):
        raise ValueError("h must lie strictly between 0 and 1 (a fixed point of the sigmoid map)")
    w = 1.0 / (arr * (1.0 - arr))
    b = np.log(arr) - np.log1p(-arr) - 1.0 / (1.0 - arr)
    return w, b


# --------------------------------------------------------------------------- initializers


def _recurrent_matrix(key: Array, n: int, w_init: str, scale: float, dtype) -> Array:
    if w_init == "gaussian":
        return scale / math.sqrt(n) * jax.random.normal(key, (n, n), dtype)
    if w_init == "spectral_radius":
        G = np.asarray(jax.random.normal(key, (n, n), jnp.float32), dtype=np.float64)
        rho = float(np.max(np.abs(np.linalg.eigvals(G))))  # on the host: works on every backend
        return jnp.asarray(G * (scale / rho), dtype)
    if w_init == "orthogonal":
        q, r = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
        return scale * q * jnp.sign(jnp.diagonal(r))  # Haar (Mezzadri 2007)
    return scale * jnp.eye(n, dtype=dtype)  # identity


def _init(key, n_in, n_hidden, cell, w_init, scale, sigma_u, sigma_b, dtype, bias_shift=None) -> dict[str, Array]:
    n_in = check_positive_int("n_in", n_in)
    n = check_positive_int("n_hidden", n_hidden)
    check_name("w_init", w_init, RECURRENT_INIT_NAMES)
    scale = check_positive("scale", scale)
    sigma_u = check_positive("sigma_u", sigma_u, allow_zero=True)
    sigma_b = check_positive("sigma_b", sigma_b, allow_zero=True)
    check_float_dtype(dtype)
    k = _BLOCKS[cell]
    keys = jax.random.split(key, k + 2)
    W = jnp.concatenate([_recurrent_matrix(keys[j], n, w_init, scale, dtype) for j in range(k)], axis=0)
    U = sigma_u / math.sqrt(n_in) * jax.random.normal(keys[k], (k * n, n_in), dtype)
    b = sigma_b * jax.random.normal(keys[k + 1], (k * n,), dtype)
    if bias_shift is not None:
        b = b.at[bias_shift[0]].add(bias_shift[1])
    return {"W": W, "U": U, "b": b}


_INIT_DOC = """
    ``w_init`` sets each ``(n, n)`` recurrent block ``W``:

    - ``gaussian``: ``W_ij ~ N(0, scale^2 / n)``, spectral radius close to ``scale`` for large ``n``
      (circular law);
    - ``spectral_radius``: a Gaussian matrix rescaled so that its spectral radius (largest
      ``|eigenvalue|``) is exactly ``scale`` (as in echo-state networks, Jaeger 2001);
    - ``orthogonal``: ``scale`` times a Haar-random orthogonal matrix (Saxe et al. 2014), all
      singular values equal to ``scale``;
    - ``identity``: ``scale * I`` (the IRNN of Le, Jaitly & Hinton 2015 with ``scale = 1``).

    ``U_ij ~ N(0, sigma_u^2 / n_in)`` and ``b ~ N(0, sigma_b^2)``. Keys are split per block, so
    results are reproducible for a fixed ``key``.
"""


def init_rnn(key: Array, n_in: int, n_hidden: int, w_init: str = "gaussian", scale: float = 1.0,
             sigma_u: float = 1.0, sigma_b: float = 0.0, dtype=jnp.float32) -> dict[str, Array]:
    return _init(key, n_in, n_hidden, "rnn", w_init, scale, sigma_u, sigma_b, dtype)


def init_lstm(key: Array, n_in: int, n_hidden: int, w_init: str = "gaussian", scale: float = 1.0,
              sigma_u: float = 1.0, sigma_b: float = 0.0, forget_bias: float = 1.0,
              dtype=jnp.float32) -> dict[str, Array]:
    if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.integer, np.floating)):
        raise TypeError(f"forget_bias must be a real number; got {type(forget_bias).__name__}")
    if not math.isfinite(forget_bias):
        raise ValueError(f"forget_bias must be finite; got {forget_bias}")
    n = check_positive_int("n_hidden", n_hidden)
    return _init(key, n_in, n, "lstm", w_init, scale, sigma_u, sigma_b, dtype,
                 bias_shift=(slice(n, 2 * n), float(forget_bias)))


def init_gru(key: Array, n_in: int, n_hidden: int, w_init: str = "gaussian", scale: float = 1.0,
             sigma_u: float = 1.0, sigma_b: float = 0.0, dtype=jnp.float32) -> dict[str, Array]:
    return _init(key, n_in, n_hidden, "gru", w_init, scale, sigma_u, sigma_b, dtype)


init_rnn.__doc__ = ("""Initialize a vanilla RNN ``{"W": (n, n), "U": (n, n_in), "b": (n,)}``.
""" + _INIT_DOC)
init_lstm.__doc__ = ("""Initialize an LSTM ``{"W": (4n, n), "U": (4n, n_in), "b": (4n,)}`` (blocks i, f, g, o).

    ``forget_bias`` is added to the forget-gate bias: a positive value (default 1, as recommended
    by Gers et al. 2000 and Jozefowicz, Zaremba & Sutskever 2015) starts the forget gates near
    ``sigmoid(1) = 0.73`` so the cell remembers; 0 gives ``f = 1/2``.
""" + _INIT_DOC)
init_gru.__doc__ = ("""Initialize a GRU ``{"W": (3n, n), "U": (3n, n_in), "b": (3n,)}`` (blocks z, r, h~).
""" + _INIT_DOC)
