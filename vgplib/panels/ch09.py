"""Chapter 9, *Residual and highway connections*: its live panel, its experiments' helpers and exercises.

Notation (DESIGN.md 2b): ``a_l = W_l h_{l-1} + b_l``, ``h_0 = x``. A plain layer is
``h_l = phi(a_l)`` with Jacobian ``J_l = diag(phi'(a_l)) W_l``; a residual layer (He et al. 2016) is
``h_l = h_{l-1} + alpha phi(a_l)`` with Jacobian ``J_l = I + alpha diag(phi'(a_l)) W_l``; a highway
layer (Srivastava et al. 2015) is ``h_l = T_l phi(a_l) + (1 - T_l) h_{l-1}``.

The live panel shows the singular values of the input-output Jacobian ``dh_L/dh_0 = J_L ... J_1``
of a plain and of a residual tanh network (width 16, ``W_l = Z_l / sqrt(n)``, ``Z_l`` fixed
standard-normal, no biases) for a depth ``L`` up to 1000 and a branch scale ``alpha`` in
``{1, 1/sqrt(L), 1/L}``. The kernel calls the library's :func:`vgplib.layer_jacobians` (traced
``alpha``) and :func:`vgplib.first_layers_log_singular_values` (traced depth: layers above ``L`` are
masked), in float64, so one compiled function serves every slider value. The product is kept in
log space (no under- or overflow); singular values more than 16 decades below the largest are at
float64's rounding floor and are drawn on the floor line. The geometric mean of the singular
values is exact at any depth: ``prod_i sigma_i = |det dh_L/dh_0| = prod_l |det J_l|``.
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
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from vgplib._validate import check_name, check_positive_int
from vgplib.activations import ACTIVATION_NAMES, get_activation
from vgplib.highway import highway_forward, highway_jacobians, init_highway
from vgplib.init import init_mlp
from vgplib.jacobians import first_layers_log_singular_values, layer_jacobians
from vgplib.networks import dense, mlp_forward
from vgplib.plots import new_figure
from vgplib.theory import length_map_and_chi
from vgplib.widgets import (
    LivePanel,
    answer_number,
    depth_slider,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

Array = jax.Array

#: The live panel's network: width, largest depth, activation, weight scale (tanh at sigma_w = 1 is critical).
PANEL_WIDTH = 16
MAX_DEPTH = 1000
ACTIVATION = "tanh"
SIGMA_W = 1.0
#: The branch-scale rules of the panel and the chapter.
ALPHA_RULES: tuple[str, ...] = ("1", "1/sqrt(L)", "1/L")
#: Depths of the kernel-free scrubber.
SCRUBBER_DEPTHS: tuple[int, ...] = (1, 3, 10, 30, 100, 300, 1000)
_LN10 = math.log(10.0)
#: float64's rounding floor for singular values relative to the largest (eps = 2.2e-16), in decades.
FLOOR_DECADES = 15.6
_COLORS = {"plain": "#d62728", "1": "#9467bd", "1/sqrt(L)": "#1f77b4", "1/L": "#2ca02c"}


def alpha_value(rule: str, depth: int) -> float:
    """The branch scale ``alpha`` of ``rule`` (one of :data:`ALPHA_RULES`) for a network of ``depth`` layers."""
    check_name("rule", rule, ALPHA_RULES)
    depth = check_positive_int("depth", depth)
    return {"1": 1.0, "1/sqrt(L)": 1.0 / math.sqrt(depth), "1/L": 1.0 / depth}[rule]


# --------------------------------------------------------------------------- the jitted kernel


@functools.lru_cache(maxsize=2)
def panel_data(width: int = PANEL_WIDTH, max_depth: int = MAX_DEPTH, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed float64 weights ``W`` ``(max_depth, n, n)`` (``Z / sqrt(n)``, ``Z ~ N(0, 1)``) and an input ``x0 ~ N(0, I)``."""
    width = check_positive_int("width", width)
    max_depth = check_positive_int("max_depth", max_depth)
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((max_depth, width, width)) / math.sqrt(width)
    x0 = rng.standard_normal(width)
    return W, x0


