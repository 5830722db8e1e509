"""Recurrent cells (vanilla RNN, LSTM, GRU) as pure functions, unrolled with ``lax.scan``.

Parameters are one dict ``{"W": (k n, n), "U": (k n, d), "b": (k n,)}`` per network, with the
``k`` gate blocks stacked along the rows (``k = 1`` RNN, ``4`` LSTM, ``3`` GRU):

- RNN (Elman 1990): ``a_t = W h_{t-1} + U x_t + b``, ``h_t = phi(a_t)``.
- LSTM with forget gate (Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000), gate
  blocks in the order of :data:`LSTM_GATES` (input, forget, cell candidate, output)::

      i, f, o = sigmoid(W_. h_{t-1} + U_. x_t + b_.),   c~ = phi(W_g h_{t-1} + U_g x_t + b_g)
      c_t = f * c_{t-1} + i * c~,    h_t = o * phi(c_t)

  The recurrent state is ``s_t = [h_t; c_t]`` (size ``2n``).
- GRU (Cho et al. 2014, eqs. 5-8), gate blocks in the order of :data:`GRU_GATES`::

      z, r = sigmoid(W_. h_{t-1} + U_. x_t + b_.),   h~ = phi(W_h (r * h_{t-1}) + U_h x_t + b_h)
      h_t = z * h_{t-1} + (1 - z) * h~

- Diagonal state-space cell (``cell="diagonal"``; the S4/LRU/Mamba family: Gu, Goel & Re 2022;
  Orvieto et al. 2023; Gu & Dao 2023), parameters ``{"nu": (n,), "U": (n, d), "b": (n,),
  "Wd": (n, d), "bd": (n,)}`` (see :func:`init_diagonal`)::

      lambda = exp(nu) > 0,   Delta_t = softplus(Wd x_t + bd),   a_t = exp(-Delta_t * lambda)
      h_t = a_t * h_{t-1} + Delta_t * (U x_t + b)

  Its step Jacobian is exactly ``diag(a_t)``, each entry in ``(0, 1)``: no matrix product mixes
  the channels, and ``d h_T / d h_k = diag(prod_{t > k} a_t)``. With ``Wd = 0`` the step
  ``Delta`` is fixed (a linear time-invariant recurrence); with ``Wd != 0`` it depends on the
  input (Mamba's selection mechanism): a step can hold its memory (``Delta_t -> 0``, ``a_t -> 1``)
  or overwrite it (large ``Delta_t``).

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
import optax

from vgplib._validate import (
    check_finite,
    check_float_dtype,
    check_name,
    check_positive,
    check_positive_int,
)
from vgplib.activations import Activation, get_activation
from vgplib.data import adding_problem
from vgplib.gradients import tree_norm
from vgplib.jacobians import _check_stacked, _kahan_add, stable_log_norm

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST

CELL_NAMES: tuple[str, ...] = ("rnn", "lstm", "gru")
#: Every ``cell`` that :func:`unroll`, :func:`step_jacobians` and :func:`train_adding` accept.
ALL_CELL_NAMES: tuple[str, ...] = CELL_NAMES + ("diagonal",)
DIAGONAL_KEYS: tuple[str, ...] = ("nu", "U", "b", "Wd", "bd")
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


def _diagonal_gates(params, x: Array) -> tuple[Array, Array]:
    """``(a_t, Delta_t)`` of the diagonal cell at input ``x`` (``(..., d)``)."""
    delta = jax.nn.softplus(_mv(x, params["Wd"]) + params["bd"])
    return jnp.exp(-delta * jnp.exp(params["nu"])), delta


def _step(params, s: Array, x: Array, cell: str, act: Activation) -> Array:
    """One step on the flat state ``s`` (``(..., m)``; ``[h; c]`` for the LSTM)."""
    if cell == "diagonal":
        a, delta = _diagonal_gates(params, x)
        return a * s + delta * (_mv(x, params["U"]) + params["b"])
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
    check_name("cell", cell, ALL_CELL_NAMES)
    return cell


def _dtype(params):
    return jnp.result_type(params["U"])


def _hidden(params, cell: str) -> int:
    return params["U"].shape[0] if cell == "diagonal" else params["W"].shape[1]


def _check_diagonal_params(params) -> tuple[int, int]:
    if not isinstance(params, Mapping) or not all(key in params for key in DIAGONAL_KEYS):
        raise TypeError("params of the diagonal cell must be a dict with keys 'nu' (n,), 'U' (n, d), 'b' (n,), "
                        "'Wd' (n, d), 'bd' (n,)")
    U = params["U"]
    if np.ndim(U) != 2 or 0 in np.shape(U):
        raise ValueError(f"params['U'] must have shape (n, d) with n, d >= 1; got {np.shape(U)}")
    n, d = np.shape(U)
    want = {"nu": (n,), "b": (n,), "Wd": (n, d), "bd": (n,)}
    for key, shape in want.items():
        if np.shape(params[key]) != shape:
            raise ValueError(f"params['{key}'] must have shape {shape}; got {np.shape(params[key])}")
    for key in DIAGONAL_KEYS:
        if not jnp.issubdtype(jnp.result_type(params[key]), jnp.floating):
            raise TypeError(f"params['{key}'] must be a floating array; got {jnp.result_type(params[key])}")
    check_finite("params", {key: params[key] for key in DIAGONAL_KEYS})
    return int(n), int(d)


def check_recurrent_params(params, cell: str = "rnn") -> tuple[int, int]:
    """Validate ``{"W": (k n, n), "U": (k n, d), "b": (k n,)}`` for ``cell``; return ``(n, d)``.

    For ``cell="diagonal"``: ``{"nu": (n,), "U": (n, d), "b": (n,), "Wd": (n, d), "bd": (n,)}``.
    """
    cell = _check_cell(cell)
    if cell == "diagonal":
        return _check_diagonal_params(params)
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
    dtype = _dtype(params)
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

    ``c_t = f_t * c_{t-1} + i_t * c~_t`` and ``h_t = o_t * phi(c_t)``; see :func:`lstm_gates`.
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


@partial(jax.jit, static_argnames=("spectral", "rows", "cols"))
def _pairwise(J: Array, spectral: bool, rows: tuple[int, int] | None = None,
              cols: tuple[int, int] | None = None) -> Array:
    T, m = J.shape[0], J.shape[-1]
    if cols is None:
        M0 = jnp.eye(m, dtype=J.dtype) / jnp.sqrt(jnp.asarray(m, J.dtype))
        s0 = 0.5 * jnp.log(jnp.asarray(m, J.dtype))
    else:  # only the columns of the block: Q_{t,k} E_C, renormalized on its own
        width = cols[1] - cols[0]
        M0 = jnp.eye(m, dtype=J.dtype)[:, cols[0]:cols[1]] / jnp.sqrt(jnp.asarray(width, J.dtype))
        s0 = 0.5 * jnp.log(jnp.asarray(width, J.dtype))
    nan = jnp.asarray(jnp.nan, J.dtype)

    def value(M, s):
        if rows is not None:
            M = M[rows[0]:rows[1]]
            if not spectral:
                return s + stable_log_norm(M.ravel())
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


def pairwise_log_norms(jacobians, ord: str | int = "fro", block: str | None = None) -> Array:
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

    ``block`` (LSTM Jacobians of ``s = [h; c]``, ``m = 2n``): one of ``"h_h", "h_c", "c_h", "c_c"``
    (the names of :class:`LSTMBlocks`) gives the norm of that block of every product, e.g.
    ``"c_c"``: ``L[t, k] = log ||d c_t / d c_k||`` (all paths, through ``h`` included). The block's
    columns are carried on their own (renormalized), so it is exact in log-space like the rest;
    entries where the block is exactly 0 (``h_c`` and ``c_h`` at ``t = k``) are ``-inf``.
    """
    if isinstance(ord, bool) or ord not in ("fro", 2):
        raise ValueError(f"ord must be 'fro' or 2; got {ord!r}")
    J = _check_stacked(jacobians)
    rows = cols = None
    if block is not None:
        check_name("block", block, LSTMBlocks._fields)
        m = J.shape[-1]
        if m % 2:
            raise ValueError(f"block needs LSTM Jacobians of shape (..., 2n, 2n); got {J.shape}")
        n = m // 2
        halves = {"h": (0, n), "c": (n, m)}
        rows, cols = halves[block[0]], halves[block[2]]
    fn = partial(_pairwise, spectral=ord == 2, rows=rows, cols=cols)
    return fn(J) if J.ndim == 3 else jax.vmap(fn)(J)


