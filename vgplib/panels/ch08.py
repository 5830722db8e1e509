"""Chapter 8, *Normalization*: its live panel, its experiments' helpers and its exercises.

Notation (DESIGN.md 2b): ``a_l = W_l h_{l-1} + b_l``, ``h_l = phi(N(a_l))`` with ``N`` BatchNorm
(over the batch) or LayerNorm (over the units), ``h_0 = x``; ``g_l = dE/dh_l`` is the back-propagated
gradient of the WHOLE batch, shape ``(B, n)``.

The live panel measures, at initialization, ``||g_l||_F / ||g_L||_F`` at every layer of a normalized
MLP of width 64 (weights ``W_l = sigma_w Z_l / sqrt(n)``, ``Z_l`` fixed standard normal, no biases)
for the loss ``E = sum_{b,i} G_{bi} h_L[b, i]`` (``G`` a fixed standard-normal matrix), exactly,
through the batch map (:func:`vgplib.normalization.masked_gradient_log_norms`: one compiled sweep
for every batch size, depth, normalization and activation; the batch is the first ``B`` rows of a
fixed ``64 x 64`` input behind a mask). The theory line is ``lambda^((L - l)/2)`` with the per-layer
factor ``lambda`` of :func:`vgplib.normalized_gradient_growth` (BatchNorm with the finite-batch
correction ``(B-2)/(B-3)``, LayerNorm) or ``vgplib.chi1`` (no normalization, critical ``sigma_w``).
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

from vgplib._validate import check_name, check_positive_int
from vgplib.normalization import (
    NORM_INDEX,
    masked_gradient_log_norms,
    normalize,
    normalized_gradient_growth,
)
from vgplib.plots import freeze_decorations, new_figure, plain_log_yaxis
from vgplib.theory import chi1
from vgplib.training import scanned_mlp_loss_fn
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

#: The live panel's network: width, largest batch, smallest batch, largest depth, activations.
PANEL_WIDTH = 64
MAX_BATCH = 64
MIN_BATCH = 4
MAX_DEPTH = 50
PANEL_ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "tanh")
#: The panel's normalization choices ("none" stands for ``norm=None``).
PANEL_NORMS: tuple[str, ...] = ("none", "batch", "layer")
#: Weight scale of each activation (critical without normalization; normalization makes it irrelevant).
SIGMA_W = {"linear": 1.0, "relu": math.sqrt(2.0), "tanh": 1.0}
#: Batch sizes of the kernel-free scrubber (BatchNorm, ReLU, depth 50).
SCRUBBER_BATCHES: tuple[int, ...] = (4, 5, 6, 8, 12, 16, 24, 32, 48, 64)
EPS = 1e-5
#: The panel's fixed y range of ||g_l|| / ||g_L||.
Y_RANGE = (1e-2, 1e13)
_COLORS = {"none": "0.35", "batch": "#d62728", "layer": "#1f77b4"}
_LN10 = math.log(10.0)


def _norm_arg(norm: str) -> str | None:
    check_name("norm", norm, PANEL_NORMS)
    return None if norm == "none" else norm


def growth_factor(activation: str, norm: str, batch: int) -> float:
    """Predicted factor per layer of ``||g_l||^2`` in the panel's network.

    ``norm="batch"``: :func:`vgplib.normalized_gradient_growth` with the finite-batch correction;
    ``"layer"``: the same function's LayerNorm factor; ``"none"``: ``vgplib.chi1`` at the critical
    ``SIGMA_W`` (1 for every panel activation: ``sigma_w^2`` for linear, ``sigma_w^2/2`` for ReLU,
    ``tanh'(0)^2 sigma_w^2`` at ``q* = 0`` for tanh).
    """
    check_name("activation", activation, PANEL_ACTIVATIONS)
    return _growth_factor(activation, norm, int(batch) if norm == "batch" else 0)


@functools.cache
def _growth_factor(activation: str, norm: str, batch: int) -> float:
    norm_arg = _norm_arg(norm)
    if norm_arg is None:
        q = None if activation == "tanh" else 1.0
        return chi1(activation, SIGMA_W[activation]) if q is None else chi1(activation, SIGMA_W[activation], q=q)
    return normalized_gradient_growth(activation, norm_arg, batch if norm_arg == "batch" else None)


@functools.lru_cache(maxsize=2)
def panel_data(width: int = PANEL_WIDTH, batch: int = MAX_BATCH, max_depth: int = MAX_DEPTH, seed: int = 0):
    """The panel's fixed random numbers: ``Z`` ``(max_depth, n, n) / sqrt(n)``, inputs ``X`` ``(B, n)``,
    output gradient ``G`` ``(B, n)``; all standard normal, keys from ``PRNGKey(seed)``."""
    width = check_positive_int("width", width)
    batch = check_positive_int("batch", batch)
    max_depth = check_positive_int("max_depth", max_depth)
    kz, kx, kg = jax.random.split(jax.random.PRNGKey(seed), 3)
    Z = jax.random.normal(kz, (max_depth, width, width)) / math.sqrt(width)
    X = jax.random.normal(kx, (batch, width))
    G = jax.random.normal(kg, (batch, width))
    return Z, X, G


@functools.lru_cache(maxsize=4)
def _scaled_weights(activation: str):
    Z, _, _ = panel_data()
    return Z * np.float32(SIGMA_W[activation]), jnp.zeros(Z.shape[:2])


def gradient_profile(activation: str, norm: str, batch: int, depth: int) -> dict:
    """The panel's numbers for one setting, as NumPy float64 **log10** values.

    Keys: ``measured`` ``(depth+1,)`` ``log10 ||g_l|| / ||g_L||`` for ``l = 0..depth`` (exact,
    through the batch map); ``theory`` ``(depth+1,)`` ``(depth - l)/2 * log10(lambda)``; ``factor``
    ``lambda`` (:func:`growth_factor`); ``measured_factor`` the measured factor per layer of
    ``||g||^2`` (``(||g_0|| / ||g_L||)^(2/depth)``).
    """
    check_name("activation", activation, PANEL_ACTIVATIONS)
    norm_arg = _norm_arg(norm)
    batch = check_positive_int("batch", batch)
    depth = check_positive_int("depth", depth)
    if not MIN_BATCH <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be between {MIN_BATCH} and {MAX_BATCH}; got {batch}")
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be at most {MAX_DEPTH}; got {depth}")
    W, b = _scaled_weights(activation)
    _, X, G = panel_data()
    mask = (np.arange(MAX_BATCH) < batch).astype(np.float32)
    logs = masked_gradient_log_norms(W, b, X, G * mask[:, None], np.int32(PANEL_ACTIVATIONS.index(activation)),
                                     np.int32(NORM_INDEX.index(norm_arg)), np.int32(depth), mask,
                                     np.float32(EPS), PANEL_ACTIVATIONS)
    logs = np.asarray(logs, np.float64)[: depth + 1]
    measured = (logs - logs[depth]) / _LN10
    lam = growth_factor(activation, norm, batch)
    theory = 0.5 * (depth - np.arange(depth + 1)) * math.log10(lam)
    return {"measured": measured, "theory": theory, "factor": lam,
            "measured_factor": float(10 ** (2 * measured[0] / depth))}


def make_gradient_figure() -> tuple[Figure, object]:
    """The panel: measured ``||g_l|| / ||g_L||`` (dots) and the theory line ``lambda^((L-l)/2)``.

    ``update(batch, depth, norm, activation)`` redraws in place; the status is always "" (the
    panel's gradients stay far inside float32's range at depth 50).
    """
    fig, ax = new_figure(figsize=(6.0, 3.4), dpi=96, margins={"left": 0.15, "top": 0.80, "bottom": 0.15,
                                                               "right": 0.97})
    plain_log_yaxis(ax)
    ax.set_xlim(-1, MAX_DEPTH + 1)
    ax.set_xlabel("layer $l$ (0 = input)")
    ax.set_ylabel(r"$\|g_l\|_F \,/\, \|g_L\|_F$")
    ax.yaxis.set_label_coords(-0.12, 0.5)
    # one fixed range for every setting (BatchNorm-ReLU at B = 4, L = 50 reaches about 1e12): the
    # settings compare at a glance, and the tick labels are not re-laid out on every move
    ax.set_ylim(*Y_RANGE)
    ax.axhline(1.0, color="0.8", lw=0.6)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    # the dots take the normalization's colour per update; the legend (drawn once) shows them in grey
    (meas,) = ax.plot([], [], "o", ms=3.5, color="0.35", label="measured (exact batch gradient)")
    (theo,) = ax.plot([], [], "-", lw=1.4, color="k", alpha=0.8, label=r"theory $\lambda^{(L-l)/2}$")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False, ncol=2)
    title = ax.set_title(" ", fontsize=9, y=1.12)
    for act in PANEL_ACTIVATIONS:  # warm-up: the one compilation, and the theory numbers
        for norm in PANEL_NORMS:
            gradient_profile(act, norm, MAX_BATCH, MAX_DEPTH)

    def update(batch: int = 16, depth: int = 30, norm: str = "batch", activation: str = "relu") -> str:
        prof = gradient_profile(activation, norm, batch, depth)
        layers = np.arange(depth + 1)
        meas.set_data(layers, 10.0 ** prof["measured"])
        meas.set_color(_COLORS[norm])
        theo.set_data(layers, 10.0 ** prof["theory"])
        name = {"none": "no normalization", "batch": f"BatchNorm, B = {batch}", "layer": "LayerNorm"}[norm]
        title.set_text(f"{activation}, {name}, L = {depth}: \u2016g\u2016\u00b2 grows by "
                       f"{prof['measured_factor']:.3f} per layer (theory {prof['factor']:.3f})")
        return ""

    return fig, update


def make_gradient_figure_live() -> tuple[Figure, object]:
    """:func:`make_gradient_figure` with its fixed frame (log ticks, labels, grid, legend) frozen into
    pixels (live panel; the scrubber keeps the plain figure)."""
    fig, update = make_gradient_figure()
    freeze_decorations(fig, fig.axes[0])
    return fig, update


def gradient_controls(batch: int = 16, depth: int = 30, norm: str = "batch", activation: str = "relu") -> dict:
    """Batch-size slider ``4..64``, depth slider ``1..50``, normalization and activation selectors."""
    return {
        "batch": ipywidgets.IntSlider(value=batch, min=MIN_BATCH, max=MAX_BATCH, description="batch B"),
        "depth": depth_slider(depth, MAX_DEPTH),
        "norm": ipywidgets.ToggleButtons(options=list(PANEL_NORMS), value=norm, description="norm"),
        "activation": ipywidgets.ToggleButtons(options=list(PANEL_ACTIVATIONS), value=activation,
                                               description="activation"),
    }


@register_panel("ch08.batch_gradients")
def gradient_panel() -> LivePanel:
    """A new live panel: per-layer batch gradients at initialization against the theory line."""
    controls = gradient_controls()
    for act in PANEL_ACTIVATIONS:  # every theory number once, at first show (a move costs none)
        for norm in PANEL_NORMS:
            for batch in range(MIN_BATCH, MAX_BATCH + 1):
                growth_factor(act, norm, batch if norm == "batch" else MIN_BATCH)
    return LivePanel(make_gradient_figure_live, controls, freeze_legend=True)


def gradient_scrubber(activation: str = "relu", norm: str = "batch", depth: int = MAX_DEPTH,
                      batches: Sequence[int] = SCRUBBER_BATCHES, alt: str | None = None, dpi: int = 100):
    """The kernel-free twin of :func:`gradient_panel`: a jshtml scrubber over the batch size."""
    check_name("activation", activation, PANEL_ACTIVATIONS)
    _norm_arg(norm)
    values = [int(b) for b in batches]
    if alt is None:
        alt = (f"Gradient norm against layer (log scale) in a {activation} network with {norm} normalization "
               f"of depth {int(depth)} at initialization, one frame per batch size from {min(values)} to "
               f"{max(values)}: the measured exact batch gradient and the predicted line, showing that "
               "the growth per layer is fastest for the smallest batches.")
    return scrubber(make_gradient_figure, "batch", values=values,
                    fixed={"depth": int(depth), "norm": norm, "activation": activation}, alt=alt, dpi=dpi)


# --------------------------------------------------------------------------- experiments


@functools.partial(jax.jit, static_argnames=("activations", "depth"))
def _growth_sweep(W, X, G, masks, act_idx, norm_idx, depth, activations):
    """``log ||g_l||`` for every (seed, batch mask): vmapped :func:`masked_gradient_log_norms`."""
    b = jnp.zeros(W.shape[:-1])

    def one(Wm, bm, Xm, Gm, mask):
        return masked_gradient_log_norms(Wm, bm, Xm, Gm * mask[:, None], act_idx, norm_idx, depth, mask, EPS,
                                         activations)

    per_mask = jax.vmap(one, in_axes=(None, None, None, None, 0))
    return jax.vmap(per_mask, in_axes=(0, 0, 0, 0, None))(W, b, X, G, masks)


def growth_experiment(activations: Sequence[str] = PANEL_ACTIVATIONS, batches: Sequence[int] = (4, 6, 8, 16, 32, 64),
                      norms: Sequence[str] = ("batch", "layer"), width: int = 128, depth: int = 40,
                      seeds: int = 3, skip_top: int = 10) -> dict:
    """Measured per-layer factor of ``||g_l||^2`` at initialization, for every activation, norm and batch size.

    For each of ``seeds`` networks (``W_l = Z_l / sqrt(width)``, inputs and output gradient ``G``
    standard normal; BatchNorm and LayerNorm make the weight scale irrelevant), the exact batch
    gradient is swept down ``depth`` layers and the factor is ``exp(-2 s)`` with ``s`` the
    least-squares slope of ``log ||g_l||`` over ``l = 0..depth - skip_top`` (the top ``skip_top``
    layers, where the random ``G`` settles, are left out). Returns ``{(activation, norm): array
    (seeds, len(batches))}`` and ``"batches"``.

    Everything, the random draws included, runs in float64. At small batches the BatchNorm forward
    pass amplifies a change in the last bit of the weights to a visible change in the factor: in
    float32 (where ``jax.random.normal`` itself rounds differently with the CPU's instruction set) the
    B = 4 factor of ReLU moved by 2 % between AVX-512 and SSE4.2 code; in float64 it agrees to 5 digits.
    """
    batches = [check_positive_int("batch", b) for b in batches]
    if min(batches) < MIN_BATCH:
        raise ValueError(f"batches must be at least {MIN_BATCH}; got {min(batches)}")
    width, depth, seeds = (check_positive_int(k, v) for k, v in (("width", width), ("depth", depth), ("seeds", seeds)))
    if not 0 <= skip_top <= depth - 3:
        raise ValueError(f"skip_top must be between 0 and depth - 3; got {skip_top}")
    for act in activations:
        check_name("activation", act, PANEL_ACTIVATIONS)
    for norm in norms:
        _norm_arg(norm)
    b_max = max(batches)
    f64 = jnp.float64
    layers = np.arange(depth - skip_top + 1)
    out: dict = {"batches": np.array(batches)}
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.PRNGKey(100), seeds)

        def draw(k):
            kz, kx, kg = jax.random.split(k, 3)
            return (jax.random.normal(kz, (depth, width, width), f64) / math.sqrt(width),
                    jax.random.normal(kx, (b_max, width), f64), jax.random.normal(kg, (b_max, width), f64))

        W, X, G = jax.vmap(draw)(keys)
        masks = jnp.asarray(np.array([np.arange(b_max) < b for b in batches], np.float64))
        logs_all = {(act, norm): np.asarray(_growth_sweep(W, X, G, masks, np.int32(PANEL_ACTIVATIONS.index(act)),
                                                          np.int32(NORM_INDEX.index(_norm_arg(norm))), depth,
                                                          PANEL_ACTIVATIONS))
                    for act in activations for norm in norms}
    for act in activations:
        for norm in norms:
            logs = logs_all[(act, norm)]
            slopes = np.polyfit(layers, logs[..., : depth - skip_top + 1].reshape(-1, layers.size).T, 1)[0]
            out[(act, norm)] = np.exp(-2.0 * slopes).reshape(seeds, len(batches))
    return out


def growth_figure(result: Mapping) -> Figure:
    """Measured factor per layer (mean and range over seeds) against the batch size, with the theory:
    BatchNorm (solid, :func:`vgplib.normalized_gradient_growth` with ``(B-2)/(B-3)``; dotted: the
    large-batch limit) and LayerNorm (dashed), one panel per activation."""
    batches = np.asarray(result["batches"])
    acts = [a for a in PANEL_ACTIVATIONS if (a, "batch") in result]
    fig, axes = new_figure(figsize=(7.0, 2.9), dpi=96, ncols=len(acts),
                           margins={"left": 0.1, "right": 0.99, "bottom": 0.17, "top": 0.86, "wspace": 0.3})
    axes = np.atleast_1d(axes)
    grid = np.arange(4, batches.max() + 1)
    for ax, act in zip(axes, acts):
        for norm, style in (("batch", "o"), ("layer", "s")):
            if (act, norm) not in result:
                continue
            r = result[(act, norm)]
            mean = r.mean(0)
            ax.errorbar(batches, mean, yerr=[mean - r.min(0), r.max(0) - mean], fmt=style, ms=4,
                        color=_COLORS[norm], capsize=2, label=f"{norm}, measured")
        ax.plot(grid, [normalized_gradient_growth(act, "batch", int(b)) for b in grid], "-", color=_COLORS["batch"],
                lw=1.2, label="batch, theory")
        ax.axhline(normalized_gradient_growth(act, "batch"), color=_COLORS["batch"], lw=0.9, ls=":",
                   label=r"batch, $B \to \infty$")
        ax.axhline(normalized_gradient_growth(act, "layer"), color=_COLORS["layer"], lw=1.2, ls="--",
                   label="layer, theory")
        ax.set_xscale("log", base=2)
        ax.set_xticks([4, 8, 16, 32, 64])
        ax.set_xticklabels(["4", "8", "16", "32", "64"])
        ax.set_title(act, fontsize=9)
        ax.set_xlabel("batch size $B$")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(r"factor per layer of $\|g_l\|^2$")
    axes[0].yaxis.set_label_coords(-0.24, 0.5)  # clear of the tick labels
    axes[0].legend(fontsize=8, frameon=False, loc="upper right")
    return fig


def jacobian_figure(J_batch, J_layer) -> Figure:
    """``|dh_l[b, i] / dh_{l-1}[c, j]|`` of one layer as a ``(B n) x (B n)`` picture, BatchNorm (left)
    beside LayerNorm (right), with lines between the examples' ``n x n`` blocks."""
    from matplotlib.colors import LogNorm

    fig, axes = new_figure(figsize=(7.0, 3.4), dpi=96, ncols=2,
                           margins={"left": 0.07, "right": 0.88, "bottom": 0.1, "top": 0.88, "wspace": 0.25})
    mats = []
    for J in (J_batch, J_layer):
        J = np.asarray(J, np.float64)
        B, n = J.shape[0], J.shape[1]
        mats.append(np.abs(J.reshape(B * n, B * n)))
    top = max(m.max() for m in mats)
    cnorm = LogNorm(vmin=top * 1e-4, vmax=top)
    for ax, m, name in zip(axes, mats, ("BatchNorm", "LayerNorm")):
        image = ax.imshow(np.where(m > top * 1e-4, m, np.nan), cmap="viridis", norm=cnorm, interpolation="nearest")
        for k in range(1, B):
            ax.axhline(k * n - 0.5, color="w", lw=0.6)
            ax.axvline(k * n - 0.5, color="w", lw=0.6)
        ax.set_xticks(np.arange(B) * n + (n - 1) / 2)
        ax.set_xticklabels([str(c) for c in range(B)])
        ax.set_yticks(np.arange(B) * n + (n - 1) / 2)
        ax.set_yticklabels([str(c) for c in range(B)])
        ax.set_xlabel("input example $c$ (block of $n$ units)", fontsize=8)
        ax.set_title(name, fontsize=9)
    axes[0].set_ylabel("output example $b$", fontsize=8)
    cax = fig.add_axes([0.9, 0.12, 0.02, 0.72])
    fig.colorbar(image, cax=cax).ax.tick_params(labelsize=8)
    return fig


def training_figure(steps, losses: Mapping[str, np.ndarray], changes: Mapping[str, np.ndarray]) -> Figure:
    """Left: the training loss of every run (one line per seed). Right: the final relative weight change
    ``||W_l(T) - W_l(0)|| / ||W_l(0)||`` per layer (median over seeds, band: min to max); a change of
    exactly 0 is drawn at the bottom edge with a cross."""
    fig, (a1, a2) = new_figure(figsize=(7.0, 3.0), dpi=96, ncols=2,
                               margins={"left": 0.08, "right": 0.98, "bottom": 0.16, "top": 0.88, "wspace": 0.28})
    colors = ["0.35", "#d62728", "#1f77b4", "#2ca02c"]
    floor = 1e-13
    for color, (name, loss) in zip(colors, losses.items()):
        a1.plot(steps, loss, color=color, lw=1.0, alpha=0.8)
        a1.plot([], [], color=color, label=name)
        c = np.asarray(changes[name], np.float64)
        layers = np.arange(1, c.shape[1] + 1)
        med = np.median(c, axis=0)
        a2.fill_between(layers, np.maximum(c.min(0), floor), np.maximum(c.max(0), floor), color=color, alpha=0.2)
        a2.semilogy(layers, np.where(med > 0, med, np.nan), "o-", ms=3, color=color)
        zero = med == 0
        a2.semilogy(layers[zero], np.full(zero.sum(), floor), "x", color=color, ms=5)
    a1.axhline(math.log(10), color="0.5", lw=0.8, ls=":")
    a1.set_xlabel("step")
    a1.set_title(r"training loss (dotted: $\ln 10$, chance)", fontsize=9)
    a1.set_ylim(0, 3.0)
    a1.legend(fontsize=8, frameon=False, loc="upper right")
    a2.set_ylim(floor / 3, 10)
    a2.set_xlabel("layer $l$")
    a2.set_title(r"$\|W_l(T) - W_l(0)\| / \|W_l(0)\|$ (x: exactly 0)", fontsize=9)
    a2.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------- exercises


#: The exercises' settings: the batch of the rank question and of the linear network, the ReLU depth.
RANK_EXERCISE_BATCH = 10
LINEAR_EXERCISE_BATCH = 10
RELU_EXERCISE_DEPTH = 50


@functools.cache
def expected_bn_rank() -> int:
    """The numerical rank of one unit's ``B x B`` BatchNorm Jacobian at ``B = 10``, ``eps = 0``: ``jax.jacfwd``
    of :func:`vgplib.normalize` (autodiff of the forward map, not the closed form) at a float64 batch in
    general position, by ``np.linalg.matrix_rank``."""
    with jax.enable_x64(True):
        a = jax.random.normal(jax.random.PRNGKey(3), (RANK_EXERCISE_BATCH,), jnp.float64)
        J = jax.jacfwd(lambda v: normalize(v[:, None], "batch", eps=0.0)[:, 0])(a)
        return int(np.linalg.matrix_rank(np.asarray(J)))


def expected_relu_limit() -> float:
    """``lambda_infinity`` of BatchNorm-ReLU, ``E[phi'^2] / Var(phi)`` by :func:`vgplib.normalized_gradient_growth`'s
    quadrature."""
    return normalized_gradient_growth("relu", "batch")


def expected_relu_decades() -> float:
    """Decades by which ``||g||`` grows over 50 BatchNorm-ReLU layers in the large-batch limit:
    ``log10(lambda_infinity^(50/2))`` (``lambda`` multiplies ``||g||^2``)."""
    return RELU_EXERCISE_DEPTH / 2 * math.log10(expected_relu_limit())


def expected_linear_bn_factor() -> float:
    """The per-layer factor of ``E ||g||^2`` of a linear BatchNorm network at ``B = 10``
    (:func:`vgplib.normalized_gradient_growth` with the finite-batch correction)."""
    return normalized_gradient_growth("linear", "batch", LINEAR_EXERCISE_BATCH)


def check_bn_rank(rank) -> bool:
    """Self-check: the rank of one unit's BatchNorm Jacobian block ``(B x B)`` for ``B = 10``
    examples in general position and ``eps = 0`` (``B - 2 = 8``; :func:`expected_bn_rank`)."""
    if unanswered("set rank to your integer and run the cell again.", rank):
        return False
    rank = int(rank)
    ref = expected_bn_rank()
    if rank == ref:
        return report_answer(True, f"rank B - 2 = {ref}: the batch mean and the direction of the centered batch "
                             "vector are projected out", "")
    if rank == ref + 1:
        return report_answer(False, "", "the mean is not the only direction removed: rescaling the whole centered "
                             "vector does not change its normalized value either.")
    return report_answer(False, "", "N(a) does not change when a constant is added to every example, nor when the "
                         "centered vector is scaled; count the directions left.")


def check_relu_limit(factor) -> bool:
    """Self-check: the large-batch factor per layer of ``E ||g_l||^2`` in a BatchNorm-ReLU network,
    ``pi / (pi - 1)``, to 1e-3 relative (:func:`expected_relu_limit`)."""
    if unanswered("set factor to your number and run the cell again.", factor):
        return False
    target = expected_relu_limit()
    if math.isclose(float(factor), target, rel_tol=1e-3):
        return report_answer(True, f"E[relu'^2] / Var(relu(z)) = (1/2) / (1/2 - 1/(2 pi)) = {target:.4f}", "")
    if math.isclose(float(factor), normalized_gradient_growth("relu", "layer"), rel_tol=1e-3):
        return report_answer(False, "", "1 is the LayerNorm answer (second moment); BatchNorm divides by the "
                             "VARIANCE over the batch, and ReLU outputs have mean 1/sqrt(2 pi).")
    return report_answer(False, "", "compute E[phi'(z)^2] and Var(phi(z)) for z ~ N(0, 1) and phi = ReLU.")


def check_relu_decades(decades) -> bool:
    """Self-check: by how many decades ``||g||`` grows over 50 BatchNorm-ReLU layers in the large-batch
    limit (:func:`expected_relu_decades`, 4.16; answers within 0.05 decades, so the rounded 4.2 too)."""
    if unanswered("set decades to your number and run the cell again.", decades):
        return False
    decades = answer_number("decades", decades)
    ref = expected_relu_decades()
    if abs(decades - ref) <= 0.05:
        return report_answer(True, f"||g|| grows by lambda^(50/2) = 10^{ref:.2f}: about four decades over 50 layers", "")
    if abs(decades - 2.0 * ref) <= 0.1:
        return report_answer(False, "", "that is the growth of ||g||^2; lambda multiplies the SQUARED norm, so "
                             "||g|| grows by lambda^(1/2) per layer.")
    return report_answer(False, "", "||g||^2 grows by lambda per layer: take log10 of lambda^(L/2).")


def check_linear_bn_factor(factor) -> bool:
    """Self-check: the per-layer factor of a linear BatchNorm network with ``B = 10``: ``(B-2)/(B-3) = 8/7``
    (:func:`expected_linear_bn_factor`)."""
    if unanswered("set factor to your number and run the cell again.", factor):
        return False
    ref = expected_linear_bn_factor()
    if math.isclose(float(factor), ref, rel_tol=1e-3):
        return report_answer(True, f"(B - 2)/(B - 3) = 8/7 = {ref:.3f}: a linear BatchNorm network still explodes, "
                             f"by {100 * (ref - 1):.0f} % per layer at B = 10", "")
    if math.isclose(float(factor), normalized_gradient_growth("linear", "batch"), rel_tol=1e-3):
        return report_answer(False, "", "1 is the large-batch limit; at B = 10 the variance estimate has only "
                             "B - 1 degrees of freedom and E[1/s^2] > 1/E[s^2].")
    return report_answer(False, "", "use the finite-batch correction (B - 2)/(B - 3) of the chapter.")


# --------------------------------------------------------------------------- training (chapter 3's network)


def scanned_loss_fn(activation: str = "sigmoid", norm: str = "none"):
    """``loss_fn(params, x, y)`` for :func:`vgplib.train_many`: chapter 3's deep classifier with ``norm``.

    ``params = {"hidden": {"W": (L-1, n, n), "b": (L-1, n)}, "out": {"W": (10, n), "b": (10,)}}``
    (:func:`stack_classifier`); every hidden layer is :func:`vgplib.normalization.norm_layer`,
    ``h_l = phi(N(W_l h_{l-1} + b_l))``, scanned with ``lax.scan`` (one layer body to compile instead
    of ``L``), then the linear output and the mean softmax cross-entropy:
    :func:`vgplib.scanned_mlp_loss_fn`, the same function as ``vgplib.mlp_loss_fn(activation, norm=...)``
    on the unstacked layers (tested); cached, so :func:`vgplib.train_many` reuses its compilation.
    """
    from vgplib.normalization import DEFAULT_EPS

    check_name("activation", activation, ("sigmoid", "tanh", "relu", "linear"))
    return scanned_mlp_loss_fn(activation, _norm_arg(norm), DEFAULT_EPS)


def stack_classifier(params) -> dict:
    """``{"hidden": stacked square layers, "out": last layer}`` from a list of layers whose first
    ``L - 1`` are square of one width (chapter 3's ``[64] * 20 + [10]``)."""
    from vgplib.networks import stack_params

    return {"hidden": stack_params(params[:-1]), "out": dict(params[-1])}


def classifier_accuracy(params, x, y, activation: str = "sigmoid", norm: str = "none") -> float:
    """Fraction of rows of ``x`` classified correctly by a :func:`stack_classifier` network; BatchNorm
    uses the statistics of the whole ``x`` (no running averages)."""
    check_name("activation", activation, ("sigmoid", "tanh", "relu", "linear"))
    _norm_arg(norm)
    return float(_classifier_accuracy(params, jnp.asarray(x), jnp.asarray(y), activation, norm))


@functools.partial(jax.jit, static_argnames=("activation", "norm"))
def _classifier_accuracy(params, x, y, activation, norm):
    return scanned_loss_fn(activation, norm).accuracy(params, x, y)


def unstack_hidden(params) -> list[dict]:
    """The hidden layers of a :func:`stack_classifier` network as a list of ``{"W", "b"}`` dicts."""
    return [{"W": W, "b": b} for W, b in zip(params["hidden"]["W"], params["hidden"]["b"])]


def weight_change(params, params0) -> np.ndarray:
    """``||W_l - W_l(0)||_F / ||W_l(0)||_F`` for every layer (hidden, then output) of a
    :func:`stack_classifier` network; with a leading model axis, ``(M, L)``."""
    def one(p, p0):
        hidden = jnp.linalg.norm(p["hidden"]["W"] - p0["hidden"]["W"], axis=(-2, -1)) / jnp.linalg.norm(
            p0["hidden"]["W"], axis=(-2, -1))
        out = jnp.linalg.norm(p["out"]["W"] - p0["out"]["W"]) / jnp.linalg.norm(p0["out"]["W"])
        return jnp.concatenate([hidden, out[None]])

    if params["out"]["W"].ndim == 3:
        return np.asarray(jax.vmap(one)(params, params0))
    return np.asarray(one(params, params0))
