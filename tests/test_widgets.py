"""Tests of vgplib.widgets (live panels, scrubbers, sweeps, compile counter), vgplib.plots, the chapter-2
panels' computations against independent paths, and the slider CORNER SWEEP over every registered panel.

The corner sweep drives every panel registered in ``vgplib.panels`` (see ``vgplib.widgets.all_panels``)
at every combination of its controls' extremes: no exception, a PNG every time, a status string,
and no JAX compilation after the panel was first shown.
"""

from __future__ import annotations

import base64
import math
import os
import re

import ipywidgets
import jax
import jax.numpy as jnp
import jaxlib
import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

matplotlib.use("Agg")

import vgplib
from vgplib import widgets
from vgplib.panels import ch02
from vgplib.plots import (
    DPI,
    FIGSIZE,
    figure_dpi,
    figure_png,
    freeze_axes,
    freeze_decorations,
    freeze_frame_but_y_ticks,
    freeze_legends,
    log10_or_nan,
    min_font_size,
    min_text_px,
    new_figure,
    plain_log_yaxis,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- a toy panel


def toy_make_figure(log=None, fail_at=None):
    """A figure whose ``update(n, label)`` draws ``y = n x`` and reports 'overflow' for n > 8."""
    calls = [] if log is None else log

    def make_figure():
        fig, ax = new_figure()
        (line,) = ax.plot(np.arange(5), np.zeros(5))
        ax.set_ylim(-1, 50)
        text = ax.set_title("")

        def update(n: int, label: str = "a") -> str:
            calls.append({"n": n, "label": label})
            if fail_at is not None and n == fail_at:
                raise RuntimeError("boom")
            line.set_ydata(n * np.arange(5))
            text.set_text(f"{label} {n}")
            return "overflow: n > 8" if n > 8 else ""

        return fig, update

    return make_figure, calls


def toy_controls():
    return {
        "n": ipywidgets.IntSlider(value=2, min=0, max=10),
        "label": ipywidgets.Dropdown(options=["a", "b", "c"], value="a"),
    }


# --------------------------------------------------------------------------- plots


def test_new_figure_is_pyplot_free_and_renders_png():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig, _ = new_figure(figsize=(4, 2), dpi=50)
    assert plt.get_fignums() == before
    png = figure_png(fig)
    assert png.startswith(PNG_MAGIC)
    # 4 x 2 inches at 50 dpi: the PNG header stores width 200 and height 100.
    assert int.from_bytes(png[16:20], "big") == 200 and int.from_bytes(png[20:24], "big") == 100
    _, axes = new_figure(ncols=2)
    assert axes.shape == (2,)


@pytest.mark.parametrize(
    "kwargs", [{"figsize": (0, 3)}, {"figsize": "big"}, {"dpi": 0}, {"dpi": 7.5}, {"ncols": 0}, {"margins": {"x": 1}}]
)
def test_new_figure_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        new_figure(**kwargs)


def test_book_text_size_defaults():
    """Figures from new_figure and pyplot: smallest default text >= MIN_TEXT_PX in the book."""
    assert matplotlib.rcParams["figure.dpi"] == vgplib.plots.DPI  # BOOK_RC, applied on import
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x")
    ax.set_title("t")
    assert min_font_size(fig) == 10.0  # tick and axis labels: matplotlib's 10-pt default
    assert min_text_px(fig) >= vgplib.plots.MIN_TEXT_PX
    assert vgplib.plots.MIN_FONT_PT * vgplib.plots.DPI / 72 == vgplib.plots.MIN_TEXT_PX


def test_min_font_size_counts_only_drawn_text():
    fig, ax = new_figure(figsize=(9.0, 3.0), dpi=96)
    ax.plot([0, 1], [0, 1], label="a")
    ax.legend(fontsize=6).set_visible(False)
    ax.text(0.5, 0.5, "", fontsize=5)  # empty: not drawn
    hidden = ax.text(0.5, 0.5, "hidden", fontsize=4)
    hidden.set_visible(False)
    ax.set_title("small title", fontsize=8.5)
    assert min_font_size(fig) == 8.5
    # 9 inches at 96 dpi is 864 px, shown 672 px wide (COLUMN_PX): 8.5 pt -> 8.5 * 96/72 * 672/864 px
    assert min_text_px(fig) == pytest.approx(8.5 * 96 / 72 * 672 / 864)
    assert min_text_px(fig, shown_px=864) == pytest.approx(8.5 * 96 / 72)
    assert min_text_px(fig, dpi=48) == pytest.approx(8.5 * 48 / 72)  # 432 px natural: not scaled
    assert min_font_size(new_figure()[0]) == 10.0  # tick labels only
    with pytest.raises(TypeError):
        min_font_size("fig")
    with pytest.raises(ValueError):
        min_text_px(fig, shown_px=0)


def test_freeze_legends_keeps_the_picture_and_hides_the_legend():
    def make(freeze):
        fig, ax = new_figure()
        (line,) = ax.plot([], [], label="a curve")
        ax.plot([0, 1], [0, 1], label="another")
        ax.legend(loc="upper left")
        if freeze:
            assert freeze_legends(fig) == 1
        line.set_data([0, 1], [1, 0])
        return fig, ax

    plain, _ = make(False)
    frozen, ax = make(True)
    assert not ax.get_legend().get_visible() and len(frozen.images) == 1
    a = np.asarray(plt_image(figure_png(plain)), dtype=int)
    b = np.asarray(plt_image(figure_png(frozen)), dtype=int)
    # Same pixels except where the new line crosses the (now opaque) legend box.
    assert np.mean(np.abs(a - b) > 8) < 0.01
    fig, _ = new_figure()
    assert freeze_legends(fig) == 0
    with pytest.raises(TypeError, match="fig"):
        freeze_legends(None)


def _log_axes_figure(freeze, dpi: int = DPI):
    """A log axes with fixed limits, mathtext tick labels, a legend and a curve that moves."""
    fig, ax = new_figure(dpi=dpi)
    ax.set_yscale("log")
    ax.set_xlim(0, 10)
    ax.set_ylim(1e-20, 1e2)
    ax.set_ylabel(r"$\|g\|$")
    ax.set_title("title")
    (line,) = ax.plot([], [], "o-", label="a curve")
    ax.legend(loc="lower right", frameon=False)
    if freeze:
        freeze(fig, ax)
    line.set_data(np.arange(11), 10.0 ** -np.arange(11))
    return fig, ax


def test_freeze_decorations_keeps_the_picture_and_stops_drawing_the_frame():
    plain, _ = _log_axes_figure(None)
    frozen, ax = _log_axes_figure(freeze_decorations)
    assert not ax.xaxis.get_visible() and not ax.yaxis.get_visible() and not ax.get_legend().get_visible()
    assert len(frozen.images) == 1 and ax.lines[0].get_visible() and ax.title.get_visible()
    a = np.asarray(plt_image(figure_png(plain)), dtype=int)
    b = np.asarray(plt_image(figure_png(frozen)), dtype=int)
    # Same picture up to antialiasing where the curve crosses the legend (drawn over it now).
    assert np.mean(np.abs(a - b) > 8) < 0.005
    # The frame really is frozen: moving the limits no longer changes the tick labels.
    ax.set_ylim(1e-5, 1e5)
    c = np.asarray(plt_image(figure_png(frozen)), dtype=int)
    plain.axes[0].set_ylim(1e-5, 1e5)
    d = np.asarray(plt_image(figure_png(plain)), dtype=int)
    left = slice(0, int(0.1 * a.shape[1]))  # the y tick labels
    assert np.array_equal(c[:, left], b[:, left]) and not np.array_equal(d[:, left], a[:, left])


def test_freeze_axes_replaces_the_axes_by_its_pixels():
    def make(freeze):
        fig, (ax1, ax2) = new_figure(ncols=2)
        ax2.plot([0, 1], [1, 0])
        (line,) = ax1.plot([], [])
        if freeze:
            freeze_axes(fig, ax2)
        line.set_data([0, 1], [0, 1])
        return fig, ax2

    plain, _ = make(False)
    frozen, ax2 = make(True)
    assert not ax2.get_visible() and len(frozen.images) == 1
    a = np.asarray(plt_image(figure_png(plain)), dtype=int)
    b = np.asarray(plt_image(figure_png(frozen)), dtype=int)
    assert np.mean(np.abs(a - b) > 8) < 0.001


def test_freeze_frame_but_y_ticks_keeps_the_picture_and_only_the_y_ticks_live():
    plain, _ = _log_axes_figure(None)
    frozen, ax = _log_axes_figure(freeze_frame_but_y_ticks)
    assert not ax.xaxis.get_visible() and ax.yaxis.get_visible() and not ax.yaxis.label.get_visible()
    assert not ax.get_legend().get_visible() and len(frozen.images) == 1 and ax.lines[0].get_visible()
    a = np.asarray(plt_image(figure_png(plain)), dtype=int)
    b = np.asarray(plt_image(figure_png(frozen)), dtype=int)
    assert np.mean(np.abs(a - b) > 8) < 0.005
    # the y tick labels follow new limits (live); the x axis below the axes does not move
    ax.set_ylim(1e-5, 1e5)
    ax.set_xlim(0, 5)
    c = np.asarray(plt_image(figure_png(frozen)), dtype=int)
    left, bottom = slice(0, int(0.1 * a.shape[1])), slice(int(0.9 * a.shape[0]), None)
    assert not np.array_equal(c[:, left], b[:, left]) and np.array_equal(c[bottom], b[bottom])


def test_plain_log_yaxis_draws_few_plain_text_ticks():
    fig, ax = new_figure()
    plain_log_yaxis(ax)
    ax.set_ylim(1e-47, 1e2)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert ax.get_yscale() == "log" and 2 <= len(labels) <= 8 and all(re.fullmatch(r"1e-?\d+", t) for t in labels)
    assert len(ax.yaxis.get_minorticklocs()) == 0


def test_float32_range_status_names_the_kind():
    assert widgets.float32_range_status(-3.0, 2.0) == ""
    assert widgets.float32_range_status(-np.inf, 0.0).startswith("zero gradient")
    assert widgets.float32_range_status(-46.2, 0.0).startswith("underflow: a gradient of 1e-47")
    assert widgets.float32_range_status(-1.0, 40.1).startswith("overflow: a gradient of 1e41")
    assert widgets.float32_range_status(-37.9, 38.5) == ""  # inside float32's normal range


@pytest.mark.parametrize("freeze", [freeze_axes, freeze_decorations, freeze_frame_but_y_ticks])
def test_freeze_rejects_bad_arguments(freeze):
    fig, ax = new_figure()
    _, other_ax = new_figure()
    with pytest.raises(TypeError, match="fig"):
        freeze(None, ax)
    with pytest.raises(ValueError, match="ax must be an Axes of fig"):
        freeze(fig, other_ax)


def plt_image(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png") * 255


def test_figure_png_rejects_non_figure():
    with pytest.raises(TypeError, match="fig"):
        figure_png("not a figure")


def test_log10_or_nan():
    out = log10_or_nan(np.array([100.0, 0.0, np.inf, -1.0, 1e-3]))
    np.testing.assert_allclose(out[[0, 4]], [2.0, -3.0])
    assert np.isnan(out[1:4]).all()


# --------------------------------------------------------------------------- corner_values / sweep_values


def test_corner_values_is_the_product_of_extremes_and_options():
    corners = widgets.corner_values(
        {
            "a": ipywidgets.IntSlider(value=3, min=1, max=9),
            "b": ipywidgets.FloatSlider(value=0.5, min=0.1, max=2.0),
            "c": ipywidgets.Dropdown(options=["x", "y", "z"]),
        }
    )
    assert len(corners) == 2 * 2 * 3
    assert {(d["a"], d["b"], d["c"]) for d in corners} == {
        (a, b, c) for a in (1, 9) for b in (0.1, 2.0) for c in ("x", "y", "z")
    }


def test_corner_values_other_controls():
    corners = widgets.corner_values(
        {
            "flag": ipywidgets.Checkbox(value=False),
            "s": ipywidgets.SelectionSlider(options=["lo", "mid", "hi"], value="mid"),
            "t": ipywidgets.ToggleButtons(options=[("one", 1), ("two", 2)]),
        }
    )
    assert {(d["flag"], d["s"], d["t"]) for d in corners} == {
        (f, s, t) for f in (False, True) for s in ("lo", "hi") for t in (1, 2)
    }


@pytest.mark.parametrize(
    "controls, error",
    [
        ({}, TypeError),
        ([ipywidgets.IntSlider()], TypeError),
        ({"x": ipywidgets.Text()}, TypeError),
        ({"not an identifier": ipywidgets.IntSlider()}, ValueError),
    ],
)
def test_corner_values_rejects_bad_controls(controls, error):
    with pytest.raises(error):
        widgets.corner_values(controls)


def test_sweep_values():
    assert widgets.sweep_values(ipywidgets.IntSlider(min=1, max=10), n=20) == list(range(1, 11))
    big = widgets.sweep_values(ipywidgets.IntSlider(min=1, max=200), n=21)
    assert big[0] == 1 and big[-1] == 200 and len(big) == 21 and big == sorted(set(big))
    fl = widgets.sweep_values(ipywidgets.FloatSlider(min=0.25, max=2.5, step=0.05), n=21)
    assert fl[0] == pytest.approx(0.25) and fl[-1] == pytest.approx(2.5) and len(fl) >= 20
    assert all(abs((v - 0.25) / 0.05 - round((v - 0.25) / 0.05)) < 1e-9 for v in fl)
    assert widgets.sweep_values(ipywidgets.Dropdown(options=["a", "b"])) == ["a", "b"]
    logs = widgets.sweep_values(ipywidgets.FloatLogSlider(min=-2, max=2, base=10), n=5)
    np.testing.assert_allclose(logs, [0.01, 0.1, 1, 10, 100])
    with pytest.raises(ValueError, match="n"):
        widgets.sweep_values(ipywidgets.IntSlider(), n=1)
    with pytest.raises(TypeError, match="control"):
        widgets.sweep_values(ipywidgets.Text())


# --------------------------------------------------------------------------- LivePanel


def test_live_panel_renders_once_at_creation_and_once_per_move():
    make_figure, calls = toy_make_figure()
    panel = widgets.LivePanel(make_figure, toy_controls())
    assert calls == [{"n": 2, "label": "a"}]
    assert bytes(panel.image.value).startswith(PNG_MAGIC)
    first = bytes(panel.image.value)
    assert panel.set(n=5, label="b") == ""
    assert calls[-1] == {"n": 5, "label": "b"} and len(calls) == 2  # two controls, ONE redraw
    assert bytes(panel.image.value) != first
    assert panel.controls["n"].value == 5 and panel.values() == {"n": 5, "label": "b"}
    assert panel.last_seconds > 0 and panel.moves == 2


def test_live_panel_reacts_to_widget_moves_and_shows_status():
    make_figure, calls = toy_make_figure()
    panel = widgets.LivePanel(make_figure, toy_controls())
    panel.controls["n"].value = 9  # what a reader dragging the slider does
    assert calls[-1]["n"] == 9
    assert panel.last_status == "overflow: n > 8"
    assert "overflow: n &gt; 8" in panel.status.value and "color" in panel.status.value
    assert panel.set(n=1) == "" and panel.status.value == ""


def test_live_panel_shows_callback_errors_and_set_raises_them():
    make_figure, _ = toy_make_figure(fail_at=7)
    panel = widgets.LivePanel(make_figure, toy_controls())
    panel.controls["n"].value = 7
    assert "RuntimeError: boom" in panel.status.value
    with pytest.raises(RuntimeError, match="boom"):
        panel.set(n=7)


def test_live_panel_display_is_the_widget():
    make_figure, _ = toy_make_figure()
    panel = widgets.LivePanel(make_figure, toy_controls())
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert isinstance(panel.widget, ipywidgets.VBox)
    assert panel.image in panel.widget.children and panel.status in panel.widget.children


def test_live_panel_detaches_pyplot_figures():
    import matplotlib.pyplot as plt

    def make_figure():
        fig, ax = plt.subplots()
        (line,) = ax.plot([0, 1], [0, 1])
        return fig, lambda n: line.set_ydata([0, n])

    panel = widgets.LivePanel(make_figure, {"n": ipywidgets.IntSlider(value=1, max=3)})
    assert not plt.fignum_exists(getattr(panel.fig, "number", -1))
    assert panel.set(n=3) == ""  # update returned None: no status


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n": 11}, ValueError, r"n must be in \[0, 10\]"),
        ({"n": -1}, ValueError, "n must be in"),
        ({"n": 2.5}, ValueError, "integer"),
        ({"n": "3"}, TypeError, "n must be a number"),
        ({"n": True}, TypeError, "n must be a number"),
        ({"label": "d"}, ValueError, "label must be one of"),
        ({"depth": 3}, ValueError, "unknown control 'depth'"),
        ({}, ValueError, "at least one"),
    ],
)
def test_live_panel_set_validates(kwargs, error, match):
    make_figure, calls = toy_make_figure()
    panel = widgets.LivePanel(make_figure, toy_controls())
    with pytest.raises(error, match=match):
        panel.set(**kwargs)
    assert len(calls) == 1 and panel.values() == {"n": 2, "label": "a"}


