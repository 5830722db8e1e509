"""Chapter 7, *Initialization*: its live panel, the helpers of its experiments, and its exercises.

Notation (DESIGN.md 2b): ``a_l = W_l h_{l-1} + b_l``, ``h_l = phi(a_l)``, ``h_0 = x``,
``J_l = dh_l/dh_{l-1} = diag(phi'(a_l)) W_l``, ``P_l = dh_L/dh_l`` and ``g_l = dE/dh_l = P_l^T g_L``.

The live panel draws, for a network of width 64 with no biases and weights ``W_l = sigma_w Z_l``
(``Z_l`` a fixed draw of ``init_mlp(..., init, sigma_w=1)``: Gaussian ``N(0, 1/n)`` or
Haar-orthogonal), the histogram of the singular values of the input-output Jacobian
``P_0 = dh_L/dh_0`` at one input and the per-layer gradient ``||g_l||`` for ``E = u . h_L``, with the
mean-field predictions (Poole et al. 2016; Schoenholz et al. 2017): ``E||g_l||^2 / ||g_L||^2 =
prod_{k>l} chi_1(q_k)`` and the mean squared singular value ``(1/n) sum_i s_i^2 = prod_k chi_1(q_k)``.
The kernel is one jitted function of traced ``sigma_w``, init and activation indices and depth
(a fixed maximum depth and a mask), built from library functions:
:func:`vgplib.activations.activation_by_index`, :func:`vgplib.jacobians.first_layers_log_singular_values`,
:func:`vgplib.jacobians.renormalized_step`, and the float64 theory of
:func:`vgplib.theory.length_map_and_chi`, so no slider move compiles.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure

from vgplib._validate import check_name, check_positive, check_positive_int
from vgplib.activations import activation_by_index
from vgplib.init import init_mlp, init_variance, negative_mean_value
from vgplib.jacobians import (
    first_layers_log_singular_values,
    renormalized_step,
)
from vgplib.plots import freeze_decorations, new_figure
from vgplib.theory import gaussian_expectation, length_map_and_chi
from vgplib.widgets import (
    LivePanel,
    answer_number,
    depth_slider,
    register_panel,
    report_answer,
    scrubber,
    sigma_w_slider,
    sweep_values,
    unanswered,
)

Array = jax.Array

#: The live panel's network.
PANEL_WIDTH = 64
MAX_DEPTH = 100
PANEL_INITS: tuple[str, ...] = ("gaussian", "orthogonal")
PANEL_ACTIVATIONS: tuple[str, ...] = ("tanh", "relu")
#: sigma_w slider: 0.5 to 2.0 in steps of 0.05.
SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP = 0.5, 2.0, 0.05
#: histogram bins of log10 singular values (values outside are counted in the end bins).
LOG10_BINS = np.linspace(-8.0, 3.0, 89)
#: depths of the kernel-free scrubber.
SCRUBBER_DEPTHS: tuple[int, ...] = (1, 2, 5, 10, 20, 30, 50, 75, 100)
_LN10 = math.log(10.0)
_COLORS = {"gaussian": "#d62728", "orthogonal": "#1f77b4"}


# --------------------------------------------------------------------------- fixed random numbers


@functools.lru_cache(maxsize=2)
def panel_data(width: int = PANEL_WIDTH, max_depth: int = MAX_DEPTH, seed: int = 0):
    """``(Z, x0, u)``: ``Z`` ``(2, max_depth, n, n)`` the weights at ``sigma_w = 1`` of
    ``init_mlp(key, [n] * (max_depth + 1), init)`` for ``init`` in :data:`PANEL_INITS` (same key), an
    input ``x0 ~ N(0, I)`` and a unit vector ``u`` (the loss ``E = u . h_L``). Both inits are linear
    in ``sigma_w``, so ``sigma_w * Z[i]`` is exactly ``init_mlp(..., init, sigma_w)``'s weights."""
    width = check_positive_int("width", width)
    max_depth = check_positive_int("max_depth", max_depth)
    kw, kx, ku = jax.random.split(jax.random.PRNGKey(seed), 3)
    Z = jnp.stack([jnp.stack([layer["W"] for layer in init_mlp(kw, [width] * (max_depth + 1), init)])
                   for init in PANEL_INITS])
    x0 = jax.random.normal(kx, (width,))
    u = jax.random.normal(ku, (width,))
    return Z, x0, u / jnp.linalg.norm(u)


