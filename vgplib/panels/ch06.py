"""Chapter 6, *Activation functions*: its live panel, its experiments' helpers and its exercises.

Notation (DESIGN.md 2b): ``a_l = W_l h_{l-1} + b_l`` is the pre-activation, ``h_l = phi(a_l)`` the
activation, ``h_0 = x``; ``g_l = dE/dh_l`` the back-propagated gradient; ``J_l = diag(phi'(a_l)) W_l``.

The live panel shows, for one of seven activations, a weight scale ``sigma_w`` and a depth ``L``, the
two halves of the per-layer factor ``chi_1 = sigma_w^2 E[phi'(a)^2]`` (Poole et al. 2016; Schoenholz
et al. 2017): on the left the distribution of the slopes ``phi'(a_L)`` of the network's deepest layer
(measured over its units and inputs) with the mean-field distribution of ``phi'(a)``, ``a ~ N(0, q_L)``
(:func:`vgplib.units.slope_distribution_by_index`); on the right the measured ``||g_l||`` at every
layer with the layer-wise prediction ``prod_k chi_1(q_k)`` and the fixed-point prediction
``chi_1(q*)^(L-l)`` (:func:`vgplib.theory.length_map_and_chi`, :func:`vgplib.theory.q_star_and_chi`,
in float64: the numbers of :func:`vgplib.chi1` and :func:`vgplib.q_star`). The network is
``W_l = sigma_w Z_l / sqrt(n)``, ``b_l = sigma_b B_l`` with fixed standard-normal ``Z_l`` (those of
chapter 3's panel, :func:`vgplib.panels.ch03.panel_data`) and ``B_l``, the loss ``E = u . h_L``;
the backward sweep is renormalized after every layer (:func:`vgplib.jacobians.renormalized_step`),
so gradients far outside float32's range are drawn exactly. One compiled function serves every
slider value: traced ``sigma_w`` and activation index, a fixed maximum depth and a mask.

The other helpers serve the chapter's experiments: the ``chi_1 = 1`` lines
(:func:`vgplib.theory.critical_line`), a stacked (``lax.scan``) MLP classifier for
:func:`vgplib.train_many`, and the figures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from vgplib._validate import check_name, check_positive, check_positive_int
from vgplib.activations import activation_by_index, get_activation
from vgplib.jacobians import renormalized_step
from vgplib.plots import (
    FLOAT32_MAX,
    FLOAT32_TINY,
    freeze_decorations,
    freeze_frame_but_y_ticks,
    new_figure,
    plain_log_yaxis,
)
from vgplib.theory import gaussian_expectation, length_map_and_chi, q_star_and_chi
from vgplib.training import scanned_mlp_loss_fn
from vgplib.units import slope_distribution_by_index
from vgplib.widgets import (
    LivePanel,
    depth_slider,
    float32_range_status,
    register_panel,
    report_answer,
    scrubber,
    sigma_w_slider,
    sweep_values,
    unanswered,
)

Array = jax.Array

#: The seven activations of the chapter, in the order of the panel's selector.
PANEL_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "swish", "gelu")
LABELS = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "ReLU", "leaky_relu": "leaky ReLU", "elu": "ELU",
          "swish": "SiLU/swish", "gelu": "GELU"}
COLORS = {"sigmoid": "#d62728", "tanh": "#1f77b4", "relu": "#2ca02c", "leaky_relu": "#98df8a", "elu": "#9467bd",
          "swish": "#ff7f0e", "gelu": "#8c564b"}
#: The panel's network: width 64, 16 inputs, at most 100 layers.
PANEL_WIDTH = 64
PANEL_BATCH = 16
MAX_DEPTH = 100
SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP = 0.5, 3.0, 0.05
#: Bins of the slope histogram: width 0.025 from -0.2 to 1.2 (every activation's phi' lies inside).
SLOPE_EDGES = np.linspace(-0.2, 1.2, 57)
_LN10 = math.log(10.0)


# --------------------------------------------------------------------------- the jitted kernels


@functools.lru_cache(maxsize=2)
def panel_data(seed: int = 0):
    """``Z`` ``(MAX_DEPTH, 64, 64)``, inputs ``x0`` ``(16, 64)``, unit ``u`` (chapter 3's panel numbers at
    ``max_depth=100``) and bias directions ``B ~ N(0, 1)`` ``(MAX_DEPTH, 64)`` from ``PRNGKey(seed + 1)``."""
    from vgplib.panels.ch03 import panel_data as ch03_data

    Z, x0, u = ch03_data(PANEL_WIDTH, PANEL_BATCH, MAX_DEPTH, seed)
    B = jax.random.normal(jax.random.PRNGKey(seed + 1), (MAX_DEPTH, PANEL_WIDTH))
    return Z, x0, u, B


@jax.jit
def _panel_kernel(Z, B, x0, u, act_idx, sigma_w, sigma_b, depth):
    """Measured natural-log batch-RMS ``||g_l||``, ``l = 0..MAX_DEPTH`` (entries past ``depth`` unused),
    and the fraction of the slopes ``phi'(a_depth)`` of layer ``depth`` in each bin of ``SLOPE_EDGES``."""
    n = Z.shape[-1]
    scale = sigma_w / jnp.sqrt(jnp.float32(n))

    def forward(h, layer):
        Z_l, B_l = layer
        a = jnp.matmul(h, Z_l.T, precision=jax.lax.Precision.HIGHEST) * scale + sigma_b * B_l
        h_next, dphi = activation_by_index(act_idx, a, PANEL_ACTIVATIONS)
        return h_next, dphi

    _, dphis = jax.lax.scan(forward, x0, (Z, B))  # (L, B, n): phi'(a_l)
    slopes = jax.lax.dynamic_index_in_dim(dphis, depth - 1, keepdims=False)
    counts, _ = jnp.histogram(slopes, bins=jnp.asarray(SLOPE_EDGES, slopes.dtype))
    batch = x0.shape[0]
    v0 = jnp.broadcast_to(u / jnp.linalg.norm(u), (batch, n))

    def backward(carry, inputs):
        v, s = carry  # unit rows and log ||g_l|| per input
        dphi, Z_l, l = inputs
        w = jnp.matmul(dphi * v, Z_l, precision=jax.lax.Precision.HIGHEST) * scale  # W_l^T delta_l
        v_new, s_new = renormalized_step(v, s, w, active=l <= depth)
        return (v_new, s_new), s_new

    _, s_all = jax.lax.scan(backward, (v0, jnp.zeros(batch)), (dphis, Z, jnp.arange(1, Z.shape[0] + 1)), reverse=True)
    log_g = jnp.concatenate([s_all, jnp.zeros((1, batch))])
    rms = 0.5 * (jax.scipy.special.logsumexp(2.0 * log_g, axis=-1) - jnp.log(jnp.float32(batch)))
    return rms, counts / slopes.size