def test_live_panel_rejects_bad_construction():
    make_figure, _ = toy_make_figure()
    with pytest.raises(TypeError, match="make_figure"):
        widgets.LivePanel("not callable", toy_controls())
    with pytest.raises(TypeError, match=r"\(fig, update\)"):
        widgets.LivePanel(lambda: 3, toy_controls())
    with pytest.raises(TypeError, match="Figure"):
        widgets.LivePanel(lambda: (None, lambda **k: ""), toy_controls())
    fig, _ = new_figure()
    with pytest.raises(TypeError, match="update"):
        widgets.LivePanel(lambda: (fig, 3), toy_controls())
    with pytest.raises(TypeError, match="status"):
        widgets.LivePanel(lambda: (fig, lambda **k: 42), toy_controls())
    with pytest.raises(TypeError, match="controls"):
        widgets.LivePanel(make_figure, {})
    with pytest.raises(ValueError, match="dpi"):
        widgets.LivePanel(make_figure, toy_controls(), dpi=0)
    with pytest.raises(TypeError, match="freeze_legend"):
        widgets.LivePanel(make_figure, toy_controls(), freeze_legend="yes")
    with pytest.raises(ValueError, match="freeze_legend"):
        widgets.LivePanel(make_figure, toy_controls(), dpi=100, freeze_legend=True)


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_live_panel_draws_at_the_shown_size_and_is_not_stretched():
    make_figure, _ = toy_make_figure()  # new_figure() at its default size and dpi
    panel = widgets.LivePanel(make_figure, toy_controls())
    live = widgets.LIVE_DPI
    assert live == widgets.LIVE_PIXEL_RATIO * widgets.CSS_DPI and widgets.CSS_DPI == 96 and live >= 96
    assert panel.fig.dpi == live
    # Shown 96 CSS pixels per inch wide (at most the output width), drawn LIVE_DPI pixels per inch.
    width, height = FIGSIZE
    assert panel.image.layout.width == f"{round(96 * width)}px" and panel.image.layout.max_width == "100%"
    assert panel.image.layout.height == "auto"
    assert _png_size(bytes(panel.image.value)) == (round(live * width), round(live * height))
    panel.set(n=3)
    assert _png_size(bytes(panel.image.value)) == (round(live * width), round(live * height))
    # With an explicit dpi the figure keeps its own and the PNG is drawn at that dpi.
    fixed = widgets.LivePanel(toy_make_figure()[0], toy_controls(), dpi=50)
    assert fixed.fig.dpi == DPI and _png_size(bytes(fixed.image.value)) == (round(50 * width), round(50 * height))
    assert fixed.image.layout.width == f"{round(96 * width)}px"


