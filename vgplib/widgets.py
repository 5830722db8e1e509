"""Live slider panels that answer in tens of milliseconds, and kernel-free scrubbers of the same figure.

One mechanism for every interactive figure of the book:

* A chapter writes ``make_figure() -> (fig, update)``: it creates a matplotlib figure ONCE and returns
  ``update(**slider_values) -> status``, which changes the artists in place (``set_data``,
  ``set_ydata``, ``set_text``) and returns a status string such as ``"underflow: below 1.2e-38 in
  float32"`` ("" when there is nothing to report). The computation inside ``update`` is one
  ``jax.jit`` function called with fixed shapes and dtypes (a maximum depth and a mask, an activation
  as an index into ``lax.switch``), so no slider move compiles.
* :class:`LivePanel` shows the sliders, an :class:`ipywidgets.Image` holding the PNG of the figure
  (re-rendered in place on every move) and a status line. ``ipywidgets.interact`` instead builds a
  new figure per move: a median of 560 ms here against a few tens of ms for an in-place update.
* :func:`scrubber` renders the same figure over a list of values of one slider into matplotlib's
  ``jshtml`` animation: a range input over embedded PNG frames that works in the static HTML book with
  no kernel and no network, so the book never shows a dead slider.
* :func:`register_panel` / :func:`all_panels` keep a registry of every chapter's panel factories
  (modules ``vgplib.panels.chNN``), which the slider corner-sweep test and ``bench/bench_panels.py``
  drive programmatically; :func:`corner_values`, :func:`sweep_values` and :func:`count_compiles` are
  their tools.
"""

from __future__ import annotations

import base64
import contextlib
import html
import importlib
import io
import itertools
import math
import os
import pkgutil
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import ipywidgets
import jax.monitoring
import jaxlib
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vgplib.plots import (
    DPI,
    FIGSIZE,
    FLOAT32_MAX,
    FLOAT32_TINY,
    figure_dpi,
    figure_png,
    freeze_legends,
    min_font_size,
    new_figure,
)

__all__ = [
    "NO_ANSWER",
    "PANELS",
    "CompileCounter",
    "LivePanel",
    "all_panels",
    "answer_number",
    "corner_values",
    "count_compiles",
    "depth_slider",
    "float32_range_status",
    "new_figure",
    "register_panel",
    "report_answer",
    "scrubber",
    "sigma_w_slider",
    "sweep_values",
    "unanswered",
]

MakeFigure = Callable[[], tuple[Figure, Callable[..., Any]]]

#: Sliders with a numeric range; their corners are ``min`` and ``max``.
_RANGE_TYPES = (ipywidgets.IntSlider, ipywidgets.FloatSlider, ipywidgets.FloatLogSlider,
                ipywidgets.BoundedIntText, ipywidgets.BoundedFloatText)
#: Controls with a finite list of options; every option is a corner.
_OPTION_TYPES = (ipywidgets.Dropdown, ipywidgets.ToggleButtons, ipywidgets.RadioButtons, ipywidgets.Select)
_BOOL_TYPES = (ipywidgets.Checkbox, ipywidgets.ToggleButton)
_SUPPORTED = _RANGE_TYPES + _OPTION_TYPES + _BOOL_TYPES + (ipywidgets.SelectionSlider,)

#: How a non-empty status string starts (checked by the corner-sweep test): "underflow: ...",
#: "overflow: ...", "zero gradient: ..." (an exact 0, e.g. a dead ReLU layer), "nan: ...".
STATUS_KINDS = ("underflow", "overflow", "zero", "nan")


def float32_range_status(low: float, high: float) -> str:
    """The status of a gradient panel whose measured norms span ``10**low .. 10**high`` (log10, exact).

    ``"zero gradient: ..."`` when ``low`` is not finite (an exact 0, e.g. a layer with no active ReLU
    unit), ``"underflow: ..."`` below float32's smallest normal, ``"overflow: ..."`` above its largest,
    else ``""``: what a float32 backward pass would have lost, while the panel draws from log space.
    """
    if not np.isfinite(low):
        return "zero gradient: a layer with no active unit stops the gradient exactly"
    if low < math.log10(FLOAT32_TINY):
        return (f"underflow: a gradient of 1e{math.floor(low)} is below float32's smallest normal 1.2e-38 "
                "(a float32 backward pass gives 0; drawn from log space)")
    if high > math.log10(FLOAT32_MAX):
        return f"overflow: a gradient of 1e{math.ceil(high)} is above float32's largest 3.4e38 (inf in float32)"
    return ""


