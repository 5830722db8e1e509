"""Figure helpers shared by the book's panels: small pyplot-free Agg figures with readable text.

A live panel draws its figure many times a second, so every panel figure is a bare
:class:`matplotlib.figure.Figure` on an Agg canvas: it is never registered with ``pyplot`` (no
automatic display by the inline backend, no leak when a panel is rebuilt) and it renders to PNG in
a few milliseconds at the book's default size (6 x 3.2 inches at 96 dpi, 576 x 307 pixels).

Text size. The built book shows an output image at its natural width, scaled down to the content
column (:data:`COLUMN_PX` wide at a 1280 px window) when it is wider. A font of ``pt`` points in a
figure drawn at ``dpi`` is then ``pt * dpi / 72 * shown / natural`` CSS pixels high, and the book's
bar is :data:`MIN_TEXT_PX` (10 px) for the smallest text of every figure. Figures are drawn at
:data:`DPI` = 96, the CSS pixels per inch (so a figure appears at its size in inches, as a live
panel does), where that is :data:`MIN_FONT_PT` = 7.5 pt or more for a figure up to 7 inches
wide (672 px); a wider figure is scaled down and needs larger text (9 inches: 9.6 pt).
:func:`min_font_size` and :func:`min_text_px` measure a figure against the bar (the browser test
checks the built pages). Importing this module applies :data:`BOOK_RC` (pyplot figures at 96 dpi,
matplotlib's default 10-pt text: 13 px), so the chapters' ``%matplotlib inline`` figures follow it.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import math
from collections.abc import Iterator

import matplotlib as mpl
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

#: Default panel size in inches: 576 x 307 px at :data:`DPI`.
FIGSIZE = (6.0, 3.2)
#: Default resolution of a book figure (and of a scrubber's frames): one inch is 96 CSS pixels.
DPI = 96
#: The smallest text of a figure must be at least this high in the built book, in CSS pixels.
MIN_TEXT_PX = 10.0
#: Widest an output image is shown in the built book (an output inside a numbered figure in the
#: content column of a page in a 1280 px wide window, measured in Chromium; the bare column is
#: 688 px); a wider image is scaled down to it.
COLUMN_PX = 672
#: Smallest font size in points for a figure drawn at :data:`DPI` and shown unscaled: 7.5 * 96 / 72 = 10 px.
MIN_FONT_PT = MIN_TEXT_PX * 72 / DPI
#: matplotlib settings applied when this module is imported (the book layer imports it): figures made
#: with pyplot (``%matplotlib inline``, which sets no rcParams itself) are drawn at 96 dpi with
#: 10-pt text, 13 px in the book.
BOOK_RC = {
    "figure.dpi": DPI,
    "savefig.dpi": "figure",
    "font.size": 10.0,
    "axes.titlesize": "large",
    "axes.labelsize": "medium",
    "xtick.labelsize": "medium",
    "ytick.labelsize": "medium",
    "legend.fontsize": "medium",
    "legend.title_fontsize": "medium",
}
mpl.rcParams.update(BOOK_RC)
#: Default fixed margins (fractions of the figure) for one axes with title and axis labels.
MARGINS = {"left": 0.12, "right": 0.98, "bottom": 0.15, "top": 0.9}
#: Title height in axes coordinates (fixed: see :func:`new_figure`).
TITLE_Y = 1.01

#: Smallest positive normal float32 and float64, and the largest finite values.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # 1.18e-38
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.40e38
FLOAT64_TINY = float(np.finfo(np.float64).tiny)  # 2.23e-308
FLOAT64_MAX = float(np.finfo(np.float64).max)  # 1.80e308

#: Set by :func:`figure_dpi`: the dpi every :func:`new_figure` uses instead of its ``dpi`` argument.
_DPI_OVERRIDE: contextvars.ContextVar[int | None] = contextvars.ContextVar("vgplib_figure_dpi", default=None)


@contextlib.contextmanager
def figure_dpi(dpi: int) -> Iterator[None]:
    """Inside this block :func:`new_figure` creates every figure at ``dpi``, whatever ``dpi`` it is given.

    :class:`vgplib.widgets.LivePanel` builds its figure inside it, so that a live figure, and any
    pixel copy (:func:`freeze_legends`, :func:`freeze_decorations`) taken while it is built, is drawn
    at the resolution it is shown at. Sizes in inches and points are unchanged.
    """
    if isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or dpi < 1:
        raise ValueError(f"dpi must be a positive integer; got {dpi!r}")
    token = _DPI_OVERRIDE.set(int(dpi))
    try:
        yield
    finally:
        _DPI_OVERRIDE.reset(token)


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
    fig = Figure(figsize=tuple(float(v) for v in figsize), dpi=_DPI_OVERRIDE.get() or int(dpi))
    FigureCanvasAgg(fig)
    # A fixed title height (rcParams at creation time is the public switch) stops matplotlib from
    # measuring every tick label on each draw to lift the title clear of them.
    with mpl.rc_context({"axes.titley": TITLE_Y}):
        axes = fig.subplots(nrows, ncols, squeeze=True)
    fig.subplots_adjust(**adjust)
    for ax in np.atleast_1d(axes).ravel():
        fix_label_positions(ax)
    return fig, axes


def _visible_texts(artist: Artist):
    """Every visible, non-empty :class:`~matplotlib.text.Text` under ``artist`` (hidden subtrees skipped)."""
    if not artist.get_visible():
        return
    if isinstance(artist, Text) and artist.get_text().strip():
        yield artist
    for child in artist.get_children():
        yield from _visible_texts(child)


def min_font_size(fig: Figure, draw: bool = True) -> float:
    """The smallest font size, in points, of the text ``fig`` shows (titles, labels, ticks, legends).

    ``draw=True`` draws the figure first, so that the tick labels exist. Returns ``inf`` for a
    figure without text.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if draw:
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        fig.canvas.draw()
    return min((float(t.get_fontsize()) for t in _visible_texts(fig)), default=math.inf)


