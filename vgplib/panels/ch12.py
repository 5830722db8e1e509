"""Chapter 12's panel module: one optimizer step on the deep sigmoid network, figures, ES helpers, checks.

The live panel applies ONE step of ``optax.sgd``, ``optax.rmsprop`` or ``optax.adam`` (learning rate
and epsilon traced, the optimizer chosen by ``lax.switch``: one compilation for every slider value)
to chapter 3's 20-layer sigmoid network at its initialization, with the full-batch gradient of the
digits, and draws per layer the relative size of the requested update ``||u_l|| / ||W_l||`` and of
the change that float32 actually makes, ``||fl(W_l + u_l) - W_l|| / ||W_l||`` (0 when every update
of the layer is below half a unit in the last place of its weight).

The no-gradient section trains a *threshold* network (hidden units ``h = 1[a > 0]``, whose derivative
is exactly 0 wherever it exists) with evosax's OpenAI-ES (Salimans et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from vgplib._validate import check_name, check_positive, check_positive_int
from vgplib.data import load_digits
from vgplib.init import init_mlp
from vgplib.jacobians import stable_norm
from vgplib.plots import FLOAT32_TINY, freeze_decorations, new_figure, plain_log_yaxis
from vgplib.training import mlp_loss_fn
from vgplib.widgets import (
    LivePanel,
    answer_number,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

Array = jax.Array

#: Chapter 3's deep sigmoid network: 20 layers of width 64 on the digits, init "standard".
WIDTHS: tuple[int, ...] = (64,) * 20 + (10,)
DEPTH = len(WIDTHS) - 1
OPTIMIZERS: tuple[str, ...] = ("sgd", "rmsprop", "adam")
#: Adam's and RMSprop's decay rates (optax defaults): beta_2 = 0.999, RMSprop's decay 0.9.
ADAM_B2, RMS_DECAY = 0.999, 0.9
#: Slider ranges: log10 of the learning rate and of epsilon.
LOG_LR_MIN, LOG_LR_MAX = -5.0, 0.0
LOG_EPS_MIN, LOG_EPS_MAX = -30.0, -2.0
#: Scrubber frames: Adam, lr 1e-3, log10 eps.
SCRUBBER_LOG_EPS: tuple[float, ...] = (-4.0, -8.0, -12.0, -16.0, -18.0, -20.0)
#: What a panel draws when a layer's float32 change is exactly 0 (below the axis, labelled).
ZERO_FLOOR = 1e-20
_COLORS = {"sgd": "#7f7f7f", "rmsprop": "#2ca02c", "adam": "#1f77b4"}


def flush_threshold(decay: float) -> float:
    """The ``|g|`` below which ``(1 - decay) g^2`` flushes to 0 in float32: ``sqrt(2^-126 / (1 - decay))``.

    JAX on CPU flushes subnormal results to zero, so a second-moment term ``(1 - decay) g^2`` below
    float32's smallest normal number ``2^-126 = 1.18e-38`` is exactly 0: Adam's (``decay = beta_2 =
    0.999``) for ``|g| < 3.4e-18``, RMSprop's (0.9) for ``|g| < 3.4e-19``. ``decay = 0`` gives the flush
    of ``g^2`` itself, ``|g| < 1.08e-19``. Which product XLA actually rounds depends on how it fuses
    the update (see :func:`measured_flush_threshold`).
    """
    if not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"decay must be in [0, 1); got {decay}")
    return math.sqrt(FLOAT32_TINY / (1.0 - float(decay)))


@cache
def measured_flush_threshold(optimizer: str, jit: bool = True) -> float:
    """The largest ``|g|`` whose second moment optax loses in float32, measured on a grid (ratio 1.02).

    One first step of ``optax.adam(1e-3, eps=1e-30)`` or ``optax.rmsprop(1e-3, eps=1e-30,
    eps_in_sqrt=False)`` on gradients ``10^-22 .. 10^-16``, compiled (``jit=True``, as inside every
    training loop) or op by op; an entry whose step exceeds 10 times the unflushed one (``lr`` or
    ``lr / sqrt(0.1)``) has lost ``g^2``. Returns the largest such ``|g|`` (0.0 if none).
    """
    check_name("optimizer", optimizer, ("adam", "rmsprop"))
    g = jnp.asarray(np.geomspace(1e-22, 1e-16, 700), jnp.float32)
    if optimizer == "adam":
        opt, normal = optax.adam(1e-3, eps=1e-30), 1e-3
    else:
        opt, normal = optax.rmsprop(1e-3, decay=RMS_DECAY, eps=1e-30, eps_in_sqrt=False), 1e-3 / math.sqrt(0.1)

    def step(g):
        return opt.update(g, opt.init(g), g)[0]

    u = np.abs(np.asarray((jax.jit(step) if jit else step)(g)))
    lost = np.asarray(g)[u > 10 * normal]
    return float(lost.max()) if lost.size else 0.0


def predicted_first_step(grad, optimizer: str, lr: float, eps: float) -> np.ndarray:
    """``|u|``, the size of the first update of each entry in exact arithmetic (float64), with the flush.

    SGD ``lr |g|``; Adam (bias-corrected, ``m = g``, ``v = g^2``) ``lr |g| / (|g| + eps)``; optax's
    RMSprop (``nu = 0.1 g^2``, epsilon inside the square root) ``lr |g| / sqrt(0.1 g^2 + eps)``. Where
    the second moment is lost to the float32 flush (``|g|`` at or below
    :func:`measured_flush_threshold`, compiled) the denominator loses ``g^2``: Adam ``lr |g| / eps``,
    RMSprop ``lr |g| / sqrt(eps)``.
    """
    check_name("optimizer", optimizer, OPTIMIZERS)
    lr, eps = check_positive("lr", lr), check_positive("eps", eps)
    g = np.abs(np.asarray(grad, np.float64))
    if optimizer == "sgd":
        return lr * g
    lost = g <= measured_flush_threshold(optimizer)
    if optimizer == "adam":
        return lr * g / (np.where(lost, 0.0, g) + eps)
    return lr * g / np.sqrt(np.where(lost, 0.0, (1 - RMS_DECAY) * g**2) + eps)


# --------------------------------------------------------------------------- the network and its gradient


@cache
def deep_sigmoid_setup(seed: int = 0):
    """``(params, grads, digits)``: chapter 3's 20-layer sigmoid network (init ``"standard"``, key
    ``seed``) and its full-batch gradient of the cross-entropy on the training digits (float32)."""
    digits = load_digits()
    params = init_mlp(jax.random.PRNGKey(seed), list(WIDTHS), init="standard")
    grads = jax.jit(jax.grad(mlp_loss_fn("sigmoid")))(params, digits.x_train, digits.y_train)
    return params, grads, digits


@cache
def _flat(seed: int, which: str) -> Array:
    params, grads, _ = deep_sigmoid_setup(seed)
    return _flat_weights(params if which == "params" else grads)


def _optimizers(lr, eps):
    return (optax.sgd(lr), optax.rmsprop(lr, decay=RMS_DECAY, eps=eps), optax.adam(lr, b2=ADAM_B2, eps=eps))


def _flat_weights(layers) -> Array:
    """Every layer's ``W``, raveled and concatenated (float32): the optimizers act entry by entry."""
    return jnp.concatenate([jnp.ravel(layer["W"]) for layer in layers])