#: XLA:CPU flags for cheaper compilation at the same run time: the notebooks are dominated by
#: compiling, not running (measured on the previous session's 2-core machine: about 40 % less
#: compile time in chapters 7-13). They change the generated code, so they may change rounding:
#: a notebook's stored outputs must not depend on them (``make test-portable`` runs without them).
FAST_COMPILE_FLAGS = ("--xla_backend_optimization_level=1", "--xla_llvm_disable_expensive_passes=true",
                      "--xla_cpu_use_fusion_emitters=false")
#: XLA aborts the whole process on a flag it does not know, so the flags are set only for the jaxlib
#: releases they were tested with (first and last, inclusive, as (major, minor)).
FAST_COMPILE_JAXLIB = ((0, 8), (0, 10))


def fast_xla_compile(flags: Sequence[str] = FAST_COMPILE_FLAGS) -> bool:
    """Ask XLA:CPU for cheaper compilation in this process; return whether ``XLA_FLAGS`` was set.

    Call it at the top of a notebook, before the first JAX computation (XLA reads ``XLA_FLAGS`` once,
    when JAX starts its backend; importing jax or vgplib does not start it). It does nothing, and
    returns False, when the environment already sets ``XLA_FLAGS`` (a reader's own flags, or those of
    ``make test-portable``, win) or when the installed jaxlib is outside :data:`FAST_COMPILE_JAXLIB`,
    where a removed flag would abort the kernel.
    """
    if isinstance(flags, str) or not all(isinstance(f, str) and f.startswith("--xla_") for f in flags):
        raise TypeError(f"flags must be a sequence of '--xla_...' strings, got {flags!r}")
    version = tuple(int(part) for part in re.findall(r"\d+", jaxlib.__version__)[:2])
    first, last = FAST_COMPILE_JAXLIB
    if "XLA_FLAGS" in os.environ or not first <= version <= last:
        return False
    os.environ["XLA_FLAGS"] = " ".join(flags)
    return True


def below(error: float, tolerance: float) -> str:
    """``"< 1e-12"``: a rounding-level ``error`` printed as the bound it meets, not its digits.

    A cross-check's error (``max |a - b|`` of two exact paths) is rounding noise whose digits change
    with the CPU (AVX-512 against AVX2 code paths round differently), so a printed ``1.2e-14`` breaks
    nbval on another machine; the bound does not. An error at or above ``tolerance`` (or not finite)
    is printed with its value and ``"NOT below"``, so the stored output no longer matches and nbval
    fails. ``tolerance`` must be a positive finite number; it is printed with one significant digit.
    """
    for name, value in (("error", error), ("tolerance", tolerance)):
        # a Python or NumPy real, or a 0-d array (a jnp scalar); not a bool, a string or a vector
        if isinstance(value, (bool, str, complex)) or np.ndim(value) != 0 or np.iscomplexobj(value):
            raise TypeError(f"{name} must be a real scalar, got {type(value).__name__}")
    error, tolerance = float(error), float(tolerance)
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive finite number, got {tolerance!r}")
    if math.isfinite(error) and abs(error) < tolerance:
        return f"< {tolerance:.0e}"
    return f"= {error:.2e}, NOT below {tolerance:.0e}"