# --------------------------------------------------------------------------- the jitted kernel


@jax.jit
def _panel_kernel(Z: Array, x0: Array, u: Array, init_idx: Array, act_idx: Array, sigma_w: Array,
                  depth: Array):
    """Natural logs of the singular values of ``P_0 = dh_depth/dh_0`` ``(n,)`` (descending) and of
    ``||g_l||`` for ``l = 0..MAX_DEPTH`` (entries above ``depth`` are 0: masked by the caller)."""
    W = sigma_w * jnp.where(init_idx == 1, Z[1], Z[0])  # (L, n, n)
    L = W.shape[0]

    def forward(h, W_l):
        a = jnp.matmul(W_l, h, precision=jax.lax.Precision.HIGHEST)  # a_l = W_l h_{l-1}
        h_next, dphi = activation_by_index(act_idx, a, PANEL_ACTIVATIONS)
        return h_next, dphi[:, None] * W_l  # J_l = diag(phi'(a_l)) W_l

    _, J = jax.lax.scan(forward, x0, W)
    log_sv = first_layers_log_singular_values(J, depth)

    layers = jnp.arange(1, L + 1)

    def backward(carry, inputs):
        v, s = carry  # g_l = exp(s) v, ||v|| = 1
        J_l, l = inputs
        active = l <= depth
        v_new, s_new = renormalized_step(v, s, J_l.T @ v, active=active)
        return (v_new, s_new), s_new

    _, log_g = jax.lax.scan(backward, (u, jnp.float32(0.0)), (J, layers), reverse=True)
    # log_g[l-1] = log ||g_{l-1}|| of the depth-`depth` network (rows above depth keep log ||g_L|| = 0)
    return log_sv, jnp.concatenate([log_g, jnp.zeros((1,))])


@jax.jit
def _theory_kernel(q1: Array, sigma_w: Array, act_idx: Array):
    """``log chi_1(q_k)``, ``k = 1..MAX_DEPTH``, along ``q_{k+1} = sigma_w^2 E[phi(sqrt(q_k) z)^2]``
    (no bias): :func:`vgplib.theory.length_map_and_chi`, float64 under ``enable_x64``."""

    def layer(q, _):
        q_next, chi = length_map_and_chi(act_idx, sigma_w, 0.0, q, PANEL_ACTIVATIONS)
        return q_next, jnp.log(chi)

    return jax.lax.scan(layer, q1, None, length=MAX_DEPTH)[1]


@functools.lru_cache(maxsize=1024)
def _theory(activation: str, sigma_w: float) -> np.ndarray:
    _, x0, _ = panel_data()
    q1 = sigma_w**2 * float(np.mean(np.asarray(x0, np.float64) ** 2))
    with jax.enable_x64(True):
        out = _theory_kernel(np.float64(q1), np.float64(sigma_w), np.int32(PANEL_ACTIVATIONS.index(activation)))
        return np.asarray(out, np.float64)


def _check_args(init: str, activation: str, sigma_w: float, depth: int) -> tuple[float, int]:
    check_name("init", init, PANEL_INITS)
    check_name("activation", activation, PANEL_ACTIVATIONS)
    sigma_w = check_positive("sigma_w", sigma_w)
    depth = check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be at most {MAX_DEPTH}; got {depth}")
    return sigma_w, depth


def panel_weights(init: str, sigma_w: float, depth: int) -> list[dict[str, Array]]:
    """The panel's network as an MLP parameter list (zero biases): for tests and exercises."""
    sigma_w, depth = _check_args(init, "tanh", sigma_w, depth)
    Z, _, _ = panel_data()
    W = sigma_w * Z[PANEL_INITS.index(init)]
    return [{"W": W[i], "b": jnp.zeros(W.shape[1])} for i in range(depth)]