@jax.jit
def _theory_kernel(q1, sigma_w, sigma_b, act_idx):
    """Float64: ``log chi_1(q_k)`` and ``q_k``, ``k = 1..MAX_DEPTH`` along the length map from ``q1``, and
    ``(q*, chi_1(q*))``, by the library's traceable theory."""

    def layer(q, _):
        q_next, chi = length_map_and_chi(act_idx, sigma_w, sigma_b, q, PANEL_ACTIVATIONS)
        return q_next, (jnp.log(chi), q)

    _, (log_chi, qs) = jax.lax.scan(layer, q1, None, length=MAX_DEPTH)
    q_star, chi_star = q_star_and_chi(act_idx, sigma_w, sigma_b, 1.0, PANEL_ACTIVATIONS)
    return log_chi, qs, chi_star, q_star


@jax.jit
def _slope_theory_kernel(act_idx, q):
    return slope_distribution_by_index(act_idx, q, SLOPE_EDGES, PANEL_ACTIVATIONS)


@functools.lru_cache(maxsize=2048)
def _theory(activation: str, sigma_w: float, sigma_b: float):
    _, x0, _, _ = panel_data()
    q1 = sigma_w**2 * float(np.mean(np.asarray(x0, np.float64) ** 2)) + sigma_b**2
    with jax.enable_x64(True):
        out = _theory_kernel(np.float64(q1), np.float64(sigma_w), np.float64(sigma_b),
                             np.int32(PANEL_ACTIVATIONS.index(activation)))
        log_chi, qs, chi, q = (np.asarray(a, np.float64) for a in out)
    return log_chi, qs, float(chi), float(q)


@functools.lru_cache(maxsize=4096)
def _slope_theory(activation: str, q: float) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(_slope_theory_kernel(np.int32(PANEL_ACTIVATIONS.index(activation)), np.float64(q)))


