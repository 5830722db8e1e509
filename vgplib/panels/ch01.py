"""Chapter 1, *Backpropagation as a product of Jacobians*: its figures, its live panel and its exercises.

The live panel shows how large the back-propagated gradient ``g_l = dE/dh_l`` is at every layer
``l = 0..L`` of an MLP ``a_l = W_l h_{l-1} + b_l``, ``h_l = phi(a_l)``, ``h_0 = x``, with the loss
``E = u . h_L`` (``u`` a fixed unit vector, so ``g_L = u``), for a depth slider and an activation
selector. Backpropagation (Rumelhart, Hinton & Williams 1986) computes

    g_{l-1} = J_l^T g_l,    J_l = dh_l/dh_{l-1} = diag(phi'(a_l)) W_l,

so the gradient at layer ``l`` is ``u`` pushed back through ``L - l`` Jacobians. Every network of
depth ``L <= MAX_DEPTH`` is the first ``L`` layers of one precomputed network, so one jitted sweep over
``MAX_DEPTH`` layers with a mask (layers above ``L`` are skipped) serves every slider position
without a compilation. The sweep renormalizes after every factor (log-space), so a gradient below
float32's smallest normal number (1.2e-38), which a direct float32 product in JAX on CPU would flush
to 0 (subnormals are not kept), is still drawn, and flagged in the status line.
"""

from __future__ import annotations

import functools
import math

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from vgplib._validate import as_array, check_name, check_positive, check_positive_int
from vgplib.activations import get_activation
from vgplib.init import init_mlp
from vgplib.jacobians import layer_jacobians, renormalized_step
from vgplib.networks import mlp_forward
from vgplib.plots import FLOAT32_TINY, freeze_decorations, new_figure
from vgplib.theory import chi1, length_map
from vgplib.widgets import (
    LivePanel,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

Array = jax.Array

#: The live panel's networks: width, largest depth, and each activation with its customary init:
#: sigmoid and tanh with the pre-2010 "standard" U[-1/sqrt(n), 1/sqrt(n)] (the setting of Glorot &
#: Bengio 2010), ReLU with He et al. (2015).
PANEL_WIDTH = 32
MAX_DEPTH = 40
PANEL_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu")
PANEL_INITS: dict[str, str] = {"sigmoid": "standard", "tanh": "standard", "relu": "he"}
#: Depths shown by the kernel-free scrubber (14 frames).
SCRUBBER_DEPTHS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30, 35, 40)
_COLORS = {"sigmoid": "#d62728", "tanh": "#1f77b4", "relu": "#2ca02c"}
_LN10 = math.log(10.0)


# --------------------------------------------------------------------------- exact computation


@jax.jit
def _prefix_log_sweep(J: Array, g: Array, depth: Array) -> Array:
    """``log ||g_l||``, ``g_l = dE/dh_l``, for the network made of layers ``1..depth`` of ``J``; ``(L+1,)``.

    Renormalized backward sweep ``v_{l-1} = J_l^T v_l / ||J_l^T v_l||`` accumulating the logs of the
    norms; layers ``l > depth`` are skipped (identity), entries ``l >= depth`` equal ``log ||g||``.
    An exactly zero gradient (a dead ReLU layer) gives ``-inf``, never NaN.
    """
    L = J.shape[0]
    norm_g = jnp.linalg.norm(g)
    v0 = g / jnp.where(norm_g > 0, norm_g, 1)

    def step(carry, inputs):
        v, s = carry
        J_l, l = inputs
        w = jnp.matmul(v, J_l, precision=jax.lax.Precision.HIGHEST)  # J_l^T v
        v_new, s_new = renormalized_step(v, s, w, active=l <= depth)
        return (v_new, s_new), s_new

    _, s = jax.lax.scan(step, (v0, jnp.log(norm_g)), (J, jnp.arange(1, L + 1)), reverse=True)
    return jnp.concatenate([s, jnp.log(norm_g)[None]])


