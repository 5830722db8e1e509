"""Chapter 14, *Diagnosing gradients*: figures of the gradient report, the histograms, mixed precision.

The live panel sets the loss scale ``S`` of a float16 sigmoid MLP on the digits (at initialization)
and shows, per layer, the fraction of gradient entries that float16 flushes to zero (nonzero in
float32, exactly 0 in float16). Its kernel is :func:`vgplib.scaled_grad` and
:func:`vgplib.flushed_fraction` with ``S`` traced, so no slider move compiles.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

from vgplib.data import load_digits
from vgplib.plots import freeze_decorations, new_figure
from vgplib.precision import cast_floats, flush_threshold, flushed_fraction, scaled_grad
from vgplib.report import GradientReport
from vgplib.widgets import (
    LivePanel,
    answer_number,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

Array = jax.Array

_VERDICT_COLORS = {"healthy": "#2ca02c", "vanishing": "#1f77b4", "exploding": "#d62728"}
#: The mixed-precision network: sigmoid MLP 64 -> 32 x 8 -> 10 (Glorot uniform), batch of 256 digits.
PRECISION_SIZES: tuple[int, ...] = (64,) + (32,) * 8 + (10,)
PRECISION_BATCH = 256
#: Loss-scale slider: S = 2^k, k = 0..20 (2^16 and above overflow float16's 65504 in the backward pass).
LOG2_SCALE_MAX = 20


def init_glorot(key: Array, sizes: Sequence[int]) -> list[dict[str, Array]]:
    """Glorot-uniform weights ``U[-sqrt(6/(m+n)), +]`` and zero biases, a list of ``{"W", "b"}`` dicts."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"W": jax.random.uniform(k, (n, m), minval=-1.0, maxval=1.0) * math.sqrt(6.0 / (m + n)), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:])
    ]


def precision_forward(params, x: Array, dtype=jnp.float32) -> Array:
    """Logits (float32) of a sigmoid MLP computed in ``dtype``: ``params`` and ``x`` are cast to ``dtype``,
    every matmul and activation (and so their backward pass) runs in ``dtype``."""
    p = cast_floats(params, dtype)
    h = x.astype(dtype)
    for layer in p[:-1]:
        h = jax.nn.sigmoid(h @ layer["W"].T + layer["b"])
    return (h @ p[-1]["W"].T + p[-1]["b"]).astype(jnp.float32)


def precision_loss(params, x: Array, y: Array, dtype=jnp.float32) -> Array:
    """Mean softmax cross-entropy of :func:`precision_forward` (network in ``dtype``, loss in float32)."""
    return optax.softmax_cross_entropy_with_integer_labels(precision_forward(params, x, dtype), y).mean()


@jax.jit
def _flush_kernel(params, x: Array, y: Array, g32, log2_scale: Array):
    _, g16, finite = scaled_grad(lambda p, x, y: precision_loss(p, x, y, jnp.float16), params, x, y,
                                 scale=2.0**log2_scale)
    per_layer = jnp.stack([flushed_fraction(a["W"], b["W"]) for a, b in zip(g32, g16)])
    return per_layer, flushed_fraction(g32, g16), finite


@functools.lru_cache(maxsize=2)
def panel_data(seed: int = 0):
    """The panel's network and batch: Glorot sigmoid MLP, the first 256 training digits, float32 gradient.

    Cached: the panel, its scrubber and the chapter share one computation."""
    d = load_digits()
    x, y = jnp.asarray(d.x_train[:PRECISION_BATCH]), jnp.asarray(d.y_train[:PRECISION_BATCH])
    params = init_glorot(jax.random.PRNGKey(seed), PRECISION_SIZES)
    g32 = jax.jit(jax.grad(precision_loss))(params, x, y)
    return params, x, y, g32


def flushed_by_scale(data, log2_scale: float) -> tuple[np.ndarray, float, bool]:
    """Per-layer and overall fraction of weight-gradient entries flushed to 0 by float16 at ``S = 2^k``."""
    params, x, y, g32 = data
    per, total, finite = _flush_kernel(params, x, y, g32, jnp.float32(log2_scale))
    return np.asarray(per), float(total), bool(finite)