def gradient_profile(activation: str, sigma_w: float, depth: int, sigma_b: float = 0.0) -> dict:
    """The panel's numbers for one setting (gradients as **log10**, float64 NumPy).

    ``g`` ``(depth+1,)``: measured batch-RMS ``||g_l||``, ``l = 0..depth`` (``||g_depth|| = 1``);
    ``theory_layer`` (``prod_{k>l} chi_1(q_k)``, from ``q_1 = sigma_w^2 mean(x0^2) + sigma_b^2``) and
    ``theory_fixed`` (``chi_1(q*)^(depth-l)``), both square-rooted for the norm; ``chi_star``, ``q_star``
    (:func:`vgplib.chi1`, :func:`vgplib.q_star` to about 1e-12; ``q* = inf`` where the variance diverges,
    then ``chi_star`` is ``chi_1`` at ``q = 2^120``); ``q_depth`` (the mean-field variance of ``a_depth``);
    ``slopes`` and ``slopes_theory`` ``(56,)``: fraction of ``phi'(a_depth)`` per bin of
    :data:`SLOPE_EDGES`, measured over the 64 units and 16 inputs, and its mean-field value at ``q_depth``.
    """
    check_name("activation", activation, PANEL_ACTIVATIONS)
    sigma_w = check_positive("sigma_w", sigma_w)
    sigma_b = check_positive("sigma_b", sigma_b, allow_zero=True)
    depth = check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be at most {MAX_DEPTH}; got {depth}")
    Z, x0, u, B = panel_data()
    idx = np.int32(PANEL_ACTIVATIONS.index(activation))
    log_g, slopes = _panel_kernel(Z, B, x0, u, idx, np.float32(sigma_w), np.float32(sigma_b), np.int32(depth))
    log_chi, qs, chi, q = _theory(activation, sigma_w, sigma_b)
    suffix = np.cumsum(log_chi[:depth][::-1])[::-1]
    layer = 0.5 * np.concatenate([suffix, [0.0]])
    fixed = 0.5 * (depth - np.arange(depth + 1)) * math.log(chi)
    q_depth = float(qs[depth - 1])
    return {
        "g": np.asarray(log_g, np.float64)[: depth + 1] / _LN10,
        "theory_layer": layer / _LN10,
        "theory_fixed": fixed / _LN10,
        "chi_star": chi,
        "q_star": q,
        "q_depth": q_depth,
        "slopes": np.asarray(slopes, np.float64),
        "slopes_theory": _slope_theory(activation, q_depth) if math.isfinite(q_depth) else np.full(56, np.nan),
    }


def make_panel_figure(sigma_b: float = 0.0):
    """The panel: slopes ``phi'(a_L)`` of the deepest layer (left), ``||g_l||`` per layer (right).

    ``update(activation, sigma_w, depth)`` redraws in place; it returns a status string when a
    measured gradient leaves float32's range (drawn from log space anyway).
    """
    fig, (a1, a2) = new_figure(figsize=(7.0, 3.3), dpi=96, ncols=2,
                               margins={"left": 0.08, "right": 0.98, "top": 0.72, "bottom": 0.15, "wspace": 0.32})
    mids = 0.5 * (SLOPE_EDGES[1:] + SLOPE_EDGES[:-1])
    meas = a1.stairs(np.zeros(56), SLOPE_EDGES, fill=True, alpha=0.45, color="0.5", label="measured, layer L")
    (theo,) = a1.plot(mids, np.zeros(56), "k.", ms=3.5, label="theory at $q_L$")
    a1.set_xlim(SLOPE_EDGES[0], SLOPE_EDGES[-1])
    a1.set_ylim(0, 1.02)
    a1.set_xlabel(r"slope $\phi'(a_L)$")
    a1.set_ylabel("fraction of units")
    a1.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False, ncol=1)
    plain_log_yaxis(a2)
    a2.set_xlim(-1, MAX_DEPTH + 1)
    a2.set_xlabel("layer $l$ (0 = input)")
    a2.set_ylabel(r"$\|g_l\|$")
    a2.yaxis.set_label_coords(-0.16, 0.5)
    a2.axhline(FLOAT32_TINY, color="0.5", lw=0.8, ls=":")
    a2.axhline(FLOAT32_MAX, color="0.5", lw=0.8, ls=":")
    a2.grid(True, which="major", axis="y", alpha=0.3)
    (g_line,) = a2.plot([], [], "o", ms=2.5, label="measured")
    (lay_line,) = a2.plot([], [], "-", color="k", lw=1.2, alpha=0.7, label=r"theory, layer-wise $q_k$")
    (fix_line,) = a2.plot([], [], "--", color="k", lw=1.2, label=r"$\chi_1(q^*)^{(L-l)/2}$")
    a2.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False, ncol=1)
    title = fig.text(0.5, 0.985, " ", ha="center", va="top", fontsize=9)
    Z, x0, u, B = panel_data()
    for i in range(len(PANEL_ACTIVATIONS)):  # warm-up: the compilations happen here
        _panel_kernel(Z, B, x0, u, np.int32(i), np.float32(1.0), np.float32(0.0), np.int32(MAX_DEPTH))[0].block_until_ready()
    with jax.enable_x64(True):
        _theory_kernel(np.float64(1.0), np.float64(1.0), np.float64(0.0), np.int32(0))[0].block_until_ready()
        _slope_theory_kernel(np.int32(0), np.float64(1.0)).block_until_ready()

    def update(activation: str = "relu", sigma_w: float = 1.4, depth: int = 50) -> str:
        p = gradient_profile(activation, sigma_w, depth, sigma_b)
        meas.set_data(values=p["slopes"])
        theo.set_ydata(p["slopes_theory"])
        layers = np.arange(depth + 1)
        g_line.set_data(layers, 10.0 ** p["g"])
        g_line.set_color(COLORS[activation])
        lay_line.set_data(layers, 10.0 ** p["theory_layer"])
        fix_line.set_data(layers, 10.0 ** p["theory_fixed"])
        finite = np.concatenate([v[np.isfinite(v)] for v in (p["g"], p["theory_layer"], p["theory_fixed"])])
        lo, hi = min(math.floor(finite.min()) - 1, -2), max(math.ceil(finite.max()) + 1, 2)
        a2.set_ylim(10.0**lo, 10.0**hi)
        q_text = "inf" if math.isinf(p["q_star"]) else f"{p['q_star']:.3g}"
        title.set_text(f"{LABELS[activation]}, \u03c3_w = {sigma_w:.2f}, L = {depth}:  \u03c7\u2081(q*) = "
                       f"{p['chi_star']:.3g}, q* = {q_text},  \u2016g\u2080\u2016 \u2248 1e{p['g'][0]:.1f}")
        low, high = p["g"].min(), p["g"].max()
        return float32_range_status(low, high)

    return fig, update