def prefix_log_gradient_norms(jacobians, grad_output, depth: int) -> np.ndarray:
    """Natural-log ``||dE/dh_l||``, ``l = 0..L``, for the network made of the first ``depth`` layers.

    ``jacobians`` are stacked ``(L, n, n)`` layer Jacobians ``J_l = dh_l/dh_{l-1}`` of a network
    of depth ``L >= depth``; ``grad_output = dE/dh_depth``. Because a prefix of a network computes
    the same ``h_1..h_depth``, its Jacobians are the first ``depth`` of the full network's, and

        dE/dh_l = J_{l+1}^T ... J_depth^T dE/dh_depth      (l < depth).

    Computed in log space (renormalized after each factor), so it is exact at any depth where the
    direct product underflows. Returns ``(L+1,)`` float64; entries ``l >= depth`` are
    ``log ||grad_output||``. The depth is a traced argument: one compilation serves every depth.
    """
    J = as_array("jacobians", jacobians, (3,))
    if J.shape[1] != J.shape[2]:
        raise ValueError(f"jacobians must have shape (L, n, n); got {J.shape}")
    g = as_array("grad_output", grad_output, (1,)).astype(J.dtype)
    if g.shape != (J.shape[2],):
        raise ValueError(f"grad_output must have shape ({J.shape[2]},); got {g.shape}")
    depth = check_positive_int("depth", depth)
    if depth > J.shape[0]:
        raise ValueError(f"depth must be at most the number of layers {J.shape[0]}; got {depth}")
    for name, arr in (("jacobians", J), ("grad_output", g)):
        if not bool(jnp.all(jnp.isfinite(arr))):
            raise ValueError(f"{name} must be finite; it contains NaN or inf")
    return np.asarray(_prefix_log_sweep(J, g, np.int32(depth)), dtype=np.float64)


def mean_field_log_gradient_decay(
    activation: str,
    sigma_w: float,
    depth: int,
    sigma_b: float = 0.0,
    q0: float = 1.0,
) -> np.ndarray:
    """Mean-field ``ln(E||dE/dh_l||^2 / ||dE/dh_L||^2)``, ``l = 0..L``, layer by layer.

    For a wide MLP with ``Var(W_ij) = sigma_w^2 / n``, inputs with mean square ``q0`` per unit, the
    pre-activation ``a_k`` has a variance that follows ``q_1 = sigma_w^2 q0 + sigma_b^2``,
    ``q_k = sigma_w^2 E[phi(sqrt(q_{k-1}) z)^2] + sigma_b^2`` (Poole et al. 2016), and each layer
    multiplies the mean squared gradient by ``chi_1(q_k) = sigma_w^2 E[phi'(sqrt(q_k) z)^2]``
    (Schoenholz et al. 2017), so

        E||dE/dh_l||^2 = ||dE/dh_L||^2 prod_{k=l+1}^{L} chi_1(q_k).

    Evaluating ``chi_1`` at each layer's own ``q_k`` (not only at the fixed point ``q*``) also
    captures the first layers, where ``q_k`` has not yet converged. Returns ``(L+1,)`` float64.
    """
    act = get_activation(activation)
    sigma_w = check_positive("sigma_w", sigma_w)
    sigma_b = check_positive("sigma_b", sigma_b, allow_zero=True)
    q0 = check_positive("q0", q0)
    depth = check_positive_int("depth", depth)
    q = sigma_w**2 * q0 + sigma_b**2
    log_chi = []
    for _ in range(depth):
        log_chi.append(math.log(chi1(act, sigma_w, sigma_b, q=q)))
        q = length_map(act, sigma_w, sigma_b, q)
    # entry l = sum of log chi over layers l+1..L
    suffix = np.cumsum(np.asarray(log_chi)[::-1])[::-1]
    return np.concatenate([suffix, [0.0]])


# --------------------------------------------------------------------------- the live panel