# --------------------------------------------------------------------------- BPTT contributions


@partial(jax.jit, static_argnames=("cell", "act", "loss_fn"))
def _contributions(params, xs: Array, s0: Array, g: Array, cell: str, act: Activation, loss_fn) -> Any:
    T = xs.shape[-2]
    n = _hidden(params, cell)
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
    ``params``, each with a leading time axis: ``{"W": (T, k n, n), "U": (T, k n, d), "b": (T, k n)}``
    (``cell="diagonal"``: ``"nu", "U", "b", "Wd", "bd"``, where the ``b`` term of step ``t`` is
    ``dE/dh_T * prod_{s > t} a_s * Delta_t``); entry ``t - 1`` is the contribution of step ``t``. For a
    batch the terms are of the batch loss.
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


# --------------------------------------------------------------------------- gated Jacobians in closed form


def lstm_step_blocks(params, h, c, x, activation: str | Activation = "tanh") -> LSTMBlocks:
    """The four blocks of the LSTM step Jacobian ``d [h_t; c_t] / d [h_{t-1}; c_{t-1}]``, in closed form.

    With ``a_t = W h_{t-1} + U x_t + b`` split into the gate blocks ``(a_i, a_f, a_g, a_o)``, ``i, f, o``
    their sigmoids, ``c~ = phi(a_g)``, ``c_t = f * c_{t-1} + i * c~`` and ``h_t = o * phi(c_t)``:

        d c_t / d c_{t-1} = diag(f_t)                       (the constant error carousel)
        d c_t / d h_{t-1} = diag(c_{t-1} sigma'(a_f)) W_f + diag(g sigma'(a_i)) W_i + diag(i phi'(a_g)) W_g
        d h_t / d c_{t-1} = diag(o phi'(c_t)) diag(f_t)
        d h_t / d h_{t-1} = diag(phi(c_t) sigma'(a_o)) W_o + diag(o phi'(c_t)) d c_t / d h_{t-1}

    (``sigma' = sigma (1 - sigma)``). Hochreiter & Schmidhuber (1997) built the cell so that the
    error carried by ``c`` is multiplied by 1 per step (their eq. for the constant error carousel);
    Gers, Schmidhuber & Cummins (2000) added the forget gate, which turns that factor into
    ``f_t``. ``h``, ``c`` ``(n,)``, ``x`` ``(d,)`` (one step, unbatched). Returns
    :class:`LSTMBlocks` ``(h_h, h_c, c_h, c_c)``, each ``(n, n)``; the same numbers as the blocks of
    :func:`step_jacobians` (autodiff), from the formulas instead.
    """
    act = get_activation(activation)
    h, x, c = _check_cell_args(params, h, x, "lstm", c)
    if h.ndim != 1:
        raise ValueError(f"h, c and x must be single vectors (one step, unbatched); got h of shape {h.shape}")
    return _lstm_blocks_closed(params, h, c, x, act)