def isometry_profile(init: str, activation: str, sigma_w: float, depth: int) -> dict[str, np.ndarray | float]:
    """The panel's numbers for one setting (NumPy float64).

    ``log10_sv`` ``(n,)``: log10 singular values of ``dh_depth/dh_0`` (descending); ``log10_g``
    ``(depth+1,)``: log10 ``||g_l||``, ``l = 0..depth`` (``||g_depth|| = 1``); ``theory_g`` ``(depth+1,)``:
    mean-field log10 ``sqrt(prod_{k>l} chi_1(q_k))``; ``mean_sq_sv``: ``(1/n) sum_i s_i^2`` measured;
    ``theory_mean_sq``: its mean-field prediction ``prod_k chi_1(q_k)``.
    """
    sigma_w, depth = _check_args(init, activation, sigma_w, depth)
    Z, x0, u = panel_data()
    log_sv, log_g = _panel_kernel(Z, x0, u, np.int32(PANEL_INITS.index(init)),
                                  np.int32(PANEL_ACTIVATIONS.index(activation)), np.float32(sigma_w),
                                  np.int32(depth))
    log_sv = np.asarray(log_sv, np.float64)
    log_g = np.asarray(log_g, np.float64)[: depth + 1]
    log_chi = _theory(activation, float(sigma_w))[:depth]
    theory = 0.5 * np.concatenate([np.cumsum(log_chi[::-1])[::-1], [0.0]])
    finite = log_sv[np.isfinite(log_sv)]
    mean_sq = float(np.sum(np.exp(2.0 * finite)) / log_sv.size) if finite.size else 0.0
    return {
        "log10_sv": log_sv / _LN10,
        "log10_g": log_g / _LN10,
        "theory_g": theory / _LN10,
        "mean_sq_sv": mean_sq,
        "theory_mean_sq": float(math.exp(float(np.sum(log_chi)))),
    }


# --------------------------------------------------------------------------- the figure


