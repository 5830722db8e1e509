"""The loss cliff of a one-unit recurrent network (Pascanu, Mikolov & Bengio 2013).

The smallest recurrent network has one unit, no input, and two parameters, a recurrent weight
``w`` and a bias ``b``; Pascanu et al. (2013) use it to explain why exploding gradients come with
cliffs in the loss surface (Doya 1993 studied its bifurcations). In the book's notation
(pre-activation ``a_t``, hidden state ``h_t``):

    a_t = w h_{t-1} + b,   h_t = phi(a_t),   t = 1..T,        phi = sigmoid,

started at the pre-activation ``a_0`` (so ``h_0 = phi(a_0)``). Eliminating ``h`` gives the scalar
map of the paper, ``a_t = w phi(a_{t-1}) + b`` (the paper writes ``x_t`` for our ``a_t``). The
loss reads the state after ``T`` steps against a target,

    E(w, b) = (h_T - target)^2 = (sigmoid(a_T) - target)^2,

with ``a_0 = 0.5``, ``T = 50`` and ``target = 0.7`` by default (our choice of settings). The
per-step Jacobian is ``J_t = dh_t/dh_{t-1} = phi'(a_t) w``. For ``w > 4`` the map
``a -> w sigmoid(a) + b`` can have two stable fixed points; which one the orbit from ``a_0``
reaches changes abruptly where ``a_0`` itself is the unstable fixed point in between,

    b_wall(w) = a_0 - w sigmoid(a_0)      (valid where w sigmoid'(a_0) > 1),

and there the loss jumps: a valley with a single steep wall. The gradient is exact (``jax.grad``
through the ``T`` steps of ``lax.scan``); near the wall it is a sum of products of per-step slopes
``w sigmoid'(a_t)`` above 1, so it is huge on a band that gets thinner as it gets higher.

Functions: :func:`cliff_map` (the orbit of ``a_t``), :func:`cliff_loss`, :func:`cliff_grad` (exact
gradient), :func:`cliff_grid` (loss and gradient over a ``(w, b)`` grid, one jitted ``vmap``),
:func:`cliff_wall` (the closed-form wall), :func:`cliff_descent` (gradient descent on the
surface, with optional norm clipping by ``optax.clip_by_global_norm``, as chapter 11 uses it) and
:func:`cliff_descents` (the same from many starts in one ``vmap``). Computations run in the dtype of the
inputs: float32 by default, float64 when called with float64 arrays under ``jax.enable_x64``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgplib._validate import check_name, check_positive, check_positive_int
from vgplib.activations import ACTIVATION_NAMES, Activation, get_activation

Array = jax.Array

#: Default start pre-activation a_0, number of steps T and target of h_T = sigmoid(a_T) (our choice).
CLIFF_A0 = 0.5
CLIFF_T = 50
CLIFF_TARGET = 0.7


class CliffGrid(NamedTuple):
    """Loss and exact gradient on a grid: every array has shape ``(len(bs), len(ws))`` (rows = b)."""

    w: Array
    b: Array
    loss: Array
    grad_w: Array
    grad_b: Array

    @property
    def grad_norm(self) -> Array:
        """``||grad E|| = sqrt((dE/dw)^2 + (dE/db)^2)`` at every grid point."""
        return jnp.hypot(self.grad_w, self.grad_b)


class CliffPath(NamedTuple):
    """A gradient-descent run on the cliff: ``params`` ``(steps + 1, 2)`` rows ``(w_k, b_k)``;
    ``loss`` and ``grad_norm`` ``(steps + 1,)`` at each iterate (``grad_norm`` before clipping)."""

    params: Array
    loss: Array
    grad_norm: Array


# --------------------------------------------------------------------------- validation


def _scalar(arg: str, value: Any) -> Any:
    """A finite real scalar (Python number, NumPy scalar or 0-d array); returned unchanged."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{arg} must be a real number; got {type(value).__name__}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"{arg} must be finite; got {value}")
        return value
    try:
        arr = jnp.asarray(value)
    except TypeError as err:
        raise TypeError(f"{arg} must be a real number; got {type(value).__name__}") from err
    if arr.ndim != 0 or not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{arg} must be a real scalar; got dtype {arr.dtype}, shape {arr.shape}")
    if not isinstance(arr, jax.core.Tracer) and not bool(jnp.isfinite(arr)):
        raise ValueError(f"{arg} must be finite; got {arr}")
    return value