def _per_layer(v: Array, fn) -> Array:
    """``fn`` applied to each layer's block of a flat vector (19 blocks of 64 x 64, then 10 x 64)."""
    cut = (DEPTH - 1) * WIDTHS[1] * WIDTHS[0]
    hidden = v[:cut].reshape(DEPTH - 1, -1)
    return jnp.concatenate([fn(hidden), fn(v[cut:][None])])


@jax.jit
def _one_step_kernel(w, g, opt_idx, lr, eps):
    """Per layer ``||u_l|| / ||W_l||``, ``||fl(W_l + u_l) - W_l|| / ||W_l||`` and the fraction of weights moved.

    ``w``, ``g``: every layer's weights and gradient as one flat float32 vector (the updates are
    elementwise, so one flat call is the same update; it compiles in a fraction of the time).
    """

    def branch(i):
        def run(_):
            opt = _optimizers(lr, eps)[i]
            return opt.update(g, opt.init(w), w)[0]
        return run

    u = jax.lax.switch(opt_idx, [branch(i) for i in range(len(OPTIMIZERS))], None)
    w_new = w + u  # float32, rounded as optax.apply_updates rounds it
    # stable_norm: the squares of entries near 1e-20 would flush to 0 in jnp.linalg.norm
    norm = _per_layer(w, lambda a: stable_norm(a, axis=-1))
    requested = _per_layer(u, lambda a: stable_norm(a, axis=-1)) / norm
    realized = _per_layer(w_new - w, lambda a: stable_norm(a, axis=-1)) / norm
    moved = _per_layer((w_new != w).astype(w.dtype), lambda a: jnp.mean(a, axis=-1))
    return requested, realized, moved