def make_panel_figure_live(sigma_b: float = 0.0):
    """:func:`make_panel_figure` for the live panel: the slope axes' frame (fixed limits) and the gradient
    axes' frame except its data-dependent y ticks are drawn once as pixels; the same picture per move."""
    fig, update = make_panel_figure(sigma_b)
    a1, a2 = fig.axes
    hidden = [p for p in a1.patches if p.get_visible()]  # the (still empty) histogram: not part of the frame
    for patch in hidden:
        patch.set_visible(False)
    freeze_decorations(fig, a1)
    for patch in hidden:
        patch.set_visible(True)
    freeze_frame_but_y_ticks(fig, a2)
    for image in fig.images:
        _reuse_pixels(image)
    return fig, update


def _reuse_pixels(image) -> None:
    """Make a static figure image keep what it hands the renderer: matplotlib re-samples a ``figimage`` on
    every draw (about 8 ms for an axes-sized one here) although its pixels and place never change."""
    make_image = image.make_image
    made = {}

    def cached(renderer, magnification=1.0, unsampled=False):
        key = (renderer.dpi, renderer.width, renderer.height, magnification, unsampled)
        if key not in made:
            made[key] = make_image(renderer, magnification, unsampled)
        return made[key]

    image.make_image = cached


def panel_controls(activation: str = "relu", sigma_w: float = 1.4, depth: int = 50) -> dict:
    """Activation selector, ``sigma_w`` slider ``0.5..3`` (step 0.05), depth slider ``1..100``."""
    return {
        "activation": ipywidgets.Dropdown(options=list(PANEL_ACTIVATIONS), value=activation, description="activation"),
        "sigma_w": sigma_w_slider(sigma_w, SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP),
        "depth": depth_slider(depth, MAX_DEPTH),
    }


@register_panel("ch06.activations")
def activation_panel() -> LivePanel:
    """A new live panel: the slope distribution and the per-layer gradient against the mean-field theory."""
    controls = panel_controls()
    # the theory costs a few ms per new (activation, sigma_w): computed once for every slider value
    for activation in PANEL_ACTIVATIONS:
        for sigma_w in sweep_values(controls["sigma_w"], n=10_000):
            _theory(activation, float(sigma_w), 0.0)
    return LivePanel(make_panel_figure_live, controls, freeze_legend=True)