def min_text_px(fig: Figure, shown_px: float | None = None, dpi: float | None = None) -> float:
    """The height in CSS pixels of ``fig``'s smallest text when its PNG is shown ``shown_px`` wide.

    The PNG is drawn at ``dpi`` (default ``fig.dpi``) and shown at ``shown_px`` (default: its
    natural width, at most :data:`COLUMN_PX`, as in the book): ``pt * dpi / 72 * shown / natural``.
    Compare with :data:`MIN_TEXT_PX`.
    """
    dpi = float(fig.dpi if dpi is None else dpi)
    if not (math.isfinite(dpi) and dpi > 0):
        raise ValueError(f"dpi must be positive; got {dpi!r}")
    natural = fig.get_figwidth() * dpi
    shown = min(natural, COLUMN_PX) if shown_px is None else float(shown_px)
    if not (math.isfinite(shown) and shown > 0):
        raise ValueError(f"shown_px must be positive; got {shown_px!r}")
    return min_font_size(fig) * dpi / 72 * shown / natural


#: The PNG ``tEXt`` keyword under which a figure shown in a notebook records its smallest font and
#: dpi (``"min_font_pt=8; dpi=96"``), so that the book's tests can check its text size.
PNG_TEXT_KEY = "vgplib-text-size"


def notebook_png(fig: Figure) -> str | None:
    """The notebook's PNG of ``fig`` (base64), as IPython's inline backend makes it, plus a text chunk.

    Same picture as the inline backend (its ``print_figure_kwargs``, ``bbox_inches="tight"`` by
    default); the PNG also carries :data:`PNG_TEXT_KEY` with :func:`min_font_size` and the dpi, read
    back by :func:`png_text_size`. Returns None for a figure without axes (as IPython does).
    """
    from IPython.core.pylabtools import print_figure

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if not fig.axes and not fig.lines:
        return None
    kwargs = {"bbox_inches": "tight"}
    try:
        from matplotlib_inline.backend_inline import InlineBackend

        if InlineBackend.initialized():
            kwargs = dict(InlineBackend.instance().print_figure_kwargs)
    except ImportError:  # pragma: no cover - matplotlib-inline comes with ipykernel
        pass
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[PNG_TEXT_KEY] = f"min_font_pt={min_font_size(fig):g}; dpi={float(fig.dpi):g}"
    return print_figure(fig, "png", base64=True, metadata=metadata, **kwargs)


def png_text_size(png: bytes) -> tuple[float, float] | None:
    """``(min_font_pt, dpi)`` recorded by :func:`notebook_png` in a PNG, or None if it has none."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos = 8
    while pos + 8 <= len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and body.split(b"\0", 1)[0].decode("latin-1") == PNG_TEXT_KEY:
            fields = dict(f.strip().split("=", 1) for f in body.split(b"\0", 1)[1].decode("latin-1").split(";"))
            return float(fields["min_font_pt"]), float(fields["dpi"])
        if kind == b"IDAT":
            break  # matplotlib writes its text chunks before the image data
        pos += 12 + length
    return None


def _ensure_notebook_png(*_args) -> None:
    """Make :func:`notebook_png` the PNG printer of figures wherever the inline backend put its own."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    formatter = None if shell is None else shell.display_formatter.formatters.get("image/png")
    if formatter is None:
        return
    current = formatter.type_printers.get(Figure)
    if current is not None and current is not notebook_png:
        formatter.for_type(Figure, notebook_png)