@jax.jit
def _spectra_kernel(W: Array, x0: Array, alpha: Array, depth: Array, sigma_w: Array):
    """Log singular values (natural log, descending) of ``dh_L/dh_0`` for the plain and the residual
    network made of the first ``depth`` layers, and ``log|det dh_L/dh_0|`` of each (exact)."""
    stacked = {"W": sigma_w * W, "b": jnp.zeros(W.shape[:2], W.dtype)}
    layers = jnp.arange(1, W.shape[0] + 1)
    out = []
    for residual in (False, True):
        kw = {"residual": True, "residual_scale": alpha} if residual else {}
        J = layer_jacobians(stacked, x0, ACTIVATION, **kw)
        log_sv = first_layers_log_singular_values(J, depth)
        log_det = jnp.sum(jnp.where(layers <= depth, jnp.linalg.slogdet(J)[1], 0.0))
        out += [log_sv, log_det]
    return tuple(out)


def spectra(depth: int, alpha: float, sigma_w: float = SIGMA_W) -> dict[str, np.ndarray | float]:
    """The panel's numbers for one setting, as **log10** values (NumPy float64).

    Keys ``plain`` and ``residual``: the singular values of ``dh_L/dh_0`` (descending, ``(n,)``);
    ``plain_geo``, ``residual_geo``: log10 of their geometric mean, ``log10|det| / n`` (exact at any
    depth, also where the smallest singular values are below float64's rounding floor).
    """
    depth = check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be at most {MAX_DEPTH}; got {depth}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number; got {alpha!r}")
    W, x0 = panel_data()
    n = W.shape[-1]
    with jax.enable_x64(True):
        sv_p, det_p, sv_r, det_r = _spectra_kernel(W, x0, np.float64(alpha), np.int32(depth), np.float64(sigma_w))
        sv_p, det_p, sv_r, det_r = (np.asarray(v, np.float64) for v in (sv_p, det_p, sv_r, det_r))
    return {"plain": sv_p / _LN10, "residual": sv_r / _LN10,
            "plain_geo": float(det_p) / n / _LN10, "residual_geo": float(det_r) / n / _LN10}


# --------------------------------------------------------------------------- mean-field theory


@functools.partial(jax.jit, static_argnames=("residual",))
def _mean_field(m0, alpha, sigma_w, n_layers_mask, residual: bool):
    idx = ACTIVATION_NAMES.index(ACTIVATION)

    def layer(m, active):
        e_phi2, e_dphi2 = length_map_and_chi(idx, 1.0, 0.0, sigma_w**2 * m)  # E phi(a)^2, E phi'(a)^2
        chi = sigma_w**2 * e_dphi2
        gain = jnp.log1p(alpha**2 * chi) if residual else jnp.log(chi)
        m_next = m + alpha**2 * e_phi2 if residual else e_phi2
        return jnp.where(active, m_next, m), jnp.where(active, gain, 0.0)

    _, gains = jax.lax.scan(layer, m0, n_layers_mask)
    return 0.5 * jnp.sum(gains)


def mean_field_log_rms(depth: int, alpha: float | None, sigma_w: float = SIGMA_W, mean_square_input: float = 1.0) -> float:
    """Mean-field prediction of log10 of the root-mean-square singular value of ``dh_L/dh_0``.

    Per layer the mean squared gain of a backward vector is ``chi(q_l) = sigma_w^2 E[phi'(a_l)^2]`` for a
    plain layer and ``1 + alpha^2 chi(q_l)`` for a residual one (the cross term ``2 alpha v^T D W v``
    has mean 0), with ``q_l = sigma_w^2 m_{l-1}`` and the forward mean square ``m_l = E[phi(a_l)^2]``
    (plain) or ``m_{l-1} + alpha^2 E[phi(a_l)^2]`` (residual); the expectations are the library's
    traceable :func:`vgplib.theory.length_map_and_chi`. ``alpha=None`` is the plain network.
    Returns ``(1/2) sum_l log10(gain_l)``.
    """
    depth = check_positive_int("depth", depth)
    mask = np.arange(1, MAX_DEPTH + 1) <= depth if depth <= MAX_DEPTH else np.ones(depth, bool)
    with jax.enable_x64(True):
        out = _mean_field(np.float64(mean_square_input), np.float64(0.0 if alpha is None else alpha),
                          np.float64(sigma_w), mask, residual=alpha is not None)
        return float(out) / _LN10