@functools.lru_cache(maxsize=4)
def panel_data(width: int = PANEL_WIDTH, max_depth: int = MAX_DEPTH, seed: int = 0) -> tuple[Array, Array]:
    """The panel's stacked Jacobians ``(3, max_depth, n, n)`` (one network per activation) and ``u``.

    Network ``name`` is ``init_mlp(PRNGKey(seed), [n] * (max_depth + 1), PANEL_INITS[name])`` run on a fixed
    standard-normal input ``x = h_0`` (``PRNGKey(seed + 1)``); ``u`` is a fixed random unit vector
    (``PRNGKey(seed + 2)``), the output gradient ``dE/dh_L`` of the loss ``E = u . h_L``.
    """
    width = check_positive_int("width", width)
    max_depth = check_positive_int("max_depth", max_depth)
    key_w, key_x, key_u = jax.random.split(jax.random.PRNGKey(seed), 3)
    x0 = jax.random.normal(key_x, (width,))
    Js = []
    for name in PANEL_ACTIVATIONS:
        params = init_mlp(key_w, [width] * (max_depth + 1), init=PANEL_INITS[name])
        Js.append(layer_jacobians(params, x0, name))
    u = jax.random.normal(key_u, (width,))
    return jnp.stack(Js), u / jnp.linalg.norm(u)


_panel_kernel = jax.jit(jax.vmap(_prefix_log_sweep, in_axes=(0, None, None)))


def make_depth_figure() -> tuple[Figure, object]:
    """The depth panel: ``||dE/dh_l||`` against ``l`` on a log axis; returns ``(fig, update)``.

    ``update(depth, activation)`` draws the network of the first ``depth`` layers: the selected
    activation in colour with markers, the other two faint for comparison. It returns a status
    string when the gradient falls below float32's smallest normal number (a direct float32
    product in JAX on CPU would be flushed to 0; the panel computes in log space) or is exactly zero.
    """
    J_all, u = panel_data()
    # Room on the left for the 10^-42 tick labels and the y label beside them.
    fig, ax = new_figure(figsize=(6.0, 3.2), dpi=72, margins={"left": 0.15})
    ax.set_yscale("log")
    ax.set_xlim(-0.8, MAX_DEPTH + 0.8)
    ax.set_ylim(1e-42, 1e4)
    ax.set_xlabel("layer $l$ (0 = input)")
    ax.set_ylabel(r"$\|\partial E/\partial h_l\|$")
    ax.yaxis.set_label_coords(-0.14, 0.5)  # clear of the 10^-42 tick labels (new_figure pins -0.085)
    ax.axhline(FLOAT32_TINY, color="0.5", lw=0.8, ls=":")
    ax.text(0.2, FLOAT32_TINY * 3, "float32 smallest normal", fontsize=8, color="0.4", va="bottom")
    ax.axhline(1.0, color="0.7", lw=0.6)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    lines = {}
    for name in PANEL_ACTIVATIONS:
        (lines[name],) = ax.plot([], [], color=_COLORS[name], label=f"{name} ({PANEL_INITS[name]} init)")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    note = ax.set_title(" ", fontsize=9)
    # Warm-up: the one compilation happens here, not on the first slider move.
    _panel_kernel(J_all, u, np.int32(1)).block_until_ready()

    def update(depth: int = 20, activation: str = "sigmoid") -> str:
        check_name("activation", activation, PANEL_ACTIVATIONS)
        depth = check_positive_int("depth", depth)
        if depth > MAX_DEPTH:
            raise ValueError(f"depth must be at most {MAX_DEPTH}; got {depth}")
        logs = np.asarray(_panel_kernel(J_all, u, np.int32(depth)), dtype=np.float64)
        layers = np.arange(depth + 1)
        for i, name in enumerate(PANEL_ACTIVATIONS):
            line = lines[name]
            line.set_data(layers, np.exp(logs[i, : depth + 1]))
            selected = name == activation
            line.set_linewidth(2.0 if selected else 1.0)
            line.set_alpha(1.0 if selected else 0.3)
            line.set_marker("o" if selected else "")
            line.set_markersize(3)
            line.set_zorder(3 if selected else 2)
        sel = logs[PANEL_ACTIVATIONS.index(activation), : depth + 1]
        log10_in = sel[0] / _LN10
        note.set_text(
            f"{activation}, L = {depth}: the input gradient is exactly 0" if np.isneginf(log10_in)
            # Plain Unicode, not mathtext: mathtext costs ~10 ms per draw of a live panel.
            else f"{activation}, L = {depth}: ‖∂E/∂h₀‖ / ‖∂E/∂h_L‖"
            f" ≈ 10^{log10_in:.1f}"
        )
        if np.any(np.isneginf(sel)):
            return "zero gradient: a layer with no active unit stops the gradient exactly"
        if sel.min() < math.log(FLOAT32_TINY):
            return (f"underflow: the input gradient 1e{math.floor(sel.min() / _LN10)} is below float32's "
                    "smallest normal 1.2e-38 (drawn from log space)")
        return ""

    return fig, update