def test_live_panel_takes_pixel_copies_at_the_live_dpi():
    def make(freeze):
        def make_figure():
            fig, ax = _log_axes_figure(freeze, dpi=50)  # the chapter's dpi: overridden while a LivePanel builds it
            assert fig.dpi == widgets.LIVE_DPI != 50
            (line,) = ax.lines

            def update(n: int, label: str = "a") -> str:
                line.set_ydata(10.0 ** -(n * np.arange(11) / 5))
                return ""

            return fig, update

        return widgets.LivePanel(make_figure, toy_controls())

    plain, frozen = make(None), make(freeze_decorations)
    assert plain.fig.dpi == frozen.fig.dpi == widgets.LIVE_DPI and len(frozen.fig.images) == 1
    a = np.asarray(plt_image(bytes(plain.image.value)), dtype=int)
    b = np.asarray(plt_image(bytes(frozen.image.value)), dtype=int)
    assert a.shape == b.shape and a.shape[1] == round(6 * widgets.LIVE_DPI)
    # Same picture: a frame frozen at the chapter's dpi and pasted into the live-dpi one would not be.
    assert np.mean(np.abs(a - b) > 8) < 0.005


def test_live_panel_sets_the_dpi_of_a_figure_not_from_new_figure():
    def make_figure():
        fig = Figure(figsize=(5, 2), dpi=100)
        FigureCanvasAgg(fig)
        fig.subplots().plot([0, 1])
        return fig, lambda **values: ""

    panel = widgets.LivePanel(make_figure, toy_controls())
    live = widgets.LIVE_DPI
    assert panel.fig.dpi == live and panel.image.layout.width == "480px"
    assert _png_size(bytes(panel.image.value)) == (5 * live, 2 * live)