def depth_sweep(depths: Sequence[int], rules: Sequence[str] = ALPHA_RULES) -> dict[str, dict[str, np.ndarray]]:
    """For each network (``"plain"`` and each rule), at each depth: log10 of the largest singular value
    (``max``), of the geometric mean (``geo``), of the root mean square (``rms``) of ``dh_L/dh_0``, and the
    mean-field ``rms`` prediction (``theory``). One compiled kernel for every depth and ``alpha``."""
    _, x0 = panel_data()
    m0 = float(np.mean(x0**2))
    out: dict[str, dict[str, list]] = {k: {"max": [], "geo": [], "rms": [], "theory": []} for k in ("plain", *rules)}
    for L in depths:
        for k in ("plain", *rules):
            alpha = 1.0 if k == "plain" else alpha_value(k, L)
            s = spectra(L, alpha)
            sv = s["plain" if k == "plain" else "residual"]
            rms = 0.5 * (np.log10(np.mean(10.0 ** (2 * (sv - sv[0])))) + 2 * sv[0])
            out[k]["max"].append(sv[0])
            out[k]["geo"].append(s["plain_geo" if k == "plain" else "residual_geo"])
            out[k]["rms"].append(rms)
            out[k]["theory"].append(mean_field_log_rms(L, None if k == "plain" else alpha, mean_square_input=m0))
    return {k: {c: np.asarray(v) for c, v in d.items()} for k, d in out.items()}


# --------------------------------------------------------------------------- figures of the panel


def make_spectrum_figure() -> tuple[Figure, object]:
    """The panel: singular values of ``dh_L/dh_0`` (log10, descending) of the plain and the residual network.

    ``update(depth, alpha_rule)`` redraws in place; the status says when the plain network's
    smallest singular values are below float64's rounding floor (drawn on the floor line).
    """
    # 6.0 x 3.0 in and no grid: the PNG of every move is most of its cost (100 ms bar)
    fig, ax = new_figure(figsize=(6.0, 3.0), dpi=96, margins={"left": 0.12, "right": 0.98, "top": 0.76, "bottom": 0.16})
    n = PANEL_WIDTH
    idx = np.arange(1, n + 1)
    ax.set_xlim(0.5, n + 0.5)
    ax.set_xticks([1, 4, 8, 12, 16])  # few tick labels: their text is most of the drawing time
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_xlabel("index i of the singular value (largest first)")
    ax.set_ylabel("log10 singular value of dh_L/dh_0")
    ax.axhline(0.0, color="0.6", lw=0.8)
    (plain_line,) = ax.plot([], [], "o-", ms=4, color=_COLORS["plain"], label="plain: D_l W_l")
    (res_line,) = ax.plot([], [], "s-", ms=4, color=_COLORS["1/sqrt(L)"], label="residual: I + alpha D_l W_l")
    (floor_pts,) = ax.plot([], [], "v", ms=6, mfc="none", color=_COLORS["plain"], label="below float64 floor")
    floor_line = ax.axhline(np.nan, color=_COLORS["plain"], lw=0.8, ls=":")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False, ncol=3)
    title = ax.set_title(" ", fontsize=9, y=1.13)
    W, x0 = panel_data()
    with jax.enable_x64(True):  # warm-up: the one compilation happens here
        _spectra_kernel(W, x0, np.float64(1.0), np.int32(MAX_DEPTH), np.float64(SIGMA_W))[0].block_until_ready()

    def update(depth: int = 100, alpha_rule: str = "1/sqrt(L)") -> str:
        alpha = alpha_value(alpha_rule, depth)
        s = spectra(depth, alpha)
        p, r = s["plain"], s["residual"]
        floor = p[0] - FLOOR_DECADES
        shown = np.where(np.isfinite(p) & (p > floor), p, floor)
        below = ~(np.isfinite(p) & (p > floor))
        plain_line.set_data(idx, shown)
        floor_pts.set_data(idx[below], shown[below])
        floor_line.set_ydata([floor, floor])
        res_line.set_data(idx, r)
        res_line.set_color(_COLORS[alpha_rule])
        lo = min(shown.min(), r.min()) - 0.5
        hi = max(shown.max(), r.max()) + 0.5
        ax.set_ylim(min(lo, -1.0), max(hi, 1.0))
        title.set_text(f"L = {depth}, alpha = {alpha_rule} = {alpha:.3g}; log10(max/geo. mean):"
                       f" plain {p[0] - s['plain_geo']:.1f}, res. {r[0] - s['residual_geo']:.2f}")
        if below.any():
            return (f"underflow in the plain network: {int(below.sum())} of {n} singular values are more than 10^{FLOOR_DECADES:.1f} below the "
                    "largest (float64's rounding floor): numerically the Jacobian has lost those directions")
        return ""

    return fig, update