def make_isometry_figure() -> tuple[Figure, object]:
    """Left: histogram of log10 singular values of ``dh_L/dh_0``; right: ``||g_l||`` per layer with
    the mean-field line. ``update(depth, sigma_w, init, activation)`` redraws in place."""
    fig, (ax_h, ax_g) = new_figure(figsize=(7.0, 3.3), dpi=72, ncols=2,
                                   margins={"left": 0.1, "right": 0.98, "top": 0.76, "bottom": 0.16,
                                            "wspace": 0.36})
    edges = LOG10_BINS
    stairs = ax_h.stairs(np.zeros(len(edges) - 1), edges, fill=True, alpha=0.6, color=_COLORS["gaussian"])
    pred = ax_h.axvline(0.0, color="k", ls="--", lw=1.2, label="mean field: RMS $s_i$")
    ax_h.axvline(0.0, color="0.6", lw=0.6)
    ax_h.set_xlim(edges[0], edges[-1])
    ax_h.set_ylim(0, PANEL_WIDTH)
    ax_h.set_xlabel(r"$\log_{10} s_i$ of $\partial h_L/\partial h_0$")
    ax_h.set_ylabel("count (of 64)")
    ax_h.yaxis.set_label_coords(-0.15, 0.5)  # clear of the tick labels
    # legends above the axes, clear of the data, so that the live panel can freeze their pixels
    ax_h.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False)
    ax_g.set_xlim(-1, MAX_DEPTH + 1)
    ax_g.set_xlabel("layer $l$ (0 = input)")
    ax_g.set_ylabel(r"$\log_{10}\|g_l\|$")
    ax_g.yaxis.set_label_coords(-0.16, 0.5)  # clear of tick labels as wide as "-30"
    ax_g.axhline(0.0, color="0.8", lw=0.6)
    # the dots take the init's colour per update; the legend (drawn once) shows them in grey
    (g_line,) = ax_g.plot([], [], "o", ms=2.5, color="0.35", label="measured")
    (t_line,) = ax_g.plot([], [], "-", lw=1.2, color="k", label=r"mean field $\prod\chi_1^{1/2}$")
    ax_g.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False, ncol=2)
    title = fig.suptitle(" ", fontsize=8, y=0.985)
    Z, x0, u = panel_data()
    for a in range(len(PANEL_ACTIVATIONS)):  # warm-up: the compilations happen here
        _panel_kernel(Z, x0, u, np.int32(0), np.int32(a), np.float32(1.0), np.int32(MAX_DEPTH))[0].block_until_ready()
        with jax.enable_x64(True):
            _theory_kernel(np.float64(1.0), np.float64(1.0), np.int32(a)).block_until_ready()

    def update(depth: int = 50, sigma_w: float = 1.0, init: str = "orthogonal", activation: str = "tanh") -> str:
        prof = isometry_profile(init, activation, sigma_w, depth)
        sv = np.clip(np.where(np.isfinite(prof["log10_sv"]), prof["log10_sv"], edges[0]), edges[0], edges[-1] - 1e-9)
        counts, _ = np.histogram(sv, bins=edges)
        stairs.set_data(counts)
        stairs.set_color(_COLORS[init])
        pred.set_xdata([0.5 * math.log10(prof["theory_mean_sq"])] * 2)
        layers = np.arange(depth + 1)
        g_line.set_data(layers, prof["log10_g"])
        g_line.set_color(_COLORS[init])
        t_line.set_data(layers, prof["theory_g"])
        vals = np.concatenate([prof["log10_g"], prof["theory_g"]])
        vals = vals[np.isfinite(vals)]
        lo, hi = math.floor(min(vals.min(), -1.0)), math.ceil(max(vals.max(), 1.0))
        ax_g.set_ylim(lo, hi)
        s_max = 10.0 ** prof["log10_sv"][0]
        title.set_text(f"{activation}, {init}, \u03c3_w = {sigma_w:.2f}, L = {depth}:  mean s\u00b2 = "
                       f"{prof['mean_sq_sv']:.3g} (mean field {prof['theory_mean_sq']:.3g}),  max s = {s_max:.3g}")
        zero = int(np.sum(~np.isfinite(prof["log10_sv"])))
        small = int(np.sum(prof["log10_sv"] < edges[0])) - zero
        notes = []
        if zero:
            notes.append(f"zero: {zero} singular values are exactly 0 (units with phi' = 0 cut directions)")
        if small:
            notes.append(f"underflow: {small} singular values below 1e{edges[0]:.0f}")
        return "; ".join(notes) + (": drawn in the first bin" if notes else "")

    return fig, update


class _FrozenPixels(Artist):
    """The pixels of a :meth:`Figure.figimage` blitted as they are: a figimage goes through the image
    resampling pipeline on every draw (about 7 ms each here) although its pixels never change."""

    def __init__(self, image) -> None:
        super().__init__()
        self._pixels = np.ascontiguousarray(image.get_array()[::-1])  # rows bottom-up, as draw_image wants
        self._xy = (image.ox, image.oy)
        self.set_zorder(image.get_zorder())

    def draw(self, renderer) -> None:
        if not self.get_visible():
            return
        gc = renderer.new_gc()
        renderer.draw_image(gc, *self._xy, self._pixels)
        gc.restore()


def make_isometry_figure_live() -> tuple[Figure, object]:
    """:func:`make_isometry_figure` with the static frames frozen into pixels (live panel only).

    The histogram's limits never change: its whole frame (ticks, labels, legend) is drawn once. The
    gradient axes' y range follows the data, so only its y ticks and tick labels stay live; its x
    axis, spines, y label and legend are drawn once. The scrubber keeps the plain figure. Redraw CPU
    time per move: about 45% of the plain figure's.
    """
    fig, update = make_isometry_figure()
    ax_h, ax_g = fig.axes
    freeze_decorations(fig, ax_h)
    ax_g.yaxis.set_tick_params(which="both", left=False, labelleft=False)  # kept out of the pixels
    freeze_decorations(fig, ax_g)
    ax_g.yaxis.set_visible(True)
    ax_g.yaxis.label.set_visible(False)  # in the pixels (its position is pinned: fix_label_positions)
    ax_g.yaxis.set_tick_params(which="both", left=True, labelleft=True)
    for image in list(fig.images):  # the same pixels, without the per-draw resampling
        fig.add_artist(_FrozenPixels(image))
        image.remove()
    return fig, update