def _lstm_blocks_closed(params, h, c, x, act: Activation) -> LSTMBlocks:
    W = params["W"]
    n = h.shape[-1]
    a_i, a_f, a_g, a_o = jnp.split(_pre(params, h, x), 4, axis=-1)
    W_i, W_f, W_g, W_o = W[:n], W[n:2 * n], W[2 * n:3 * n], W[3 * n:]
    i, f, o, g = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jax.nn.sigmoid(a_o), act.fn(a_g)
    c_new = f * c + i * g
    c_h = ((c * f * (1 - f))[:, None] * W_f + (g * i * (1 - i))[:, None] * W_i
           + (i * act.grad(a_g))[:, None] * W_g)
    c_c = jnp.diag(f)
    out = o * act.grad(c_new)
    h_h = (act.fn(c_new) * o * (1 - o))[:, None] * W_o + out[:, None] * c_h
    return LSTMBlocks(h_h, jnp.diag(out * f), c_h, c_c)


def gru_step_jacobian(params, h, x, activation: str | Activation = "tanh") -> Array:
    """The GRU step Jacobian ``d h_t / d h_{t-1}`` in closed form (Cho et al. 2014, eqs. 5-8).

    With ``z = sigmoid(a_z)``, ``r = sigmoid(a_r)`` (``a_. = W_. h_{t-1} + U_. x_t + b_.``),
    ``h~ = phi(a_h)``, ``a_h = W_h (r * h_{t-1}) + U_h x_t + b_h`` and ``h_t = z * h_{t-1} + (1 - z) * h~``:

        d h_t / d h_{t-1} = diag(z_t)
                            + diag((h_{t-1} - h~_t) sigma'(a_z)) W_z
                            + diag((1 - z_t) phi'(a_h)) W_h (diag(r_t) + diag(h_{t-1} sigma'(a_r)) W_r)

    The first term is the GRU's carousel: an update gate near 1 copies ``h_{t-1}`` and its
    gradient through. ``h`` ``(n,)``, ``x`` ``(d,)`` (one step). Returns ``(n, n)``.
    """
    act = get_activation(activation)
    h, x, _ = _check_cell_args(params, h, x, "gru")
    if h.ndim != 1:
        raise ValueError(f"h and x must be single vectors (one step, unbatched); got h of shape {h.shape}")
    n = h.shape[0]
    W, U, b = params["W"], params["U"], params["b"]
    W_z, W_r, W_h = W[:n], W[n:2 * n], W[2 * n:]
    z = jax.nn.sigmoid(_mv(h, W_z) + _mv(x, U[:n]) + b[:n])
    r = jax.nn.sigmoid(_mv(h, W_r) + _mv(x, U[n:2 * n]) + b[n:2 * n])
    a_h = _mv(r * h, W_h) + _mv(x, U[2 * n:]) + b[2 * n:]
    reset = jnp.diag(r) + (h * r * (1 - r))[:, None] * W_r
    return (jnp.diag(z) + ((h - act.fn(a_h)) * z * (1 - z))[:, None] * W_z
            + ((1 - z) * act.grad(a_h))[:, None] * jnp.matmul(W_h, reset, precision=HIGHEST))