class _FrozenPixels(Artist):
    """Pixel blocks copied from a draw of the figure, written back as they are on every draw (no
    resampling: a :meth:`Figure.figimage` of the same pixels costs about 3 ms per block per draw)."""

    def __init__(self, blocks: Sequence[tuple[np.ndarray, int, int]]) -> None:
        super().__init__()
        self._blocks = [(np.ascontiguousarray(px[::-1]), x0, y0) for px, x0, y0 in blocks]  # rows bottom-up

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        gc = renderer.new_gc()
        for px, x0, y0 in self._blocks:
            renderer.draw_image(gc, x0, y0, px)
        gc.restore()
        self.stale = False


def _freeze_static_frame(fig: Figure, ax: Axes) -> None:
    """Draw the parts of ``ax`` that no move changes (the x axis: ticks, tick labels and label; the
    y axis's label; the legend) once, as pixels behind the axes; the y ticks and labels stay live.

    Like :func:`vgplib.plots.freeze_decorations`, which needs fixed limits on both axes: here the y
    range follows the data (the spectra span from 1 to more than 100 decades), so the y ticks are
    redrawn per move. Only the strips are copied, and written back without resampling; the spines
    and the background are still drawn, above and below the data as before. The axis labels are
    pinned (:func:`vgplib.plots.fix_label_positions`), so their pixels are where matplotlib would
    draw them: every PNG is pixel-identical to the unfrozen figure's. Live panel only (``fig.dpi``).
    """
    # hidden while the copy is drawn: what stays live (the spines too, drawn over the copy's edge)
    live = [a for a in (*ax.lines, *ax.texts, *ax.collections, ax.title, *ax.spines.values()) if a.get_visible()]
    for artist in live:
        artist.set_visible(False)
    ax.yaxis.set_tick_params(which="both", left=False, labelleft=False)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    height, width = pixels.shape[:2]
    renderer = fig.canvas.get_renderer()
    xbox = ax.xaxis.get_tightbbox(renderer)  # the tick labels and the label, without the tick marks:
    xbox = Bbox.from_extents(xbox.x0, xbox.y0, xbox.x1, ax.get_window_extent(renderer).y0)  # up to the spine
    boxes = [xbox, ax.yaxis.label.get_window_extent(renderer)]
    legend = ax.get_legend()
    if legend is not None and legend.get_visible():
        boxes.append(legend.get_window_extent(renderer))
        legend.set_visible(False)
    ax.yaxis.set_tick_params(which="both", left=True, labelleft=True)
    for artist in live:
        artist.set_visible(True)
    blocks = []
    for box in boxes:
        box = box.padded(1)
        x0, y0 = max(math.floor(box.x0), 0), max(math.floor(box.y0), 0)
        x1, y1 = min(math.ceil(box.x1), width), min(math.ceil(box.y1), height)
        blocks.append((pixels[height - y1 : height - y0, x0:x1], x0, y0))
    ax.xaxis.set_visible(False)
    ax.yaxis.label.set_visible(False)
    frozen = _FrozenPixels(blocks)
    frozen.set_zorder(-1)
    fig.add_artist(frozen)


def make_spectrum_figure_live() -> tuple[Figure, object]:
    """:func:`make_spectrum_figure` with its static x axis, y label and legend frozen into pixels
    (live panel only; the scrubber keeps the plain figure). Same content: the y ticks, the data and
    the title are live."""
    fig, update = make_spectrum_figure()
    _freeze_static_frame(fig, fig.axes[0])
    return fig, update