def depth_controls(depth: int = 20, activation: str = "sigmoid") -> dict[str, ipywidgets.ValueWidget]:
    """The panel's controls: a depth slider ``1..MAX_DEPTH`` and an activation selector."""
    return {
        "depth": ipywidgets.IntSlider(value=depth, min=1, max=MAX_DEPTH, description="depth L",
                                      continuous_update=True),
        "activation": ipywidgets.ToggleButtons(options=list(PANEL_ACTIVATIONS), value=activation,
                                               description="activation"),
    }


def make_depth_figure_live() -> tuple[Figure, object]:
    """:func:`make_depth_figure` with its fixed frame, ticks and legend frozen into pixels (live panel)."""
    fig, update = make_depth_figure()
    freeze_decorations(fig, fig.axes[0])
    return fig, update


@register_panel("ch01.depth")
def depth_panel() -> LivePanel:
    """A new live panel: per-layer ``||dE/dh_l||`` for a depth slider and an activation selector."""
    return LivePanel(make_depth_figure_live, depth_controls())


#: What the scrubber shows for each selected activation (the end of its alt sentence).
_SCRUBBER_FINDINGS = {
    "sigmoid": "the sigmoid network's gradient falls on a nearly straight line, to about 1e-34 at the "
    "input at depth 40, while the faint tanh curve falls more slowly and the faint ReLU curve stays near 1",
    "tanh": "the tanh network's gradient falls steadily with depth, more slowly than the faint sigmoid "
    "curve, while the faint ReLU curve stays near 1",
    "relu": "the ReLU network's gradient (He init) stays within a factor of 20 of 1 at every depth and "
    "layer, while the faint sigmoid and tanh curves fall",
}


def depth_scrubber(activation: str = "sigmoid", depths=SCRUBBER_DEPTHS, alt: str | None = None, dpi: int = 100):
    """The kernel-free twin of :func:`depth_panel` for the static book: a jshtml scrubber over depth.

    ``alt`` is the frames' alt text; by default a sentence saying what is plotted and what the
    selected activation's curve shows. ``dpi`` 100 draws a 600-pixel-wide frame, so its 8-point
    labels are about 11 pixels high in the book's column.
    """
    check_name("activation", activation, PANEL_ACTIVATIONS)
    depths = list(depths)
    if alt is None:
        alt = (f"Gradient norm ||dE/dh_l|| on a log axis against layer l, one frame per depth L from "
               f"{depths[0]} to {depths[-1]}: {_SCRUBBER_FINDINGS[activation]}.")
    return scrubber(make_depth_figure, "depth", values=depths, fixed={"activation": activation}, dpi=dpi,
                    alt=alt)


# --------------------------------------------------------------------------- static figures