def one_step_profile(optimizer: str, lr: float, eps: float, seed: int = 0) -> dict[str, np.ndarray]:
    """One step of ``optimizer`` from the deep sigmoid network's initialization, per layer ``l = 1..20``.

    Returns ``requested`` ``||u_l|| / ||W_l||`` (optax's float32 update), ``realized``
    ``||fl(W_l + u_l) - W_l|| / ||W_l||`` (what float32 keeps; exactly 0 when no weight of the layer
    moves), ``moved`` (the fraction of the layer's weights that change) and ``predicted`` (the
    float64 formula of :func:`predicted_first_step` on the same gradient, flush included).
    """
    check_name("optimizer", optimizer, OPTIMIZERS)
    lr, eps = check_positive("lr", lr), check_positive("eps", eps)
    params, grads, _ = deep_sigmoid_setup(seed)
    req, real, moved = _one_step_kernel(_flat(seed, "params"), _flat(seed, "grads"),
                                        np.int32(OPTIMIZERS.index(optimizer)), np.float32(lr), np.float32(eps))
    predicted = np.array([np.linalg.norm(predicted_first_step(g["W"], optimizer, lr, eps))
                          / np.linalg.norm(np.asarray(p["W"], np.float64)) for p, g in zip(params, grads)])
    return {"requested": np.asarray(req, np.float64), "realized": np.asarray(real, np.float64),
            "moved": np.asarray(moved, np.float64), "predicted": predicted}


# --------------------------------------------------------------------------- the live panel


def _log_axis(ax, lo: float, hi: float) -> None:
    plain_log_yaxis(ax)
    ax.set_ylim(lo, hi)


