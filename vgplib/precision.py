"""Low-precision gradients: float ranges, the fraction of gradient entries flushed to zero, dynamic loss scaling.

float16 has 5 exponent bits: its smallest normal number is ``2^-14`` (6.1e-5), its subnormals reach
``2^-24`` (6e-8), its largest is 65504. A gradient entry below half the smallest subnormal rounds to
exactly 0: the entry is *flushed* and that weight gets no signal, a vanishing gradient made by the
number format rather than by the network. bfloat16 keeps float32's 8 exponent bits (same range,
fewer digits), so it does not underflow where float32 does not.

Loss scaling multiplies the loss by ``S`` before backpropagation, so every backward quantity is ``S``
times larger and clears the underflow threshold, and divides the gradient by ``S`` in float32
afterwards. The *dynamic* rule (:func:`loss_scale_update`): if the scaled gradient holds ``inf`` or
``NaN``, skip the step and halve ``S``; after ``period`` finite steps in a row, double ``S``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import check_positive, check_positive_int

Array = jax.Array

PRECISION_NAMES = ("float16", "bfloat16", "float32")


class FloatRange(NamedTuple):
    """``jnp.finfo`` of one dtype: largest, smallest normal, smallest subnormal, machine epsilon."""

    name: str
    max: float
    smallest_normal: float
    smallest_subnormal: float
    eps: float


def float_range(dtype: Any) -> FloatRange:
    """The range of a floating dtype, read from ``jnp.finfo`` (never typed in)."""
    try:
        fi = jnp.finfo(dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"dtype must be a floating dtype; got {dtype!r}") from err
    return FloatRange(str(fi.dtype), float(fi.max), float(fi.smallest_normal), float(fi.smallest_subnormal), float(fi.eps))


def cast_floats(tree: Any, dtype: Any) -> Any:
    """Cast every floating leaf of ``tree`` to ``dtype`` (integer leaves, e.g. labels, are left alone)."""
    return jax.tree_util.tree_map(lambda x: x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x, tree)


def all_finite(tree: Any) -> Array:
    """``True`` when every entry of every leaf of ``tree`` is finite (a traced bool, jit-friendly)."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def flushed_fraction(reference: Any, low: Any) -> Array:
    """Fraction of the entries that are nonzero in ``reference`` and exactly zero in ``low``.

    ``reference`` is the gradient in float32, ``low`` the same gradient computed in low precision
    (same pytree structure): the entries the low-precision computation flushed to zero. Counted over
    all leaves together; returns a jit-friendly scalar (0 if ``reference`` has no nonzero entry).
    """
    ref_leaves, ref_def = jax.tree_util.tree_flatten(reference)
    low_leaves, low_def = jax.tree_util.tree_flatten(low)
    if ref_def != low_def:
        raise ValueError("reference and low must have the same pytree structure")
    if not ref_leaves:
        raise ValueError("reference must hold at least one array")
    for r, q in zip(ref_leaves, low_leaves):
        if jnp.shape(r) != jnp.shape(q):
            raise ValueError(f"reference and low leaves differ in shape: {jnp.shape(r)} vs {jnp.shape(q)}")
    nonzero = sum(jnp.sum(r != 0) for r in ref_leaves)
    flushed = sum(jnp.sum((r != 0) & (q == 0)) for r, q in zip(ref_leaves, low_leaves))
    return jnp.where(nonzero > 0, flushed / jnp.maximum(nonzero, 1), 0.0)


class LossScale(NamedTuple):
    """State of dynamic loss scaling: the scale ``S`` (float32) and the count of finite steps in a row."""

    scale: Array
    good_steps: Array


def loss_scale_init(scale: float = 2.0**15) -> LossScale:
    """Start dynamic loss scaling at ``S = scale`` (default ``2^15``: halves quickly if too large).

    ``scale`` may be traced (inside ``jit``/``vmap``); a concrete value must be a finite number > 0.
    """
    if not isinstance(scale, jax.core.Tracer):
        check_positive("scale", scale)
    return LossScale(jnp.asarray(scale, jnp.float32), jnp.asarray(0, jnp.int32))


def loss_scale_update(
    state: LossScale, finite: Any, *, period: int = 2000, factor: float = 2.0, min_scale: float = 1.0
) -> LossScale:
    """One step of the dynamic rule: non-finite gradient -> ``S / factor`` (not below ``min_scale``),
    counter reset; finite -> counter + 1, and after ``period`` finite steps in a row ``S * factor``.

    The caller skips the parameter update when ``finite`` is False. jit-friendly (``finite`` traced).
    """
    if not isinstance(state, LossScale):
        raise TypeError(f"state must be a LossScale; got {type(state).__name__}")
    period = check_positive_int("period", period)
    if check_positive("factor", factor) <= 1.0:
        raise ValueError(f"factor must be > 1; got {factor}")
    check_positive("min_scale", min_scale)
    finite = jnp.asarray(finite, bool)
    good = jnp.where(finite, state.good_steps + 1, 0)
    grow = good >= period
    scale = jnp.where(finite, jnp.where(grow, state.scale * factor, state.scale), jnp.maximum(state.scale / factor, min_scale))
    return LossScale(scale.astype(jnp.float32), jnp.where(grow, 0, good).astype(jnp.int32))


def scaled_grad(loss_fn: Callable[..., Array], params: Any, *batch: Any, scale: Any = 1.0) -> tuple[Array, Any, Array]:
    """``(E, G, finite)``: the gradient of ``scale * E`` divided by ``scale`` in float32.

    ``loss_fn(params, *batch)`` runs in whatever precision it casts to; the cotangent ``scale`` enters
    at the loss, so every backward quantity is ``scale`` times larger and clears float16's underflow;
    the returned ``G`` is float32 (``params``' dtype promoted to at least float32) and unscaled.
    ``finite`` says whether the scaled gradient was finite (the dynamic rule's input). jit-friendly.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable; got {type(loss_fn).__name__}")
    scale = jnp.asarray(scale, jnp.float32)

    def scaled(p):
        e = loss_fn(p, *batch)
        if jnp.ndim(e) != 0:
            raise ValueError(f"loss_fn must return a scalar loss; got shape {jnp.shape(e)}")
        return (e * scale.astype(e.dtype)).astype(jnp.float32), e

    grads, e = jax.grad(scaled, has_aux=True)(params)
    finite = all_finite(grads)
    grads = jax.tree_util.tree_map(lambda g: g.astype(jnp.promote_types(g.dtype, jnp.float32)) / scale, grads)
    return e, grads, finite


def precision_table(names: tuple[str, ...] = PRECISION_NAMES) -> str:
    """A plain-text table of :func:`float_range` for ``names`` (values from ``jnp.finfo``)."""
    rows = [f"{'dtype':<9} {'max':>9} {'min normal':>11} {'min subnormal':>14} {'eps':>9}"]
    for name in names:
        r = float_range(jnp.dtype(name))
        rows.append(f"{r.name:<9} {r.max:>9.3g} {r.smallest_normal:>11.3g} {r.smallest_subnormal:>14.3g} {r.eps:>9.3g}")
    return "\n".join(rows)


def flush_threshold(dtype: Any) -> float:
    """Half the smallest subnormal of ``dtype``: a value below it rounds to exactly 0 when cast."""
    return float(np.float64(float_range(dtype).smallest_subnormal) / 2)