def backprop_diagram(factor: float = 0.5, depth: int = 4) -> Figure:
    """The intuition picture: forward arrows ``h_{l-1} -> h_l``, backward arrows ``J_l^T``, bars ``||dE/dh_l||``.

    The bars are schematic: each backward step multiplies the gradient's size by ``factor``.
    """
    from matplotlib.patches import Circle

    factor = check_positive("factor", factor)
    depth = check_positive_int("depth", depth)
    fig, ax = new_figure(figsize=(7.0, 2.8), dpi=96)
    ax.set_xlim(-0.6, depth + 1.9)
    ax.set_ylim(-1.25, 1.3)
    ax.axis("off")
    for i in range(depth + 1):
        ax.add_patch(Circle((i, 0.75), 0.2, fc="#e8f0fe", ec="0.3"))
        ax.text(i, 0.75, f"$h_{i}$", ha="center", va="center", fontsize=11)
        # forward: h_i -> h_{i+1} (or -> E)
        ax.add_patch(FancyArrowPatch((i + 0.22, 0.85), (i + 0.78, 0.85), arrowstyle="-|>", mutation_scale=10,
                                     color="0.35"))
        ax.add_patch(FancyArrowPatch((i + 0.78, 0.62), (i + 0.22, 0.62), arrowstyle="-|>", mutation_scale=10,
                                     color="#d62728"))
        if i < depth:
            ax.text(i + 0.5, 1.0, f"$W_{i + 1}, \\phi$", ha="center", va="bottom", fontsize=8, color="0.35")
            ax.text(i + 0.5, 0.5, f"$J_{i + 1}^T$", ha="center", va="top", fontsize=9, color="#d62728")
        else:
            ax.text(i + 0.5, 0.5, rf"$\partial E/\partial h_{depth}$", ha="center", va="top", fontsize=8, color="#d62728")
    ax.text(depth + 1, 0.75, "$E$", ha="center", va="center", fontsize=12,
            bbox={"boxstyle": "round,pad=0.3", "fc": "#fff3e0", "ec": "0.4"})
    for i in range(depth + 1):
        h = factor ** (depth - i)
        ax.bar(i, -0.95 * h, bottom=0.2, width=0.32, color="#d62728", alpha=0.75)
    ax.text(depth + 1.05, -0.35, r"$\|\partial E/\partial h_l\|$" + "\n(schematic:\n" + rf"$\times${factor:g} per step)",
            ha="center", va="center", fontsize=8, color="#d62728")
    ax.text(-0.5, -1.2, f"forward (grey): $h_1, \\dots, h_{depth}$ from $h_0 = x$;  backward (red): "
            f"$\\partial E/\\partial h_{depth}$ times one transposed Jacobian per layer",
            fontsize=8, color="0.25", va="bottom")
    return fig


def jacobian_heatmaps(params, jacobians, product, layers) -> Figure:
    """Heat maps of ``W_l`` (top) and ``J_l = diag(phi'(a_l)) W_l`` (bottom) for the chosen ``layers``,
    one shared colour scale per column, and of ``dh_L/dh_0`` (last column, its own scale)."""
    layers = [check_positive_int("layers[]", int(l)) for l in layers]
    if not layers or max(layers) > len(params) or len(jacobians) != len(params):
        raise ValueError(f"layers must be 1-based layer numbers up to {len(params)}; got {layers}")
    ncols = len(layers) + 1
    fig, axes = new_figure(figsize=(1.75 * ncols, 3.7), dpi=96, nrows=2, ncols=ncols)

    def show(ax, M, vmax, title):
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        return im

    def colorbar(im, axs, vmax, fmt):
        cb = fig.colorbar(im, ax=axs, shrink=0.8, location="bottom", pad=0.03, aspect=12)
        cb.set_ticks([-vmax, 0.0, vmax])
        cb.set_ticklabels([fmt(-vmax), "0", fmt(vmax)])
        cb.ax.tick_params(labelsize=8)

    for c, l in enumerate(layers):
        W = np.asarray(params[l - 1]["W"])
        J = np.asarray(jacobians[l - 1])
        vmax = float(np.abs(W).max())
        show(axes[0, c], W, vmax, f"$W_{{{l}}}$")
        im = show(axes[1, c], J, vmax, f"$J_{{{l}}}$")
        colorbar(im, axes[:, c], vmax, lambda v: f"{v:.2f}")
    P = np.asarray(product)
    vmax = float(np.abs(P).max())
    im = show(axes[0, -1], P, vmax, r"$\partial h_L/\partial h_0$")
    colorbar(im, axes[0, -1], vmax, lambda v: f"{v:.0e}")
    axes[1, -1].axis("off")
    return fig