def make_step_figure() -> tuple[Figure, object]:
    """The panel: per-layer requested update and float32-realized change after one optimizer step.

    ``update(optimizer, log10_lr, log10_eps)`` redraws in place and returns a status string naming
    the layers whose weights float32 leaves exactly unchanged.
    """
    fig, ax = new_figure(figsize=(6.0, 3.4), dpi=72, margins={"left": 0.16, "top": 0.78, "bottom": 0.15})
    _log_axis(ax, 1e-21, 1e2)
    ax.set_xlim(0.3, DEPTH + 0.7)
    ax.set_xlabel("layer $l$")
    ax.set_ylabel("relative change of $W_l$")
    ax.yaxis.set_label_coords(-0.12, 0.5)
    ax.axhline(2.0**-24, color="0.5", lw=0.8, ls=":")
    ax.text(DEPTH + 0.6, 2.0**-24 * 3, "2^-24 (float32 resolution)", ha="right", va="bottom", fontsize=8,
            color="0.4")
    ax.axhline(ZERO_FLOOR, color="#b00020", lw=0.6, ls="-", alpha=0.4)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    layers = np.arange(1, DEPTH + 1)
    (pred_line,) = ax.plot(layers, np.ones(DEPTH), "-", color="k", lw=1.2, alpha=0.7,
                           label="formula, float64")
    # the markers take the optimizer's colour per update; the legend (drawn once) shows them in grey
    (req_line,) = ax.plot(layers, np.ones(DEPTH), "o", ms=4, mfc="none", color="0.35",
                          label="requested ‖u_l‖/‖W_l‖")
    (real_line,) = ax.plot(layers, np.ones(DEPTH), "o", ms=3, color="0.35",
                           label="float32 change (0: on the red line)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False, ncol=2)
    title = ax.set_title(" ", fontsize=9, y=1.2)
    deep_sigmoid_setup(0)
    for i in range(len(OPTIMIZERS)):  # the one compilation happens here
        one_step_profile(OPTIMIZERS[i], 1e-3, 1e-8)

    def update(optimizer: str = "adam", log10_lr: float = -3.0, log10_eps: float = -8.0) -> str:
        lr, eps = 10.0**log10_lr, 10.0**log10_eps
        prof = one_step_profile(optimizer, lr, eps)
        floor = lambda v: np.where(v > 0, np.maximum(v, ZERO_FLOOR), ZERO_FLOOR)
        pred_line.set_ydata(floor(prof["predicted"]))
        req_line.set_ydata(floor(prof["requested"]))
        real_line.set_ydata(floor(prof["realized"]))
        for line in (req_line, real_line):
            line.set_color(_COLORS[optimizer])
        eps_text = "" if optimizer == "sgd" else f", \u03b5 = 1e{log10_eps:.0f}"
        title.set_text(f"{optimizer}, one step from the initialization: lr = 1e{log10_lr:.1f}{eps_text}")
        frozen = np.flatnonzero(prof["realized"] == 0) + 1
        if frozen.size:
            return f"zero change: float32 leaves layers {frozen[0]}-{frozen[-1]} exactly unchanged" if np.all(
                np.diff(frozen) == 1) else f"zero change: float32 leaves {frozen.size} layers exactly unchanged"
        return ""

    return fig, update


def step_controls(optimizer: str = "adam", log10_lr: float = -3.0, log10_eps: float = -8.0) -> dict:
    """Optimizer selector, ``log10 lr`` slider ``-5..0``, ``log10 eps`` slider ``-30..-2``."""
    return {
        "optimizer": ipywidgets.ToggleButtons(options=list(OPTIMIZERS), value=optimizer, description="optimizer"),
        "log10_lr": ipywidgets.FloatSlider(value=log10_lr, min=LOG_LR_MIN, max=LOG_LR_MAX, step=0.5,
                                           description="log10 lr", readout_format=".1f"),
        "log10_eps": ipywidgets.FloatSlider(value=log10_eps, min=LOG_EPS_MIN, max=LOG_EPS_MAX, step=1.0,
                                            description="log10 eps", readout_format=".0f"),
    }


def make_step_figure_live() -> tuple[Figure, object]:
    """:func:`make_step_figure` with the axes' fixed frame (log ticks, grid, labels, legend) frozen into pixels.

    The limits, ticks and legend never change with the controls, so only the three lines, the two
    reference lines, their label and the title are drawn per move (live panel only; the scrubber
    keeps :func:`make_step_figure`).
    """
    fig, update = make_step_figure()
    freeze_decorations(fig, fig.axes[0])
    return fig, update


@register_panel("ch12.optimizer_step")
def step_panel() -> LivePanel:
    """A new live panel: one step of SGD, RMSprop or Adam on the deep sigmoid network, per layer."""
    return LivePanel(make_step_figure_live, step_controls(), freeze_legend=True)


def step_scrubber(values=SCRUBBER_LOG_EPS, alt: str | None = None, dpi: int = 100):
    """The kernel-free twin of :func:`step_panel`: Adam at ``lr = 1e-3``, one frame per ``log10 eps``."""
    values = [float(v) for v in values]
    if alt is None:
        alt = ("Relative change of every layer's weights after one Adam step on the 20-layer sigmoid network, "
               f"one frame per log10 epsilon from {max(values):g} to {min(values):g}: as epsilon falls, more "
               "layers reach a step of size lr, until the layers whose squared gradient flushes to zero jump.")
    return scrubber(make_step_figure, "log10_eps", values=values, fixed={"optimizer": "adam", "log10_lr": -3.0},
                    alt=alt, dpi=dpi)


# --------------------------------------------------------------------------- figures of the experiments


def layer_change_figure(changes: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """Per-layer relative weight change (median over seeds, band min-max), one line per run; 0 drawn at the floor."""
    fig, ax = new_figure(figsize=(6.4, 3.3), margins={"left": 0.14, "right": 0.97, "top": 0.88, "bottom": 0.15})
    _log_axis(ax, 1e-21, 1e2)
    layers = np.arange(1, DEPTH + 1)
    for i, (name, c) in enumerate(changes.items()):
        c = np.maximum(np.asarray(c, np.float64), ZERO_FLOOR)
        ax.fill_between(layers, c.min(0), c.max(0), color=f"C{i}", alpha=0.2, lw=0)
        ax.plot(layers, np.median(c, 0), "o-", ms=3, color=f"C{i}", label=name)
    ax.axhline(ZERO_FLOOR, color="#b00020", lw=0.6, alpha=0.4)
    ax.text(1, ZERO_FLOOR * 4, "exactly 0", color="#b00020", fontsize=8)
    ax.set_xlabel("layer $l$")
    ax.set_ylabel(r"$\|W_l(t) - W_l(0)\| / \|W_l(0)\|$")
    ax.yaxis.set_label_coords(-0.11, 0.5)
    ax.set_xlim(0.5, DEPTH + 0.5)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def pretraining_figure(grad_norms: Mapping[str, np.ndarray], losses: Mapping[str, np.ndarray]) -> Figure:
    """Left: per-layer ``||dE/dW_l||`` at the start of fine-tuning (median over seeds, band min-max);
    right: training loss during fine-tuning (one line per seed)."""
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.0), ncols=2,
                                 margins={"left": 0.1, "right": 0.98, "top": 0.88, "bottom": 0.17, "wspace": 0.3})
    _log_axis(ax1, 1e-19, 1e1)
    layers = np.arange(1, DEPTH + 1)
    for i, (name, g) in enumerate(grad_norms.items()):
        g = np.asarray(g, np.float64)
        ax1.fill_between(layers, g.min(0), g.max(0), color=f"C{i}", alpha=0.2, lw=0)
        ax1.plot(layers, np.median(g, 0), "o-", ms=3, color=f"C{i}", label=name)
    ax1.set_xlabel("layer $l$")
    ax1.set_ylabel(r"$\|\partial E/\partial W_l\|$ at step 0")
    ax1.legend(fontsize=8, frameon=False, loc="lower right")
    for i, (name, loss) in enumerate(losses.items()):
        loss = np.asarray(loss)
        steps = np.linspace(0, 1, loss.shape[0])
        for m in range(loss.shape[1]):
            ax2.plot(steps, loss[:, m], color=f"C{i}", lw=1.2, alpha=0.8, label=name if m == 0 else None)
    ax2.axhline(math.log(10), color="k", ls=":", lw=0.8)
    ax2.set_xlabel("fine-tuning (fraction of the steps)")
    ax2.set_ylabel("training loss")
    ax2.legend(fontsize=8, frameon=False)
    return fig