def test_figure_dpi_overrides_new_figure_inside_the_block_only():
    with figure_dpi(150):
        inside, _ = new_figure(figsize=(2, 1), dpi=72)
        with figure_dpi(30):
            nested, _ = new_figure(figsize=(2, 1))
        again, _ = new_figure(figsize=(2, 1))
    outside, _ = new_figure(figsize=(2, 1), dpi=72)
    assert (inside.dpi, nested.dpi, again.dpi, outside.dpi) == (150, 30, 150, 72)
    for bad in (0, 1.5, True, "192"):
        with pytest.raises(ValueError, match="dpi"), figure_dpi(bad):
            pass


# --------------------------------------------------------------------------- scrubber


def _frames(html_text: str) -> list[str]:
    """The base64 PNG frames of a jshtml animation (stored as JS strings with line continuations)."""
    raw = re.findall(r'frames\[\d+\] = "data:image/png;base64,(.*?)"', html_text, flags=re.DOTALL)
    return [r.replace("\\\n", "") for r in raw]


def test_scrubber_embeds_one_frame_per_value_with_fixed_values():
    make_figure, calls = toy_make_figure()
    out = widgets.scrubber(make_figure, "n", [1, 4, 9], fixed={"label": "c"})
    text = out.data
    assert 'type="range"' in text
    frames = _frames(text)
    assert len(frames) == 3 and len(set(frames)) == 3  # each frame differs (value label + curve)
    drawn = [c for c in calls if c["label"] == "c"]
    assert [c["n"] for c in drawn][-3:] == [1, 4, 9]


def test_scrubber_frame_shows_its_value():
    """Frames for the same curve but different values differ only by the 'name = value' label."""

    def make_figure():
        fig, ax = new_figure()
        ax.plot([0, 1], [0, 1])
        return fig, lambda k: ""

    frames = _frames(widgets.scrubber(make_figure, "k", [1, 2]).data)
    assert len(frames) == 2 and frames[0] != frames[1]


def _frame_img_tag(html_text: str) -> str:
    tags = re.findall(r'<img [^>]*id="_anim_img[^>]*>', html_text)
    assert len(tags) == 1, tags
    return tags[0]