def isometry_controls(depth: int = 50, sigma_w: float = 1.0, init: str = "orthogonal",
                      activation: str = "tanh") -> dict:
    """Depth slider ``1..MAX_DEPTH``, ``sigma_w`` slider, init and activation selectors."""
    return {
        "depth": depth_slider(depth, MAX_DEPTH),
        "sigma_w": sigma_w_slider(sigma_w, SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP),
        "init": ipywidgets.ToggleButtons(options=list(PANEL_INITS), value=init, description="init"),
        "activation": ipywidgets.ToggleButtons(options=list(PANEL_ACTIVATIONS), value=activation,
                                               description="activation"),
    }


@register_panel("ch07.isometry")
def isometry_panel() -> LivePanel:
    """A new live panel: the Jacobian's singular values and the per-layer gradient at initialization."""
    controls = isometry_controls()
    for activation in PANEL_ACTIVATIONS:  # the theory for every slider value, once (a few ms each)
        for sigma_w in sweep_values(controls["sigma_w"], n=10_000):
            _theory(activation, float(sigma_w))
    return LivePanel(make_isometry_figure_live, controls, freeze_legend=True)


def isometry_scrubber(init: str = "gaussian", activation: str = "tanh", sigma_w: float = 1.0,
                      depths=SCRUBBER_DEPTHS, alt: str | None = None, dpi: int = 96):
    """The kernel-free twin of :func:`isometry_panel`: a jshtml scrubber over the depth."""
    check_name("init", init, PANEL_INITS)
    values = [int(d) for d in depths]
    if alt is None:
        alt = (f"Histogram of the log10 singular values of the input-output Jacobian of a width-64 {activation} "
               f"network with {init} weights at sigma_w = {sigma_w:g}, and its per-layer gradient norm, one "
               f"frame per depth from {min(values)} to {max(values)}: the spread of the singular values "
               "and the mean-field prediction of their root mean square.")
    return scrubber(make_isometry_figure, "depth", values=values,
                    fixed={"sigma_w": float(sigma_w), "init": init, "activation": activation}, alt=alt, dpi=dpi)


# --------------------------------------------------------------------------- chapter helpers


def phi_prime_moments(activation: str, q: float) -> tuple[float, float]:
    """``(mu_1, mu_2) = (E[phi'(sqrt(q) z)^2], E[phi'(sqrt(q) z)^4])``, by the library quadrature."""
    from vgplib.activations import get_activation

    act = get_activation(activation)
    return (gaussian_expectation(lambda a: act.grad(a) ** 2, q),
            gaussian_expectation(lambda a: act.grad(a) ** 4, q))


def spectrum_variance_theory(activation: str, q: float, sigma_w: float, weights: str, depth) -> np.ndarray:
    """Free-probability prediction of the normalized variance ``Var(s^2) / E[s^2]^2`` of the squared
    singular values of ``dh_L/dh_0`` at a fixed point ``q`` (every layer's ``phi'`` law the same):

        Var / mean^2 = L v,   v = mu_2 / mu_1^2 - 1 + v_W,

    ``v_W = 1`` for square Gaussian ``W`` (Marchenko-Pastur), ``0`` for orthogonal: for freely
    independent factors ``a, b`` of mean 1, ``phi(abab) = phi(a^2) + phi(b^2) - 1``, so normalized
    variances ADD, one ``(mu_2/mu_1^2 - 1)`` for ``diag(phi')^2`` and one ``v_W`` for ``W W^T`` per layer
    (the form of Pennington et al. 2017's variance, with their ``-s_1 = v_W``). Wide-network limit.
    """
    check_name("weights", weights, PANEL_INITS)
    mu1, mu2 = phi_prime_moments(activation, q)
    v = mu2 / mu1**2 - 1.0 + (1.0 if weights == "gaussian" else 0.0)
    return v * np.asarray(depth, np.float64)