def within(values, low: float | None = None, high: float | None = None) -> str:
    """``"> 0.9"``, ``"< 0.05"``, ``"between 0.4 and 0.6"``: where a rounding-sensitive measurement lies.

    The outcome of a training with a large learning rate, or of a run through a chaotic phase,
    amplifies rounding: its digits change with the CPU's code path (AVX-512 against SSE4.2), but a
    claim such as "every seed ends above 0.9" does not. ``values`` (a real number or an array of
    them: every entry must lie in the band) is printed as the band, strictly ``low < v < high``
    (either bound may be ``None``, not both). Where an entry lies outside, or is not finite, the values
    are printed with ``"NOT"`` and the band, so the stored output no longer matches and nbval fails.
    The bounds are printed with ``:g``; choose them from the spread measured across code paths.
    """
    if isinstance(values, (bool, str, bytes, complex)):
        raise TypeError(f"values must be a real number or an array of real numbers, got {type(values).__name__}")
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as err:
        raise TypeError(f"values must be a real number or an array of real numbers, got {type(values).__name__}") from err
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) or arr.dtype == bool:
        raise TypeError(f"values must be real numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError("values must hold at least one number")
    for name, bound in (("low", low), ("high", high)):
        if bound is None:
            continue
        if isinstance(bound, (bool, str, complex)) or np.ndim(bound) != 0 or np.iscomplexobj(bound):
            raise TypeError(f"{name} must be a real scalar or None, got {type(bound).__name__}")
        if not math.isfinite(float(bound)):
            raise ValueError(f"{name} must be finite, got {bound!r}")
    if low is None and high is None:
        raise ValueError("give low, high or both")
    if low is not None and high is not None and not float(low) < float(high):
        raise ValueError(f"low must be below high, got low={low!r}, high={high!r}")
    if low is None:
        band = f"< {float(high):g}"
    elif high is None:
        band = f"> {float(low):g}"
    else:
        band = f"between {float(low):g} and {float(high):g}"
    v = arr.astype(np.float64).ravel()
    ok = np.isfinite(v) & (v > (-np.inf if low is None else float(low))) & (v < (np.inf if high is None else float(high)))
    if ok.all():
        return band
    shown = ", ".join(f"{x:.3g}" for x in v)
    return f"= {shown}, NOT {band}"


#: A live figure is shown at its size in CSS pixels, 96 per inch (8-point text is 10.7 px high)...
CSS_DPI = 96
#: ...and drawn with this many pixels per CSS pixel: 1 is pixel-exact (sharp) on a standard screen.
#: (Before, a 72-dpi PNG was stretched to the output width and blurred.) 2 would be sharp on
#: high-density screens too, but the redraws then took 1.5-1.8x as long (measured on 2 cores:
#: chapter 4's panels over the 100 ms bar); 1.5 left two panels within a few ms of the bar.
LIVE_PIXEL_RATIO = 1
#: The resolution of a live figure: :class:`LivePanel` builds its figure inside ``figure_dpi(LIVE_DPI)``.
LIVE_DPI = CSS_DPI * LIVE_PIXEL_RATIO

#: Most frames a scrubber may hold (each frame is an embedded 256-colour PNG of ~5-15 KB at 96 dpi).
MAX_FRAMES = 25


# --------------------------------------------------------------------------- validation helpers


def _check_make_figure(make_figure: Any) -> None:
    if not callable(make_figure):
        raise TypeError(f"make_figure must be a callable returning (fig, update); got {type(make_figure).__name__}")


def _call_make_figure(make_figure: MakeFigure) -> tuple[Figure, Callable[..., Any]]:
    _check_make_figure(make_figure)
    out = make_figure()
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"make_figure() must return a (fig, update) pair; got {type(out).__name__}")
    fig, update = out
    if not isinstance(fig, Figure):
        raise TypeError(f"make_figure() must return a matplotlib Figure first; got {type(fig).__name__}")
    if not callable(update):
        raise TypeError(f"make_figure() must return a callable update second; got {type(update).__name__}")
    _detach_from_pyplot(fig)
    return fig, update