def spectrum_controls(depth: int = 100, alpha_rule: str = "1/sqrt(L)") -> dict:
    """Depth slider ``1..MAX_DEPTH`` and the branch-scale rule."""
    return {
        "depth": depth_slider(depth, MAX_DEPTH),
        "alpha_rule": ipywidgets.ToggleButtons(options=list(ALPHA_RULES), value=alpha_rule, description="alpha"),
    }


@register_panel("ch09.residual_spectrum")
def spectrum_panel() -> LivePanel:
    """A new live panel: singular values of the input-output Jacobian, plain against residual."""
    return LivePanel(make_spectrum_figure_live, spectrum_controls(), freeze_legend=True)


def spectrum_scrubber(alpha_rule: str = "1/sqrt(L)", depths: Sequence[int] = SCRUBBER_DEPTHS,
                      alt: str | None = None, dpi: int = 96):
    """The kernel-free twin of :func:`spectrum_panel`: a jshtml scrubber over the depth."""
    check_name("alpha_rule", alpha_rule, ALPHA_RULES)
    values = [int(d) for d in depths]
    if alt is None:
        alt = (f"Singular values of the input-output Jacobian of a plain and a residual tanh network "
               f"(alpha = {alpha_rule}), one frame per depth from {min(values)} to {max(values)}: the plain "
               "network's singular values spread over more and more decades while the residual ones stay near 1.")
    return scrubber(make_spectrum_figure, "depth", values=values, fixed={"alpha_rule": alpha_rule}, alt=alt, dpi=dpi)


def depth_sweep_figure(depths: Sequence[int], sweep: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """Left: measured RMS singular value (markers) against the mean-field line; right: the spread
    ``log10 sigma_max - log10 (geometric mean)`` (0 for an isometry)."""
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.2), dpi=96, ncols=2,
                                 margins={"left": 0.1, "right": 0.98, "bottom": 0.16, "top": 0.9, "wspace": 0.36})
    for k, d in sweep.items():
        label = "plain" if k == "plain" else f"alpha = {k}"
        ax1.plot(depths, d["rms"], "o", ms=4, color=_COLORS[k], label=label)
        ax1.plot(depths, d["theory"], "-", lw=1, color=_COLORS[k])
        ax2.plot(depths, d["max"] - d["geo"], "o-", ms=4, lw=1, color=_COLORS[k], label=label)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("depth L")
        ax.grid(True, alpha=0.3)
    ax1.set_ylabel("log10 RMS singular value")
    ax1.yaxis.set_label_coords(-0.14, 0.5)  # clear of the tick labels ("-15")
    ax1.set_title("size: measured (dots), mean field (lines)", fontsize=9)
    ax2.set_yscale("log")  # every spread is > 0 (0 only for an exact isometry)
    ax2.set_ylabel("log10 (largest / geometric mean)")
    ax2.yaxis.set_label_coords(-0.17, 0.5)
    ax2.set_title("spread of the singular values", fontsize=9)
    ax2.legend(fontsize=8, frameon=False, loc="upper left")
    return fig


# --------------------------------------------------------------------------- degradation (training)


def classifier_logits(params, x, residual: bool = False, alpha: float = 1.0, activation: str = "tanh"):
    """Logits of the chapter's classifier: ``h_1 = phi(W_1 x + b_1)``, then the hidden layers (plain,
    or residual ``h_l = h_{l-1} + alpha phi(a_l)`` through :func:`vgplib.mlp_forward`), then a linear
    output layer. Traceable."""
    act = get_activation(activation)
    h = act.fn(dense(params[0], x))
    kw = {"residual": True, "residual_scale": alpha} if residual else {}
    h = mlp_forward(params[1:-1], h, act, **kw)
    return dense(params[-1], h)


@functools.lru_cache(maxsize=8)
def classifier_loss_fn(activation: str = "tanh", residual: bool = False, alpha: float = 1.0):
    """``loss_fn(params, x, y)`` for :func:`vgplib.train_many`: the mean cross-entropy of
    :func:`classifier_logits`. Cached, so the same arguments reuse one compilation."""

    def loss_fn(params, x, y):
        logits = classifier_logits(params, x, residual, alpha, activation)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return loss_fn