@jax.jit
def _lstm_row_sweeps(J: Array) -> LSTMBlocks:
    m = J.shape[-1]
    n = m // 2
    eye = jnp.eye(m, dtype=J.dtype)
    s0 = 0.5 * jnp.log(jnp.asarray(n, J.dtype))

    def sweep(E: Array) -> tuple[Array, Array]:  # E: the (n, m) row selector of h or c
        def step(carry, J_t):
            M, s, comp = carry
            A = jnp.matmul(M, J_t, precision=HIGHEST)  # E^T J_T ... J_t, renormalized
            scale = jnp.linalg.norm(A)
            M_next = jnp.where(scale > 0, A / jnp.where(scale > 0, scale, 1), 0)
            s_next, comp = _kahan_add(s, comp, jnp.log(scale))
            return (M_next, s_next, comp), (s_next + stable_log_norm(M_next[:, :n].ravel()),
                                             s_next + stable_log_norm(M_next[:, n:].ravel()))

        M0 = E / jnp.sqrt(jnp.asarray(n, J.dtype))
        _, (to_h, to_c) = jax.lax.scan(step, (M0, s0, jnp.zeros_like(s0)), J, reverse=True)
        return (jnp.concatenate([to_h, (s0 + stable_log_norm(M0[:, :n].ravel()))[None]]),
                jnp.concatenate([to_c, (s0 + stable_log_norm(M0[:, n:].ravel()))[None]]))

    h_h, h_c = sweep(eye[:n])
    c_h, c_c = sweep(eye[n:])
    return LSTMBlocks(h_h, h_c, c_h, c_c)


def lstm_log_norms(jacobians) -> LSTMBlocks:
    """``log ||B(d s_T / d s_k)||_F`` for every block ``B`` of the LSTM state ``s = [h; c]`` and ``k = 0..T``.

    ``d s_T / d s_k = J_T J_{T-1} ... J_{k+1}`` (the identity for ``k = T``) from the stacked step
    Jacobians of :func:`step_jacobians` (``(T, 2n, 2n)`` or a batch ``(B, T, 2n, 2n)``). Two
    renormalized backward sweeps, one for the rows of ``h_T`` and one for those of ``c_T`` (each
    carried as ``exp(s) M`` with ``||M||_F = 1`` and compensated summation of ``s``, as in
    :func:`vgplib.log_norms`), so every entry is exact to rounding at any ``T``, far below float32's
    smallest number; a block that is exactly 0 gives ``-inf`` (``h_c`` and ``c_h`` at ``k = T``).
    ``c_c[k]`` is the full ``log ||d c_T / d c_k||_F``, paths through ``h`` included: compare it with
    the carousel alone, ``sum_{t > k} log f_t`` (Hochreiter & Schmidhuber 1997; Gers et al. 2000).
    Returns :class:`LSTMBlocks` of ``(T+1,)`` arrays (``(B, T+1)`` for a batch). Cost: linear in ``T``.
    """
    J = _check_stacked(jacobians)
    if J.shape[-1] % 2:
        raise ValueError(f"jacobians must be LSTM step Jacobians of shape (..., T, 2n, 2n); got {J.shape}")
    return _lstm_row_sweeps(J) if J.ndim == 3 else jax.vmap(_lstm_row_sweeps)(J)


# --------------------------------------------------------------------------- the adding problem, trained


def _step_drive(params, s: Array, drive: Array, cell: str, act: Activation) -> Array:
    """One step with the input term given: ``drive = U x_t + b`` (``(..., k n)``, any extra
    perturbation of the pre-activation already added). Same cell equations as :func:`_step`."""
    W = params["W"]
    if cell == "rnn":
        return act.fn(_mv(s, W) + drive)
    if cell == "gru":
        n = s.shape[-1]
        z = jax.nn.sigmoid(_mv(s, W[:n]) + drive[..., :n])
        r = jax.nn.sigmoid(_mv(s, W[n:2 * n]) + drive[..., n:2 * n])
        cand = act.fn(_mv(r * s, W[2 * n:]) + drive[..., 2 * n:])
        return z * s + (1.0 - z) * cand
    h, c = jnp.split(s, 2, axis=-1)
    a_i, a_f, a_g, a_o = jnp.split(_mv(h, W) + drive, 4, axis=-1)
    c_new = jax.nn.sigmoid(a_f) * c + jax.nn.sigmoid(a_i) * act.fn(a_g)
    return jnp.concatenate([jax.nn.sigmoid(a_o) * act.fn(c_new), c_new], axis=-1)