def _detach_from_pyplot(fig: Figure) -> None:
    """If ``fig`` was made with pyplot, unregister it so the inline backend does not show it too."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    from matplotlib._pylab_helpers import Gcf

    if any(manager.canvas.figure is fig for manager in Gcf.get_all_fig_managers()):
        plt.close(fig)
    if not isinstance(fig.canvas, FigureCanvasAgg):  # closing may leave a bare FigureCanvasBase
        FigureCanvasAgg(fig)


def _check_status(status: Any) -> str:
    if status is None:
        return ""
    if not isinstance(status, str):
        raise TypeError(f"update() must return a status string or None; got {type(status).__name__}")
    return status


def _check_controls(controls: Any) -> dict[str, ipywidgets.ValueWidget]:
    if not isinstance(controls, Mapping) or len(controls) == 0:
        raise TypeError("controls must be a non-empty dict {name: ipywidgets control}")
    out = {}
    for name, control in controls.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"controls keys must be valid Python identifiers (update's keyword names); got {name!r}")
        if not isinstance(control, _SUPPORTED):
            raise TypeError(
                f"controls[{name!r}] must be one of {[t.__name__ for t in _SUPPORTED]}; got {type(control).__name__}"
            )
        out[name] = control
    return out


def _option_values(control: ipywidgets.ValueWidget) -> list[Any]:
    """The values an option control can take (``options`` may be labels or (label, value) pairs)."""
    labels = list(control._options_labels)
    values = list(control._options_values)
    if not values:
        raise ValueError(f"control {control.description!r} has no options")
    return values if len(values) == len(labels) else labels


def _check_value(name: str, control: ipywidgets.ValueWidget, value: Any) -> Any:
    """Raise unless ``value`` is one the control can hold; return it (ints for int sliders)."""
    if isinstance(control, _RANGE_TYPES):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number; got {type(value).__name__}")
        if not math.isfinite(value) or not control.min <= value <= control.max:
            raise ValueError(f"{name} must be in [{control.min}, {control.max}]; got {value}")
        if isinstance(control, (ipywidgets.IntSlider, ipywidgets.BoundedIntText)):
            if int(value) != value:
                raise ValueError(f"{name} must be an integer; got {value}")
            return int(value)
        return float(value)
    if isinstance(control, _BOOL_TYPES):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False; got {value!r}")
        return bool(value)
    options = _option_values(control)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value


# --------------------------------------------------------------------------- LivePanel


class LivePanel:
    """Sliders plus a live figure that ``update`` redraws in place; shows as the last expression of a cell.

    ``make_figure() -> (fig, update)`` is called ONCE. Every control change calls
    ``update(**values)`` with the values of all controls (keyword names = keys of ``controls``),
    renders the figure to PNG into an :class:`ipywidgets.Image` and shows the returned status
    string on a status line (red when not empty, for example ``"underflow: ..."``). A first render with the controls' current values runs in the
    constructor: that is where the panel's one JAX compilation belongs.

    Resolution: ``make_figure`` runs inside :func:`vgplib.plots.figure_dpi` ``(LIVE_DPI)``, so a
    figure from :func:`vgplib.plots.new_figure` (and any pixel copy taken while it is built) is
    drawn at :data:`LIVE_DPI` (96 dpi), whatever dpi the chapter asked for, and the image is shown
    :data:`CSS_DPI` = 96 CSS pixels per inch wide (a 6-inch figure: 576 px), not stretched to the
    width of the output area. With ``dpi`` given, the figure keeps its own dpi and is rendered
    at ``dpi``.

    Attributes: ``widget`` (the :class:`ipywidgets.VBox` displayed), ``controls``, ``image``,
    ``make_figure`` (kept so a benchmark can time the naive re-create-per-move alternative),
    ``status`` (the status :class:`ipywidgets.HTML`), ``fig``, ``last_status``, ``last_seconds``
    (compute + draw + PNG time of the last move) and ``moves`` (renders so far).

    An exception inside ``update`` during an interactive move is shown on the status line (an
    exception in a widget callback would otherwise vanish); :meth:`set` re-raises it.

    ``freeze_legend=True`` draws each legend once and reuses its pixels (:func:`vgplib.plots.freeze_legends`),
    saving about 15 ms per move; use it only when ``update`` never changes the legend and leaves
    the legend's area free of data when the figure is created (the copy is opaque).
    """

    def __init__(self, make_figure: MakeFigure, controls: Mapping[str, ipywidgets.ValueWidget],
                 dpi: int | None = None, freeze_legend: bool = False) -> None:
        self.controls = _check_controls(controls)
        if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or dpi < 1):
            raise ValueError(f"dpi must be a positive integer or None; got {dpi!r}")
        if not isinstance(freeze_legend, bool):
            raise TypeError(f"freeze_legend must be True or False; got {freeze_legend!r}")
        self.make_figure = make_figure
        with contextlib.ExitStack() as stack:
            if dpi is None:
                stack.enter_context(figure_dpi(LIVE_DPI))
            self.fig, self._update = _call_make_figure(make_figure)
        if dpi is None and self.fig.dpi != LIVE_DPI and not self.fig.images:
            self.fig.set_dpi(LIVE_DPI)  # not from new_figure, and nothing drawn as pixels yet
        if freeze_legend:
            if dpi is not None and dpi != self.fig.dpi:
                raise ValueError("freeze_legend=True needs the figure's own dpi (leave dpi=None)")
            freeze_legends(self.fig)
        self.dpi = int(dpi) if dpi is not None else None
        # Shown at the figure's size in CSS pixels; a VBox would otherwise stretch it to its width.
        css_width = round(float(self.fig.get_size_inches()[0]) * CSS_DPI)
        self.image = ipywidgets.Image(
            format="png", layout=ipywidgets.Layout(width=f"{css_width}px", max_width="100%", height="auto")
        )
        self.status = ipywidgets.HTML(value="")
        self.widget = ipywidgets.VBox([ipywidgets.HBox(list(self.controls.values())), self.image, self.status])
        self.last_status = ""
        self.last_seconds = math.nan
        self.moves = 0
        self._holding = False
        self.render()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")

    # -- rendering
    def values(self) -> dict[str, Any]:
        """The current value of every control, ``{name: value}``."""
        return {name: control.value for name, control in self.controls.items()}

    def render(self) -> str:
        """Call ``update`` with the current values, redraw the PNG and the status line; return the status."""
        start = time.perf_counter()
        status = _check_status(self._update(**self.values()))
        self.image.value = figure_png(self.fig, self.dpi)
        self.last_seconds = time.perf_counter() - start
        self.last_status = status
        self.moves += 1
        self.status.value = (
            f'<span style="color:#b00020;font-weight:bold">&#9888; {html.escape(status)}</span>' if status else ""
        )
        return status

    def _on_change(self, change: dict) -> None:
        if self._holding:
            return
        try:
            self.render()
        except Exception as err:  # noqa: BLE001 - shown to the reader instead of vanishing
            self.last_status = f"error: {type(err).__name__}: {err}"
            self.status.value = f'<span style="color:#b00020">{html.escape(self.last_status)}</span>'

    def set(self, **values: Any) -> str:
        """Move one or more controls (validated like the widgets would), redraw once, return the status.

        ``panel.set(depth=30, activation="relu")``: unknown names raise ``ValueError``; values outside
        a slider's ``[min, max]`` or not among a dropdown's options raise ``ValueError``.
        """
        if not values:
            raise ValueError(f"set() needs at least one of {list(self.controls)}")
        checked = {}
        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"unknown control {name!r}; this panel has {list(self.controls)}")
            checked[name] = _check_value(name, self.controls[name], value)
        self._holding = True
        try:
            for name, value in checked.items():
                self.controls[name].value = value
        finally:
            self._holding = False
        return self.render()

    # -- display
    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"LivePanel(controls={list(self.controls)}, values={self.values()})"


# --------------------------------------------------------------------------- scrubber


def _format_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


#: Height of the strip a scrubber adds below the figure for the status line.
STATUS_STRIP_INCHES = 0.55  # below the figure: the frame's value, then its status (wrapped, two lines)


def _add_bottom_strip(fig: Figure, inches: float) -> None:
    """Make ``fig`` taller by ``inches`` at the bottom, keeping every axes' size and place in inches."""
    width, height = fig.get_size_inches()
    new_height = height + inches
    boxes = [(ax, ax.get_position()) for ax in fig.axes]
    fig.set_size_inches(width, new_height)
    for ax, box in boxes:
        ax.set_position([box.x0, (box.y0 * height + inches) / new_height, box.width, box.height * height / new_height])
    for text in fig.texts:
        x, y = text.get_position()
        text.set_position((x, (y * height + inches) / new_height))