def make_flush_figure(data=None) -> tuple[Figure, object]:
    """The panel: bars of the flushed fraction per layer for a loss scale ``S = 2^k``."""
    data = panel_data() if data is None else data
    n = len(PRECISION_SIZES) - 1
    fig, ax = new_figure(figsize=(6.0, 3.0), dpi=72, margins={"left": 0.13, "bottom": 0.17, "top": 0.86})
    bars = ax.bar(np.arange(1, n + 1), np.zeros(n), color="#1f77b4")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(np.arange(1, n + 1))
    ax.set_xlabel("layer $l$ (1 = first)")
    ax.set_ylabel("fraction flushed to 0")
    title = ax.set_title(" ", fontsize=10)
    flushed_by_scale(data, 0.0)  # compile once

    def update(log2_scale: int = 0) -> str:
        per, total, finite = flushed_by_scale(data, float(log2_scale))
        for b, v in zip(bars, per):
            b.set_height(v if finite else 0.0)
            b.set_color("#1f77b4" if finite else "0.7")
        title.set_text(f"float16, loss scale S = 2^{int(log2_scale)}:  "
                       + (f"{total:.1%} of entries flushed" if finite else "gradient overflows (inf)"))
        if not finite:
            return f"overflow: S = 2^{int(log2_scale)} pushes the scaled float16 gradient past 65504 (inf)"
        if total > 0:
            return f"underflow: {total:.1%} of the gradient entries are flushed to exactly 0"
        return ""

    return fig, update


def make_flush_figure_live() -> tuple[Figure, object]:
    """:func:`make_flush_figure` with its fixed frame (axes, ticks, labels) drawn once into pixels
    (:func:`vgplib.plots.freeze_decorations`), so a slider move redraws only the bars and the title."""
    fig, update = make_flush_figure()
    ax = fig.axes[0]
    for bar in ax.patches:
        bar.set_visible(False)
    freeze_decorations(fig, ax)
    for bar in ax.patches:
        bar.set_visible(True)
    return fig, update


@register_panel("ch14.loss_scale")
def flush_panel() -> LivePanel:
    """A new live panel: loss-scale exponent slider -> per-layer fraction of float16 gradients flushed to 0."""
    controls = {"log2_scale": ipywidgets.IntSlider(value=0, min=0, max=LOG2_SCALE_MAX, description="log2 S")}
    return LivePanel(make_flush_figure_live, controls)


def flush_scrubber(values: Sequence[int] = (0, 2, 4, 6, 8, 10, 12, 14, 15, 16, 18), dpi: int = 100):
    """The kernel-free twin of :func:`flush_panel`: a scrubber over the loss-scale exponent."""
    alt = ("Bar chart of the fraction of weight-gradient entries flushed to zero by float16 in each of the "
           "nine layers of a sigmoid network on the digits, one frame per loss scale 2^k: the early layers "
           "are flushed without scaling, no layer once the scale is large enough, and the gradient "
           "overflows when the scale is too large.")
    return scrubber(make_flush_figure, "log2_scale", values=[int(v) for v in values], alt=alt, dpi=dpi)


# --------------------------------------------------------------------------- static figures