def init_classifiers(depth: int, width: int, seeds: int, sigma_w: float = 1.0, n_in: int = 64, n_out: int = 10):
    """``seeds`` classifiers (leading model axis) of ``depth`` hidden layers of ``width`` units,
    ``W ~ N(0, sigma_w^2 / fan_in)``, zero biases, and a zero output layer (every run starts at the
    loss ``ln 10`` and the plain and residual networks start from the same point)."""
    def one(key):
        params = init_mlp(key, [n_in] + [width] * depth + [n_out], "gaussian", sigma_w=sigma_w, sigma_b=0.0)
        params[-1] = {"W": jnp.zeros_like(params[-1]["W"]), "b": params[-1]["b"]}
        return params

    return jax.vmap(one)(jax.random.split(jax.random.PRNGKey(0), seeds))


def degradation_figure(steps: np.ndarray, losses: Mapping[str, np.ndarray]) -> Figure:
    """Training loss on the whole training set against the step, one line per seed, one colour per network."""
    fig, ax = new_figure(figsize=(7.0, 3.2), dpi=96, margins={"left": 0.1, "right": 0.98, "bottom": 0.16, "top": 0.95})
    colors = ("#ff7f0e", "#d62728", "#1f77b4")
    for (name, L), c in zip(losses.items(), colors):
        for s in range(L.shape[1]):
            ax.plot(steps, L[:, s], "-", lw=1.2, color=c, alpha=0.8, label=name if s == 0 else None)
    ax.axhline(math.log(10), color="0.5", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss (all training digits)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return fig


# --------------------------------------------------------------------------- shattered gradients


@functools.partial(jax.jit, static_argnames=("residual",))
def _input_gradients(params_hidden, w_in, b_in, w_out, xs, alpha, residual: bool):
    def out(x):
        h = jax.nn.relu(w_in * x + b_in)  # 1 -> n
        kw = {"residual": True, "residual_scale": alpha} if residual else {}
        h = mlp_forward(params_hidden, h, "relu", **kw)
        return jnp.dot(w_out, h)

    return jax.vmap(jax.grad(out))(xs)


def gradient_correlation(depth: int, residual: bool, width: int = 64, n_points: int = 256, seeds: int = 3,
                         alpha: float = 1.0, sigma_b: float = 0.1) -> tuple[float, np.ndarray]:
    """Shattered gradients (Balduzzi et al. 2017), measured: a ReLU network from a scalar input
    ``x in [-2, 2]`` (``n_points`` points) to a scalar output, ``depth`` hidden layers of ``width`` units
    (He initialization, ``sigma_w^2 = 2``, biases ``N(0, sigma_b^2)``, first-layer biases ``N(0, 1)`` so
    that units switch inside the interval; residual layers ``h + alpha relu(W h + b)``).
    Returns the mean over ``seeds`` of the correlation of the gradients ``dy/dx`` at neighbouring
    inputs (lag-1 Pearson correlation along the grid), and the gradients of seed 0."""
    depth = check_positive_int("depth", depth)
    xs = jnp.linspace(-2.0, 2.0, n_points)
    corrs, first = [], None
    for s in range(seeds):
        k1, k2, k3 = jax.random.split(jax.random.PRNGKey(100 + s), 3)
        w_in, b_in = jax.random.normal(k1, (2, width)) * jnp.array([[math.sqrt(2.0)], [1.0]])
        hidden = init_mlp(k2, [width] * (depth + 1), "gaussian", sigma_w=math.sqrt(2.0), sigma_b=sigma_b)
        w_out = jax.random.normal(k3, (width,)) / math.sqrt(width)
        g = np.asarray(_input_gradients(hidden, w_in, b_in, w_out, xs, alpha, residual), np.float64)
        corrs.append(np.corrcoef(g[:-1], g[1:])[0, 1])
        first = g if first is None else first
    return float(np.mean(corrs)), first


def shattered_figure(depths: Sequence[int], corr: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> Figure:
    """Left: ``dy/dx`` over the input grid for the deepest plain and residual network (each scaled by its
    largest absolute value); right: the neighbour correlation of the gradients against depth."""
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.0), dpi=96, ncols=2,
                                 margins={"left": 0.1, "right": 0.98, "bottom": 0.17, "top": 0.9, "wspace": 0.36})
    colors = {"plain": _COLORS["plain"], "residual": _COLORS["1/sqrt(L)"]}
    for name, g in grads.items():
        xs = np.linspace(-2.0, 2.0, len(g))
        ax1.plot(xs, g / np.max(np.abs(g)), "-", lw=1, color=colors[name], label=name)
        ax2.plot(depths, corr[name], "o-", ms=4, color=colors[name], label=name)
    ax1.set_xlabel("input x")
    ax1.set_ylabel("dy/dx (scaled)")
    ax1.yaxis.set_label_coords(-0.15, 0.5)
    ax1.set_title(f"depth {depths[-1]}", fontsize=9)
    ax1.legend(fontsize=8, frameon=False, loc="lower left")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("depth L")
    ax2.set_ylabel("neighbour correlation")
    ax2.yaxis.set_label_coords(-0.19, 0.5)
    ax2.set_title("correlation of dy/dx at neighbouring x", fontsize=9)
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    return fig