def _adding_predict(params, xs: Array, start, eps, cell: str, act: Activation) -> Array:
    if cell == "diagonal":
        s0 = jnp.zeros((xs.shape[0], params["U"].shape[0]), xs.dtype)
        eps_t = jnp.zeros(xs.shape[:2] + s0.shape[-1:], xs.dtype) if eps is None else eps

        def body_diag(s, inp):
            t, x, e = inp
            return jnp.where(t >= start, _step(params, s, x, cell, act) + e, s), None

        s, _ = jax.lax.scan(body_diag, s0, (jnp.arange(xs.shape[1]), jnp.moveaxis(xs, 1, 0),
                                            jnp.moveaxis(eps_t, 1, 0)))
        return s @ params["v"] + params["c"]
    n = params["W"].shape[1]
    m = 2 * n if cell == "lstm" else n
    B, T_max = xs.shape[0], xs.shape[1]
    drive = jnp.matmul(xs, params["U"].T, precision=HIGHEST) + params["b"]  # (B, T_max, k n)
    eps = jnp.zeros(drive.shape, drive.dtype) if eps is None else eps

    def body(s, inp):
        t, a_in, e = inp
        return jnp.where(t >= start, _step_drive(params, s, a_in + e, cell, act), s), None

    s, _ = jax.lax.scan(body, jnp.zeros((B, m), xs.dtype),
                        (jnp.arange(T_max), jnp.moveaxis(drive, 1, 0), jnp.moveaxis(eps, 1, 0)))
    return s[:, :n] @ params["v"] + params["c"]


def _adding_mse(params, xs: Array, y: Array, start, eps, cell: str, act: Activation) -> Array:
    return jnp.mean((_adding_predict(params, xs, start, eps, cell, act) - y) ** 2)


def _check_adding_params(params, cell: str) -> int:
    """Validate a recurrent ``params`` dict with the readout ``v`` ``(n,)``, ``c`` ``()``; return ``n``."""
    if not isinstance(params, Mapping) or "v" not in params or "c" not in params:
        raise TypeError("params must be a dict with the cell's 'W', 'U', 'b' and the readout 'v' (n,), 'c' ()")
    keys = DIAGONAL_KEYS if cell == "diagonal" else ("W", "U", "b")
    core = {key: params[key] for key in keys if key in params}
    if any(_is_traced(a) for a in params.values()):
        n = int(_hidden(params, cell)) if np.ndim(params["U"]) == 2 else -1
    else:
        n, _ = check_recurrent_params(core, cell)
    if np.shape(params["v"]) != (n,) or np.shape(params["c"]) != ():
        raise ValueError(f"params['v'] must have shape ({n},) and params['c'] shape (); got "
                         f"{np.shape(params['v'])} and {np.shape(params['c'])}")
    return n


def _is_traced(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_adding_inputs(params, xs, start, eps, cell: str):
    _check_adding_params(params, cell)
    dtype = _dtype(params)
    if not _is_traced(xs):
        xs = _float_array("xs", xs, dtype)
    if xs.ndim != 3 or xs.shape[0] == 0 or xs.shape[1] == 0:
        raise ValueError(f"xs must have shape (B, T_max, d) with B, T_max >= 1; got {xs.shape}")
    if xs.shape[2] != np.shape(params["U"])[1]:
        raise ValueError(f"xs has {xs.shape[2]} input channels but params['U'] expects {np.shape(params['U'])[1]}")
    if not _is_traced(start):
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) and not (
                hasattr(start, "dtype") and jnp.issubdtype(start.dtype, jnp.integer) and np.ndim(start) == 0):
            raise TypeError(f"start must be an integer; got {type(start).__name__}")
        if not 0 <= int(start) < xs.shape[1]:
            raise ValueError(f"start must satisfy 0 <= start < T_max = {xs.shape[1]}; got {int(start)}")
    if eps is not None:
        k_n = np.shape(params["U"])[0]
        if np.shape(eps) != xs.shape[:2] + (k_n,):
            raise ValueError(f"eps must have shape (B, T_max, k n) = {xs.shape[:2] + (k_n,)}; got {np.shape(eps)}")
    return xs