def scrubber(
    make_figure: MakeFigure,
    name: str,
    values: Sequence[Any],
    fixed: Mapping[str, Any] | None = None,
    dpi: int = DPI,
    interval_ms: int = 400,
    alt: str | None = None,
):
    """A kernel-free scrubber: the figure at each of ``values`` of control ``name``, as matplotlib jshtml.

    Calls ``make_figure()`` once, then ``update(**fixed, name=value)`` per frame, and returns an
    :class:`IPython.display.HTML` holding ``FuncAnimation(...).to_jshtml()``: a range input over
    the embedded PNG frames that plays in the static book offline. Each frame carries the text
    ``"name = value"`` (and the status string, if any) in the figure, so the reader sees which value
    a frame shows. At most :data:`MAX_FRAMES` values.

    The frames are drawn at ``dpi`` (default :data:`vgplib.plots.DPI` = 96, one inch of figure per
    96 CSS pixels) and stored as 256-colour PNGs (about a third of the bytes of matplotlib's RGBA
    frames; 5-15 KB per frame). The frame ``<img>`` carries ``alt`` (one sentence: what is plotted
    and what it shows; without it a generic sentence naming the scrubbed control and its range),
    ``data-dpi`` and ``data-min-font-pt`` (the smallest font size drawn in any frame): the browser
    test checks that this text is at least :data:`vgplib.plots.MIN_TEXT_PX` high as shown
    (``min_font_pt * dpi / 72 * shown width / natural width``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be the control name (a Python identifier); got {name!r}")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"values must be a list of values of {name!r}; got {type(values).__name__}")
    if not 1 <= len(values) <= MAX_FRAMES:
        raise ValueError(f"values must hold 1 to {MAX_FRAMES} frames; got {len(values)}")
    fixed = {} if fixed is None else fixed
    if not isinstance(fixed, Mapping):
        raise TypeError(f"fixed must be a dict of the other controls' values; got {type(fixed).__name__}")
    if name in fixed:
        raise ValueError(f"fixed must not contain the scrubbed control {name!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)) or not 20 <= dpi <= 200:
        raise ValueError(f"dpi must be an integer in [20, 200]; got {dpi!r}")
    if isinstance(interval_ms, bool) or not isinstance(interval_ms, (int, np.integer)) or interval_ms < 1:
        raise ValueError(f"interval_ms must be a positive integer; got {interval_ms!r}")
    if alt is not None and (not isinstance(alt, str) or not alt.strip()):
        raise ValueError(f"alt must be a non-empty sentence describing the figure; got {alt!r}")
    from IPython.display import HTML

    fig, update = _call_make_figure(make_figure)
    fig.set_dpi(dpi)
    _add_bottom_strip(fig, STATUS_STRIP_INCHES)
    # Both texts live in the strip below the axes, so they never cover a title or the data.
    strip = STATUS_STRIP_INCHES / fig.get_figheight()
    label = fig.text(0.985, 0.8 * strip, "", ha="right", va="center", fontsize=10,
                     bbox={"boxstyle": "round,pad=0.2", "fc": "#fff8c4", "ec": "0.6"})
    status_text = fig.text(0.005, 0.5 * strip, "", ha="left", va="top", fontsize=8, color="#b00020", wrap=True)
    statuses = [""] * len(values)
    min_font = [math.inf]

    def draw_frame(i: int):
        status = _check_status(update(**fixed, **{name: values[i]}))
        statuses[i] = status
        label.set_text(f"{name} = {_format_value(values[i])}")
        status_text.set_text(f"\u26a0 {status}" if status else "")
        # the texts of this frame (tick labels as of the previous draw; the last draw is added below)
        min_font[0] = min(min_font[0], min_font_size(fig, draw=False))
        return []

    anim = FuncAnimation(fig, draw_frame, frames=len(values), interval=interval_ms, blit=False, repeat=False)
    html_text = _palette_frames(anim.to_jshtml(default_mode="once"))
    min_font[0] = min(min_font[0], min_font_size(fig, draw=False))
    if alt is None:
        alt = (f"Figure at {len(values)} values of {name} from {_format_value(values[0])} "
               f"to {_format_value(values[-1])}; drag the slider below it to change {name}.")
    return HTML(_tag_frame_image(html_text, alt, min_font_pt=min_font[0], dpi=int(dpi)))


#: One embedded jshtml frame: ``frames[i] = "data:image/png;base64,<data with \\-newlines>"``.
_FRAME = re.compile(r'(frames\[\d+\] = "data:image/png;base64,)([A-Za-z0-9+/=\\\n]+)(")')


def _palette_frames(html_text: str) -> str:
    """Re-encode every PNG frame of a jshtml animation with a 256-colour palette (no dithering).

    A line plot's frame holds far fewer than 256 distinct colours apart from anti-aliasing shades, so
    the picture is unchanged to the eye, at about a third of the bytes.
    """
    from PIL import Image

    def one(match: re.Match) -> str:
        data = base64.b64decode(match.group(2).replace("\\\n", ""))
        image = Image.open(io.BytesIO(data)).convert("RGB")
        out = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            out, format="PNG", optimize=True)
        return match.group(1) + base64.b64encode(out.getvalue()).decode("ascii") + match.group(3)

    new_text, count = _FRAME.subn(one, html_text)
    if count == 0:
        raise RuntimeError("unexpected jshtml layout: no embedded PNG frames found")
    return new_text


def _tag_frame_image(html_text: str, alt: str, min_font_pt: float, dpi: int) -> str:
    """Give the jshtml frame image (matplotlib writes ``<img id="_anim_img...">``) its alt text and
    the ``data-dpi`` / ``data-min-font-pt`` attributes the browser test reads."""
    if html_text.count('<img id="_anim_img') != 1:
        raise RuntimeError("unexpected jshtml layout: expected exactly one <img id=\"_anim_img...\">")
    font = "none" if not math.isfinite(min_font_pt) else f"{min_font_pt:g}"
    attrs = f'alt="{html.escape(alt, quote=True)}" data-dpi="{dpi}" data-min-font-pt="{font}"'
    return html_text.replace('<img id="_anim_img', f'<img {attrs} id="_anim_img', 1)


# --------------------------------------------------------------------------- sweeps


def _range_corners(control: ipywidgets.ValueWidget) -> list[Any]:
    return [control.min, control.max] if control.min != control.max else [control.min]


def _corner_options(control: ipywidgets.ValueWidget) -> list[Any]:
    if isinstance(control, _RANGE_TYPES):
        return _range_corners(control)
    if isinstance(control, _BOOL_TYPES):
        return [False, True]
    options = _option_values(control)
    if isinstance(control, ipywidgets.SelectionSlider):
        return [options[0], options[-1]] if len(options) > 1 else options
    return options


def corner_values(controls: Mapping[str, ipywidgets.ValueWidget]) -> list[dict[str, Any]]:
    """Every combination of the controls' extremes, as a list of ``{name: value}`` dicts.

    A numeric slider contributes its ``min`` and ``max``; a Dropdown, ToggleButtons, RadioButtons or
    Select every option; a SelectionSlider its first and last option; a Checkbox False and True.
    Two sliders and a 4-option dropdown give 2 * 2 * 4 = 16 corners.
    """
    controls = _check_controls(controls)
    names = list(controls)
    choices = [_corner_options(controls[n]) for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


def sweep_values(control: ipywidgets.ValueWidget, n: int = 21) -> list[Any]:
    """Values to drive one control over: all of them if there are at most ``n``, else ``n`` spread values.

    Numeric sliders give ``n`` evenly spread values from ``min`` to ``max`` snapped to the slider's
    ``step`` (endpoints included); option controls every option; a Checkbox False and True.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    if not isinstance(control, _SUPPORTED):
        raise TypeError(f"control must be one of {[t.__name__ for t in _SUPPORTED]}; got {type(control).__name__}")
    if not isinstance(control, _RANGE_TYPES):
        return _option_values(control) if not isinstance(control, _BOOL_TYPES) else [False, True]
    lo, hi = control.min, control.max
    if isinstance(control, (ipywidgets.IntSlider, ipywidgets.BoundedIntText)):
        if hi - lo + 1 <= n:
            return list(range(lo, hi + 1))
        return sorted({int(np.rint(v)) for v in np.linspace(lo, hi, n)})
    if isinstance(control, ipywidgets.FloatLogSlider):
        exps = np.linspace(lo, hi, n)
        return [float(control.base**e) for e in exps]
    step = getattr(control, "step", None) or 0
    vals = np.linspace(lo, hi, n)
    if step:
        vals = lo + np.round((vals - lo) / step) * step
    return sorted({float(min(max(v, lo), hi)) for v in vals})