def curriculum_figure(ratios: Mapping[str, np.ndarray], learned: float = 0.5) -> Figure:
    """Test MSE at the target lag over the MSE of predicting the mean, one dot per seed and one row
    per arm (``ratios``: name -> per-seed values), with 1 (nothing learned) and ``learned`` marked."""
    fig, ax = new_figure(figsize=(6.4, 1.2 + 0.5 * len(ratios)),
                         margins={"left": 0.3, "right": 0.97, "top": 0.95, "bottom": 0.3})
    hi = 1.1
    for i, (name, r) in enumerate(ratios.items()):
        r = np.asarray(r, np.float64)
        hi = max(hi, float(np.nanmax(r)) + 0.05)
        ax.plot(r, np.full(r.shape, -i), "o", ms=6, color=f"C{i}", alpha=0.6, mec="none")
    ax.axvline(1.0, color="k", ls=":", lw=0.8)
    ax.axvline(learned, color="#b00020", ls="--", lw=0.8)
    ax.text(learned, 0.45, f"learned (< {learned:g}) ", color="#b00020", fontsize=8, va="center", ha="right")
    ax.text(1.0, 0.45, "nothing learned ", fontsize=8, va="center", ha="right")
    ax.set_yticks(-np.arange(len(ratios)), list(ratios))
    ax.set_ylim(-len(ratios) + 0.4, 0.8)
    ax.set_xlim(0.0, hi)
    ax.set_xlabel("test MSE / MSE of predicting the mean (one dot per seed)")
    ax.xaxis.set_label_coords(0.5, -0.24)
    return fig