def test_scrubber_frame_image_carries_alt_dpi_and_smallest_font():
    """alt, data-dpi and data-min-font-pt (the smallest text in any frame, here a 7.5-pt legend)."""

    def make_figure():
        fig, ax = new_figure()
        (line,) = ax.plot([0, 1], [0, 1], label="curve")
        ax.legend(fontsize=7.5)
        ax.set_title("title", fontsize=12)
        return fig, lambda k: line.set_ydata([0, k])

    tag = _frame_img_tag(widgets.scrubber(make_figure, "k", [1, 2], dpi=80, alt='A "line" <rising>.').data)
    assert 'alt="A &quot;line&quot; &lt;rising&gt;."' in tag
    assert 'data-dpi="80"' in tag and 'data-min-font-pt="7.5"' in tag

    def no_legend():
        fig, ax = new_figure()
        (line,) = ax.plot([0, 1], [0, 1], label="curve")
        ax.legend(fontsize=6).set_visible(False)  # hidden: not drawn, not counted

        def update(k):
            line.set_ydata([0, k])
            return "overflow: k > 1" if k > 1 else ""

        return fig, update

    tag = _frame_img_tag(widgets.scrubber(no_legend, "k", [1]).data)
    # default alt names the control and its range; the default dpi is the book's; 10-pt tick labels
    assert 'alt="Figure at 1 values of k from 1 to 1' in tag
    assert f'data-dpi="{vgplib.plots.DPI}"' in tag and 'data-min-font-pt="10"' in tag
    # a frame with a status shows the scrubber's 8-pt status line
    assert 'data-min-font-pt="8"' in _frame_img_tag(widgets.scrubber(no_legend, "k", [1, 2]).data)
    with pytest.raises(ValueError, match="alt"):
        widgets.scrubber(no_legend, "k", [1, 2], alt=" ")


def test_scrubber_frames_are_palette_pngs_at_the_requested_dpi():
    from io import BytesIO

    from PIL import Image

    make_figure, _ = toy_make_figure()
    frames = _frames(widgets.scrubber(make_figure, "n", [1, 9], dpi=50).data)
    images = [Image.open(BytesIO(base64.b64decode(f))) for f in frames]
    assert all(im.mode == "P" for im in images)
    width, height = vgplib.plots.FIGSIZE
    # (matplotlib's movie writer rounds the frame to an even number of pixels)
    assert images[0].size[0] == pytest.approx(width * 50, abs=2)
    assert images[0].size[1] == pytest.approx((height + widgets.STATUS_STRIP_INCHES) * 50, abs=2)
    # the 'n = 9' frame also shows the red overflow status: palette kept the colour
    rgb = np.asarray(images[1].convert("RGB")).reshape(-1, 3)
    assert ((rgb[:, 0] > 150) & (rgb[:, 1] < 60) & (rgb[:, 2] < 60)).any()


@pytest.mark.parametrize(
    "args, kwargs, error",
    [
        (("n", list(range(26))), {}, ValueError),
        (("n", []), {}, ValueError),
        (("n", "abc"), {}, TypeError),
        (("not a name", [1]), {}, ValueError),
        (("n", [1]), {"fixed": {"n": 2}}, ValueError),
        (("n", [1]), {"fixed": [1]}, TypeError),
        (("n", [1]), {"dpi": 5}, ValueError),
        (("n", [1]), {"interval_ms": 0}, ValueError),
    ],
)
def test_scrubber_rejects_bad_arguments(args, kwargs, error):
    make_figure, _ = toy_make_figure()
    with pytest.raises(error):
        widgets.scrubber(make_figure, *args, **kwargs)


# --------------------------------------------------------------------------- compile counter and registry


def test_count_compiles_counts_new_shapes_only():
    f = jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)
    with widgets.count_compiles() as c:
        f(np.ones(7, np.float32))
    assert c.count >= 1
    with widgets.count_compiles() as c2:
        f(np.full(7, 2.0, np.float32))
    assert c2.count == 0
    with widgets.count_compiles() as c3:
        f(np.ones(8, np.float32))  # a new shape compiles again
    assert c3.count >= 1
    f(np.ones(9, np.float32))  # after the block: the listener is gone
    assert c3.count == 1


def test_register_panel_rejects_duplicates_and_bad_input():
    def factory_a():
        return None

    def factory_b():
        return None

    try:
        assert widgets.register_panel("test.dup")(factory_a) is factory_a
        assert widgets.register_panel("test.dup")(factory_a) is factory_a  # re-registration (reload) is fine
        with pytest.raises(ValueError, match="already registered"):
            widgets.register_panel("test.dup")(factory_b)
        with pytest.raises(TypeError, match="callable"):
            widgets.register_panel("test.other")(3)
        with pytest.raises(TypeError, match="name"):
            widgets.register_panel("")
    finally:
        widgets.PANELS.pop("test.dup", None)
        widgets.PANELS.pop("test.other", None)


def test_all_panels_finds_the_chapter_panels():
    panels = widgets.all_panels()
    assert {"ch02.scalar_product", "ch02.gradient_norms"} <= set(panels)
    assert all(re.fullmatch(r"ch\d\d\.\w+", name) for name in panels)


# --------------------------------------------------------------------------- THE CORNER SWEEP

PANEL_NAMES = sorted(widgets.all_panels())


@pytest.fixture(scope="module")
def panels():
    return {}


def _panel(panels, name):
    if name not in panels:
        panels[name] = widgets.all_panels()[name]()
    return panels[name]


@pytest.mark.parametrize("name", PANEL_NAMES)
def test_corner_sweep(panels, name):
    """Every combination of slider extremes: no exception, a fresh PNG, a status string, no compilation."""
    panel = _panel(panels, name)
    corners = widgets.corner_values(panel.controls)
    assert corners
    with widgets.count_compiles() as compiles:
        for corner in corners:
            status = panel.set(**corner)
            assert isinstance(status, str), (corner, status)
            assert bytes(panel.image.value).startswith(PNG_MAGIC)
            assert panel.values() == corner
            if status:
                assert status.startswith(widgets.STATUS_KINDS), (corner, status)
    assert compiles.count == 0, f"{name}: slider moves compiled {compiles.names}"