def activation_scrubber(sigma_w: float = 1.4, depth: int = MAX_DEPTH, activations: Sequence[str] = PANEL_ACTIVATIONS,
                        alt: str | None = None, dpi: int = 96):
    """The kernel-free twin of :func:`activation_panel`: one frame per activation at fixed ``sigma_w``, ``depth``."""
    for a in activations:
        check_name("activation", a, PANEL_ACTIVATIONS)
    if alt is None:
        alt = (f"One frame per activation at sigma_w = {sigma_w:g} and depth {int(depth)}: the distribution of the "
               "slopes of the deepest layer, measured and predicted, and the gradient norm per layer on a log "
               "scale with the layer-wise and fixed-point mean-field predictions.")
    return scrubber(make_panel_figure, "activation", values=list(activations),
                    fixed={"sigma_w": float(sigma_w), "depth": int(depth)}, alt=alt, dpi=dpi)


# --------------------------------------------------------------------------- the chapter's figures


def activations_figure(xmax: float = 4.0) -> Figure:
    """``phi`` (left) and ``phi'`` (right) of the seven activations on ``[-xmax, xmax]``."""
    x = jnp.linspace(-xmax, xmax, 801)
    fig, (a1, a2) = new_figure(figsize=(7.0, 3.0), dpi=96, ncols=2,
                               margins={"left": 0.08, "right": 0.78, "top": 0.9, "bottom": 0.16, "wspace": 0.28})
    for name in PANEL_ACTIVATIONS:
        act = get_activation(name)
        style = "--" if name in ("leaky_relu", "gelu") else "-"
        a1.plot(x, act.fn(x), style, color=COLORS[name], lw=1.4, label=LABELS[name])
        a2.plot(x, act.grad(x), style, color=COLORS[name], lw=1.4)
    a1.set_ylim(-1.5, 3.0)
    a1.set_title(r"$\phi(a)$", fontsize=9)
    a2.set_title(r"$\phi'(a)$", fontsize=9)
    for ax in (a1, a2):
        ax.set_xlabel("$a$")
        ax.grid(alpha=0.3)
        ax.axhline(0, color="0.6", lw=0.6)
    a1.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(2.32, 0.5))
    return fig


def variance_preserving_sigma_w(activation: str) -> float:
    """``sigma_w = 1 / sqrt(E[phi(z)^2])``, ``z ~ N(0, 1)``: the weight scale that makes ``q = 1`` a fixed
    point of the length map with ``sigma_b = 0`` (forward variance preserved; He et al.'s ``sqrt 2`` for ReLU)."""
    act = get_activation(activation)
    return 1.0 / math.sqrt(gaussian_expectation(lambda a: act.fn(a) ** 2, 1.0))


def slope_distributions_figure(settings: Mapping[str, tuple[float, float]],
                               measured: Mapping[str, np.ndarray] | None = None) -> Figure:
    """One small panel per activation: the distribution of ``phi'(a)``, ``a ~ N(0, q)``, at ``settings[a] =
    (q, chi_1)`` (bars, :func:`vgplib.slope_distribution`), with ``measured`` fractions per bin if given."""
    from vgplib.units import slope_distribution

    names = list(settings)
    fig, axes = new_figure(figsize=(7.0, 3.9), dpi=96, nrows=2, ncols=4,
                           margins={"left": 0.08, "right": 0.99, "top": 0.92, "bottom": 0.12, "wspace": 0.35,
                                    "hspace": 0.75})
    axes = axes.ravel()
    mids = 0.5 * (SLOPE_EDGES[1:] + SLOPE_EDGES[:-1])
    for ax, name in zip(axes, names):
        q, chi = settings[name]
        p = slope_distribution(name, q, SLOPE_EDGES)
        ax.stairs(p, SLOPE_EDGES, fill=True, color=COLORS[name], alpha=0.6)
        if measured is not None and name in measured:
            ax.plot(mids, measured[name], "k.", ms=2.5)
        ax.set_title(f"{LABELS[name]}\nq* = {q:.3g}, \u03c7\u2081 = {chi:.3g}", fontsize=8)
        ax.set_xlim(-0.25, 1.25)
        ax.set_ylim(0, 0.6)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.axis("off")
    axes[0].set_ylabel("fraction", fontsize=8)
    axes[4].set_ylabel("fraction", fontsize=8)
    for ax in axes[4:]:
        ax.set_xlabel(r"$\phi'(a)$", fontsize=8)
    return fig