def table(rows: Mapping[str, Mapping[str, float]], fmt: str = "{:>10.3g}") -> str:
    """A small aligned text table: ``rows[name][column]``."""
    names = list(rows)
    cols = list(next(iter(rows.values())))
    width = max(len(n) for n in names) + 2
    out = [" " * width + "".join(f"{c:>10}" for c in cols)]
    for n in names:
        out.append(f"{n:<{width}}" + "".join(fmt.format(rows[n][c]) for c in cols))
    return "\n".join(out)


# --------------------------------------------------------------------------- exercises


#: The exercises' layers: Glorot's ``(n_in, n_out)``; the negative-mean layer's fan-in and input mean.
GLOROT_EXERCISE_FANS = (100, 400)
NEGATIVE_MEAN_EXERCISE_FAN_IN = 32
NEGATIVE_MEAN_EXERCISE_INPUT_MEAN = 0.5


def expected_glorot_variance() -> float:
    """``Var(W)`` of Glorot's normal init for the exercise's layer, from :func:`vgplib.init_variance`."""
    return init_variance("glorot_normal", *GLOROT_EXERCISE_FANS)


def expected_glorot_ratios() -> tuple[float, float]:
    """``(n_in Var(W), n_out Var(W))``: the factors by which the exercise's Glorot layer multiplies the
    forward and the backward variance (linear regime), ``Var(W)`` from :func:`vgplib.init_variance`."""
    var = init_variance("glorot_normal", *GLOROT_EXERCISE_FANS)
    fan_in, fan_out = GLOROT_EXERCISE_FANS
    return fan_in * var, fan_out * var


def expected_negative_mean() -> float:
    """The weight mean of the negative-mean init at the exercise's fan-in (:func:`vgplib.negative_mean_value`)."""
    return negative_mean_value(NEGATIVE_MEAN_EXERCISE_FAN_IN)


def expected_negative_mean_shift() -> float:
    """``E[a] = sum_i E[W_i] E[x_i]``: the mean of the pre-activation of the exercise's negative-mean layer
    (32 inputs of mean 1/2, independent of the weights), ``E[W_i]`` from :func:`vgplib.negative_mean_value`."""
    n = NEGATIVE_MEAN_EXERCISE_FAN_IN
    weight_means = np.full(n, negative_mean_value(n))
    input_means = np.full(n, NEGATIVE_MEAN_EXERCISE_INPUT_MEAN)
    return float(weight_means @ input_means)


def expected_isometry_depth(spread: float = 10.0) -> int:
    """The depth ``L`` at which :func:`spectrum_variance_theory` for ReLU with orthogonal weights reaches
    ``spread`` (``L v = spread`` with ``v`` from the quadrature moments of ``phi'``: ``round(spread / v)``)."""
    v = float(spectrum_variance_theory("relu", 1.0, math.sqrt(2.0), "orthogonal", 1))
    return round(spread / v)


def check_glorot_variance(var) -> bool:
    """Self-check: ``Var(W)`` of Glorot's normal init for a layer with 100 inputs and 400 outputs
    (:func:`expected_glorot_variance`, rtol 1e-3)."""
    if unanswered("set var to your number and run the cell again.", var):
        return False
    var = answer_number("var", var)
    ref = expected_glorot_variance()
    forward, backward = expected_glorot_ratios()
    fan_in, fan_out = GLOROT_EXERCISE_FANS
    if math.isclose(var, ref, rel_tol=1e-3):
        return report_answer(True, f"Var(W) = 2 / (n_in + n_out) = {ref:g}: forward ratio {forward:g}, "
                             f"backward {backward:g}", "")
    if math.isclose(var, 1.0 / fan_in, rel_tol=1e-3):
        return report_answer(False, "", "that is LeCun's 1/n_in (forward only); Glorot averages n_in and n_out.")
    if math.isclose(var, 1.0 / fan_out, rel_tol=1e-3):
        return report_answer(False, "", "that keeps only the backward pass (1/n_out); Glorot averages the two.")
    return report_answer(False, "", "solve Var(W) (n_in + n_out) / 2 = 1.")