def _decade_limits(ax, values: np.ndarray) -> None:
    """Log y axis from the decade below the smallest positive value to the decade above the largest, major ticks only."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size:
        lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
        ax.set_ylim(10.0 ** lo, 10.0 ** max(hi, lo + 1))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(LogLocator(base=10.0, numticks=5))


def reports_figure(reports: Mapping[str, GradientReport], xlabels: Mapping[str, str] | None = None) -> Figure:
    """One axes per report: ``||G_l||`` per layer (log scale), bars coloured by the layer's verdict.

    ``xlabels`` maps a report's title to its x label (default "layer (pytree order)").
    """
    xlabels = {} if xlabels is None else dict(xlabels)
    k = len(reports)
    fig, axes = new_figure(figsize=(7.0, 2.6 * math.ceil(k / 2)), dpi=96, ncols=2, nrows=math.ceil(k / 2),
                           margins={"left": 0.1, "right": 0.98, "bottom": 0.08, "top": 0.9,
                                    "wspace": 0.28, "hspace": 0.55})
    axes = np.atleast_1d(axes).ravel()
    for ax, (title, rep) in zip(axes, reports.items()):
        g = np.where(rep.layer_grad_norm > 0, rep.layer_grad_norm, np.nan)
        ax.bar(np.arange(len(g)), g, color=[_VERDICT_COLORS[v] for v in rep.layer_verdict])
        ax.set_yscale("log")
        _decade_limits(ax, g)
        ticks = np.arange(0, len(g), max(1, len(g) // 6))
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(i) for i in ticks], fontsize=8)
        ax.set_title(f"{title}: {rep.verdict}", fontsize=9)
        ax.set_xlabel(xlabels.get(title, "layer (pytree order)"), fontsize=8)
        ax.set_ylabel("‖G_l‖", fontsize=8)
        ax.yaxis.set_label_coords(-0.2, 0.5)
    for ax in axes[k:]:
        ax.set_visible(False)
    for v, c in _VERDICT_COLORS.items():
        axes[0].bar([0], [np.nan], color=c, label=v)
    fig.legend(fontsize=8, frameon=False, loc="upper center", ncol=3)
    return fig


def histograms_figure(hists: np.ndarray, edges: np.ndarray, steps: Sequence[int], titles: Sequence[str]) -> Figure:
    """Per-layer histograms of ``log10 |G|``: one column per run, one line per layer, rows = recorded steps.

    ``hists`` has shape ``(runs, records, layers, bins)``; ``edges`` ``bins + 1`` bin edges. Each
    histogram is drawn as the fraction of its layer's entries per bin (layers differ in size).
    """
    hists = np.asarray(hists, dtype=np.float64)
    hists = hists / np.maximum(hists.sum(-1, keepdims=True), 1.0)
    runs, records, layers, _ = hists.shape
    fig, axes = new_figure(figsize=(7.0, 1.6 * records + 0.9), dpi=96, ncols=runs, nrows=records,
                           margins={"left": 0.04, "right": 0.98, "bottom": 0.14, "top": 0.88,
                                    "wspace": 0.1, "hspace": 0.6})
    axes = np.asarray(axes).reshape(records, runs)
    centers = 0.5 * (edges[1:] + edges[:-1])
    colors = [(0.1 + 0.8 * i / max(layers - 1, 1), 0.3, 0.9 - 0.8 * i / max(layers - 1, 1)) for i in range(layers)]
    for r in range(runs):
        for t in range(records):
            ax = axes[t, r]
            for layer in range(layers):
                ax.plot(centers, hists[r, t, layer], color=colors[layer], lw=1.1,
                        label=f"layer {layer}" if (r, t) == (0, 0) else None)
            ax.set_title(f"{titles[r]}, step {steps[t]}", fontsize=9)
            ax.set_yticks([])
            if t == records - 1:
                ax.set_xlabel("log10 |gradient entry|", fontsize=8)
    fig.legend(fontsize=8, frameon=False, loc="upper center", ncol=layers)
    return fig


def precision_figure(curves: Mapping[str, np.ndarray], scale: np.ndarray) -> Figure:
    """Left: training loss (median over seeds, band min..max) per precision; right: the dynamic loss scale."""
    fig, (ax, ax2) = new_figure(figsize=(7.0, 2.8), dpi=96, ncols=2,
                                margins={"left": 0.09, "right": 0.98, "bottom": 0.17, "top": 0.9, "wspace": 0.3})
    for name, c in curves.items():
        steps = np.arange(c.shape[1])
        (line,) = ax.plot(steps, np.median(c, 0), lw=1.3, label=name)
        ax.fill_between(steps, c.min(0), c.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("sigmoid MLP on the digits, Adam", fontsize=9)
    ax2.semilogy(np.arange(scale.shape[1]), scale.T, color="#ff7f0e", lw=1.0)
    ax2.set_ylim(2.0 ** math.floor(math.log2(scale.min())), 2.0 ** math.ceil(math.log2(scale.max()) + 0.5))
    ax2.yaxis.set_major_locator(FixedLocator([2.0**k for k in range(40)]))
    ax2.yaxis.set_label_coords(-0.14, 0.5)
    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"2^{round(math.log2(v))}"))
    ax2.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_label_coords(-0.12, 0.5)
    ax2.set_xlabel("step")
    ax2.set_ylabel("loss scale S")
    ax2.set_title("dynamic loss scale (each seed)", fontsize=9)
    return fig


# --------------------------------------------------------------------------- exercises


def smallest_safe_scale(entry: float = 1e-9) -> float:
    """The smallest power-of-two loss scale ``S`` for which ``S * entry`` survives a cast to float16."""
    k = 0
    while np.float16(entry * 2.0**k) == 0 or entry * 2.0**k <= flush_threshold(jnp.float16):
        k += 1
    return 2.0**k


def check_safe_scale(scale) -> None:
    """Self-check: the smallest power of two ``S`` such that a gradient entry ``1e-9`` times ``S`` is not flushed by float16."""
    if unanswered("set scale to your number and run the cell again.", scale):
        return
    ref = smallest_safe_scale(1e-9)
    if math.isclose(answer_number("scale", scale), ref):
        report_answer(True, f"S = {ref:g}: 1e-9 x {ref:g} = {1e-9 * ref:.2g} is above half of float16's smallest "
                      "subnormal, 2^-25 = 3.0e-8", "")
    else:
        report_answer(False, "", "a value below half of float16's smallest subnormal (2^-24 = 6.0e-8) rounds to 0; "
                      "find the smallest power of two that lifts 1e-9 above it.")
    return