def cosine_figure(n_params, cosines, pairs: int) -> Figure:
    """Measured cosine between the ES gradient estimate and the exact gradient (dots: every repetition;
    line: mean) against the parameter count, with ``sqrt(M / (M + d - 1))`` for ``M = pairs``."""
    n_params = np.asarray(n_params, np.float64)
    cosines = np.asarray(cosines, np.float64)
    fig, ax = new_figure(figsize=(5.6, 3.2), margins={"left": 0.14, "right": 0.97, "top": 0.9, "bottom": 0.16})
    ax.set_xscale("log")
    ax.set_yscale("log")
    d = np.geomspace(n_params.min() / 1.5, n_params.max() * 1.5, 100)
    ax.plot(d, np.sqrt(pairs / (pairs + d - 1)), "k-", lw=1.2, label=f"theory sqrt(M/(M+d-1)), M = {pairs}")
    for i, dd in enumerate(n_params):
        ax.plot(np.full(cosines.shape[1], dd), cosines[i], "o", ms=3, color="C0", alpha=0.5,
                label="measured (each repetition)" if i == 0 else None)
    ax.plot(n_params, cosines.mean(1), "s", ms=5, color="C1", label="measured mean")
    ax.set_xlabel("number of parameters $d$")
    ax.set_ylabel("cos(ES estimate, gradient)")
    ax.yaxis.set_label_coords(-0.11, 0.5)
    ax.legend(fontsize=8, frameon=False, loc="lower left")
    return fig


# --------------------------------------------------------------------------- a threshold network and ES


def init_threshold_net(key: Array, n_hidden: int, n_in: int = 64, n_out: int = 10) -> dict[str, Array]:
    """``{"W": (n_hidden, n_in) N(0, 1/8^2), "b": 0, "V": (n_out, n_hidden) N(0, 1/n_hidden), "c": 0}``."""
    n_hidden = check_positive_int("n_hidden", n_hidden)
    k1, k2 = jax.random.split(key)
    return {"W": jax.random.normal(k1, (n_hidden, n_in)) / 8.0, "b": jnp.zeros(n_hidden),
            "V": jax.random.normal(k2, (n_out, n_hidden)) / math.sqrt(n_hidden), "c": jnp.zeros(n_out)}


def threshold_logits(params, x: Array) -> Array:
    """``logits = V 1[W x + b > 0] + c``: hidden units that output 0 or 1 (their derivative is 0)."""
    h = (x @ params["W"].T + params["b"] > 0).astype(x.dtype)
    return h @ params["V"].T + params["c"]


def threshold_loss(params, x: Array, y: Array) -> Array:
    """Mean softmax cross-entropy of :func:`threshold_logits` (usable with :func:`vgplib.train_many`)."""
    return optax.softmax_cross_entropy_with_integer_labels(threshold_logits(params, x), y).mean()


def threshold_accuracy(params, x: Array, y: Array) -> Array:
    """Fraction of rows classified right by :func:`threshold_logits`."""
    return jnp.mean(jnp.argmax(threshold_logits(params, x), axis=-1) == y)


def check_flush_threshold(answer) -> bool:
    """Self-check: the largest ``|g|`` whose RMSprop second-moment term ``0.1 g^2`` flushes to 0 in float32."""
    if unanswered("set answer to your number and run the cell again.", answer):
        return False
    ref = flush_threshold(RMS_DECAY)
    a = abs(float(answer))
    if math.isclose(a, ref, rel_tol=2e-2):
        return report_answer(True, f"|g| < sqrt(1.18e-38 / 0.1) = {ref:.2e}: below it nu stays exactly 0", "")
    if math.isclose(a, math.sqrt(FLOAT32_TINY), rel_tol=2e-2):
        return report_answer(False, "", "that is where g^2 itself flushes; the term optax adds is (1 - decay) g^2.")
    if math.isclose(a, flush_threshold(ADAM_B2), rel_tol=2e-2):
        return report_answer(False, "", "that is Adam's threshold (beta_2 = 0.999); RMSprop's decay is 0.9.")
    return report_answer(False, "", "solve (1 - decay) g^2 = 2^-126 = 1.18e-38 for |g|.")