# --------------------------------------------------------------------------- highway networks


def highway_measurements(gate_biases: Sequence[float], depth: int = 100, width: int = 16, seed: int = 0) -> dict:
    """For each gate bias: the mean carry gate ``1 - T`` over layers and units (the diagonal of the
    Jacobian's carry part, :func:`vgplib.highway.highway_jacobian_parts`), log10 of the largest singular value and the spread ``log10(max / geometric
    mean)`` of ``dh_L/dh_0`` (tanh highway network, ``W, W_T ~ N(0, 1/n)``, one input ``x ~ N(0, I)``)."""
    x = jax.random.normal(jax.random.PRNGKey(seed + 1), (width,))
    rows = {"carry": [], "max": [], "spread": []}
    for bias in gate_biases:
        params = init_highway(jax.random.PRNGKey(seed), width, depth, gate_bias=float(bias))
        tr = highway_forward(params, x, "tanh", return_all=True)
        J = highway_jacobians(params, x, "tanh")
        sv = np.asarray(first_layers_log_singular_values(J), np.float64) / _LN10
        geo = float(np.sum(np.linalg.slogdet(np.asarray(J, np.float64))[1])) / width / _LN10
        rows["carry"].append(float(np.mean(1.0 - np.stack([np.asarray(t) for t in tr.gate]))))
        rows["max"].append(sv[0])
        rows["spread"].append(sv[0] - geo)
    return {k: np.asarray(v) for k, v in rows.items()}


# --------------------------------------------------------------------------- exercises


def check_rms_limit(answer) -> bool | None:
    """Self-check: the limit, as ``L -> infinity``, of log10 of the mean-field RMS singular value of a
    residual network with ``alpha = 1/sqrt(L)`` and ``chi(q_l) = 1`` in every layer: ``(1 + 1/L)^(L/2) -> e^(1/2)``,
    so ``log10 e / 2 = 0.217``."""
    if unanswered("set rms_limit to your number and run the cell again.", answer):
        return None
    value = float(answer)
    ref = 0.5 * math.log10(math.e)
    if math.isclose(value, ref, rel_tol=1e-2):
        return report_answer(True, f"(1 + 1/L)^(L/2) -> e^(1/2), log10 = {ref:.3f}: bounded at any depth", "")
    if math.isclose(value, math.log10(math.e), rel_tol=1e-2):
        return report_answer(False, "", "that is the mean SQUARED singular value; take the square root.")
    return report_answer(False, "", "the mean squared gain is prod_l (1 + alpha^2 chi(q_l)) = (1 + 1/L)^L; its limit is e.")


def check_cancelling_weight(w) -> bool | None:
    """Self-check: the weight ``w`` of the scalar residual layer ``h_1 = h_0 + tanh(w h_0)`` (alpha = 1)
    whose derivative at ``h_0 = 0`` is exactly 0: ``1 + w tanh'(0) = 1 + w = 0``, so ``w = -1``."""
    if unanswered("set w to your number and run the cell again.", w):
        return None
    w = float(w)
    grad = float(jax.grad(lambda h: h + jnp.tanh(w * h))(0.0))
    if math.isclose(w, -1.0, abs_tol=1e-6):
        return report_answer(True, f"dh_1/dh_0 = 1 + w = {grad:g}: the identity path is cancelled exactly", "")
    return report_answer(False, "", f"with this w the derivative at 0 is {grad:.3g}; solve 1 + w tanh'(0) = 0.")