# --------------------------------------------------------------------------- compile counter

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts XLA backend compilations while active (``count``), with the names of what compiled."""

    def __init__(self) -> None:
        self.count = 0
        self.names: list[str] = []

    def __call__(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == _COMPILE_EVENT:
            self.count += 1
            self.names.append(str(kwargs.get("fun_name", "?")))


@contextlib.contextmanager
def count_compiles() -> Iterator[CompileCounter]:
    """Context manager counting JAX compilations (jit or eager op) in its body.

    ``with count_compiles() as c: panel.set(depth=30)`` then ``c.count == 0`` proves that the move
    reused compiled code. Uses the ``/jax/core/compile/backend_compile_duration`` monitoring event,
    emitted once per XLA compilation (cache hits emit nothing).
    """
    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)


# --------------------------------------------------------------------------- registry

#: Registered panel factories ``{"chNN.name": factory}``; each ``factory()`` returns a new LivePanel.
PANELS: dict[str, Callable[[], LivePanel]] = {}


def register_panel(name: str) -> Callable[[Callable[[], LivePanel]], Callable[[], LivePanel]]:
    """Decorator: register a zero-argument factory returning a :class:`LivePanel` under ``name``.

    ``name`` is ``"chNN.short_name"`` (for example ``"ch02.matrix_products"``). Registration is what
    puts a panel into the corner-sweep test and the latency benchmark. Re-registering the same
    function object (a module reload) is allowed; another function under a taken name raises.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string such as 'ch02.products'; got {name!r}")

    def decorator(factory: Callable[[], LivePanel]) -> Callable[[], LivePanel]:
        if not callable(factory):
            raise TypeError(f"register_panel({name!r}) must decorate a callable; got {type(factory).__name__}")
        old = PANELS.get(name)
        if old is not None and getattr(old, "__qualname__", None) != getattr(factory, "__qualname__", None):
            raise ValueError(f"panel name {name!r} is already registered by {old!r}")
        PANELS[name] = factory
        return factory

    return decorator