def check_glorot_ratios(forward, backward) -> bool:
    """Self-check: the forward and backward variance ratios ``n_in Var(W)`` and ``n_out Var(W)`` of the
    same Glorot layer (:func:`expected_glorot_ratios`, rtol 1e-3 each)."""
    if unanswered("set forward and backward to your numbers and run the cell again.", forward, backward):
        return False
    got = (answer_number("forward", forward), answer_number("backward", backward))
    ref = expected_glorot_ratios()
    if all(math.isclose(g, r, rel_tol=1e-3) for g, r in zip(got, ref)):
        return report_answer(True, f"forward n_in Var(W) = {ref[0]:g}, backward n_out Var(W) = {ref[1]:g}: "
                             "neither is 1 when n_in != n_out", "")
    if all(math.isclose(g, r, rel_tol=1e-3) for g, r in zip(got, ref[::-1])):
        return report_answer(False, "", "swapped: the forward pass sums over the n_in inputs, the backward pass "
                             "over the n_out units.")
    return report_answer(False, "", "a linear layer multiplies the forward variance by n_in Var(W) and the "
                         "backward variance by n_out Var(W).")


def check_negative_mean(mu) -> bool:
    """Self-check: the weight mean ``mu`` of the negative-mean init for a layer with 32 inputs
    (:func:`expected_negative_mean`, rtol 1e-6)."""
    if unanswered("set mu to your number and run the cell again.", mu):
        return False
    mu = answer_number("mu", mu)
    ref = expected_negative_mean()
    if math.isclose(mu, ref, rel_tol=1e-6):
        return report_answer(True, f"mu = max(-1, -8/32) = {ref:g}: the 32 inputs' mean of ~1/2 shifts a_l by "
                             f"about {expected_negative_mean_shift():g}", "")
    if mu > 0:
        return report_answer(False, "", "the mean is negative: it must offset the sigmoid's positive outputs.")
    return report_answer(False, "", "use mu = max(-1, -8 / fan_in).")


def check_negative_mean_shift(shift) -> bool:
    """Self-check: the mean shift ``E[a] = n mu E[x]`` of that layer's pre-activation when its 32 inputs
    have mean 1/2 (:func:`expected_negative_mean_shift`, rtol 1e-2)."""
    if unanswered("set shift to your number and run the cell again.", shift):
        return False
    shift = answer_number("shift", shift)
    ref = expected_negative_mean_shift()
    if math.isclose(shift, ref, rel_tol=1e-2):
        return report_answer(True, f"E[a] = 32 x mu x 1/2 = {ref:g}: n mu = -8 for every fan-in of 8 or more, "
                             "so the shift does not depend on the width", "")
    if math.isclose(shift, ref / NEGATIVE_MEAN_EXERCISE_FAN_IN, rel_tol=1e-2):
        return report_answer(False, "", "that is one input's contribution; a_l sums over all 32 inputs.")
    if math.isclose(shift, -ref, rel_tol=1e-2):
        return report_answer(False, "", "the sign: the weights' mean is negative, the inputs' mean positive.")
    return report_answer(False, "", "E[a] = sum_i E[W_i] E[x_i] = n mu E[x] for weights independent of the inputs.")


def check_isometry_depth(depth) -> bool:
    """Self-check: the depth at which the free-probability normalized variance ``L v`` of ``s^2``
    reaches 10 for a ReLU network with orthogonal weights (``v = mu_2/mu_1^2 - 1 = 1`` per layer;
    :func:`expected_isometry_depth`)."""
    if unanswered("set depth to your integer and run the cell again.", depth):
        return False
    ref = expected_isometry_depth()
    if int(depth) == ref:
        return report_answer(True, f"L v = L = {ref}: for ReLU phi'^2 is 0 or 1, mu_1 = mu_2 = 1/2, v = 1 per layer", "")
    if int(depth) == round(ref / 2):
        return report_answer(False, "", "orthogonal W adds v_W = 0, not 1 (that is Gaussian W).")
    return report_answer(False, "", "for ReLU phi'^2 is 0 or 1 with probability 1/2: mu_1 = mu_2 = 1/2, so v = 1.")
