"""Chapter 11, *Gradient clipping*: the cliff panel, the chapter's figures and the exercise self-checks.

The live panel (registered as ``"ch11.cliff"``) runs gradient descent on the loss cliff of chapter 5
(:func:`vgplib.cliff_loss`, Pascanu, Mikolov & Bengio 2013, section 2.3) from :data:`CLIFF_STARTS`
at once, with norm clipping at a threshold ``c`` or without it, through
:func:`vgplib.cliff_descents`: one compiled ``vmap`` of ``lax.scan`` in float64 whose learning rate
and threshold are traced arguments (``c = inf`` is "no clipping"), so no slider move compiles. The
clipping inside is ``optax.clip_by_global_norm`` itself. Left: the paths on the map of
``log10 E(w, b)`` with the wall ``b_wall(w)``; right: the length of every step against the bound
``lr * c`` that norm clipping guarantees. The status line says how many runs were thrown off the
map onto a flat plateau where the gradient is exactly zero.
"""

from __future__ import annotations

import math
from functools import lru_cache

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from vgplib._validate import check_positive
from vgplib.landscapes import cliff_descents, cliff_grid
from vgplib.panels.ch05 import table, wall_line
from vgplib.plots import freeze_axes, freeze_decorations, new_figure
from vgplib.widgets import (
    LivePanel,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

Array = jax.Array

__all__ = ["CLIFF_STARTS", "table"]

#: Starting points ``(w0, b0)`` of the cliff runs (the first is chapter 5's run).
CLIFF_STARTS: tuple[tuple[float, float], ...] = ((5.6, -2.4), (5.0, -3.0), (4.6, -2.5), (5.4, -2.0),
                                                 (5.4, -2.5), (5.8, -3.5))
CLIFF_STEPS = 100  #: gradient-descent steps of every cliff run
MAP_W = (3.0, 8.0)  #: the map's w range
MAP_B = (-5.0, 0.0)  #: the map's b range
#: Values of the threshold slider (log-spaced, 0.01 to 100) and of the learning-rate slider.
THRESHOLDS: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0,
                                 50.0, 100.0)
LEARNING_RATES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
SCRUBBER_THRESHOLDS: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
_COLORS = ("C1", "C0", "C2", "C3", "C4", "C5")