def layer_gradient_figure(grad_norms, inits) -> Figure:
    """Per-layer ``||dE/dtheta_l||`` on a log axis, one line per activation (layer 1 = first layer).

    ``grad_norms`` maps an activation name to its ``(L,)`` norms, ``inits`` the same names to the
    initialization shown in the legend.
    """
    if not grad_norms or set(grad_norms) != set(inits):
        raise ValueError(f"grad_norms and inits must name the same activations; got {list(grad_norms)}, {list(inits)}")
    fig, ax = new_figure(figsize=(6.4, 3.4), dpi=100, margins={"left": 0.13, "bottom": 0.16, "top": 0.95})
    for name, norms in grad_norms.items():
        norms = np.asarray(norms)
        ax.semilogy(np.arange(1, norms.size + 1), norms, "o-", ms=4, color=_COLORS.get(name, "0.3"),
                    label=f"{name} ({inits[name]} init)")
        L = norms.size
    ax.set_xlabel("layer $l$ (1 = first layer)")
    ax.set_ylabel(r"$\|\partial E/\partial \theta_l\|$")
    ax.set_xticks([1] + list(range(5, L + 1, 5)))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def mean_field_figure(measured, predicted, inits) -> Figure:
    """``log10 E||dE/dh_l||^2`` measured (dots) against the mean-field prediction (lines), per activation.

    All three arguments are dicts keyed by activation: ``(L+1,)`` arrays of log10 values for
    ``measured`` and ``predicted``, the initialization's name for ``inits``.
    """
    if not measured or not (set(measured) == set(predicted) == set(inits)):
        raise ValueError("measured, predicted and inits must name the same activations")
    fig, ax = new_figure(figsize=(6.4, 3.6), dpi=100, margins={"left": 0.13, "bottom": 0.15, "top": 0.95})
    for name in measured:
        layers = np.arange(len(measured[name]))
        color = _COLORS.get(name, "0.3")
        ax.plot(layers, predicted[name], "-", color=color, alpha=0.6)
        ax.plot(layers, measured[name], "o", ms=4, color=color, label=f"{name} ({inits[name]} init)")
    L = len(layers) - 1
    ax.set_xlabel("layer $l$")
    ax.set_xticks(range(0, L + 1, 5))
    ax.set_ylabel(r"$\log_{10}\, \mathbb{E}\|\partial E/\partial h_l\|^2$")
    ax.legend(fontsize=8, loc="lower right", title="dots: measured\nlines: mean-field theory", title_fontsize=8)
    ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------- exercises