def _install_notebook_png() -> None:
    """In an IPython kernel: use :func:`notebook_png` for figures now and after each cell's code.

    The inline backend (re)registers its own printer when pyplot first makes a figure or on
    ``%matplotlib inline``; checking again before each cell and after each cell's code (before the
    backend shows the cell's figures) keeps :func:`notebook_png` in place whatever the import order.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "_vgplib_notebook_png", False):
        return
    _ensure_notebook_png()
    shell.events.register("pre_run_cell", _ensure_notebook_png)
    shell.events.register("post_execute", _ensure_notebook_png)
    shell._vgplib_notebook_png = True


_install_notebook_png()


def fix_label_positions(ax: Axes) -> None:
    """Pin the axis-label positions so that a draw does not measure the tick labels.

    By default matplotlib places the axis labels clear of the tick labels, which means measuring
    every tick label's bounding box on every draw. With the positions pinned (axes coordinates) that
    work is skipped. (The title is pinned when the axes is created: see :func:`new_figure`.)
    """
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


def _pixel_box(fig: Figure, ax: Axes) -> tuple[np.ndarray, int, int]:
    """Draw ``fig`` once; return the pixels of ``ax``'s tight box (rows top-down) and its origin."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    height, width = pixels.shape[:2]
    box = ax.get_tightbbox(fig.canvas.get_renderer()).padded(1)
    x0, y0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
    x1, y1 = min(math.ceil(box.x1), width), min(math.ceil(box.y1), height)
    return pixels[height - y1 : height - y0, x0:x1], x0, y0


def plain_log_yaxis(ax: Axes, numticks: int = 6) -> None:
    """A log y axis cheap to redraw: at most ``numticks`` major ticks, no minor ticks, plain-text labels.

    The panels' gradient axes span tens of decades: the default locator draws hundreds of minor
    ticks there, and mathtext labels (``10^{-47}``) are re-typeset whenever the range changes, so the
    labels read ``1e-47`` instead.
    """
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10.0, numticks=numticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{round(math.log10(v))}" if v > 0 else ""))


def _check_fig_ax(fig: Figure, ax: Axes) -> None:
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    if not isinstance(ax, Axes) or ax not in fig.axes:
        raise ValueError("ax must be an Axes of fig")


def freeze_axes(fig: Figure, ax: Axes) -> None:
    """Replace ``ax`` (for example a colorbar that never changes) by a pixel copy of itself, drawn once.

    Like :func:`freeze_legends`: a static axes is re-rendered on every draw (its tick labels are most
    of the cost); a :meth:`Figure.figimage` of its pixels costs well under a millisecond. Only for
    figures rendered at their own dpi afterwards (live panels, not scrubbers).
    """
    _check_fig_ax(fig, ax)
    pixels, x0, y0 = _pixel_box(fig, ax)
    ax.set_visible(False)
    fig.figimage(pixels, xo=x0, yo=y0, origin="upper", zorder=10)


def _behind_axes(fig: Figure, ax: Axes, pixels: np.ndarray, x0: int, y0: int) -> None:
    """Stop drawing ``ax``'s spines, background and legend; draw ``pixels`` (its frozen frame) behind it."""
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.patch.set_visible(False)
    if ax.get_legend() is not None:
        ax.get_legend().set_visible(False)
    fig.figimage(pixels, xo=x0, yo=y0, origin="upper", zorder=-1)


def freeze_decorations(fig: Figure, ax: Axes) -> None:
    """Draw the static frame of ``ax`` (spines, ticks, tick and axis labels, grid, legend) once, as pixels.

    For an axes whose limits, ticks and legend never change: its data artists and title are hidden
    while the figure is drawn once, the pixels are put BEHIND the axes (``figimage``, zorder -1), and
    the axes stops drawing its axes, spines, background and legend. A redraw then renders only the
    data and the title: on a log axis with mathtext tick labels this halves the redraw. Live panels
    only (the pixels are at ``fig.dpi``); the data is drawn over the legend, not under it.
    """
    _check_fig_ax(fig, ax)
    data = [a for a in (*ax.lines, *ax.images, *ax.texts, *ax.collections, ax.title) if a.get_visible()]
    for artist in data:
        artist.set_visible(False)
    pixels, x0, y0 = _pixel_box(fig, ax)
    for artist in data:
        artist.set_visible(True)
    ax.xaxis.set_visible(False)
    ax.yaxis.set_visible(False)
    _behind_axes(fig, ax, pixels, x0, y0)


def freeze_frame_but_y_ticks(fig: Figure, ax: Axes) -> None:
    """Draw ``ax``'s static frame once, as pixels behind the axes: spines, background, the x axis (ticks,
    tick labels, label), the y label and the legend. Only the y ticks, tick labels and major grid lines
    stay live (for an axes whose y range follows the data). Like :func:`freeze_decorations`; live panels
    only (the pixels are at ``fig.dpi``)."""
    _check_fig_ax(fig, ax)
    data = [a for a in (*ax.lines, *ax.patches, *ax.collections, *ax.texts, ax.title) if a.get_visible()]
    for artist in data:
        artist.set_visible(False)
    grid_on = ax.yaxis.majorTicks[0].gridline.get_visible()
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    ax.yaxis.grid(False, which="major")
    pixels, x0, y0 = _pixel_box(fig, ax)
    ax.tick_params(axis="y", which="major", left=True, labelleft=True)
    ax.yaxis.grid(grid_on, which="major")
    for artist in data:
        artist.set_visible(True)
    ax.xaxis.set_visible(False)
    ax.yaxis.label.set_visible(False)
    _behind_axes(fig, ax, pixels, x0, y0)