def check_es_evaluations(answer) -> bool:
    """Self-check: evaluations of OpenES with population 64 over 100 generations (the mean's own evaluation not counted)."""
    if unanswered("set answer to your number and run the cell again.", answer):
        return False
    if float(answer) == 64 * 100:
        return report_answer(True, "64 x 100 = 6,400 evaluations of the loss", "")
    return report_answer(False, "", "each generation evaluates every member of the population once.")


#: The evaluation exercise's setting: OpenES population, generations, and evaluations per gradient.
ES_POPULATION, ES_GENERATIONS, EVALS_PER_GRADIENT = 64, 100, 3


def check_es_gradient_steps(steps) -> bool:
    """Self-check: how many full-batch gradient steps cost as much as the ES run, if one gradient costs
    :data:`EVALS_PER_GRADIENT` loss evaluations: ``64 x 100 / 3``, about 2,100 (rtol 2 %)."""
    if unanswered("set steps to your number and run the cell again.", steps):
        return False
    steps = answer_number("steps", steps)
    ref = ES_POPULATION * ES_GENERATIONS / EVALS_PER_GRADIENT
    if math.isclose(steps, ref, rel_tol=2e-2):
        return report_answer(True, f"{ES_POPULATION * ES_GENERATIONS:,} / {EVALS_PER_GRADIENT} = {ref:,.0f} gradient "
                             "steps, twenty times the 100 that Adam took", "")
    if math.isclose(steps, ES_POPULATION * ES_GENERATIONS * EVALS_PER_GRADIENT, rel_tol=2e-2):
        return report_answer(False, "", "divide, do not multiply: one gradient step uses up three evaluations.")
    return report_answer(False, "", "divide the run's evaluations by the evaluations one gradient costs.")


def check_es_population(population) -> bool:
    """Self-check: the OpenES population (two members per antithetic pair) for a cosine of 0.5 with
    ``d = 1000`` parameters: ``M / (M + d - 1) = 1/4`` gives ``M = (d - 1) / 3 = 333`` pairs, 666 members."""
    if unanswered("set population to your integer and run the cell again.", population):
        return False
    population = answer_number("population", population)
    pairs = math.ceil((1000 - 1) * 0.5**2 / (1 - 0.5**2))
    if population == 2 * pairs:
        return report_answer(True, f"M = 999 / 3 = {pairs} antithetic pairs, a population of {2 * pairs}", "")
    if population == pairs:
        return report_answer(False, "", f"{pairs} is the number of pairs M; each pair is two members (+eps, -eps).")
    return report_answer(False, "", "solve M / (M + 999) = 1/4 for the number of pairs M, then count two members per pair.")


def check_es_cosine(answer) -> bool:
    """Self-check: the predicted cosine between OpenES's antithetic estimate (population 64) and the gradient
    of a linear function of d = 1000 parameters, ``sqrt(M / (M + d - 1))`` with ``M = 32`` pairs."""
    if unanswered("set answer to your number and run the cell again.", answer):
        return False
    ref = math.sqrt(32 / (32 + 1000 - 1))
    a = float(answer)
    if math.isclose(a, ref, rel_tol=2e-2):
        return report_answer(True, f"cos = sqrt(32 / 1031) = {ref:.3f}: about 1/6 of the step points downhill", "")
    if math.isclose(a, math.sqrt(64 / (64 + 999)), rel_tol=2e-2):
        return report_answer(False, "", "antithetic pairs: 64 members give only 32 independent directions.")
    return report_answer(False, "", "cos^2 = M / (M + d - 1) with M the number of independent directions.")