def adding_predict(params, xs, start=0, eps=None, *, cell: str = "rnn",
                   activation: str | Activation = "tanh") -> Array:
    """The adding-problem readout ``v . h_T + c`` of a recurrent ``cell`` on front-padded sequences.

    ``params`` is the cell's ``{"W", "U", "b"}`` (as from :func:`init_rnn`, :func:`init_lstm`,
    :func:`init_gru`) plus the linear readout ``v`` ``(n,)`` and ``c`` ``()``; ``xs`` ``(B, T_max, d)``.
    The recurrence (see the module docstring; ``h_t`` the ``h`` part of ``s_t``) runs from step
    ``start`` on; before it the state stays at ``s_0 = 0``, which is exactly the unpadded recurrence
    on the last ``T_max - start`` steps (so sequences of different lengths share one compiled loop).
    ``eps`` ``(B, T_max, k n)`` (zeros by default) is added to every pre-activation ``a_t =
    W h_{t-1} + U x_t + b`` (for the GRU candidate block, to ``W_h (r * h_{t-1}) + U_h x_t + b_h``):
    the gradient of a loss with respect to it is ``delta_t = dE/da_t`` per sequence, the quantity
    whose size per lag :func:`vgplib.bptt_contributions` sums over the batch. Returns ``(B,)``.
    ``start`` and ``eps`` may be traced (under ``jax.jit``/``vmap``/``grad``). The task: Hochreiter
    & Schmidhuber (1997), :func:`vgplib.adding_problem`.
    """
    act = get_activation(activation)
    cell = _check_cell(cell)
    xs = _check_adding_inputs(params, xs, start, eps, cell)
    return _adding_predict(params, xs, start, eps, cell, act)


def adding_mse(params, xs, y, start=0, eps=None, *, cell: str = "rnn",
               activation: str | Activation = "tanh") -> Array:
    """Mean squared error ``(1/B) sum_b (v . h_T + c - y_b)^2`` of :func:`adding_predict` (a scalar).

    The constant prediction 1 scores :data:`vgplib.ADDING_BASELINE_MSE` ``= 1/6`` in expectation.
    """
    act = get_activation(activation)
    cell = _check_cell(cell)
    xs = _check_adding_inputs(params, xs, start, eps, cell)
    if np.shape(y) != (xs.shape[0],):
        raise ValueError(f"y must have shape (B,) = ({xs.shape[0]},); got {np.shape(y)}")
    return _adding_mse(params, xs, y, start, eps, cell, act)


def _adding_batches(keys: Array, lengths: tuple, size: int):
    """:func:`vgplib.adding_problem` for every length (rows) and key (columns), front-padded to ``max(lengths)``."""
    T_max = max(lengths)
    xs, ys = [], []
    for T in lengths:
        task = jax.vmap(lambda k, T=T: adding_problem(k, T, size))(keys)
        xs.append(jnp.pad(task.inputs, ((0, 0), (0, 0), (T_max - T, 0), (0, 0))))
        ys.append(task.targets)
    return jnp.stack(xs), jnp.stack(ys)  # (K, S, size, T_max, 2), (K, S, size)