def critical_lines_figure(lines: Mapping[str, object], relu_sigma_w: float = math.sqrt(2.0),
                          points: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """The ``chi_1 = 1`` lines in the ``(sigma_w, sigma_b)`` plane: solid where the fixed point is stable
    (``map_slope < 1``), dotted where it is unstable. ``lines`` maps an activation to a
    :class:`vgplib.theory.CriticalLine`; ReLU-type lines are the vertical ``sigma_w = sqrt 2``."""
    fig, ax = new_figure(figsize=(6.2, 3.4), dpi=96, margins={"left": 0.1, "right": 0.7, "top": 0.95, "bottom": 0.14})
    for name, line in lines.items():
        sw, sb, slope = np.asarray(line.sigma_w), np.asarray(line.sigma_b), np.asarray(line.map_slope)
        stable = np.where(slope < 1, sb, np.nan)
        unstable = np.where(slope >= 1, sb, np.nan)
        ax.plot(sw, stable, "-", color=COLORS[name], lw=1.8, label=LABELS[name])
        ax.plot(sw, unstable, ":", color=COLORS[name], lw=1.8)
    ax.axvline(relu_sigma_w, color=COLORS["relu"], lw=1.8, ls="-.", label=r"ReLU, leaky ReLU ($\sigma_w^2 \approx 2$)")
    if points:
        for name, (sw, sb) in points.items():
            ax.plot([sw], [sb], "o", color=COLORS[name], ms=5, mec="k")
    ax.set_xlim(0.8, 2.2)
    ax.set_ylim(0, 1.6)
    ax.set_xlabel(r"$\sigma_w$")
    ax.set_ylabel(r"$\sigma_b$")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def critical_profiles_figure(profiles: Mapping[str, dict], settings: Mapping[str, tuple[float, float]]) -> Figure:
    """Measured ``||g_l||`` (dots) at each activation's critical ``(sigma_w, sigma_b)`` with the layer-wise
    mean-field prediction (line), all on one log axis; ``profiles`` from :func:`gradient_profile`."""
    fig, ax = new_figure(figsize=(6.6, 3.4), dpi=96, margins={"left": 0.12, "right": 0.64, "top": 0.95, "bottom": 0.14})
    plain_log_yaxis(ax)
    for name, p in profiles.items():
        layers = np.arange(len(p["g"]))
        sw, sb = settings[name]
        ax.plot(layers, 10.0 ** p["g"], "o", ms=2.2, color=COLORS[name],
                label=f"{LABELS[name]} ({sw:.3g}, {sb:.3g})")
        ax.plot(layers, 10.0 ** p["theory_layer"], "-", lw=1.0, color=COLORS[name])
    ax.axhline(1.0, color="0.4", lw=0.8, ls="--")
    ax.set_ylim(1e-2, 1e2)
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(r"$\|g_l\|$ (RMS over 16 inputs)")
    ax.yaxis.set_label_coords(-0.12, 0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5),
              title=r"($\sigma_w$, $\sigma_b$)", title_fontsize=8)
    return fig


# --------------------------------------------------------------------------- training: a stacked MLP


def stacked_mlp(key: Array, width: int, depth: int, sigma_w: float, n_in: int = 64, n_out: int = 10,
                sigma_b: float = 0.0) -> dict:
    """An MLP ``n_in -> width x (depth - 1) -> n_out`` from :func:`vgplib.init_mlp` (``"gaussian"``: ``sigma_w``,
    ``sigma_b``; the linear read-out with ``sigma_w = 1``), stored for ``lax.scan``:
    ``{"first": layer, "hidden": {"W": (depth - 2, n, n), "b": (depth - 2, n)}, "out": layer}``."""
    from vgplib.init import init_layer, init_mlp

    width = check_positive_int("width", width)
    depth = check_positive_int("depth", depth, minimum=3)
    k1, k2 = jax.random.split(key)
    layers = init_mlp(k1, [n_in] + [width] * (depth - 1), "gaussian", sigma_w=sigma_w, sigma_b=sigma_b)
    last = init_layer(k2, width, n_out, "gaussian", sigma_w=1.0)
    return {"first": layers[0], "hidden": {"W": jnp.stack([p["W"] for p in layers[1:]]),
                                           "b": jnp.stack([p["b"] for p in layers[1:]])}, "out": last}


def as_layers(params: dict) -> list[dict]:
    """The list-of-layers form of :func:`stacked_mlp` parameters (for :func:`vgplib.mlp_forward`, ``dead_units``)."""
    hidden = [{"W": W, "b": b} for W, b in zip(params["hidden"]["W"], params["hidden"]["b"])]
    return [params["first"], *hidden, params["out"]]


