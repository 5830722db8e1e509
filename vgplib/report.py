"""A gradient report for any JAX model: per leaf and per layer, norms, update sizes, zeros and a verdict.

:func:`gradient_report` takes a scalar loss ``E = loss_fn(params, *batch)`` and ANY pytree of
parameters: a list of ``{"W", "b"}`` dicts, nested dicts, a Flax NNX state
(``nnx.state(model, nnx.Param)`` or the state of ``nnx.split``) or the arrays of an Equinox module
(``eqx.filter(model, eqx.is_array)``, with ``eqx.combine`` inside ``loss_fn``). It computes the
gradient ``G = dE/dtheta`` with one ``jax.value_and_grad`` (the same computation as ``jax.grad``)
and groups its leaves into layers by their pytree path (``['layers'][0]['kernel']`` belongs to
layer ``['layers'][0]``). The per-layer norms, the global norm and the first/last ratio come from
:func:`vgplib.monitor_step` (max-rescaled, so entries near 1e20 still give a finite norm); this
module adds per-leaf detail, parameter norms, the update-to-weight ratio of an optimizer step,
the fraction of exact zeros, NaN/inf counts and a verdict per layer.

The library imports neither Flax nor Equinox: both hand JAX ordinary pytrees of arrays.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vgplib.monitor import (
    DEFAULT_THRESHOLDS,
    GradientRecord,
    MonitorThresholds,
    _check_thresholds,
    _safe_norm,
    monitor_step,
)

Array = jax.Array

VERDICTS = ("healthy", "vanishing", "exploding")


def _path_str(path: Sequence[Any]) -> str:
    return jax.tree_util.keystr(tuple(path)) or "(root)"


def default_layer_of(path: Sequence[Any]) -> str:
    """The layer a leaf belongs to: its pytree path without the last key.

    A trailing ``.value`` (how a Flax NNX ``Variable`` stores its array) is dropped first, so
    ``['layers'][0]['kernel'].value`` and Equinox's ``.layers[0].weight`` both give ``[0]`` of
    ``layers``; a leaf at the top level (``['W']``, an Equinox cell's ``.weight_hh``) is its own layer.
    """
    keys = list(path)
    if keys and isinstance(keys[-1], jax.tree_util.GetAttrKey) and keys[-1].name == "value":
        keys = keys[:-1]
    if len(keys) > 1:
        keys = keys[:-1]
    return _path_str(keys)


def _check_params(params: Any) -> list[tuple[Any, Any]]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    if not flat:
        raise ValueError("params must hold at least one array leaf; got an empty pytree")
    for path, leaf in flat:
        ok = isinstance(leaf, (jax.Array, np.ndarray)) and jnp.issubdtype(leaf.dtype, jnp.inexact)
        if not ok:
            what = type(leaf).__name__ if not hasattr(leaf, "dtype") else f"{type(leaf).__name__} of {leaf.dtype}"
            raise TypeError(
                f"params must be a pytree of floating arrays; leaf params{jax.tree_util.keystr(path)} is {what}. "
                "Pass only the trainable arrays: eqx.filter(model, eqx.is_array) for Equinox, "
                "nnx.state(model, nnx.Param) for Flax NNX"
            )
    return flat


_JITTED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _value_and_grad(loss_fn: Callable[..., Array]) -> Callable[..., Any]:
    """``jax.jit(jax.value_and_grad(loss_fn))``, kept per ``loss_fn`` so a second report on the same
    loss (another model of the same structure, another batch) reuses the compiled function."""
    try:
        return _JITTED[loss_fn]
    except (KeyError, TypeError):
        pass
    f = jax.jit(jax.value_and_grad(loss_fn))
    try:
        _JITTED[loss_fn] = f
    except TypeError:  # not weak-referenceable: no cache
        pass
    return f


def _norm(x: Array) -> Array:
    return _safe_norm([jnp.asarray(x, jnp.promote_types(x.dtype, jnp.float32))])


@dataclass(frozen=True)
class GradientReport:
    """What :func:`gradient_report` measured (host-side NumPy values; ``grads`` is the gradient pytree).

    Per leaf (``leaf_*``, in pytree order) and per layer (``layer_*``, in order of first appearance):
    ``grad_norm`` ``||G||``, ``param_norm`` ``||theta||``, ``update_ratio``
    ``||Delta theta|| / ||theta||`` of one optimizer step (NaN without an optimizer), ``zero_fraction``
    (exact zeros of ``G``), ``nonfinite`` (count of NaN/inf entries of ``G``), ``verdict``.
    ``record`` is the :class:`~vgplib.GradientRecord` of :func:`vgplib.monitor_step` over the layers.
    """

    loss: float
    grads: Any
    record: GradientRecord
    leaf_names: list[str]
    leaf_layers: list[str]
    leaf_sizes: np.ndarray
    leaf_grad_norm: np.ndarray
    leaf_param_norm: np.ndarray
    leaf_update_ratio: np.ndarray
    leaf_zero_fraction: np.ndarray
    leaf_nonfinite: np.ndarray
    leaf_verdict: list[str]
    layer_names: list[str]
    layer_sizes: np.ndarray
    layer_grad_norm: np.ndarray
    layer_param_norm: np.ndarray
    layer_update_ratio: np.ndarray
    layer_zero_fraction: np.ndarray
    layer_nonfinite: np.ndarray
    layer_verdict: list[str]
    reference: str
    thresholds: MonitorThresholds = field(default=DEFAULT_THRESHOLDS)

    @property
    def global_norm(self) -> float:
        """``||G||`` over every leaf (``sqrt(sum_l ||G_l||^2)``)."""
        return float(self.record.global_norm)

    @property
    def verdict(self) -> str:
        """``exploding`` if any layer explodes, else ``vanishing`` if any vanishes, else ``healthy``."""
        for v in ("exploding", "vanishing"):
            if v in self.layer_verdict:
                return v
        return "healthy"

    def faulty_layers(self) -> list[str]:
        """Names of the layers whose verdict is not ``healthy``."""
        return [n for n, v in zip(self.layer_names, self.layer_verdict) if v != "healthy"]

    def diagnosis(self) -> str:
        """One line: the verdict and the layers that carry it, with their gradient norms."""
        if self.verdict == "healthy":
            return f"healthy: every layer's gradient within the thresholds (||G|| = {self.global_norm:.3g})"
        parts = [
            f"{n} (||G|| {g:.3g}, {g / self._ref_norm:.3g} x reference)" if math.isfinite(g) else f"{n} (non-finite)"
            for n, g, v in zip(self.layer_names, self.layer_grad_norm, self.layer_verdict)
            if v == self.verdict
        ]
        return f"{self.verdict}: " + ", ".join(parts)

    @property
    def _ref_norm(self) -> float:
        return float(self.layer_grad_norm[self.layer_names.index(self.reference)])

    def table(self, per: str = "layer") -> str:
        """A plain-text table, one row per layer (``per="layer"``) or per leaf (``per="leaf"``)."""
        if per not in ("layer", "leaf"):
            raise ValueError(f"per must be 'layer' or 'leaf'; got {per!r}")
        p = "layer_" if per == "layer" else "leaf_"
        names = getattr(self, f"{p}names")
        cols = [getattr(self, p + c) for c in ("sizes", "grad_norm", "param_norm", "update_ratio", "zero_fraction", "nonfinite")]
        verdicts = getattr(self, f"{p}verdict")
        w = max(len(per), *(len(n) for n in names))
        head = f"{per:<{w}}  {'size':>7}  {'|grad|':>9}  {'|param|':>9}  {'upd/w':>9}  {'zeros':>6}  {'nonfin':>6}  verdict"
        rows = [head]
        for i, name in enumerate(names):
            size, g, pn, u, z, nf = (c[i] for c in cols)
            upd = "-" if math.isnan(u) else f"{u:.2e}"
            rows.append(
                f"{name:<{w}}  {int(size):>7d}  {g:>9.2e}  {pn:>9.2e}  {upd:>9}  {z:>6.3f}  {int(nf):>6d}  {verdicts[i]}"
            )
        return "\n".join(rows)

    def __str__(self) -> str:
        return f"{self.table()}\nloss {self.loss:.4g}, global |grad| {self.global_norm:.3g}\n{self.diagnosis()}"


@partial(jax.jit, static_argnums=(3, 4))
def _stats(g_leaves: list[Array], p_leaves: list[Array], u_leaves: list[Array], members: tuple, th: MonitorThresholds):
    """monitor_step over the layers, and per-leaf norms, zero and non-finite counts, in one compiled call."""
    f32 = [g.astype(jnp.promote_types(g.dtype, jnp.float32)) for g in g_leaves]
    record = monitor_step([[f32[i] for i in m] for m in members], th)
    leaf_g = jnp.stack([_norm(g) for g in g_leaves])
    leaf_p = jnp.stack([_norm(p) for p in p_leaves])
    leaf_u = jnp.stack([_norm(u) for u in u_leaves]) if u_leaves else jnp.zeros(0)
    zeros = jnp.stack([jnp.sum(g == 0) for g in g_leaves])
    nonfin = jnp.stack([jnp.sum(~jnp.isfinite(g)) for g in g_leaves])
    return record, leaf_g, leaf_p, leaf_u, zeros, nonfin


def _verdicts(norms: np.ndarray, ref: float, nonfinite: np.ndarray, th: MonitorThresholds) -> list[str]:
    out = []
    for g, nf in zip(norms, nonfinite):
        rel = g / ref if ref > 0 else (math.inf if g > 0 else math.nan)
        if nf > 0 or not math.isfinite(g) or g > th.explode_norm or rel > th.explode_ratio:
            out.append("exploding")
        elif g < th.vanish_norm or rel < th.vanish_ratio:
            out.append("vanishing")
        else:
            out.append("healthy")
    return out


def gradient_report(
    loss_fn: Callable[..., Array],
    params: Any,
    *batch: Any,
    optimizer: Any = None,
    opt_state: Any = None,
    learning_rate: float | None = None,
    layer_of: Callable[[Sequence[Any]], str] | None = None,
    reference: str | None = None,
    thresholds: MonitorThresholds = DEFAULT_THRESHOLDS,
) -> GradientReport:
    """Per-leaf and per-layer gradient report of ``E = loss_fn(params, *batch)`` for any pytree ``params``.

    Measured exactly (``G = jax.value_and_grad(loss_fn)(params, *batch)[1]``, the array ``jax.grad``
    returns): ``||G||`` and ``||theta||`` per leaf and per layer (layer norms = ``monitor_step``'s),
    the fraction of entries of ``G`` that are exactly 0, the count of NaN/inf entries, and, given an
    ``optimizer`` (an optax ``GradientTransformation``, initialised on ``params`` unless ``opt_state``
    is given) or a plain SGD ``learning_rate``, the update-to-weight ratio
    ``||Delta theta_l|| / ||theta_l||`` of one step (below float32's ``eps = 1.2e-7`` an update is lost
    to rounding: the layer is frozen however its gradient looks).

    Verdict per layer ``l``, with ``r_l = ||G_l|| / ||G_ref||`` against the reference layer (by
    default the last layer in pytree order, for an MLP the output layer: backpropagation multiplies
    the output layer's signal by one Jacobian per layer on the way down, so ``r_l`` is the product's
    gain; Hochreiter 1991, Bengio, Simard & Frasconi 1994, Pascanu, Mikolov & Bengio 2013):

    - ``exploding`` if ``G_l`` holds NaN/inf, or ``||G_l|| > thresholds.explode_norm`` (1e3),
      or ``r_l > thresholds.explode_ratio`` (1e3);
    - ``vanishing`` if ``||G_l|| < thresholds.vanish_norm`` (1e-7, so also an all-zero layer),
      or ``r_l < thresholds.vanish_ratio`` (1e-3);
    - ``healthy`` otherwise. The same rule gives each leaf a verdict; the report's verdict is
      ``exploding`` if any layer explodes, else ``vanishing`` if any vanishes.

    ``layer_of(path) -> str`` groups leaves into layers (default :func:`default_layer_of`: the path
    without its last key); ``reference`` names the reference layer. Raises ``TypeError`` for a
    non-callable ``loss_fn`` or a leaf that is not a floating array (pass ``eqx.filter(model,
    eqx.is_array)`` or ``nnx.state(model, nnx.Param)``), ``ValueError`` for a non-scalar loss, an
    empty ``params``, a bad ``learning_rate`` or an unknown ``reference``. Non-finite gradients are
    reported, never raised.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(params, *batch); got {type(loss_fn).__name__}")
    th = _check_thresholds(thresholds)
    flat = _check_params(params)
    if layer_of is None:
        layer_of = default_layer_of
    elif not callable(layer_of):
        raise TypeError(f"layer_of must be callable as layer_of(path) -> str; got {type(layer_of).__name__}")
    if learning_rate is not None:
        if optimizer is not None:
            raise ValueError("give either optimizer or learning_rate, not both")
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0 or not math.isfinite(learning_rate):
            raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate!r}")
    if optimizer is not None and not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be an optax GradientTransformation; got {type(optimizer).__name__}")
    out = jax.eval_shape(loss_fn, params, *batch)
    if not hasattr(out, "shape") or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"loss_fn must return a scalar loss; got {shape}")

    loss, grads = _value_and_grad(loss_fn)(params, *batch)
    g_leaves = jax.tree_util.tree_leaves(grads)
    p_leaves = [leaf for _, leaf in flat]
    names = [_path_str(path) for path, _ in flat]
    layers = [layer_of(path) for path, _ in flat]
    if not all(isinstance(n, str) for n in layers):
        raise TypeError("layer_of must return a string for every leaf")
    layer_names = list(dict.fromkeys(layers))
    if reference is None:
        reference = layer_names[-1]
    elif reference not in layer_names:
        raise ValueError(f"unknown reference layer {reference!r}; layers are {layer_names}")
    members = [[i for i, n in enumerate(layers) if n == name] for name in layer_names]

    if optimizer is not None:
        state = optimizer.init(params) if opt_state is None else opt_state
        updates, _ = jax.jit(optimizer.update)(grads, state, params)
        u_leaves = jax.tree_util.tree_leaves(updates)
    elif learning_rate is not None:
        u_leaves = [-learning_rate * g for g in g_leaves]
    else:
        u_leaves = []
    members_key = tuple(tuple(m) for m in members)
    record, *stats = _stats(g_leaves, p_leaves, u_leaves, members_key, th)
    leaf_g, leaf_p, leaf_u, zeros, nonfin = (np.asarray(a, dtype=np.float64) for a in jax.device_get(stats))
    if not u_leaves:
        leaf_u = np.full(len(p_leaves), np.nan)
    sizes = np.array([leaf.size for leaf in p_leaves])

    def per_layer_norm(v: np.ndarray) -> np.ndarray:
        return np.array([math.sqrt(sum(v[i] ** 2 for i in m)) for m in members])

    layer_sizes = np.array([sum(sizes[i] for i in m) for m in members])
    layer_g = np.asarray(record.layer_norms, dtype=np.float64)
    layer_p = per_layer_norm(leaf_p)
    layer_u = per_layer_norm(leaf_u)
    with np.errstate(divide="ignore", invalid="ignore"):
        leaf_ratio = leaf_u / leaf_p
        layer_ratio = layer_u / layer_p
    layer_zeros = np.array([sum(zeros[i] for i in m) for m in members]) / layer_sizes
    layer_nonfin = np.array([sum(nonfin[i] for i in m) for m in members])
    ref = float(layer_g[layer_names.index(reference)])
    return GradientReport(
        loss=float(loss),
        grads=grads,
        record=record,
        leaf_names=names,
        leaf_layers=layers,
        leaf_sizes=sizes,
        leaf_grad_norm=leaf_g,
        leaf_param_norm=leaf_p,
        leaf_update_ratio=leaf_ratio,
        leaf_zero_fraction=zeros / sizes,
        leaf_nonfinite=nonfin.astype(int),
        leaf_verdict=_verdicts(leaf_g, ref, nonfin, th),
        layer_names=layer_names,
        layer_sizes=layer_sizes,
        layer_grad_norm=layer_g,
        layer_param_norm=layer_p,
        layer_update_ratio=layer_ratio,
        layer_zero_fraction=layer_zeros,
        layer_nonfinite=layer_nonfin.astype(int),
        layer_verdict=_verdicts(layer_g, ref, layer_nonfin, th),
        reference=reference,
        thresholds=th,
    )