@partial(jax.jit, static_argnames=("lengths", "steps", "batch", "optimizer", "chunk", "cell", "act"))
def _train_adding(params, keys, lengths, steps, batch, optimizer, chunk, cell, act):
    """``steps`` optimizer steps for ``K x S`` networks side by side; parameters every ``chunk`` steps."""
    K, S = len(lengths), keys.shape[0]
    starts = jnp.repeat(jnp.array([max(lengths) - T for T in lengths]), S)
    flat = jax.tree_util.tree_map(lambda a: a.reshape((K * S,) + a.shape[2:]), params)
    loss = partial(_adding_mse, eps=None, cell=cell, act=act)

    def step(carry, ks):
        p, state = carry
        xs, y = _adding_batches(ks, lengths, batch)
        xs, y = xs.reshape((K * S,) + xs.shape[2:]), y.reshape(K * S, -1)
        losses, grads = jax.vmap(jax.value_and_grad(loss))(p, xs, y, starts)
        norms = jax.vmap(tree_norm)(grads)
        updates, state = jax.vmap(optimizer.update)(grads, state, p)
        return (jax.vmap(optax.apply_updates)(p, updates), state), (losses, norms)

    def block(carry, ks):
        carry, out = jax.lax.scan(step, carry, ks)
        return carry, (carry[0], out)

    ks = jax.vmap(lambda k: jax.random.split(k, steps))(keys)            # (S, steps)
    ks = jnp.moveaxis(ks, 0, 1).reshape(steps // chunk, chunk, S)
    _, (ps, (losses, norms)) = jax.lax.scan(block, (flat, jax.vmap(optimizer.init)(flat)), ks)
    unflat = jax.tree_util.tree_map(lambda a: a.reshape((a.shape[0], K, S) + a.shape[2:]), ps)
    return unflat, losses.reshape(steps, K, S), norms.reshape(steps, K, S)


class AddingTraining(NamedTuple):
    """What :func:`train_adding` returns (JAX arrays; ``R = steps / record_every``).

    ``params``: the parameters after steps ``record_every, 2 record_every, ..., steps``, each leaf
    ``(R, K, S, ...)``; ``losses`` ``(steps, K, S)``: the training MSE of each step's batch, before
    that step's update; ``grad_norms`` ``(steps, K, S)``: the global norm ``||dE/dtheta||_2`` of the
    same gradient, before the optimizer (so before any clipping it applies). With an integer
    ``lengths`` the ``K`` axis is absent.
    """

    params: dict
    losses: Array
    grad_norms: Array


def train_adding(params, keys, lengths, optimizer, *, steps: int, batch_size: int = 64, cell: str = "rnn",
                 activation: str | Activation = "tanh", record_every: int = 50) -> AddingTraining:
    """Train many recurrent networks on the adding problem in ONE compiled function.

    ``train_adding(params, keys, lengths, optimizer, *, steps, batch_size=64, cell="rnn",
    activation="tanh", record_every=50) -> AddingTraining(params, losses, grad_norms)``

    - ``params``: a dict ``{"W", "U", "b", "v", "c"}`` of the ``cell`` (``"rnn"``, ``"lstm"``,
      ``"gru"``; the recurrent block as from :func:`init_rnn` / :func:`init_lstm` / :func:`init_gru`
      with ``n_in = 2``, or for ``cell="diagonal"`` the ``{"nu", "U", "b", "Wd", "bd"}`` of
      :func:`init_diagonal`; the readout ``v`` ``(n,)``, ``c`` ``()``) whose leaves carry two leading
      axes ``(K, S)``: one network per length and seed (a different initialization each is allowed).
      With an integer ``lengths`` (one length) the leading axis is ``(S,)`` only.
    - ``keys``: ``(S,)`` PRNG keys, one per seed: seed ``s`` draws its stream of training batches
      from ``keys[s]`` (split into one key per step; at step ``i`` the same key draws the batch of
      every length, so the streams of different lengths are correlated but not equal).
    - ``lengths``: the sequence lengths ``T`` (a tuple of ints >= 2, or one int). Sequences are
      front-padded to ``max(lengths)`` and each network starts its recurrence at its own step
      (:func:`adding_predict`), so the loss is that of the unpadded length-``T`` recurrence.
    - ``optimizer``: any ``optax.GradientTransformation`` (``optax.adam(1e-2)``,
      ``optax.chain(optax.clip_by_global_norm(c), optax.adam(lr))``, ...). It is a static argument:
      pass the same object again to reuse the compilation.

    Each step draws ``batch_size`` fresh sequences of :func:`vgplib.adding_problem` (Hochreiter &
    Schmidhuber 1997, experiment 4) per network, takes the gradient of :func:`adding_mse` by
    backpropagation through time (all ``T`` steps, Werbos 1990) and applies the optimizer:
    ``jax.vmap`` over the ``K x S`` networks, ``lax.scan`` over ``steps`` (in blocks of
    ``record_every``, after each of which the parameters are kept). ``steps`` must be a multiple of
    ``record_every``. A diverging run is not raised: its losses become ``inf``/``NaN``.
    """
    act = get_activation(activation)
    cell = _check_cell(cell)
    single = not isinstance(lengths, (tuple, list))
    if single:
        lengths = (check_positive_int("lengths", lengths, minimum=2),)
    else:
        lengths = tuple(check_positive_int("lengths", T, minimum=2) for T in lengths)
        if not lengths:
            raise ValueError("lengths must hold at least one sequence length")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be an optax.GradientTransformation; got {type(optimizer).__name__}")
    steps = check_positive_int("steps", steps)
    batch_size = check_positive_int("batch_size", batch_size)
    record_every = check_positive_int("record_every", record_every)
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    try:
        keys = jnp.asarray(keys)
    except TypeError as err:
        raise TypeError(f"keys must be an array of PRNG keys; got {type(keys).__name__}") from err
    if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.ndim != 1 or keys.shape[0] == 0:
        raise TypeError(f"keys must be a 1-D array of typed PRNG keys (jax.random.key); got {keys.dtype} {keys.shape}")
    S, K = keys.shape[0], len(lengths)
    lead = (S,) if single else (K, S)
    want = set(DIAGONAL_KEYS if cell == "diagonal" else ("W", "U", "b")) | {"v", "c"}
    if not isinstance(params, Mapping) or set(params) != want:
        raise TypeError(f"params must be a dict with exactly the keys {sorted(want)} for cell={cell!r}")
    for key, value in params.items():
        if np.shape(value)[:len(lead)] != lead:
            raise ValueError(f"params['{key}'] must have leading axes {lead} (lengths x seeds); got {np.shape(value)}")
    one = {key: jnp.asarray(value)[(0,) * len(lead)] for key, value in params.items()}
    _check_adding_params(one, cell)
    if np.shape(one["U"])[1] != 2:
        raise ValueError(f"params['U'] must take the adding problem's 2 inputs (u_t, marker); got {np.shape(one['U'])}")
    check_finite("params", params)
    params = {key: jnp.asarray(value) for key, value in params.items()}
    if single:
        params = jax.tree_util.tree_map(lambda a: a[None], params)
    ps, losses, norms = _train_adding(params, keys, lengths, steps, batch_size, optimizer, record_every,
                                      cell, act)
    if single:
        ps = jax.tree_util.tree_map(lambda a: a[:, 0], ps)
        losses, norms = losses[:, 0], norms[:, 0]
    return AddingTraining(ps, losses, norms)


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

    ``forget_bias`` is added to the forget-gate bias: a positive value (default 1; Jozefowicz,
    Zaremba & Sutskever 2015 report in their abstract that adding a bias of 1 to the forget gate
    closes the gap between the LSTM and the GRU) starts the forget gates near
    ``sigmoid(1) = 0.73`` so the cell remembers; 0 gives ``f = 1/2``.
""" + _INIT_DOC)
init_gru.__doc__ = ("""Initialize a GRU ``{"W": (3n, n), "U": (3n, n_in), "b": (3n,)}`` (blocks z, r, h~).
""" + _INIT_DOC)


def init_diagonal(key: Array, n_in: int, n_hidden: int, r_min: float = 0.9, r_max: float = 0.999,
                  delta: float = 1.0, sigma_u: float = 1.0, sigma_d: float = 0.0,
                  dtype=jnp.float32) -> dict[str, Array]:
    """Initialize the diagonal state-space cell ``{"nu", "U", "b", "Wd", "bd"}`` (``cell="diagonal"``).

    The decays start on a ring near the unit circle, as in the LRU (Orvieto et al. 2023, section
    3.3, "Stable exponential parameterization" with ``|lambda|`` sampled uniformly on the ring
    ``r_min <= |lambda| <= r_max``; here the decay is real, ``a = r``): ``r^2`` uniform on
    ``[r_min^2, r_max^2]`` (uniform in the ring's area). At the step ``Delta = delta`` (``bd =
    softplus^{-1}(delta)``) the decay ``a = exp(-delta * lambda)`` equals ``r``, so ``nu = log(-log(r) /
    delta)``. ``U ~ N(0, sigma_u^2 / n_in)``, ``b = 0``, ``Wd ~ N(0, sigma_d^2 / n_in)``: ``sigma_d = 0``
    gives a fixed ``Delta`` (time-invariant), ``sigma_d > 0`` an input-dependent (selective) one.
    """
    n_in = check_positive_int("n_in", n_in)
    n = check_positive_int("n_hidden", n_hidden)
    r_min, r_max = check_positive("r_min", r_min), check_positive("r_max", r_max)
    if not r_min <= r_max < 1:
        raise ValueError(f"r_min and r_max must satisfy 0 < r_min <= r_max < 1; got {r_min}, {r_max}")
    delta = check_positive("delta", delta)
    sigma_u = check_positive("sigma_u", sigma_u, allow_zero=True)
    sigma_d = check_positive("sigma_d", sigma_d, allow_zero=True)
    check_float_dtype(dtype)
    k_r, k_u, k_d = jax.random.split(key, 3)
    u = jax.random.uniform(k_r, (n,), jnp.float32)
    r = jnp.sqrt(u * (r_max ** 2 - r_min ** 2) + r_min ** 2)
    return {"nu": jnp.log(-jnp.log(r) / delta).astype(dtype),
            "U": (sigma_u / math.sqrt(n_in) * jax.random.normal(k_u, (n, n_in), dtype)),
            "b": jnp.zeros((n,), dtype),
            "Wd": (sigma_d / math.sqrt(n_in) * jax.random.normal(k_d, (n, n_in), dtype)),
            "bd": jnp.full((n,), math.log(math.expm1(delta)), dtype)}


def diagonal_decays(params, xs) -> Array:
    """The per-step decays ``a_t = exp(-Delta_t * lambda)`` of the diagonal cell, ``(T, n)`` or ``(B, T, n)``.

    ``step_jacobians(params, xs, cell="diagonal")[t]`` is ``diag(a_t)``: the closed form.
    """
    xs, _, _ = _check_inputs(params, xs, None, "diagonal")
    return _diagonal_gates(params, xs)[0]
