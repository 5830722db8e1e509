"""Multi-layer perceptrons as pure functions of a list-of-layers parameter pytree.

Convention (used throughout the book, DESIGN.md 2b): ``a_l = W_l h_{l-1} + b_l`` (pre-activation) and
``h_l = phi(a_l)`` (activation) for ``l = 1..L``, with ``h_0 = x``; with ``residual=True``,
``h_l = h_{l-1} + alpha * phi(a_l)`` (He et al. 2016; ``alpha = residual_scale``, 1 by default),
which needs equal widths.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import as_array, check_finite_many, check_mlp_params
from vgplib.activations import Activation, get_activation

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST


class Trace(NamedTuple):
    """Every layer of a forward pass: ``pre[l-1] = a_l`` (pre-activation) and ``post[l] = h_l``
    (activation; ``post[0] = h_0 = x``)."""

    pre: list[Array]
    post: list[Array]


def check_mlp_input(params, x, residual: bool = False) -> Array:
    """Validate ``params`` and an input ``x`` of shape ``(n_0,)`` or ``(B, n_0)``; return ``x``.

    Shapes are checked from metadata; NaN/inf in ``params`` and ``x`` with one device sync.
    """
    x, _ = check_mlp_shapes(params, x, residual)
    check_finite_many(("params", params), ("x", x))
    return x


def check_mlp_shapes(params, x, residual: bool = False) -> tuple[Array, list[tuple[int, int]]]:
    """Shape and type checks of :func:`check_mlp_input` without the NaN/inf check; ``(x, shapes)``.

    For a caller that checks finiteness once, on the arrays it actually uses (e.g. stacked layers).
    """
    shapes = check_mlp_params(params, finite=False)
    x = as_array("x", x, (1, 2))
    n_0 = shapes[0][1]
    if x.shape[-1] != n_0:
        raise ValueError(f"x has width {x.shape[-1]} but params[0]['W'] expects inputs of width {n_0}")
    if residual and any(n_out != n_in for n_out, n_in in shapes):
        raise ValueError(f"residual=True needs square layers (n_out == n_in); got W shapes {shapes}")
    return x, shapes


def dense(layer, x: Array) -> Array:
    """The pre-activation ``a = W h + b`` for an input ``h`` (here ``x``) of shape ``(n_in,)`` or ``(B, n_in)``, at full float32 precision.

    ``precision=HIGHEST`` keeps GPUs from rounding float32 matmuls to TF32 (about 3e-3 relative
    error per product on an H100); on CPU it changes nothing.
    """
    return jnp.matmul(x, layer["W"].T, precision=HIGHEST) + layer["b"]


def check_residual_scale(residual_scale, residual: bool):
    """Validate the branch scale ``alpha`` of ``h_l = h_{l-1} + alpha * phi(a_l)``; return it.

    A finite real number (a Python float), or a traced scalar inside ``jax.jit`` (so one compiled
    function serves every ``alpha``). Any value other than 1 needs ``residual=True``.
    """
    if isinstance(residual_scale, jax.core.Tracer):
        if jnp.ndim(residual_scale) != 0:
            raise ValueError(f"residual_scale must be a scalar; got shape {jnp.shape(residual_scale)}")
        if not residual:
            raise ValueError("residual_scale applies only with residual=True")
        return residual_scale
    if isinstance(residual_scale, bool) or not isinstance(
            residual_scale, (int, float, np.integer, np.floating, np.ndarray, jax.Array)):
        raise TypeError(f"residual_scale must be a real number; got {type(residual_scale).__name__}")
    if np.ndim(residual_scale) != 0:
        raise ValueError(f"residual_scale must be a scalar; got shape {np.shape(residual_scale)}")
    value = float(residual_scale)
    if not np.isfinite(value):
        raise ValueError(f"residual_scale must be finite; got {value}")
    if value != 1.0 and not residual:
        raise ValueError("residual_scale applies only with residual=True")
    return value


def _layer(layer, x: Array, act: Activation, residual: bool, residual_scale=1.0) -> tuple[Array, Array]:
    h = dense(layer, x)
    out = act.fn(h)
    return h, (x + residual_scale * out if residual else out)


def mlp_forward(
    params,
    x,
    activation: str | Activation = "tanh",
    residual: bool = False,
    linear_output: bool = False,
    return_all: bool = False,
    residual_scale: float = 1.0,
    norm: str | None = None,
    eps: float = 1e-5,
) -> Array | Trace:
    """Run the MLP ``h_l = phi(W_l h_{l-1} + b_l)``, ``h_0 = x``, on ``x`` of shape ``(n_0,)`` or ``(B, n_0)``.

    ``linear_output=True`` leaves the last layer without ``phi`` (logits for a classifier).
    With ``return_all=True`` returns a :class:`Trace` of every pre-activation and activation.
    ``residual=True`` adds the identity path, ``h_l = h_{l-1} + alpha * phi(a_l)`` with
    ``alpha = residual_scale`` (He et al. 2016 use ``alpha = 1``; ``1/sqrt(L)`` or ``1/L`` keep deep
    products near the identity); ``residual_scale`` may be a traced scalar inside ``jax.jit``.
    ``norm="batch"`` or ``"layer"`` normalizes every hidden pre-activation, ``h_l = phi(N(a_l))``
    (BatchNorm over the batch axis, Ioffe & Szegedy 2015; LayerNorm over the units, Ba et al. 2016;
    variance ``+ eps``, default 1e-5; no learned scale/shift unless a layer holds ``"gamma"``/``"beta"``;
    see :mod:`vgplib.normalization`); a ``linear_output`` layer is not normalized; ``Trace.pre``
    keeps the un-normalized ``a_l``. ``norm="batch"`` needs a batch ``(B, n_0)``, ``B >= 2``.
    """
    act = get_activation(activation)
    residual_scale = check_residual_scale(residual_scale, residual)
    x = check_mlp_input(params, x, residual)
    if norm is not None or eps != 1e-5:
        from vgplib.normalization import _check_batch_axis, check_norm, norm_layer

        eps = check_norm(norm, eps)
        _check_batch_axis(norm, x)
    pre, post = [], [x]
    for i, layer in enumerate(params):
        if linear_output and i == len(params) - 1:
            h = dense(layer, x)
            x = h
        elif norm is not None:
            h = dense(layer, x)
            out = norm_layer(layer, x, act, norm, eps)
            x = x + residual_scale * out if residual else out
        else:
            h, x = _layer(layer, x, act, residual, residual_scale)
        pre.append(h)
        post.append(x)
    return Trace(pre, post) if return_all else x


def stack_layers(params) -> dict[str, Array]:
    """``{"W": (L, ...), "b": (L, ...)}`` from a list of equal-shape layers, without shape checks.

    Concrete arrays are stacked in host memory and moved to the device once: ``jnp.stack`` of
    thousands of arrays compiles a concatenation with that many operands (minutes for 3,000 layers on
    a busy CPU). Traced layers (inside ``jax.jit``) use ``jnp.stack``.
    """
    out = {}
    for key in ("W", "b"):
        arrays = [p[key] for p in params]
        if any(isinstance(a, jax.core.Tracer) for a in arrays):
            out[key] = jnp.stack(arrays)
        else:
            dtype = jnp.result_type(*arrays)
            out[key] = jnp.asarray(np.stack([np.asarray(a) for a in arrays]).astype(dtype, copy=False))
    return out


def stack_params(params) -> dict[str, Array]:
    """Stack equal-shape layers into ``{"W": (L, n, n), "b": (L, n)}`` for ``lax.scan``."""
    shapes = check_mlp_params(params, finite=False)
    if len(set(shapes)) != 1:
        raise ValueError(f"stack_params needs layers of one shape; got {sorted(set(shapes))}")
    stacked = stack_layers(params)
    try:  # one check of the two stacked arrays
        check_finite_many(("params", stacked))
    except ValueError:
        check_finite_many(("params", params))  # failure path: name the bad layer
        raise
    return stacked


def unstack_params(stacked: dict[str, Array]) -> list[dict[str, Array]]:
    """Inverse of :func:`stack_params`."""
    if not isinstance(stacked, dict) or "W" not in stacked or "b" not in stacked:
        raise TypeError("stacked must be a dict with keys 'W' (L, n, n) and 'b' (L, n)")
    return [{"W": W, "b": b} for W, b in zip(stacked["W"], stacked["b"])]
