"""Chapter 14, *Diagnosing gradients*: figures of the gradient report, the histograms, mixed precision.

The live panel sets the loss scale ``S`` of a float16 sigmoid MLP on the digits (at initialization)
and shows, per layer, the fraction of gradient entries that float16 flushes to zero (nonzero in
float32, exactly 0 in float16). Its kernel is :func:`vgplib.scaled_grad` and
:func:`vgplib.flushed_fraction` with ``S`` traced, so no slider move compiles.
"""

from __future__ import annotations

import functools
import glob
import math
import os
import uuid
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


# --------------------------------------------------------------------------- theory against measurement


def _scales(log2_scales) -> np.ndarray:
    k = np.asarray(log2_scales, dtype=np.float64) if not isinstance(log2_scales, str) else None
    if k is None or k.ndim != 1 or k.size == 0 or not np.all(np.isfinite(k)):
        raise ValueError(f"log2_scales must be a non-empty 1-D sequence of finite numbers; got {log2_scales!r}")
    return k


def flush_theory(data, log2_scales: Sequence[float]) -> dict[str, np.ndarray]:
    """Predicted fraction of weight-gradient entries that float16 flushes at each ``S = 2^k``, in NumPy float64.

    Independent of the float16 computation: the float32 network's forward pass and backward
    recursion ``delta_L = (softmax - onehot) / B``, ``delta_l = (delta_{l+1} W_{l+1}) * s_l (1 - s_l)``
    are redone in float64, per example. Two predictions of the entry ``G_l[i, j] = sum_b delta_{l,b,i} h_{l-1,b,j}``:

    - ``"cast"``: flushed iff ``|S G_l[i, j]| <= 2^-25`` (the exact batch gradient cast to float16);
    - ``"per_example"``: the per-example signals ``S delta_{l,b,i}`` are float16 numbers: each is
      rounded to float16 (those at or below ``2^-25`` become 0, subnormals keep few bits), the batch
      sum of what is left is formed exactly and the entry is flushed iff that sum is at or below
      ``2^-25``. The rounding of the earlier layers' signals in the recursion is left out.

    The bias's gradient ``sum_b delta_{l,b,i}`` is predicted the same way. Returns both as arrays over
    ``log2_scales``, counted over every weight and bias entry as :func:`flushed_by_scale`'s overall
    fraction is (the fraction of the entries nonzero in float64), plus ``"overflow_log2_scale"``:
    ``log2(65504 / max |G|)``, the scale above which the largest scaled entry leaves float16's range.
    """
    ks = _scales(log2_scales)
    params, x, y, _ = data
    ws = [np.asarray(layer["W"], np.float64) for layer in params]
    bs = [np.asarray(layer["b"], np.float64) for layer in params]
    hs = [np.asarray(x, np.float64)]
    for w, b in zip(ws[:-1], bs[:-1]):
        hs.append(1.0 / (1.0 + np.exp(-(hs[-1] @ w.T + b))))
    logits = hs[-1] @ ws[-1].T + bs[-1]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = (p - np.eye(p.shape[1])[np.asarray(y)]) / len(p)
    deltas = [delta]
    for w, h in zip(ws[:0:-1], hs[:0:-1]):
        deltas.insert(0, (deltas[0] @ w) * h * (1.0 - h))
    hs = [np.concatenate([h, np.ones((len(h), 1))], axis=1) for h in hs]  # last column: the bias's gradient
    grads = [d.T @ h for d, h in zip(deltas, hs)]
    nonzero = sum(int(np.sum(g != 0)) for g in grads)
    thr = flush_threshold(jnp.float16)
    cast, per_example = [], []
    for k in ks:
        s = 2.0 ** float(k)
        cast.append(sum(int(np.sum((g != 0) & (np.abs(s * g) <= thr))) for g in grads) / nonzero)
        with np.errstate(over="ignore", invalid="ignore"):  # a huge S: inf signals, never counted as flushed
            rounded = [(s * d).astype(np.float16).astype(np.float64) for d in deltas]
            per_example.append(sum(int(np.sum((g != 0) & (np.abs(d.T @ h) <= thr)))
                                   for g, d, h in zip(grads, rounded, hs)) / nonzero)
    largest = max(float(np.abs(g).max()) for g in grads)
    return {"cast": np.array(cast), "per_example": np.array(per_example),
            "overflow_log2_scale": math.log2(float(jnp.finfo(jnp.float16).max) / largest)}


