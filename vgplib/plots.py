"""Figure helpers shared by the book's panels: small pyplot-free Agg figures.

A live panel draws its figure many times a second, so every panel figure is a bare
:class:`matplotlib.figure.Figure` on an Agg canvas: it is never registered with ``pyplot`` (no
automatic display by the inline backend, no leak when a panel is rebuilt) and it renders to PNG in
a few milliseconds at the book's default size (6 x 3.2 inches at 72 dpi, 432 x 230 pixels).
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Default panel size in inches and resolution: 432 x 230 px, a few ms to encode as PNG.
FIGSIZE = (6.0, 3.2)
DPI = 72
#: Default fixed margins (fractions of the figure) for one axes with title and axis labels.
MARGINS = {"left": 0.12, "right": 0.98, "bottom": 0.15, "top": 0.9}

#: Smallest positive normal float32 and float64, and the largest finite values.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # 1.18e-38
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.40e38
FLOAT64_TINY = float(np.finfo(np.float64).tiny)  # 2.23e-308
FLOAT64_MAX = float(np.finfo(np.float64).max)  # 1.80e308


def new_figure(
    figsize: tuple[float, float] = FIGSIZE,
    dpi: int = DPI,
    ncols: int = 1,
    nrows: int = 1,
    margins: dict[str, float] | None = None,
) -> tuple[Figure, Axes | np.ndarray]:
    """A pyplot-free figure on an Agg canvas with ``nrows x ncols`` axes and FIXED margins.

    Returns ``(fig, ax)`` for one axes, else ``(fig, axes)`` with ``axes`` a NumPy array as from
    :func:`matplotlib.pyplot.subplots`. There is no layout engine: ``constrained`` layout measures
    every label and draws the figure twice per save, which took 140 ms per PNG here against 35 ms
    with fixed margins. ``margins`` are :meth:`Figure.subplots_adjust` keywords (defaults suit one
    axes with a title, axis labels and tick labels up to 4 characters).
    """
    if (
        not isinstance(figsize, (tuple, list))
        or len(figsize) != 2
        or not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in figsize)
    ):
        raise ValueError(f"figsize must be (width, height) in inches, both > 0; got {figsize!r}")
    for arg, value in (("dpi", dpi), ("ncols", ncols), ("nrows", nrows)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{arg} must be a positive integer; got {value!r}")
    adjust = dict(MARGINS)
    if margins is not None:
        if not isinstance(margins, dict) or not set(margins) <= set(MARGINS) | {"wspace", "hspace"}:
            raise ValueError(f"margins must be a dict of subplots_adjust keywords; got {margins!r}")
        adjust.update(margins)
    fig = Figure(figsize=tuple(float(v) for v in figsize), dpi=int(dpi))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=True)
    fig.subplots_adjust(**adjust)
    for ax in np.atleast_1d(axes).ravel():
        fix_label_positions(ax)
    return fig, axes


def fix_label_positions(ax: Axes) -> None:
    """Pin the title and axis-label positions so that a draw does not measure the tick labels.

    By default matplotlib places the title and the axis labels clear of the tick labels, which means
    measuring every tick label's bounding box on every draw (about a third of a redraw here). With
    the positions pinned (axes coordinates) that work is skipped.
    """
    ax.title.set_y(1.01)
    ax.xaxis.set_label_coords(0.5, -0.13)
    ax.yaxis.set_label_coords(-0.085, 0.5)


def figure_png(fig: Figure, dpi: int | None = None) -> bytes:
    """Render ``fig`` to PNG bytes (at ``fig.dpi`` unless ``dpi`` is given)."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    buf = io.BytesIO()
    if dpi is None or dpi == fig.dpi:
        # No print_figure overhead: one Agg draw plus a fast PNG encoding (zlib level 1: about 3 ms
        # instead of 12 ms for level 6, files about 15% larger).
        fig.canvas.print_png(buf, pil_kwargs={"compress_level": 1})
    else:
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def log10_or_nan(x: np.ndarray) -> np.ndarray:
    """``log10(x)`` where ``x`` is positive and finite, NaN elsewhere (matplotlib leaves gaps at NaN).

    Used to plot a directly computed float product: where it has underflowed to 0 or overflowed to
    inf, the curve stops instead of producing warnings or a misleading value.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x > 0)
    out[ok] = np.log10(x[ok])
    return out


def freeze_legends(fig: Figure) -> int:
    """Replace every legend of ``fig`` by a pixel copy of itself, drawn once; return how many.

    A legend is re-laid-out and its text re-rendered on every draw: about 15 ms of a 50 ms redraw
    here. A live panel whose legend never changes can draw a bitmap copy instead
    (:meth:`Figure.figimage` at the legend's pixel position), which costs well under a millisecond.
    Call it after the figure is complete and BEFORE any data is drawn (the copy includes what lies
    under the legend at that moment, and it hides whatever is drawn there later, like an opaque
    legend). The copy is in pixels: render the figure at ``fig.dpi`` afterwards (not another dpi).
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None and ax.get_legend().get_visible()]
    legends += [leg for leg in fig.legends if leg.get_visible()]
    if not legends:
        return 0
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    height, width = pixels.shape[:2]
    renderer = fig.canvas.get_renderer()
    for legend in legends:
        box = legend.get_window_extent(renderer).padded(1)
        x0, y0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
        x1, y1 = min(math.ceil(box.x1), width), min(math.ceil(box.y1), height)
        legend.set_visible(False)
        fig.figimage(pixels[height - y1 : height - y0, x0:x1], xo=x0, yo=y0, origin="upper", zorder=10)
    return len(legends)