@pytest.mark.parametrize("name", PANEL_NAMES)
def test_slider_sweep_never_compiles(panels, name):
    """Every slider over its sweep values (others fixed): no compilation after the panel was shown."""
    panel = _panel(panels, name)
    with widgets.count_compiles() as compiles:
        for control_name, control in panel.controls.items():
            for value in widgets.sweep_values(control, n=8):
                panel.set(**{control_name: value})
    assert compiles.count == 0, f"{name}: slider moves compiled {compiles.names}"


# --------------------------------------------------------------------------- chapter 2 panels


def test_ch02_corners_report_underflow_and_overflow(panels):
    scalar = _panel(panels, "ch02.scalar_product")
    assert scalar.set(factor=0.05, depth=200).startswith("underflow")
    assert "underflow" in scalar.status.value
    assert scalar.set(factor=2.0, depth=200).startswith("overflow")
    assert scalar.set(factor=0.5, depth=10) == "" and scalar.status.value == ""
    grad = _panel(panels, "ch02.gradient_norms")
    assert grad.set(sigma_w=0.25, depth=200, activation="sigmoid").startswith("underflow")
    assert grad.set(sigma_w=2.5, depth=200, activation="linear").startswith("overflow")
    assert grad.set(sigma_w=1.0, depth=20, activation="tanh") == ""


def test_scalar_powers_match_numpy_float32_with_flush_to_zero():
    direct, exact = ch02.scalar_powers(0.25, 100)
    ls = np.arange(101)
    np.testing.assert_allclose(exact, ls * math.log10(0.25))
    ref = np.float32(0.25) ** ls.astype(np.float32)  # NumPy keeps subnormals: 0.25^64..74 > 0
    normal = ref >= np.finfo(np.float32).tiny
    np.testing.assert_allclose(direct[normal], ref[normal], rtol=1e-6)
    assert (direct[~normal] == 0).all() and int(np.argmin(normal)) == 64  # 0.25^64 = 2^-128 < 2^-126
    with pytest.raises(ValueError, match="depth"):
        ch02.scalar_powers(0.5, ch02.MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="factor"):
        ch02.scalar_powers(-1.0, 3)


@pytest.mark.parametrize("activation, sigma_w, depth", [("tanh", 1.3, 12), ("relu", 1.5, 7), ("sigmoid", 2.0, 9)])
def test_gradient_curves_match_vgplib_jacobians_of_the_truncated_network(activation, sigma_w, depth):
    """The masked MAX_DEPTH sweep equals backprop through a separately built depth-L network."""
    c = ch02.gradient_curves(sigma_w, depth, activation)
    data = ch02.network_data()
    n = ch02.WIDTH
    params = [{"W": sigma_w * data["Z"][l] / math.sqrt(n), "b": jnp.zeros(n)} for l in range(depth)]
    for b in range(ch02.BATCH):
        J = vgplib.layer_jacobians(params, data["x0"][b], activation=activation)
        g = np.asarray(vgplib.backward_vector_products(J, data["gL"][b]))
        norms = np.linalg.norm(g.astype(np.float64), axis=1)
        np.testing.assert_allclose(c["log10_samples"][b], np.log10(norms), atol=2e-5)
        np.testing.assert_allclose(c["direct"][b], norms, rtol=2e-5)
    rms = np.sqrt(np.mean(10.0 ** (2 * c["log10_samples"]), axis=0))
    np.testing.assert_allclose(c["log10_measured"], np.log10(rms), atol=1e-9)


@pytest.mark.parametrize("activation, sigma_w", [("tanh", 1.3), ("relu", 1.5), ("sigmoid", 2.0), ("linear", 0.7)])
def test_gradient_curves_theory_matches_vgplib_theory(activation, sigma_w):
    """The float32 in-jit mean field equals vgplib.theory's float64 length map and chi_1 at every layer."""
    depth = 15
    c = ch02.gradient_curves(sigma_w, depth, activation)
    q = sigma_w**2 * float(np.mean(np.sum(np.asarray(ch02.network_data()["x0"], np.float64) ** 2, axis=1))) / ch02.WIDTH
    chis = []
    for _ in range(depth):
        chis.append(vgplib.chi1(activation, sigma_w, q=q))
        q = vgplib.length_map(activation, sigma_w, 0.0, q)
    np.testing.assert_allclose(c["chi"][1:], chis, rtol=2e-4)
    expected = 0.5 * np.concatenate([np.cumsum(np.log10(chis)[::-1])[::-1], [0.0]])
    np.testing.assert_allclose(c["log10_theory"], expected, atol=1e-4)


def test_gradient_curves_theory_tracks_measurement_at_depth_50():
    """Mean field against a width-64 network: within 0.6 decades over 50 layers (finite-width noise)."""
    for activation, sigma_w in [("tanh", 0.8), ("tanh", 1.5), ("relu", 1.4), ("sigmoid", 1.0)]:
        c = ch02.gradient_curves(sigma_w, 50, activation)
        assert np.max(np.abs(c["log10_measured"] - c["log10_theory"])) < 0.6, (activation, sigma_w)


def test_scaled_norm_is_zero_only_for_the_zero_vector():
    """Squares of 1e-20 underflow in float32 (jnp.linalg.norm gives 0); the panel's norm (the library's
    vgplib.jacobians.stable_norm, tested further in tests/test_jacobians.py) does not."""
    tiny = jnp.full((ch02.WIDTH,), 1e-20, jnp.float32)
    assert float(jnp.linalg.norm(tiny)) == 0.0  # the failure the scaling avoids
    np.testing.assert_allclose(float(ch02.stable_norm(tiny)), 8e-20, rtol=1e-5)
    assert float(ch02.stable_norm(jnp.zeros(5, jnp.float32))) == 0.0
    assert float(ch02.stable_norm(jnp.array([1.0, -jnp.inf], jnp.float32))) == np.inf
    np.testing.assert_allclose(float(ch02.stable_norm(jnp.array([3.0, -4.0], jnp.float32))), 5.0, rtol=1e-6)