def stacked_loss_fn(activation: str):
    """``loss_fn(params, x, y)`` for :func:`vgplib.train_many`: mean softmax cross-entropy of the
    :func:`stacked_mlp` network with ``phi = activation`` (hidden layers in ``lax.scan``: one layer
    compiled, not ``depth``), :func:`vgplib.scanned_mlp_loss_fn` (cached; ``loss_fn.accuracy``); the same
    numbers as :func:`vgplib.mlp_forward` on :func:`as_layers`."""
    return scanned_mlp_loss_fn(activation)


def mixed_loss_fn(names: tuple[str, ...]):
    """Like :func:`stacked_loss_fn`, but each model carries its activation: ``params["act"]`` is a one-hot
    float vector over ``names`` (see :func:`with_activation`) and ``phi = names[argmax(act)]``
    (:func:`vgplib.scanned_mlp_loss_fn` with a tuple of names). One :func:`vgplib.train_many` call (one
    compilation) then trains every activation at once; ``act`` is behind ``stop_gradient``, so its
    gradient is 0 and SGD or Adam leave it exactly one-hot. Under ``jax.vmap`` every branch is evaluated."""
    names = tuple(names)
    for n in names:
        check_name("activation", n, PANEL_ACTIVATIONS)
    return scanned_mlp_loss_fn(names)


def with_activation(params: dict, index: int, n_names: int) -> dict:
    """:func:`stacked_mlp` parameters plus ``"act"``: the one-hot vector of activation ``index`` (float32)."""
    return {**params, "act": jax.nn.one_hot(index, n_names, dtype=jnp.float32)}


def model(params_batch, m: int) -> list[dict]:
    """Model ``m`` of a batch of :func:`stacked_mlp` parameters, in list-of-layers form (``act`` dropped)."""
    return as_layers(jax.tree_util.tree_map(lambda leaf: leaf[m], params_batch))