def all_panels() -> dict[str, Callable[[], LivePanel]]:
    """Import every ``vgplib.panels`` module (so each registers its panels) and return the registry."""
    import vgplib.panels as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"vgplib.panels.{info.name}")
    return dict(sorted(PANELS.items()))


# re-exported for panel modules: ``from vgplib.widgets import new_figure``
_ = (new_figure, FIGSIZE, DPI)


def sigma_w_slider(value: float, lo: float, hi: float, step: float) -> ipywidgets.FloatSlider:
    """The panels' weight-scale control: a ``sigma_w`` slider from ``lo`` to ``hi`` in steps of ``step``."""
    return ipywidgets.FloatSlider(value=value, min=lo, max=hi, step=step, description="sigma_w",
                                  readout_format=".2f")


def depth_slider(value: int, max_depth: int) -> ipywidgets.IntSlider:
    """The panels' depth control: a ``depth L`` slider from 1 to ``max_depth``."""
    return ipywidgets.IntSlider(value=value, min=1, max=max_depth, description="depth L")


# --------------------------------------------------------------------------- exercises


#: How every exercise self-check starts its output while an answer is still ``None`` (the state of
#: the committed notebooks): one neutral prompt for the whole book.
NO_ANSWER = "No answer yet"


def unanswered(prompt: str, *answers: Any) -> bool:
    """True, after printing ``"No answer yet: <prompt>"``, when any of ``answers`` is ``None``.

    The first line of a chapter's ``check_*`` function: ``if unanswered("check_x(a, b)", a, b): return``.
    ``prompt`` says what to fill in (the call, or "set a to your number and run the cell again.").
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str; got {type(prompt).__name__}")
    if any(a is None for a in answers):
        print(f"{NO_ANSWER}: {prompt}")
        return True
    return False


def answer_number(arg: str, value: Any) -> float:
    """An exercise answer as a float; a ``TypeError`` naming ``arg`` unless it is a real number (not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{arg} must be a number; got {type(value).__name__}")
    return float(value)


def report_answer(ok: bool, what: str, hint: str) -> bool:
    """Print the verdict of an exercise self-check and return ``ok``.

    ``"Correct: <what>."`` when ``ok``, else ``"Not yet: <hint>"``: the chapters' checkers compute
    the right answer themselves and pass a hint that names the usual mistake.
    """
    if not isinstance(ok, (bool, np.bool_)):
        raise TypeError(f"ok must be a bool; got {type(ok).__name__}")
    print(f"Correct: {what}." if ok else f"Not yet: {hint}")
    return bool(ok)