def exercise_layer() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A 3-unit tanh layer ``h_1 = tanh(W x + b)`` and its input ``x``, small numbers for working by hand."""
    W = np.array([[0.5, -1.0, 0.0], [0.25, 0.5, -0.5], [-1.0, 0.0, 1.0]], dtype=np.float32)
    b = np.array([0.0, 0.5, -0.25], dtype=np.float32)
    x = np.array([1.0, 0.5, -0.5], dtype=np.float32)
    return {"W": W, "b": b}, x


def check_layer_jacobian(answer) -> bool:
    """Self-check for the one-layer exercise: is ``answer`` the Jacobian ``dh_1/dx``?

    Compared (``rtol=1e-4``) with :func:`vgplib.layer_jacobians`, which differentiates the layer by
    autodiff. Prints a verdict and returns ``True``/``False``.
    """
    if unanswered("set the variable to your (3, 3) array and run the cell again.", answer):
        return False
    A = np.asarray(answer, dtype=np.float64)
    layer, x = exercise_layer()
    J = np.asarray(layer_jacobians([{k: jnp.asarray(v) for k, v in layer.items()}], x, "tanh")[0])
    if A.shape != J.shape:
        return report_answer(False, "", f"the Jacobian of a 3 -> 3 layer has shape {J.shape}; got {A.shape}.")
    if np.allclose(A, J, rtol=1e-4, atol=1e-6):
        return report_answer(True, "J = diag(1 - tanh(a)^2) W matches autodiff", "")
    if np.allclose(A, J.T, rtol=1e-4, atol=1e-6):
        return report_answer(False, "", "that is the transpose: row i of J belongs to output unit i.")
    if np.allclose(A, layer["W"], rtol=1e-4, atol=1e-6):
        return report_answer(False, "", "that is W alone: scale row i by phi'(a_i) = 1 - tanh(a_i)^2.")
    return report_answer(False, "", "compute a = W x + b first, then scale row i of W by 1 - tanh(a_i)^2.")


def exercise_two_layer_net() -> tuple[list[dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    """A sigmoid net 2 -> 2 -> 1 with ``E = (h_2 - y)^2 / 2``; returns ``(params, x, y)``."""
    params = [
        {"W": np.array([[1.0, -1.0], [0.5, 2.0]], dtype=np.float32), "b": np.array([0.0, -1.0], dtype=np.float32)},
        {"W": np.array([[2.0, -1.0]], dtype=np.float32), "b": np.array([0.5], dtype=np.float32)},
    ]
    return params, np.array([1.0, 0.5], dtype=np.float32), np.array([1.0], dtype=np.float32)


def _two_layer_reference() -> list[np.ndarray]:
    """``delta_l = dE/da_l = dE/db_l`` by ``jax.grad`` with respect to the biases (not the recursion)."""
    params, x0, y = exercise_two_layer_net()
    params = [{k: jnp.asarray(v) for k, v in p.items()} for p in params]

    def loss(p):
        out = mlp_forward(p, x0, "sigmoid")
        return 0.5 * jnp.sum((out - y) ** 2)

    grads = jax.grad(loss)(params)
    return [np.asarray(g["b"]) for g in grads]


def check_deltas(delta_1, delta_2) -> bool:
    """Self-check for the two-layer exercise: are these ``delta_1 = dE/da_1`` (shape 2) and ``delta_2`` (shape 1)?

    Compared (``rtol=1e-4``) with ``dE/db_l`` from ``jax.grad``, which equals ``delta_l`` because
    ``a_l = W_l h_{l-1} + b_l``. Prints a verdict and returns ``True``/``False``.
    """
    if unanswered("set delta_1 and delta_2 to your arrays and run the cell again.", delta_1, delta_2):
        return False
    ref_1, ref_2 = _two_layer_reference()
    d1 = np.atleast_1d(np.asarray(delta_1, dtype=np.float64))
    d2 = np.atleast_1d(np.asarray(delta_2, dtype=np.float64))
    if d2.shape != ref_2.shape or not np.allclose(d2, ref_2, rtol=1e-4, atol=1e-7):
        return report_answer(False, "", "delta_2 = sigma'(a_2) * (h_2 - y) with sigma'(a) = sigma(a) (1 - sigma(a)).")
    if d1.shape != ref_1.shape or not np.allclose(d1, ref_1, rtol=1e-4, atol=1e-7):
        return report_answer(False, "", "delta_1 = sigma'(a_1) * (W_2^T delta_2): an elementwise product, shape (2,).")
    return report_answer(True, "both deltas match jax.grad", "")