def test_gradient_curves_direct_is_zero_exactly_where_float32_backprop_is_all_zero():
    """Sigmoid, sigma_w = 1, depth 150: plain float32 backprop through separately built Jacobians is an
    all-zero vector at exactly the layers where ``direct`` is 0, and entries of ~1e-19 are not 0."""
    depth, sigma_w = 150, 1.0
    c = ch02.gradient_curves(sigma_w, depth, "sigmoid")
    data = ch02.network_data()
    n = ch02.WIDTH
    params = [{"W": sigma_w * data["Z"][l] / math.sqrt(n), "b": jnp.zeros(n)} for l in range(depth)]
    for b in range(ch02.BATCH):
        J = vgplib.layer_jacobians(params, data["x0"][b], activation="sigmoid")
        v = np.asarray(vgplib.backward_vector_products(J, data["gL"][b]))
        assert v.dtype == np.float32
        zero = np.all(v == 0, axis=1)
        assert zero.any() and not zero.all()
        np.testing.assert_array_equal(c["direct"][b] == 0, zero)
        small = (np.abs(v).max(axis=1) < 1e-18) & ~zero  # alive, but its squares underflow
        assert small.any() and np.all(c["direct"][b][small] > 0)


def test_gradient_curves_dead_relu_network_is_minus_infinity_not_nan():
    """sigma_w = 0.25: the ReLU forward signal underflows to exactly 0, so every gradient below is 0."""
    c = ch02.gradient_curves(0.25, 120, "relu")
    assert not np.isnan(c["log10_measured"]).any()
    assert c["log10_measured"][0] == -np.inf and c["log10_measured"][-1] == 0.0
    assert not c["forward_nonzero"][-1] and np.isfinite(c["log10_theory"]).all()


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"sigma_w": 0.0, "depth": 3, "activation": "tanh"}, ValueError),
        ({"sigma_w": 1.0, "depth": 0, "activation": "tanh"}, ValueError),
        ({"sigma_w": 1.0, "depth": ch02.MAX_DEPTH + 1, "activation": "tanh"}, ValueError),
        ({"sigma_w": 1.0, "depth": 3, "activation": "gelu"}, ValueError),
        ({"sigma_w": 1.0, "depth": 3.0, "activation": "tanh"}, TypeError),
    ],
)
def test_gradient_curves_rejects_bad_input(kwargs, error):
    with pytest.raises(error):
        ch02.gradient_curves(**kwargs)


def test_ch02_scrubbers_are_small_and_scrub():
    for out, n in [(ch02.scalar_scrubber(), 16), (ch02.gradient_scrubber(), 16)]:
        frames = _frames(out.data)
        assert len(frames) == n and len(set(frames)) == n
        assert len(out.data) < 600_000


# --------------------------------------------------------------------------- chapter 2 exercises


def test_ch02_float32_horizon_is_where_jax_flushes_to_zero():
    assert ch02.float32_horizon(0.25) == 64  # 0.25^64 = 2^-128 < 2^-126
    assert ch02.float32_horizon(0.5) == 127  # 2^-127 is subnormal, flushed
    with pytest.raises(ValueError, match="does not reach 0"):
        ch02.float32_horizon(0.99)


def test_ch02_horizon_check_accepts_64_only(capsys):
    assert ch02.check_horizon(64) is True
    assert ch02.check_horizon(np.int64(64)) is True
    for wrong in (63, 65, 64.0, "64", True, None):
        assert ch02.check_horizon(wrong) is False
    out = capsys.readouterr().out
    assert "Correct" in out and "Not yet" in out and "No answer yet" in out


def test_ch02_nilpotent_check(capsys):
    assert ch02.check_nilpotent(0, 0, 4) is True
    assert ch02.check_nilpotent(0.0, 0.0, 4.0) is True
    assert ch02.check_nilpotent(0, 0, 0) is False  # "the product of nilpotent factors is nilpotent"
    assert ch02.check_nilpotent(2, 2, 4) is False  # norms, not spectral radii
    assert ch02.check_nilpotent(None, 0, 4) is False
    assert "Correct" in capsys.readouterr().out


def test_ch02_relu_check(capsys):
    decades = 100 * math.log10(0.5)
    assert ch02.check_relu(math.sqrt(2), decades) is True
    assert ch02.check_relu(math.sqrt(2), -30.1) is True
    assert ch02.check_relu(1.0, -30.1) is False  # not critical
    assert ch02.check_relu(2.0, -30.1) is False  # chi_1 = 2
    assert ch02.check_relu(math.sqrt(2), -15.05) is False  # |g| instead of |g|^2
    assert ch02.check_relu(math.sqrt(2), 30.1) is False  # sign
    assert ch02.check_relu(None, -30.1) is False
    assert "Correct" in capsys.readouterr().out


def test_sigma_w_and_depth_sliders():
    s = widgets.sigma_w_slider(1.4, 0.5, 3.0, 0.05)
    assert isinstance(s, ipywidgets.FloatSlider) and (s.value, s.min, s.max, s.step) == (1.4, 0.5, 3.0, 0.05)
    assert s.description == "sigma_w" and s.readout_format == ".2f"
    d = widgets.depth_slider(30, 50)
    assert isinstance(d, ipywidgets.IntSlider) and (d.value, d.min, d.max, d.description) == (30, 1, 50, "depth L")


def test_unanswered_prints_one_neutral_prompt_only_for_a_missing_answer(capsys):
    assert widgets.unanswered("check_x(a, b)", 1.0, None) is True
    assert widgets.unanswered("check_x(a)", 0.0) is False
    assert widgets.unanswered("check_x()") is False
    assert capsys.readouterr().out == f"{widgets.NO_ANSWER}: check_x(a, b)\n" == "No answer yet: check_x(a, b)\n"
    with pytest.raises(TypeError, match="prompt"):
        widgets.unanswered(None, None)


def test_answer_number_accepts_real_numbers_and_names_the_argument_otherwise():
    assert widgets.answer_number("w", 4) == 4.0 and isinstance(widgets.answer_number("w", np.int64(4)), float)
    assert widgets.answer_number("w", np.float32(0.5)) == 0.5
    for bad in (True, np.bool_(False), "4", [4.0], None):
        with pytest.raises(TypeError, match="w must be a number"):
            widgets.answer_number("w", bad)