@lru_cache(maxsize=1)
def loss_map(n: int = 161) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ws, bs, log10 E)`` on an ``n x n`` float32 grid of the map (computed once)."""
    ws = np.linspace(*MAP_W, n)
    bs = np.linspace(*MAP_B, n)
    grid = cliff_grid(ws, bs)
    return ws, bs, np.log10(np.asarray(grid.loss, np.float64))


def cliff_runs(threshold: float | None, lr: float, starts=CLIFF_STARTS, steps: int = CLIFF_STEPS):
    """:func:`vgplib.cliff_descents` in float64 from ``starts``; ``threshold=None`` does not clip.

    Returns a dict of NumPy arrays: ``params`` ``(K, steps + 1, 2)``, ``loss``, ``grad_norm``
    ``(K, steps + 1)`` and ``step`` ``(K, steps)``, the length of every step.
    """
    starts = np.asarray(starts, np.float64)
    with jax.enable_x64(True):
        path = cliff_descents(jnp.asarray(starts[:, 0]), jnp.asarray(starts[:, 1]), lr=lr, steps=steps,
                              clip_norm=threshold)
        out = {k: np.asarray(v) for k, v in path._asdict().items()}
    out["step"] = np.linalg.norm(np.diff(out["params"], axis=1), axis=2)
    return out


def _off_map(p: np.ndarray) -> np.ndarray:
    return ((p[..., 0] < MAP_W[0]) | (p[..., 0] > MAP_W[1]) | (p[..., 1] < MAP_B[0]) | (p[..., 1] > MAP_B[1]))


def cliff_status(runs: dict) -> str:
    """``"zero gradient: ..."`` when runs ended off the map on a plateau with gradient exactly 0."""
    last = runs["params"][:, -1]
    if not np.all(np.isfinite(runs["params"])):
        return "nan: a run produced NaN"
    flat = _off_map(last) & (runs["grad_norm"][:, -1] == 0.0)
    if flat.any():
        return (f"zero gradient: {int(flat.sum())} of {len(flat)} runs thrown off the map onto a "
                "plateau where the gradient is exactly 0")
    return ""


def _draw_map(ax, ws, bs, logloss) -> None:
    ax.imshow(logloss, origin="lower", extent=[ws[0], ws[-1], bs[0], bs[-1]], aspect="auto", cmap="viridis",
              vmin=-4, vmax=0)
    ax.plot(*wall_line(ws), "w--", lw=1)
    ax.set_xlim(*MAP_W)
    ax.set_ylim(*MAP_B)
    ax.set_xlabel("w")
    ax.set_ylabel("b")


def make_cliff_figure() -> tuple[Figure, object]:
    """Figure: paths on the map (left) and step lengths (right); ``update(threshold, lr, clip) -> status``."""
    ws, bs, logloss = loss_map()
    fig, (ax, ax2) = new_figure(figsize=(7.0, 3.3), ncols=2,
                                margins={"left": 0.08, "right": 0.98, "bottom": 0.15, "top": 0.88,
                                         "wspace": 0.3})
    # The map never changes: it is drawn once on a background axes and kept as pixels
    # (freeze_axes); the paths go on a transparent axes of the same place and limits above it.
    background = fig.add_axes(ax.get_position())
    _draw_map(background, ws, bs, logloss)
    for i, start in enumerate(CLIFF_STARTS):
        background.plot(*start, "s", color=_COLORS[i % len(_COLORS)], ms=4, mec="w", mew=0.5)
    ax.set_xlim(*MAP_W)
    ax.set_ylim(*MAP_B)
    ax.set_zorder(11)
    ax.patch.set_visible(False)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    paths, ends, steps = [], [], []
    for i in range(len(CLIFF_STARTS)):
        color = _COLORS[i % len(_COLORS)]
        paths.append(ax.plot([], [], "-", color=color, lw=1.3)[0])
        ends.append(ax.plot([], [], "o", color=color, ms=5, mec="k", mew=0.8)[0])
        steps.append(ax2.semilogy([], [], "-", color=color, lw=1.2)[0])
    (bound,) = ax2.plot([], [], "k--", lw=1.2)
    bound_text = ax2.text(0.98, 0.5, "", transform=ax2.transAxes, ha="right", va="bottom", fontsize=8)
    ax2.set_xlim(0, CLIFF_STEPS)
    ax2.set_ylim(1e-5, 1e5)
    ax2.set_yticks([1e-4, 1e-2, 1, 1e2, 1e4])
    ax2.set_xlabel("step k")
    ax2.set_ylabel("step length ‖θₖ₊₁ − θₖ‖")
    ax2.yaxis.set_label_coords(-0.15, 0.5)
    title = ax.set_title("", fontsize=9)
    title2 = ax2.set_title("", fontsize=9)
    freeze_axes(fig, background)
    freeze_decorations(fig, ax2)

    def update(threshold: float = 1.0, lr: float = 0.5, clip: bool = True) -> str:
        runs = cliff_runs(threshold if clip else None, lr)
        for i in range(len(CLIFF_STARTS)):
            p = runs["params"][i]
            paths[i].set_data(p[:, 0], p[:, 1])
            ends[i].set_data([p[-1, 0]], [p[-1, 1]])
            ends[i].set_visible(not _off_map(p[-1]))
            steps[i].set_data(np.arange(1, CLIFF_STEPS + 1), np.maximum(runs["step"][i], 1e-5))
        if clip:
            bound.set_data([0, CLIFF_STEPS], [lr * threshold] * 2)
            bound_text.set_text(f"bound lr·c = {lr * threshold:.3g}")
            bound_text.set_position((0.98, 0.5))
            bound_text.set_y(min(max(math.log10(lr * threshold) + 5, 0.3), 9.3) / 10)
        else:
            bound.set_data([], [])
            bound_text.set_text("no clipping: no bound")
        loss = runs["loss"][:, -1]
        in_valley = int(np.sum(loss < 0.01))
        label = f"c = {threshold:.3g}" if clip else "no clipping"
        title.set_text(f"{label}, lr = {lr:.3g}: {in_valley} of {len(loss)} end with E < 0.01")
        title2.set_text(f"longest step {runs['step'].max():.3g}")
        return cliff_status(runs)

    return fig, update


def cliff_controls(threshold: float = 1.0, lr: float = 0.5, clip: bool = True) -> dict[str, ipywidgets.ValueWidget]:
    """Threshold ``c`` and learning rate (selection sliders over log-spaced values) and the clip switch."""
    return {
        "threshold": ipywidgets.SelectionSlider(options=list(THRESHOLDS), value=threshold, description="threshold c"),
        "lr": ipywidgets.SelectionSlider(options=list(LEARNING_RATES), value=lr, description="lr"),
        "clip": ipywidgets.Checkbox(value=clip, description="clip by norm"),
    }


@register_panel("ch11.cliff")
def cliff_panel() -> LivePanel:
    """Live panel: gradient descent on the cliff, with and without norm clipping."""
    return LivePanel(make_cliff_figure, cliff_controls())


CLIFF_ALT = ("Paths of gradient descent with learning rate {lr:g} from six starting points on the map of "
             "the loss of the one-unit recurrent network, one frame per clipping threshold c from 0.01 "
             "to 100, with the length of every step beside it: with a small c every step is at most "
             "lr times c long and the paths creep; near c = 1 most paths reach the valley; with a "
             "large c the steps that land on the wall are thrown off the map.")


def cliff_scrubber(lr: float = 0.5, thresholds=SCRUBBER_THRESHOLDS, alt: str | None = None):
    """Kernel-free twin of :func:`cliff_panel`: the threshold from 0.01 to 100 at a fixed learning rate."""
    check_positive("lr", lr)
    alt = CLIFF_ALT.format(lr=lr) if alt is None else alt
    return scrubber(make_cliff_figure, "threshold", list(thresholds), fixed={"lr": lr, "clip": True}, alt=alt)


# --------------------------------------------------------------------------- static figures


def intuition_figure(g=(3.0, 0.6), c: float = 1.0) -> Figure:
    """A 2-D gradient, its norm-clipped version (on the circle of radius c, same direction) and its
    value-clipped version (in the square [-c, c]^2, turned)."""
    g = np.asarray(g, np.float64)
    by_norm = g * min(1.0, c / np.linalg.norm(g))
    by_value = np.clip(g, -c, c)
    fig, ax = new_figure(figsize=(5.0, 3.0), margins={"left": 0.1, "right": 0.98, "bottom": 0.14, "top": 0.9})
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(c * np.cos(t), c * np.sin(t), color="C0", lw=1, ls=":")
    ax.plot([-c, c, c, -c, -c], [-c, -c, c, c, -c], color="C3", lw=1, ls=":")
    for vec, color, label in ((g, "0.3", "gradient g"), (by_norm, "C0", "norm clipping (c = 1)"),
                              (by_value, "C3", "value clipping (c = 1)")):
        ax.annotate("", xy=tuple(vec), xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2})
        ax.plot([], [], color=color, lw=2, label=label)
    angle = math.degrees(math.atan2(by_value[1], by_value[0]) - math.atan2(g[1], g[0]))
    ax.text(1.05, 0.85, f"turned by {angle:.0f}°", color="C3", fontsize=9)
    ax.set_xlim(-1.3, 3.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_aspect("equal")
    ax.set_xlabel("∂E/∂θ₁")
    ax.set_ylabel("∂E/∂θ₂")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("norm clipping shortens, value clipping turns", fontsize=10)
    return fig


def angle_figure(fractions: np.ndarray, angles: dict[str, np.ndarray], norm_angles: dict[str, np.ndarray]) -> Figure:
    """Angle between a gradient and its value-clipped version against the fraction of entries clipped.

    ``angles[label]`` ``(S, F)`` over ``S`` networks and the ``F`` fractions; ``norm_angles[label]``
    ``(S, F)`` the same for norm clipping at thresholds that shorten the gradient as much.
    """
    fig, ax = new_figure(figsize=(6.0, 3.2), margins={"left": 0.11, "right": 0.98, "bottom": 0.15, "top": 0.9})
    for i, (label, a) in enumerate(angles.items()):
        color = f"C{i}"
        ax.plot(100 * fractions, np.median(a, 0), "o-", color=color, ms=3, label=f"value clipping, {label}")
        ax.fill_between(100 * fractions, a.min(0), a.max(0), color=color, alpha=0.2, lw=0)
    for i, (label, a) in enumerate(norm_angles.items()):
        ax.plot(100 * fractions, np.max(a, 0), "s--", color=f"C{i}", ms=3, mfc="w",
                label=f"norm clipping, {label}")
    ax.set_xscale("log")
    ax.set_xlabel("entries clipped by value clipping (%)")
    ax.set_ylabel("angle to the gradient (°)")
    ax.set_ylim(-3, 90)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("direction change on real gradients (band: min-max over networks)", fontsize=10)
    return fig


def cliff_runs_figure(plain: dict, clipped: dict, lr: float, threshold: float) -> Figure:
    """Two maps (without and with norm clipping, same starts) and the step lengths of both against
    the bound ``lr * c``: one row of three axes, 7 inches wide."""
    ws, bs, logloss = loss_map()
    fig, axes = new_figure(figsize=(7.0, 2.9), ncols=3,
                           margins={"left": 0.07, "right": 0.98, "bottom": 0.17, "top": 0.88, "wspace": 0.38})
    for ax, runs, name in ((axes[0], plain, "no clipping"), (axes[1], clipped, f"norm clipping, c = {threshold:g}")):
        _draw_map(ax, ws, bs, logloss)
        for i, p in enumerate(runs["params"]):
            color = _COLORS[i % len(_COLORS)]
            ax.plot(p[:, 0], p[:, 1], "-", color=color, lw=1.2)
            ax.plot(*p[0], "s", color=color, ms=4, mec="w", mew=0.5)
            if not _off_map(p[-1]):
                ax.plot(*p[-1], "o", color=color, ms=5, mec="k", mew=0.8)
        ax.set_title(name, fontsize=9)
    ax = axes[2]
    k = np.arange(1, plain["step"].shape[1] + 1)
    for i in range(plain["step"].shape[0]):
        ax.semilogy(k, np.maximum(plain["step"][i], 1e-6), "-", color="0.6", lw=0.8)
        ax.semilogy(k, np.maximum(clipped["step"][i], 1e-6), "-", color=_COLORS[i % len(_COLORS)], lw=1.0)
    ax.axhline(lr * threshold, color="k", ls="--", lw=1.2)
    ax.text(k[-1], lr * threshold * 1.6, "bound lr·c", ha="right", fontsize=8)
    ax.plot([], [], color="0.6", label="no clipping")
    ax.plot([], [], color="C0", label="clipped")
    ax.set_ylim(1e-6, 1e5)
    ax.set_yticks([1e-4, 1e-1, 1e2])
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    ax.set_xlabel("step k")
    ax.set_title("step lengths", fontsize=9)
    return fig


def rnn_figure(losses: dict[str, np.ndarray], first_bad: dict[str, np.ndarray]) -> Figure:
    """Training loss / baseline against the step for each optimizer, one thin line per seed; a cross
    where a run first produced a non-finite loss. ``losses[label]`` ``(steps, S)``."""
    n = len(losses)
    fig, axes = new_figure(figsize=(7.0, 2.8), ncols=n,
                           margins={"left": 0.08, "right": 0.99, "bottom": 0.17, "top": 0.86, "wspace": 0.08})
    axes = np.atleast_1d(axes)
    for ax, (label, L) in zip(axes, losses.items()):
        steps = np.arange(L.shape[0])
        for s in range(L.shape[1]):
            ok = np.isfinite(L[:, s])
            ax.semilogy(steps[ok], L[ok, s], "-", lw=0.7, alpha=0.8)
            k = first_bad[label][s]
            if k >= 0:
                ax.plot([k], [1e3], "x", color="C3", ms=6, mew=1.5)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_ylim(0.1, 3e3)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        if ax is not axes[0]:
            ax.tick_params(labelleft=False)
    axes[0].set_ylabel("MSE / baseline")
    return fig


# --------------------------------------------------------------------------- exercises


def _number(answer):
    if isinstance(answer, (bool, np.bool_)) or not isinstance(answer, (int, float, np.integer, np.floating)):
        return None
    value = float(answer)
    return value if math.isfinite(value) else None


def value_clip_angle(g=(3.0, 4.0), c: float = 1.0) -> float:
    """The angle in degrees between ``g`` and ``clip(g, -c, c)`` (float64)."""
    g = np.asarray(g, np.float64)
    v = np.clip(g, -c, c)
    cos = float(g @ v / (np.linalg.norm(g) * np.linalg.norm(v)))
    return math.degrees(math.acos(min(1.0, cos)))


def check_value_clip_angle(answer) -> bool | None:
    """Self-check: by how many degrees does value clipping at 1 turn the gradient (3, 4)?"""
    if unanswered("set the variable to your angle in degrees and run the cell again.", answer):
        return None
    ref = value_clip_angle()
    value = _number(answer)
    ok = value is not None and abs(value - ref) <= 0.05
    return report_answer(ok, f"(3, 4) becomes (1, 1): {ref:.2f} degrees",
                         "clip each entry to [-1, 1], then take the angle from the dot product.")


def check_longest_step(answer, lr: float = 0.5, c: float = 0.2) -> bool | None:
    """Self-check: the longest step gradient descent can take with norm clipping at ``c``."""
    if unanswered("set the variable to your step length and run the cell again.", answer):
        return None
    value = _number(answer)
    ok = value is not None and abs(value - lr * c) <= 1e-9
    return report_answer(ok, f"lr * c = {lr * c:g}, whatever the gradient",
                         "after clipping ||g|| <= c; the step is lr times the clipped gradient.")


def check_share_factor(answer) -> bool | None:
    """Self-check: by what factor does norm clipping change the share of the gradient from long lags?"""
    if unanswered("set the variable to your factor and run the cell again.", answer):
        return None
    value = _number(answer)
    ok = value is not None and abs(value - 1.0) <= 1e-12
    return report_answer(ok, "1: every lag's contribution is multiplied by the same c / ||g||",
                         "clipping multiplies the whole gradient, a sum over lags, by one number.")
