"""A gradient monitor: per-layer and global gradient norms with vanishing / exploding / NaN flags.

A training run is healthy when every layer's parameter gradient ``G_l = dE/dtheta_l`` has a norm
of a useful size (``G``, because the book's ``g_l = dE/dh_l`` is the back-propagated gradient).
Backpropagation multiplies the backward signal by one Jacobian per layer, so the ratio between
the first and the last layer's gradient norm behaves like a product of ``L - 1`` factors: it
collapses when the per-layer gain ``chi_1 < 1`` (vanishing; Hochreiter 1991; Bengio, Simard &
Frasconi 1994) and blows up when ``chi_1 > 1`` (exploding; Pascanu, Mikolov & Bengio 2013),
until float32 overflows to ``inf`` and the loss turns into ``NaN``.

:func:`monitor_step` is pure ``jax.numpy`` (usable inside ``jit`` and ``lax.scan``) and never
raises on non-finite gradients: they are recorded and flagged. Norms are computed with a
max-rescaled sum of squares, ``||g|| = m sqrt(sum (g/m)^2)`` with ``m = max|g|``, so a gradient
with entries near 1e20 (whose squares overflow float32) still gets a finite, correct norm.
:func:`summarize` turns a stack of records into a host-side :class:`GradientSummary`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import check_positive

Array = jax.Array


class MonitorThresholds(NamedTuple):
    """When to flag a gradient record (hashable, so it can be a static ``jit`` argument).

    - vanishing: the smallest layer norm is below ``vanish_norm``, or the ratio
      ``||G_1|| / ||G_L||`` (first over last layer) is below ``vanish_ratio``;
    - exploding: the global norm is above ``explode_norm``, or ``||G_1|| / ||G_L||`` is above
      ``explode_ratio``, or any gradient entry is ``inf``/``NaN``;
    - non-finite: any gradient entry is ``inf`` or ``NaN``.

    The defaults are rules of thumb for a loss of order one (cross-entropy), not universal
    constants: a vanishing layer norm of 1e-7 is below float32 resolution of weights of order one
    times a learning rate of order 0.1.
    """

    vanish_norm: float = 1e-7
    vanish_ratio: float = 1e-3
    explode_norm: float = 1e3
    explode_ratio: float = 1e3


DEFAULT_THRESHOLDS = MonitorThresholds()


class GradientRecord(NamedTuple):
    """One gradient check (or a stack of them along a leading axis).

    ``layer_norms`` ``(L,)``: ``||dE/dtheta_l||`` per layer (``inf``/``NaN`` where the layer's
    gradient is not finite); ``global_norm`` ``()``: the norm of all layers together;
    ``finite`` ``()``: every gradient entry is finite; ``ratio`` ``()``: ``||G_1|| / ||G_L||``;
    ``vanishing``, ``exploding`` ``()``: the flags of :class:`MonitorThresholds`.
    """

    layer_norms: Array
    global_norm: Array
    finite: Array
    ratio: Array
    vanishing: Array
    exploding: Array


class GradientSummary(NamedTuple):
    """Host-side summary of stacked :class:`GradientRecord` s (``R`` records).

    ``vanishing``, ``exploding``, ``nonfinite``: ``(R,)`` bool per record; ``first_*``: index
    of the first flagged record or ``None``; ``min_layer_norm``, ``max_global_norm``: over
    the finite values (``nan`` if there are none); ``worst_ratio``: the finite
    ``||G_1||/||G_L||`` farthest from 1 in log scale.
    """

    n_records: int
    vanishing: np.ndarray
    exploding: np.ndarray
    nonfinite: np.ndarray
    first_vanishing: int | None
    first_exploding: int | None
    first_nonfinite: int | None
    min_layer_norm: float
    max_global_norm: float
    worst_ratio: float

    def describe(self) -> str:
        """One line per flag, for printing in a notebook."""

        def when(first: int | None, count: int) -> str:
            return "never" if first is None else f"{count} of {self.n_records} records, first at record {first}"

        return "\n".join(
            [
                f"vanishing:  {when(self.first_vanishing, int(self.vanishing.sum()))}",
                f"exploding:  {when(self.first_exploding, int(self.exploding.sum()))}",
                f"non-finite: {when(self.first_nonfinite, int(self.nonfinite.sum()))}",
            ]
        )


def _check_thresholds(thresholds: Any) -> MonitorThresholds:
    if not isinstance(thresholds, MonitorThresholds):
        raise TypeError(f"thresholds must be a MonitorThresholds; got {type(thresholds).__name__}")
    for name, value in thresholds._asdict().items():
        check_positive(f"thresholds.{name}", value)
    if thresholds.vanish_ratio >= thresholds.explode_ratio:
        raise ValueError("thresholds.vanish_ratio must be below thresholds.explode_ratio")
    return thresholds


def _safe_norm(leaves: list[Array]) -> Array:
    """``||g||`` over several arrays without overflow of the squares; ``inf``/``NaN`` propagate."""
    leaves = [jnp.ravel(leaf) for leaf in leaves]
    m = jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in leaves]))  # NaN if any NaN
    ok = jnp.isfinite(m) & (m > 0)
    scale = jnp.where(ok, m, 1.0)
    ssq = sum(jnp.sum(jnp.square(leaf / scale)) for leaf in leaves)
    return jnp.where(ok, scale * jnp.sqrt(ssq), m)


def _flags(layer_norms: Array, global_norm: Array, finite: Array, th: MonitorThresholds) -> tuple[Array, Array, Array]:
    last = layer_norms[..., -1]
    first = layer_norms[..., 0]
    # first/last; +inf when only the last layer's gradient is exactly zero, NaN when both are.
    ratio = jnp.where(last > 0, first / jnp.where(last > 0, last, 1.0), jnp.where(first > 0, jnp.inf, jnp.nan))
    vanishing = (jnp.min(layer_norms, axis=-1) < th.vanish_norm) | (ratio < th.vanish_ratio)
    exploding = (~finite) | (global_norm > th.explode_norm) | (ratio > th.explode_ratio)
    return ratio, vanishing & finite, exploding


def monitor_step(grads: Any, thresholds: MonitorThresholds = DEFAULT_THRESHOLDS) -> GradientRecord:
    """Record ``||G_l|| = ||dE/dtheta_l||`` per layer, ``||G||`` overall and the flags for one gradient ``grads``.

    ``grads`` is a list-of-layers pytree (as ``jax.grad`` returns for MLP parameters). Pure
    ``jax.numpy``: call it inside ``jit`` or ``lax.scan``; inf/NaN gradients are flagged, never
    raised. ``global_norm = sqrt(sum_l ||G_l||^2)`` (computed without overflow).
    """
    if not isinstance(grads, (list, tuple)) or len(grads) == 0:
        raise TypeError("grads must be a non-empty list (or tuple) of per-layer gradient pytrees")
    th = _check_thresholds(thresholds)
    layers = [jax.tree_util.tree_leaves(layer) for layer in grads]
    if any(len(leaves) == 0 for leaves in layers):
        raise ValueError("grads: every layer must hold at least one array")
    layer_norms = jnp.stack([_safe_norm(leaves) for leaves in layers])
    global_norm = _safe_norm([layer_norms])
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaves in layers for leaf in leaves]))
    ratio, vanishing, exploding = _flags(layer_norms, global_norm, finite, th)
    return GradientRecord(layer_norms, global_norm, finite, ratio, vanishing, exploding)


def stack_records(records: list[GradientRecord]) -> GradientRecord:
    """Stack single records (from a Python loop) into one record with a leading axis ``R``."""
    if not isinstance(records, (list, tuple)) or len(records) == 0:
        raise TypeError("records must be a non-empty list of GradientRecord")
    if not all(isinstance(r, GradientRecord) for r in records):
        raise TypeError("records must hold only GradientRecord values")
    return GradientRecord(*[jnp.stack(field) for field in zip(*records)])


def summarize(records: GradientRecord, thresholds: MonitorThresholds | None = None) -> GradientSummary:
    """Summarize ``R`` stacked records (or one record): which were vanishing, exploding, non-finite.

    With ``thresholds`` the flags are recomputed from the stored norms (to try other thresholds
    after a run); otherwise the flags stored at record time are used.
    """
    if not isinstance(records, GradientRecord):
        raise TypeError(f"records must be a GradientRecord; got {type(records).__name__}")
    norms = np.asarray(records.layer_norms)
    if norms.ndim == 1:
        records = GradientRecord(*[jnp.asarray(field)[None] for field in records])
        norms = norms[None]
    if norms.ndim != 2:
        raise ValueError(f"records.layer_norms must have shape (L,) or (R, L); got {norms.shape}")
    finite = np.asarray(records.finite, dtype=bool)
    if thresholds is None:
        vanishing = np.asarray(records.vanishing, dtype=bool)
        exploding = np.asarray(records.exploding, dtype=bool)
        ratio = np.asarray(records.ratio)
    else:
        th = _check_thresholds(thresholds)
        r, v, e = _flags(jnp.asarray(norms), jnp.asarray(records.global_norm), jnp.asarray(finite), th)
        ratio, vanishing, exploding = np.asarray(r), np.asarray(v, dtype=bool), np.asarray(e, dtype=bool)
    nonfinite = ~finite

    def first(mask: np.ndarray) -> int | None:
        idx = np.flatnonzero(mask)
        return int(idx[0]) if idx.size else None

    fin_norms = norms[np.isfinite(norms)]
    glob = np.asarray(records.global_norm)
    fin_glob = glob[np.isfinite(glob)]
    fin_ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    worst = float(fin_ratio[np.argmax(np.abs(np.log(fin_ratio)))]) if fin_ratio.size else math.nan
    return GradientSummary(
        n_records=int(norms.shape[0]),
        vanishing=vanishing,
        exploding=exploding,
        nonfinite=nonfinite,
        first_vanishing=first(vanishing),
        first_exploding=first(exploding),
        first_nonfinite=first(nonfinite),
        min_layer_norm=float(fin_norms.min()) if fin_norms.size else math.nan,
        max_global_norm=float(fin_glob.max()) if fin_glob.size else math.nan,
        worst_ratio=worst,
    )