def flush_theory_figure(log2_scales: Sequence[float], measured: np.ndarray, finite: np.ndarray,
                        theory: Mapping[str, np.ndarray]) -> Figure:
    """Flushed fraction against ``log2 S``: float16 measurement (dots) and the two predictions of
    :func:`flush_theory` (lines), the predicted overflow (dotted line) and the measured one (grey band)."""
    k = _scales(log2_scales)
    measured, finite = np.asarray(measured, dtype=np.float64), np.asarray(finite, dtype=bool)
    for name, v in [("measured", measured), ("finite", finite), ("theory['cast']", theory["cast"]),
                    ("theory['per_example']", theory["per_example"])]:
        if np.shape(v) != k.shape:
            raise ValueError(f"{name} must have one value per scale, shape {k.shape}; got {np.shape(v)}")
    fig, ax = new_figure(figsize=(7.0, 3.0), dpi=96,
                         margins={"left": 0.1, "right": 0.98, "bottom": 0.16, "top": 0.9})
    pos = lambda v: np.where(v > 0, v, np.nan)  # zeros have no place on a log axis
    ax.semilogy(k, pos(theory["per_example"]), color="#1f77b4", lw=1.6,
                label="predicted: per-example $S\\delta_{l,b}$ rounded to float16")
    ax.semilogy(k, pos(theory["cast"]), color="#ff7f0e", lw=1.3, ls="--",
                label="predicted: cast of the batch gradient")
    ax.semilogy(k[finite], pos(measured[finite]), "o", color="k", ms=4, label="measured in float16")
    if np.any(~finite):
        ax.axvspan(k[~finite].min() - 0.5, k.max() + 0.5, color="0.85", label="measured: gradient overflows")
    ax.axvline(theory["overflow_log2_scale"], color="#d62728", ls=":", lw=1.4,
               label="predicted overflow")
    ax.set_xlim(k.min() - 0.5, k.max() + 0.5)
    ax.set_ylim(1e-5, 1.0)
    ax.set_xticks(np.arange(math.ceil(k.min() / 2) * 2, k.max() + 1, 2))
    ax.set_xlabel("loss scale $\\log_2 S$")
    ax.set_ylabel("fraction flushed to 0")
    ax.set_title("float16 sigmoid MLP on 256 digits, every weight and bias gradient entry", fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper right", bbox_to_anchor=(0.86, 1.0))
    return fig


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


def write_histogram_events(logdir: str, hists: np.ndarray, edges: np.ndarray, steps: Sequence[int],
                           run_names: Sequence[str]) -> str:
    """Write per-layer gradient histograms to a TensorBoard event file with tensorboardX; return its path.

    ``hists`` has shape ``(runs, records, layers, bins)`` (counts of ``log10 |G|`` in the bins of
    ``edges``, as :func:`histograms_figure` takes them). Each histogram becomes the tag
    ``"gradients/{run}/layer{l}"`` at ``global_step = steps[t]``, written with
    ``SummaryWriter.add_histogram_raw`` (bucket ``i`` ends at ``edges[i + 1]``; ``sum`` and
    ``sum_squares`` use the bin centres, since only the counts were kept). ``tensorboard --logdir``
    shows them as the usual histogram panel. tensorboardX is imported here, not by the module.
    """
    from tensorboardX import SummaryWriter

    hists = np.asarray(hists)
    edges = np.asarray(edges, dtype=np.float64)
    if hists.ndim != 4:
        raise ValueError(f"hists must have shape (runs, records, layers, bins), got shape {hists.shape}")
    runs, records, layers, bins = hists.shape
    if edges.shape != (bins + 1,):
        raise ValueError(f"edges must have {bins + 1} entries (bins + 1), got shape {edges.shape}")
    if len(steps) != records or len(run_names) != runs:
        raise ValueError(f"steps must have {records} entries and run_names {runs}, got {len(steps)} and {len(run_names)}")
    if np.any(hists < 0) or not np.all(hists == np.round(hists)):
        raise ValueError("hists must hold non-negative integer counts")
    centers = 0.5 * (edges[1:] + edges[:-1])
    # tensorboardX names the file by the second and the host: a unique suffix keeps two calls apart
    suffix = f".{uuid.uuid4().hex[:12]}"
    with SummaryWriter(logdir, filename_suffix=suffix) as writer:
        for r, run in enumerate(run_names):
            for t, step in enumerate(steps):
                for layer in range(layers):
                    counts = hists[r, t, layer].astype(np.float64)
                    filled = np.flatnonzero(counts)
                    lo, hi = (edges[filled[0]], edges[filled[-1] + 1]) if filled.size else (edges[0], edges[0])
                    writer.add_histogram_raw(
                        f"gradients/{run}/layer{layer}", min=float(lo), max=float(hi), num=float(counts.sum()),
                        sum=float(counts @ centers), sum_squares=float(counts @ centers**2),
                        bucket_limits=edges[1:].tolist(), bucket_counts=counts.tolist(), global_step=int(step))
    (path,) = glob.glob(os.path.join(glob.escape(logdir), f"events.out.tfevents.*{suffix}"))
    return path


def read_histogram_events(path: str) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """Read every histogram of a TensorBoard event file: ``{(tag, step): (bucket_limits, bucket_counts)}``.

    The file is a sequence of TFRecords (8-byte little-endian length, its masked CRC-32C, the data,
    the data's masked CRC-32C); both checksums are verified (``ValueError`` on a mismatch) and each
    record is parsed as a ``tensorflow.Event`` protobuf (tensorboardX ships the definition).
    """
    import struct

    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c

    with open(path, "rb") as f:
        data = f.read()
    out: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        body = data[pos + 12:pos + 12 + length]
        if header_crc != masked_crc32c(header):
            raise ValueError(f"{path}: checksum mismatch in the record header at byte {pos}")
        if pos + 16 + length > len(data):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if body_crc != masked_crc32c(body):
            raise ValueError(f"{path}: checksum mismatch in the record at byte {pos}")
        pos += 16 + length
        event = Event.FromString(body)
        for value in event.summary.value:
            if value.HasField("histo"):
                out[(value.tag, event.step)] = (np.array(value.histo.bucket_limit), np.array(value.histo.bucket))
    return out


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