#: The highway exercise: the carry gate wanted at the start, and the shrink factor of the carry path.
CARRY_EXERCISE_GATE = 0.95
CARRY_EXERCISE_FACTOR = 10.0


@functools.cache
def expected_gate_bias(carry: float = CARRY_EXERCISE_GATE) -> float:
    """The transform-gate bias ``b_T`` with ``1 - sigmoid(b_T) = carry``, found by bisection on the
    library's sigmoid in float64 (not the closed form ``-ln(carry / (1 - carry))``)."""
    sigmoid = get_activation("sigmoid").fn
    lo, hi = -40.0, 40.0
    with jax.enable_x64(True):
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if 1.0 - float(sigmoid(jnp.float64(mid))) > carry:
                lo = mid
            else:
                hi = mid
    return 0.5 * (lo + hi)


@functools.cache
def expected_carry_layers(carry: float = CARRY_EXERCISE_GATE, factor: float = CARRY_EXERCISE_FACTOR) -> int:
    """The number of highway layers after which the carry path has shrunk by ``factor``: the library's
    gates (:func:`vgplib.highway.highway_forward` at ``h_0 = 0``, where ``W_T h = 0``, every layer's
    ``b_T`` from :func:`expected_gate_bias`) multiplied layer by layer in float64 until the product of the
    carry gates ``1 - T_l`` falls below ``1 / factor``."""
    depth = 400
    params = init_highway(jax.random.PRNGKey(0), 4, depth, gate_bias=expected_gate_bias(carry))
    trace = highway_forward(params, jnp.zeros(4), "tanh", return_all=True)
    carries = 1.0 - np.stack([np.asarray(g, np.float64) for g in trace.gate])[:, 0]
    below = np.cumprod(carries) < 1.0 / factor
    if not below.any():
        raise ValueError(f"the carry path does not shrink by {factor:g} within {depth} layers")
    return int(np.argmax(below)) + 1


def check_gate_bias(b) -> bool | None:
    """Self-check: the transform-gate bias ``b_T`` that makes the carry gate ``1 - sigmoid(b_T)`` equal
    0.95 when the gate's weighted input is 0: ``b_T = -ln 19 = -2.944`` (:func:`expected_gate_bias`)."""
    if unanswered("set b to your number and run the cell again.", b):
        return None
    b = float(b)
    ref = expected_gate_bias()
    if math.isclose(b, ref, rel_tol=1e-3):
        return report_answer(True, f"b_T = -ln 19 = {ref:.3f}: the layer carries 95 % of its input at the start", "")
    if math.isclose(b, -ref, rel_tol=1e-3):
        return report_answer(False, "", "that opens the TRANSFORM gate to 0.95; the carry gate is 1 - T.")
    return report_answer(False, "", "solve 1 - 1 / (1 + e^(-b)) = 0.95 for b.")


def check_carry_layers(layers) -> bool | None:
    """Self-check: the number of layers with carry gate 0.95 after which the carry path has shrunk by a
    factor of 10, the smallest ``L`` with ``0.95^L < 1/10`` (:func:`expected_carry_layers`; a whole number)."""
    if unanswered("set layers to your integer and run the cell again.", layers):
        return None
    value = answer_number("layers", layers)
    ref = expected_carry_layers()
    if value == ref:
        return report_answer(True, f"0.95^{ref} = {CARRY_EXERCISE_GATE**ref:.4f} < 1/10 <= 0.95^{ref - 1}: "
                             f"the carry path alone loses a decade every {ref} layers", "")
    if value == ref - 1:
        return report_answer(False, "", f"one short: 0.95^{ref - 1} is still above 1/10.")
    if math.isclose(value, math.log(CARRY_EXERCISE_FACTOR) / -math.log(CARRY_EXERCISE_GATE), rel_tol=1e-3):
        return report_answer(False, "", "the layer count is a whole number: round ln 10 / -ln 0.95 up.")
    if value == round(1.0 / (1.0 - CARRY_EXERCISE_GATE)):
        return report_answer(False, "", "the carry path shrinks by a FACTOR 0.95 per layer, not by 0.05 per layer: "
                             "solve 0.95^L < 1/10.")
    return report_answer(False, "", "the carry path is multiplied by 0.95 per layer: solve 0.95^L < 1/10 for the "
                         "smallest whole L.")