def test_report_answer_prints_the_verdict_and_returns_ok(capsys):
    assert widgets.report_answer(True, "two", "no") is True
    assert widgets.report_answer(np.bool_(False), "two", "count again") is False
    assert capsys.readouterr().out == "Correct: two.\nNot yet: count again\n"
    with pytest.raises(TypeError, match="ok must be a bool"):
        widgets.report_answer(1, "two", "no")


def test_below_prints_the_bound_not_the_rounding_digits():
    assert widgets.below(1.2e-14, 1e-12) == "< 1e-12"
    assert widgets.below(np.float32(-3e-7), 1e-6) == "< 1e-06"
    assert widgets.below(np.array(0.0), 1e-12) == "< 1e-12"
    # at or above the tolerance, or not finite: the value is printed, so a stored "< ..." no longer matches
    assert widgets.below(1e-12, 1e-12) == "= 1.00e-12, NOT below 1e-12"
    assert widgets.below(3.5e-5, 1e-12).startswith("= 3.50e-05, NOT below")
    assert "NOT below" in widgets.below(float("nan"), 1.0)
    assert "NOT below" in widgets.below(float("inf"), 1.0)


@pytest.mark.parametrize("error, tolerance, exc, word", [
    (1e-3, 0.0, ValueError, "tolerance"), (1e-3, -1.0, ValueError, "tolerance"),
    (1e-3, float("nan"), ValueError, "tolerance"), (1e-3, float("inf"), ValueError, "tolerance"),
    ("1e-3", 1e-2, TypeError, "error"), (True, 1e-2, TypeError, "error"),
    (np.zeros(3), 1e-2, TypeError, "error"), (1e-3, [1e-2], TypeError, "tolerance"),
])
def test_below_rejects_bad_arguments(error, tolerance, exc, word):
    with pytest.raises(exc, match=word):
        widgets.below(error, tolerance)


def test_within_prints_the_band_every_value_meets():
    assert widgets.within(np.array([0.99, 1.05, 0.986]), low=0.9) == "> 0.9"
    assert widgets.within([0.013, 0.021], high=0.05) == "< 0.05"
    assert widgets.within(np.float32(0.48), 0.4, 0.6) == "between 0.4 and 0.6"
    assert widgets.within(3, 1, 1e18) == "between 1 and 1e+18"
    assert widgets.within(jnp.array([2e18, 5e19]), low=1e18) == "> 1e+18"
    # one value outside (bounds are strict), or not finite: every value is printed, so nbval fails
    assert widgets.within([0.99, 0.85], low=0.9) == "= 0.99, 0.85, NOT > 0.9"
    assert widgets.within(0.05, high=0.05) == "= 0.05, NOT < 0.05"
    assert widgets.within([0.5, float("nan")], 0.4, 0.6) == "= 0.5, nan, NOT between 0.4 and 0.6"
    assert "NOT > 1e+18" in widgets.within(float("inf"), low=1e18)


@pytest.mark.parametrize("values, low, high, exc, word", [
    (0.5, None, None, ValueError, "low, high"), (0.5, 1.0, 0.5, ValueError, "below high"),
    (0.5, 0.5, 0.5, ValueError, "below high"), (0.5, float("nan"), None, ValueError, "low"),
    (0.5, None, float("inf"), ValueError, "high"), ([], 0.0, None, ValueError, "values"),
    ("0.5", 0.0, None, TypeError, "values"), (True, 0.0, None, TypeError, "values"),
    ([True, False], 0.0, None, TypeError, "values"), ([1 + 1j], 0.0, None, TypeError, "values"),
    (0.5, [0.0], None, TypeError, "low"), (0.5, None, "1", TypeError, "high"),
])
def test_within_rejects_bad_arguments(values, low, high, exc, word):
    with pytest.raises(exc, match=word):
        widgets.within(values, low, high)


def test_fast_xla_compile_sets_the_flags_only_when_safe(monkeypatch):
    # fast_xla_compile writes os.environ itself, which monkeypatch does not undo: give the test its
    # own copy of the environment, or the flags leak into this worker's later nbval kernels.
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"})
    monkeypatch.setattr(widgets.jaxlib, "__version__", "0.10.2")
    assert widgets.fast_xla_compile() is True
    assert os.environ["XLA_FLAGS"].split() == list(widgets.FAST_COMPILE_FLAGS)
    # the environment's own flags win (make test-portable, a reader's settings)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    assert widgets.fast_xla_compile() is False and os.environ["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX2"
    # a jaxlib these flags were not tested with: nothing is set (an unknown flag aborts XLA)
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setattr(widgets.jaxlib, "__version__", "0.11.0")
    assert widgets.fast_xla_compile() is False and "XLA_FLAGS" not in os.environ
    with pytest.raises(TypeError, match="flags"):
        widgets.fast_xla_compile("--xla_backend_optimization_level=1")
    with pytest.raises(TypeError, match="flags"):
        widgets.fast_xla_compile(["-O1"])


def test_fast_xla_compile_flags_are_known_to_the_installed_jaxlib():
    # XLA aborts the process on an unknown flag: start JAX in a fresh process after the call. Within
    # FAST_COMPILE_JAXLIB the flags must be set and accepted; outside it nothing may be set.
    import subprocess
    import sys

    code = ("import os, vgplib.widgets as w; set_ = w.fast_xla_compile(); "
            "assert set_ == ('XLA_FLAGS' in os.environ); import jax.numpy as jnp; "
            "print(set_, float(jnp.ones(3).sum()))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.split()[-1] == "3.0", out.stderr[-2000:]
    version = tuple(int(p) for p in jaxlib.__version__.split(".")[:2])
    in_range = widgets.FAST_COMPILE_JAXLIB[0] <= version <= widgets.FAST_COMPILE_JAXLIB[1]
    assert out.stdout.split()[0] == str(in_range)