def _real_array(arg: str, value: Any) -> Array:
    """``value`` as a finite floating JAX array (any shape); errors name ``arg``."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{arg} must be a real number or an array of them; got {type(value).__name__}")
    try:
        arr = jnp.asarray(value)
    except TypeError as err:
        raise TypeError(f"{arg} must be a real number or an array of them; got {type(value).__name__}") from err
    if arr.dtype == bool or not jnp.issubdtype(arr.dtype, jnp.number) or jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{arg} must be real; got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if not isinstance(arr, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{arg} must be finite; it contains NaN or inf")
    return arr


def _params(w: Any, b: Any, names: tuple[str, str] = ("w", "b"), broadcast: bool = True) -> tuple[Array, Array]:
    """``w`` and ``b`` as floating arrays of one common dtype (broadcast-compatible shapes)."""
    w_arr, b_arr = _real_array(names[0], w), _real_array(names[1], b)
    if broadcast:
        try:
            jnp.broadcast_shapes(w_arr.shape, b_arr.shape)
        except ValueError as err:
            raise ValueError(f"{names[0]} and {names[1]} must have broadcastable shapes; "
                             f"got {w_arr.shape} and {b_arr.shape}") from err
    dtype = jnp.result_type(w_arr, b_arr)
    return w_arr.astype(dtype), b_arr.astype(dtype)


def _common(a0: Any, T: Any, activation: Any, target: Any = None) -> tuple[float, int, Activation]:
    a0 = float(_scalar("a0", a0))
    T = check_positive_int("T", T)
    if isinstance(activation, Activation):
        act = activation
    else:
        check_name("activation", activation, ACTIVATION_NAMES)
        act = get_activation(activation)
    if target is not None:
        _scalar("target", target)
    return a0, T, act


# --------------------------------------------------------------------------- the map and the loss


def _orbit(w: Array, b: Array, a0: float, T: int, act: Activation) -> Array:
    """``(T + 1,) + shape``: ``a_0, a_1, ..., a_T`` of ``a_t = w phi(a_{t-1}) + b`` (elementwise)."""
    shape = jnp.broadcast_shapes(w.shape, b.shape)
    start = jnp.full(shape, a0, dtype=w.dtype)

    def step(a, _):
        a_next = w * act.fn(a) + b  # a_t = w h_{t-1} + b with h_{t-1} = phi(a_{t-1})
        return a_next, a_next

    _, xs = jax.lax.scan(step, start, None, length=T)
    return jnp.concatenate([start[None], xs], axis=0)


@partial(jax.jit, static_argnames=("T", "act"))
def _orbit_jit(w: Array, b: Array, a0: float, T: int, act: Activation) -> Array:
    return _orbit(w, b, a0, T, act)


def _loss(w: Array, b: Array, a0: float, T: int, target: float, act: Activation) -> Array:
    a_T = _orbit(w, b, a0, T, act)[-1]
    return (jax.nn.sigmoid(a_T) - target) ** 2


def cliff_map(w, b, a0: float = CLIFF_A0, T: int = CLIFF_T, activation: str | Activation = "sigmoid",
              return_orbit: bool = False) -> Array:
    """``a_T`` of the one-unit recurrence ``a_t = w phi(a_{t-1}) + b`` from ``a_0`` (Pascanu et al. 2013).

    ``w`` and ``b`` are scalars or arrays of broadcastable shapes (the map is applied elementwise).
    With ``return_orbit=True`` the whole orbit ``a_0 .. a_T`` is returned, shape ``(T + 1,) + shape``.
    ``phi`` is the sigmoid of the paper by default; any name of :data:`vgplib.ACTIVATION_NAMES` works
    (``"linear"`` gives the closed form ``a_T = w^T a_0 + b (1 + w + ... + w^(T-1))``).
    """
    w, b = _params(w, b)
    a0, T, act = _common(a0, T, activation)
    if not isinstance(return_orbit, bool):
        raise TypeError(f"return_orbit must be a bool; got {type(return_orbit).__name__}")
    orbit = _orbit_jit(w, b, a0, T, act)
    return orbit if return_orbit else orbit[-1]


@partial(jax.jit, static_argnames=("T", "act"))
def _loss_jit(w, b, a0, T, target, act):
    return _loss(w, b, a0, T, target, act)


def cliff_loss(w, b, a0: float = CLIFF_A0, T: int = CLIFF_T, target: float = CLIFF_TARGET,
               activation: str | Activation = "sigmoid") -> Array:
    """``E(w, b) = (sigmoid(a_T) - target)^2`` of the one-unit recurrence, ``h_T = sigmoid(a_T)``.

    Elementwise over broadcastable ``w`` and ``b``. The defaults (:data:`CLIFF_A0` etc.): ``a_0 = 0.5``,
    ``T = 50``, ``target = 0.7``, ``phi = sigmoid``.
    """
    w, b = _params(w, b)
    a0, T, act = _common(a0, T, activation, target)
    return _loss_jit(w, b, a0, T, float(target), act)


_value_and_grad = jax.value_and_grad(_loss, argnums=(0, 1))


@partial(jax.jit, static_argnames=("T", "act"))
def _grad_jit(w, b, a0, T, target, act):
    loss, (gw, gb) = _value_and_grad(w, b, a0, T, target, act)
    return loss, jnp.stack([gw, gb])


def cliff_grad(w, b, a0: float = CLIFF_A0, T: int = CLIFF_T, target: float = CLIFF_TARGET,
               activation: str | Activation = "sigmoid") -> Array:
    """The exact gradient ``(dE/dw, dE/db)`` of :func:`cliff_loss` at a scalar ``(w, b)``: shape ``(2,)``.

    Reverse-mode autodiff (``jax.grad``) through the ``T`` steps: by the chain rule
    ``dE/dtheta = 2 (sigmoid(a_T) - target) sigmoid'(a_T) da_T/dtheta`` with
    ``da_t/dtheta = w phi'(a_{t-1}) da_{t-1}/dtheta + (phi(a_{t-1}), 1)``: a sum of products of the
    per-step slopes ``w phi'(a_s)``, which explodes where those slopes stay above 1.
    """
    w = _scalar("w", w)
    b = _scalar("b", b)
    w, b = _params(w, b)
    a0, T, act = _common(a0, T, activation, target)
    return _grad_jit(w, b, a0, T, float(target), act)[1]


@partial(jax.jit, static_argnames=("T", "act"))
def _grid_jit(ws, bs, a0, T, target, act):
    row = jax.vmap(lambda w, b: _value_and_grad(w, b, a0, T, target, act), in_axes=(0, None))
    loss, (gw, gb) = jax.vmap(row, in_axes=(None, 0))(ws, bs)
    W, B = jnp.meshgrid(ws, bs)
    return W, B, loss, gw, gb


def cliff_grid(ws, bs, a0: float = CLIFF_A0, T: int = CLIFF_T, target: float = CLIFF_TARGET,
               activation: str | Activation = "sigmoid") -> CliffGrid:
    """Loss and exact gradient over the grid ``ws x bs`` in one jitted, doubly ``vmap``-ed call.

    ``ws`` ``(nw,)`` and ``bs`` ``(nb,)`` are 1-D; every field of the returned :class:`CliffGrid`
    has shape ``(nb, nw)`` (row ``i`` is ``b = bs[i]``, ready for ``imshow(origin="lower")``).
    A grid samples the wall only where a grid point happens to fall on its thin band: use a
    1-D slice across :func:`cliff_wall` to see its height.
    """
    w_arr, b_arr = _params(ws, bs, names=("ws", "bs"), broadcast=False)
    for arg, arr in (("ws", w_arr), ("bs", b_arr)):
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise ValueError(f"{arg} must be a non-empty 1-D array; got shape {arr.shape}")
    a0, T, act = _common(a0, T, activation, target)
    return CliffGrid(*_grid_jit(w_arr, b_arr, a0, T, float(target), act))


def cliff_wall(w, a0: float = CLIFF_A0) -> Array:
    """The bias ``b_wall(w) = a_0 - w sigmoid(a_0)`` at which ``a_0`` is a fixed point of the sigmoid map.

    Where ``w sigmoid'(a_0) > 1`` that fixed point is unstable: orbits from ``a_0`` with ``b`` just
    above ``b_wall`` climb to the upper stable state and those with ``b`` just below fall to the
    lower one, so ``E`` jumps across this line (the cliff). Raises ``ValueError`` where
    ``w sigmoid'(a_0) <= 1`` (there ``a_0`` is a stable fixed point and no wall passes through it).
    """
    a0 = float(_scalar("a0", a0))
    w_arr, _ = _params(w, 0.0)
    s = 1.0 / (1.0 + math.exp(-a0))
    slope = s * (1.0 - s)
    if not isinstance(w_arr, jax.core.Tracer) and bool(jnp.any(w_arr * slope <= 1.0)):
        raise ValueError(f"w must satisfy w * sigmoid'(a0) > 1, i.e. w > {1.0 / slope:.4g} for a0 = {a0}; "
                         f"got w down to {float(jnp.min(w_arr)):.4g}")
    return a0 - w_arr * s


def _descent(p0, lr, max_norm, a0, T, target, act, steps):
    """``steps`` steps of (clipped) gradient descent from ``p0 = (w0, b0)``; ``max_norm = inf`` never clips.

    The clipping is ``optax.clip_by_global_norm(max_norm)`` itself (one implementation of Pascanu et
    al.'s algorithm 1 in the book): it returns ``g`` untouched while ``||g|| < max_norm`` (exactly,
    a ``lax.select``), else ``g / ||g|| * max_norm``. ``lr`` and ``max_norm`` may be traced.
    """
    clip = optax.clip_by_global_norm(max_norm)

    def step(p, _):
        loss, (gw, gb) = _value_and_grad(p[0], p[1], a0, T, target, act)
        g = jnp.stack([gw, gb])
        norm = jnp.linalg.norm(g)
        g, _ = clip.update(g, clip.init(g))
        return p - lr * g, (p, loss, norm)

    p_last, (ps, losses, norms) = jax.lax.scan(step, p0, None, length=steps)
    loss_last, (gw, gb) = _value_and_grad(p_last[0], p_last[1], a0, T, target, act)
    return (jnp.concatenate([ps, p_last[None]]), jnp.concatenate([losses, loss_last[None]]),
            jnp.concatenate([norms, jnp.hypot(gw, gb)[None]]))


@partial(jax.jit, static_argnames=("T", "act", "steps"))
def _descent_jit(p0, lr, max_norm, a0, T, target, act, steps):
    return _descent(p0, lr, max_norm, a0, T, target, act, steps)


@partial(jax.jit, static_argnames=("T", "act", "steps"))
def _descents_jit(p0s, lr, max_norm, a0, T, target, act, steps):
    return jax.vmap(lambda p0: _descent(p0, lr, max_norm, a0, T, target, act, steps))(p0s)


def _descent_args(lr, steps, clip_norm, a0, T, activation, target):
    lr = check_positive("lr", lr)
    steps = check_positive_int("steps", steps)
    a0, T, act = _common(a0, T, activation, target)
    is_inf = (isinstance(clip_norm, (int, float, np.integer, np.floating)) and not isinstance(clip_norm, bool)
              and clip_norm == math.inf)
    max_norm = math.inf if clip_norm is None or is_inf else check_positive("clip_norm", clip_norm)
    return lr, steps, max_norm, a0, T, act


def cliff_descent(w0, b0, lr: float, steps: int, a0: float = CLIFF_A0, T: int = CLIFF_T,
                  target: float = CLIFF_TARGET, clip_norm: float | None = None,
                  activation: str | Activation = "sigmoid") -> CliffPath:
    """Gradient descent ``theta_{k+1} = theta_k - lr g_k`` on :func:`cliff_loss` from ``(w0, b0)``.

    ``g_k`` is the exact gradient; with ``clip_norm`` it is rescaled to ``g_k clip_norm / ||g_k||``
    whenever ``||g_k|| >= clip_norm`` (norm clipping, Pascanu et al. 2013, algorithm 1), computed by
    ``optax.clip_by_global_norm(clip_norm)`` itself, so no step is longer than ``lr * clip_norm``.
    ``clip_norm=None`` (or ``math.inf``) does not clip. Returns a :class:`CliffPath` of ``steps + 1``
    iterates (one compiled scan; ``lr`` and ``clip_norm`` are traced, so new values do not compile).
    A step that lands on the wall meets a gradient of norm up to ``10^4`` and more and, unclipped,
    is thrown that many learning rates away.
    """
    w0 = _scalar("w0", w0)
    b0 = _scalar("b0", b0)
    w0, b0 = _params(w0, b0, names=("w0", "b0"))
    lr, steps, max_norm, a0, T, act = _descent_args(lr, steps, clip_norm, a0, T, activation, target)
    p0 = jnp.stack([w0, b0])
    dtype = p0.dtype
    out = _descent_jit(p0, jnp.asarray(lr, dtype), jnp.asarray(max_norm, dtype), a0, T, float(target), act,
                       steps)
    return CliffPath(*out)


def cliff_descents(w0, b0, lr: float, steps: int, a0: float = CLIFF_A0, T: int = CLIFF_T,
                   target: float = CLIFF_TARGET, clip_norm: float | None = None,
                   activation: str | Activation = "sigmoid") -> CliffPath:
    """:func:`cliff_descent` from ``K`` starts at once: ``w0``, ``b0`` are 1-D arrays of length ``K``.

    One jitted ``vmap`` of the same scan (the same clipping, ``optax.clip_by_global_norm``): every
    field of the returned :class:`CliffPath` gets a leading start axis, ``params`` ``(K, steps + 1,
    2)``. ``lr`` and ``clip_norm`` are traced, so a panel can move them without a compilation; the
    result equals :func:`cliff_descent` run from each start (tested).
    """
    w_arr, b_arr = _params(w0, b0, names=("w0", "b0"), broadcast=False)
    if w_arr.ndim != 1 or b_arr.shape != w_arr.shape or w_arr.shape[0] == 0:
        raise ValueError(f"w0 and b0 must be non-empty 1-D arrays of one length; got {w_arr.shape} and {b_arr.shape}")
    lr, steps, max_norm, a0, T, act = _descent_args(lr, steps, clip_norm, a0, T, activation, target)
    p0s = jnp.stack([w_arr, b_arr], axis=1)
    dtype = p0s.dtype
    out = _descents_jit(p0s, jnp.asarray(lr, dtype), jnp.asarray(max_norm, dtype), a0, T, float(target), act,
                        steps)
    return CliffPath(*out)