def dead_units_figure(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray]) -> Figure:
    """Fraction of dead units per hidden layer (mean over seeds, bars: min-max) at init and after training."""
    fig, axes = new_figure(figsize=(7.0, 2.9), dpi=96, ncols=2,
                           margins={"left": 0.09, "right": 0.98, "top": 0.88, "bottom": 0.17, "wspace": 0.25})
    for ax, data, title in zip(axes, (before, after), ("at initialization", "after training")):
        for name, d in data.items():
            d = np.asarray(d)
            layers = np.arange(1, d.shape[-1] + 1)
            mean = d.mean(0)
            ax.plot(layers, mean, "o-", ms=3, color=COLORS[name], label=LABELS[name])
            ax.fill_between(layers, d.min(0), d.max(0), color=COLORS[name], alpha=0.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("hidden layer $l$")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of dead units")
    axes[1].legend(fontsize=8, frameon=False, loc="upper left")
    return fig


def layer_gradients_figure(norms: Mapping[str, np.ndarray], dead: Mapping[str, np.ndarray]) -> Figure:
    """Left: ``||dE/dW_l||`` per layer after training (one line per model). Right: the fraction of each
    layer's weights whose gradient is exactly 0 against the layer's dead fraction."""
    fig, (a1, a2) = new_figure(figsize=(7.0, 2.9), dpi=96, ncols=2,
                               margins={"left": 0.1, "right": 0.98, "top": 0.88, "bottom": 0.17, "wspace": 0.38})
    a2.yaxis.set_label_coords(-0.17, 0.5)  # clear of the tick labels 0.0 ... 1.0 (new_figure pins -0.085)
    plain_log_yaxis(a1)
    for name, n in norms.items():
        n = np.asarray(n)
        for m in range(n.shape[0]):
            a1.plot(np.arange(1, n.shape[1] + 1), np.where(n[m] > 0, n[m], np.nan), "-", lw=1.0,
                    color=COLORS[name], label=LABELS[name] if m == 0 else None)
    a1.set_xlabel("layer $l$")
    a1.set_title(r"$\|\partial E/\partial W_l\|$ after training", fontsize=9)
    a1.grid(alpha=0.3)
    a1.legend(fontsize=8, frameon=False)
    for name, (frac_dead, frac_zero) in dead.items():
        a2.plot(np.ravel(frac_dead), np.ravel(frac_zero), "o", ms=3, color=COLORS[name], label=LABELS[name])
    a2.plot([0, 1], [0, 1], "k--", lw=0.8)
    a2.set_xlabel("fraction of dead units in layer $l$")
    a2.set_ylabel("zero rows of $\\partial E/\\partial W_l$", fontsize=9)
    a2.grid(alpha=0.3)
    return fig


def training_figure(results: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """Test accuracy (left) and the first layer's relative weight change (right) per activation, one dot per seed."""
    fig, (a1, a2) = new_figure(figsize=(7.0, 2.9), dpi=96, ncols=2,
                               margins={"left": 0.08, "right": 0.98, "top": 0.9, "bottom": 0.27, "wspace": 0.3})
    names = list(results)
    for i, name in enumerate(names):
        for ax, key in ((a1, "accuracy"), (a2, "first_change")):
            v = np.asarray(results[name][key])
            ax.plot(np.full(v.shape, i), v, "o", ms=4, color=COLORS[name], alpha=0.8)
            ax.plot([i - 0.25, i + 0.25], [np.median(v)] * 2, "k-", lw=1.2)
    for ax in (a1, a2):
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([LABELS[n] for n in names], rotation=35, ha="right", fontsize=8)
        ax.grid(alpha=0.3)
    a1.set_title("test accuracy", fontsize=9)
    a1.set_ylim(0, 1)
    plain_log_yaxis(a2)
    a2.set_title(r"$\|W_1(T) - W_1(0)\| / \|W_1(0)\|$", fontsize=9)
    return fig


# --------------------------------------------------------------------------- exercises


def check_leaky_critical(sigma_w) -> bool:
    """Self-check: the critical ``sigma_w`` (``chi_1 = 1``, ``sigma_b = 0``) of a leaky ReLU with slope 0.1 for
    ``a < 0``: ``chi_1 = sigma_w^2 (1 + 0.1^2) / 2`` at every ``q``, so ``sigma_w = sqrt(2 / 1.01)``."""
    if unanswered("set sigma_w_answer to your number and run the cell again.", sigma_w):
        return False
    ref = math.sqrt(2.0 / 1.01)
    got = float(sigma_w)
    if math.isclose(got, ref, rel_tol=1e-4):
        return report_answer(True, f"sigma_w = sqrt(2 / (1 + 0.01)) = {ref:.4f}: half the units pass slope 1, "
                             "half slope 0.1", "")
    if math.isclose(got, math.sqrt(2.0), rel_tol=1e-4):
        return report_answer(False, "", "that is ReLU's value; the negative half adds 0.1^2 to E[phi'^2].")
    if math.isclose(got, math.sqrt(2.0 / 1.1), rel_tol=1e-4):
        return report_answer(False, "", "chi_1 uses the SQUARED slope: E[phi'^2] = (1 + 0.1^2) / 2.")
    return report_answer(False, "", "chi_1 = sigma_w^2 E[phi'(a)^2] and E[phi'^2] does not depend on q here.")


def check_dead_at_init(fraction) -> bool:
    """Self-check: the expected fraction of dead units at init in a ReLU layer with zero biases whose
    Gaussian weights see 16 independent standard-normal inputs: each input makes ``a_i <= 0`` with
    probability 1/2, independently, so ``2^-16``."""
    if unanswered("set dead_answer to your number and run the cell again.", fraction):
        return False
    ref = 0.5**16
    got = float(fraction)
    if math.isclose(got, ref, rel_tol=1e-3):
        return report_answer(True, f"2^-16 = {ref:.2e}: with symmetric inputs a unit is almost never dead at init", "")
    if math.isclose(got, 0.5, rel_tol=1e-3):
        return report_answer(False, "", "1/2 is the fraction of (unit, input) pairs with slope 0; a DEAD unit needs all 16.")
    return report_answer(False, "", "for fixed weights the sign of a_i = w_i . x is + or - with probability 1/2 per input.")


def check_gelu_sup(value) -> bool:
    """Self-check: ``sup |GELU'|``. ``GELU'(a) = Phi(a) + a phi(a)`` and ``GELU''(a) = phi(a) (2 - a^2)``, so the
    maximum is at ``a = sqrt 2``: ``Phi(sqrt 2) + sqrt 2 phi(sqrt 2) ~ 1.1289``."""
    if unanswered("set sup_answer to your number and run the cell again.", value):
        return False
    ref = get_activation("gelu").sup_grad
    got = float(value)
    if math.isclose(got, ref, rel_tol=1e-4):
        return report_answer(True, f"sup |GELU'| = GELU'(sqrt 2) = {ref:.4f} > 1: a GELU unit can amplify", "")
    if math.isclose(got, 1.0, rel_tol=1e-4):
        return report_answer(False, "", "GELU' exceeds 1 for a > 0: GELU'' = phi(a)(2 - a^2) vanishes at a = sqrt 2.")
    return report_answer(False, "", "set GELU''(a) = phi(a)(2 - a^2) to zero and evaluate GELU' there.")
