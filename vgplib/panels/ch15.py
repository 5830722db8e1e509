"""Chapter 15, *What vanishing gradients are not*: the figures of its three runs and its exercises.

The chapter tells vanishing gradients apart from three problems that look like them in a loss curve,
each by one measurement: overfitting by the gap between test and training loss, a saddle point by
the negative eigenvalues of the exact Hessian (:func:`vgplib.hessian_eigenvalues`), and the curse of
dimensionality by the test error against the number of training samples. The per-layer gradient
profile ``||dE/dtheta_l|| / ||dE/dtheta_L||`` (:func:`vgplib.layer_gradient_norms`) is the
measurement of vanishing itself. The drawing code lives here so that the notebook shows the lesson.

The live panel (:func:`diagnosis_panel`) scrubs the training step of the three runs and shows, at that
step, every layer's gradient norm (:func:`vgplib.layer_norms` of one ``jax.grad``, as
:func:`vgplib.layer_gradient_norms`), its spread over the layers in decades, and the training and
test losses. :func:`record_run` measures all of it while the runs train (the full-batch step of
:func:`vgplib.train_many`, in one compiled scan that also records); a slider move only indexes the
records, so it computes and compiles nothing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from vgplib._validate import check_finite_many
from vgplib.data import load_digits
from vgplib.gradients import layer_norms
from vgplib.init import init_mlp
from vgplib.plots import freeze_decorations, log10_or_nan, new_figure, plain_log_yaxis
from vgplib.training import _check_batch, _check_xy, mlp_loss_fn, train_many
from vgplib.widgets import (
    LivePanel,
    answer_number,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

#: Colours: training loss, test loss (and the two runs of the other figures).
TRAIN, TEST = "#1f77b4", "#d62728"


def overfit_figure(steps: np.ndarray, runs: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   profiles: Mapping[str, np.ndarray]):
    """Two loss panels (training and test loss against step, one line per seed) and the gradient profiles.

    ``runs[name] = (train (R, M), test (R, M))`` at ``steps (R,)``; ``profiles[name]`` is
    ``log10 ||dE/dtheta_l|| / ||dE/dtheta_L||`` per layer at initialization.
    """
    fig, axes = new_figure((7.0, 2.7), ncols=3,
                           margins={"left": 0.085, "right": 0.99, "bottom": 0.19, "top": 0.88, "wspace": 0.5})
    for ax, (name, (train, test)) in zip(axes[:2], runs.items()):
        ax.plot(steps, train, color=TRAIN, lw=1.2)
        ax.plot(steps, test, color=TEST, lw=1.2, ls="--")
        ax.plot([], [], color=TRAIN, label="train")
        ax.plot([], [], color=TEST, ls="--", label="test")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(-0.1, 2.6)
        ax.legend(loc="center right", frameon=False)
    axes[0].set_ylabel("loss")
    axes[0].yaxis.set_label_coords(-0.2, 0.5)
    ax = axes[2]
    for (name, prof), marker in zip(profiles.items(), ("o", "s")):
        ax.plot(np.arange(1, len(prof) + 1), prof, marker=marker, ms=4, lw=1, label=name.split(",")[0])
    ax.set_xlabel("layer l")
    ax.set_ylabel("log10 grad ratio")
    ax.yaxis.set_label_coords(-0.24, 0.5)
    ax.set_title("gradient profile at init", fontsize=9)
    ax.legend(loc="lower right", frameon=False)
    return fig


def saddle_figure(steps: np.ndarray, losses: np.ndarray, stall_step: int,
                  spectra: Mapping[str, np.ndarray]):
    """Left: training loss against step (one line per seed), the Hessian's step marked. Right: the
    sorted Hessian eigenvalues at the named points (on a symmetric-log axis)."""
    fig, (ax, bx) = new_figure((7.0, 2.8), ncols=2,
                               margins={"left": 0.1, "right": 0.99, "bottom": 0.18, "top": 0.89, "wspace": 0.4})
    ax.plot(steps, losses, color=TRAIN, lw=1.2)
    ax.axvline(stall_step, color="0.4", ls=":", lw=1)
    ax.text(stall_step, 0.3, f" Hessian at step {stall_step}", fontsize=8, color="0.3")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.yaxis.set_label_coords(-0.13, 0.5)
    ax.set_title("small initial weights", fontsize=9)
    for (name, lam), color in zip(spectra.items(), ("#9467bd", "#2ca02c")):
        frac = np.linspace(0, 1, len(lam))
        bx.plot(frac, lam, color=color, lw=1.5, label=name)
    bx.axhline(0, color="0.5", lw=0.6)
    bx.set_yscale("symlog", linthresh=1e-3)
    bx.set_xlabel("eigenvalue rank / N")
    bx.set_ylabel("Hessian eigenvalue")
    bx.yaxis.set_label_coords(-0.22, 0.5)
    bx.set_title("exact Hessian spectrum", fontsize=9)
    bx.legend(loc="upper left", frameon=False)
    return fig


def learning_curve_figure(sizes: Sequence[int], errors: Mapping[str, np.ndarray]):
    """Test error against the number of training samples (log-log), one line per input dimension;
    ``errors[name]`` is ``(seeds, len(sizes))``: the mean is drawn, the seeds as dots."""
    fig, ax = new_figure((6.0, 3.0), margins={"left": 0.12, "right": 0.98, "bottom": 0.16, "top": 0.9})
    sizes = np.asarray(sizes)
    for (name, err), marker in zip(errors.items(), ("o", "s")):
        line, = ax.plot(sizes, err.mean(axis=0), marker=marker, ms=4, lw=1.2, label=name)
        for row in err:
            ax.plot(sizes, row, ls="none", marker=".", ms=3, color=line.get_color(), alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(sizes, [str(int(n)) for n in sizes])
    ax.set_yticks([0.03, 0.1, 0.3], ["0.03", "0.1", "0.3"])
    ax.set_xlabel("training samples n")
    ax.set_ylabel("test error")
    ax.set_title("sample size against error, digits", fontsize=10)
    ax.legend(frameon=False)
    return fig


# --------------------------------------------------------------------------- recorded runs and the panel


@dataclass(frozen=True)
class Run:
    """A full-batch training run of ``M`` models recorded at ``steps`` (``R`` records: ``0, k, 2k, ...``).

    ``train``, ``test``: ``(R, M)`` losses on the training and the test set; ``grad_norms``:
    ``(R, M, L)`` every layer's gradient norm ``||dE/dtheta_l||`` on the training set;
    ``params``: the parameter batches at every record, each leaf with leading axes ``(R, M)``.
    """

    steps: np.ndarray
    train: np.ndarray
    test: np.ndarray
    grad_norms: np.ndarray
    params: Any

    def at(self, step: int):
        """The parameter batch (leading model axis) at a recorded ``step``."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"step must be an integer (one of the recorded steps); got {type(step).__name__}")
        hits = np.flatnonzero(self.steps == step)
        if hits.size != 1:
            raise ValueError(f"step must be one of the recorded steps {self.steps.tolist()}; got {step!r}")
        i = int(hits[0])
        return jax.tree.map(lambda a: a[i], self.params)

    @property
    def final(self):
        """The parameter batch after the last step."""
        return self.at(int(self.steps[-1]))


def record_run(loss_fn: Callable, params_batch: Any, train: tuple, test: tuple,
               optimizer: optax.GradientTransformation, *, steps: int, every: int) -> Run:
    """Train a batch of models full-batch with :func:`vgplib.train_many` and record at steps
    ``0, every, ..., steps`` the training loss, the test loss, every layer's gradient norm on the
    training set (as :func:`vgplib.layer_gradient_norms`) and the parameters.

    ``train = (x, y)``, ``test = (x_test, y_test)``; ``params_batch`` has a leading model axis (as for
    :func:`vgplib.train_many`). The measurements are ``train_many``'s ``record_fn``, so they run inside
    its one compiled run (``vmap`` over models, ``lax.scan`` over records and steps) and the optimizer's
    state runs on through every record (an Adam run is one Adam run, not restarted every ``every``
    steps). The gradient norms are :func:`vgplib.layer_norms` of one ``jax.grad``, as in
    :func:`vgplib.layer_gradient_norms` without its host-side finiteness check, which cannot run
    inside a trace.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable loss_fn(params, x, y) -> scalar; got {type(loss_fn).__name__}")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be an optax.GradientTransformation; got {type(optimizer).__name__}")
    for name, value in (("steps", steps), ("every", every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if steps % every:
        raise ValueError(f"steps ({steps}) must be a multiple of every ({every})")
    for name, pair in (("train", train), ("test", test)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name} must be a pair (x, y); got {type(pair).__name__}")
    _check_batch(params_batch)
    check_finite_many(("params_batch", params_batch))
    (x, y), (x_test, y_test) = _check_xy(*train), _check_xy(*test)
    first = jax.tree.map(lambda leaf: leaf[0], params_batch)
    for name, (xs, ys) in (("train", (x, y)), ("test", (x_test, y_test))):
        try:
            out = jax.eval_shape(loss_fn, first, xs, ys)
        except (TypeError, ValueError) as err:
            raise TypeError(f"loss_fn(params, *{name}) failed on one model of params_batch: {err}") from err
        if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(f"loss_fn must return a floating scalar; got {out}")

    def measure(p):
        return loss_fn(p, x, y), loss_fn(p, x_test, y_test), layer_norms(jax.grad(loss_fn)(p, x, y)), p

    _, (tr, te, norms, params) = train_many(loss_fn, params_batch, x, y, optimizer, steps=int(steps),
                                            record_every=int(every), record_fn=measure)
    return Run(steps=int(every) * np.arange(steps // every + 1), train=tr, test=te, grad_norms=norms, params=params)


#: The panel's step grid: the three runs are recorded every PANEL_EVERY steps up to PANEL_STEPS.
PANEL_STEPS, PANEL_EVERY = 300, 10
#: One colour per run in the panel (in the order of the runs).
RUN_COLORS = ("#ff7f0e", "#2ca02c", "#1f77b4", "#8c564b")


@functools.lru_cache(maxsize=1)
def panel_runs(seeds: int = 3) -> dict[str, Run]:
    """The chapter's three runs (same networks, data, optimizers and seeds), recorded every
    :data:`PANEL_EVERY` steps up to :data:`PANEL_STEPS`: overfitting (tanh 64-64-64-10, Glorot, Adam
    3e-3, 100 digits), a saddle (tanh 64-8-10, Glorot times 1e-3, SGD 0.5) and a vanishing gradient
    (sigmoid, 8 hidden layers of width 8, standard init, SGD 0.5), the last two on all training digits.

    Cached: the registered panel, its tests and the benchmark share one computation. The chapter's
    notebook records its own runs (the same settings) and passes them to :func:`diagnosis_panel`.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")
    d = load_digits()
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)

    def batch(widths, init, scale=1.0):
        return jax.vmap(lambda k: jax.tree.map(lambda a: scale * a, init_mlp(k, widths, init=init)))(keys)

    tanh, sigmoid, test = mlp_loss_fn("tanh"), mlp_loss_fn("sigmoid"), (d.x_test, d.y_test)
    all_digits, few = (d.x_train, d.y_train), (d.x_train[:100], d.y_train[:100])
    settings = {
        "tanh, 100 digits (overfits)": (tanh, batch([64, 64, 64, 10], "glorot_normal"), few, optax.adam(3e-3)),
        "tanh 64-8-10, small init (saddle)": (tanh, batch([64, 8, 10], "glorot_normal", 1e-3), all_digits,
                                              optax.sgd(0.5)),
        "sigmoid, 8 x 8 (vanishes)": (sigmoid, batch([64] + [8] * 8 + [10], "standard"), all_digits,
                                      optax.sgd(0.5)),
    }
    return {name: record_run(loss, params, data, test, opt, steps=PANEL_STEPS, every=PANEL_EVERY)
            for name, (loss, params, data, opt) in settings.items()}


def _panel_steps(runs: Mapping[str, Run]) -> np.ndarray:
    """The steps recorded in every run (the panel's slider positions)."""
    if not isinstance(runs, Mapping):
        raise TypeError(f"runs must be a dict of named Run records (from record_run); got {type(runs).__name__}")
    if not 1 <= len(runs) <= len(RUN_COLORS):
        raise ValueError(f"runs must hold 1 to {len(RUN_COLORS)} runs; got {len(runs)}")
    for name, run in runs.items():
        if not isinstance(run, Run):
            raise TypeError(f"runs[{name!r}] must be a Run (from record_run); got {type(run).__name__}")
    steps = functools.reduce(np.intersect1d, [run.steps for run in runs.values()])
    if steps.size < 2:
        raise ValueError("runs must share at least two recorded steps")
    return steps


def layer_spread(norms: np.ndarray) -> float:
    """How many decades the per-layer gradient norms ``(L,)`` span: ``log10(max_l ||G_l|| / min_l ||G_l||)``.

    NaN when a norm is exactly 0 (no finite spread) or not finite (an exploding run).
    """
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 1 or norms.size < 1:
        raise ValueError(f"norms must be the (L,) per-layer gradient norms of one model; got shape {norms.shape}")
    if np.any(norms < 0):
        raise ValueError("norms must be non-negative (norms of the layers' gradients)")
    if norms.min() == 0 or not np.all(np.isfinite(norms)):
        return math.nan
    return float(np.log10(norms.max() / norms.min()))


def make_diagnosis_figure(runs: Mapping[str, Run] | None = None, model: int = 0) -> tuple[Figure, Callable]:
    """Three axes at one training step: every layer's gradient norm (log scale), its spread over the
    layers in decades (bars), and the training (solid) and test (dashed) losses against step with the
    step marked. ``update(step)`` moves to a recorded step; ``model`` picks the seed shown."""
    runs = panel_runs() if runs is None else runs
    steps = _panel_steps(runs)
    n_models = min(run.train.shape[1] for run in runs.values())
    if isinstance(model, bool) or not isinstance(model, (int, np.integer)) or not 0 <= model < n_models:
        raise ValueError(f"model must be an integer in [0, {n_models}) (the seed shown); got {model!r}")
    fig, (ax, sx, lx) = new_figure((7.0, 2.9), ncols=3, margins={"left": 0.105, "right": 0.985, "bottom": 0.17,
                                                                "top": 0.86, "wspace": 0.42})
    ax.set_position([0.125, 0.17, 0.235, 0.69])
    sx.set_position([0.445, 0.17, 0.1, 0.69])
    lx.set_position([0.64, 0.17, 0.33, 0.69])
    colors = RUN_COLORS[:len(runs)]
    logs = np.concatenate([log10_or_nan(run.grad_norms[np.isin(run.steps, steps), model]).ravel()
                           for run in runs.values()])
    lo, hi = math.floor(np.nanmin(logs)) - 0.5, math.ceil(np.nanmax(logs)) + 0.5
    depth = max(run.grad_norms.shape[-1] for run in runs.values())
    profile = [ax.plot([], [], marker=m, ms=4, lw=1.2, color=c)[0] for c, m in zip(colors, "osD^")]
    plain_log_yaxis(ax)
    ax.set_ylim(10.0 ** lo, 10.0 ** hi)
    ax.set_xlim(0.5, depth + 0.5)
    ax.set_xticks(np.arange(1, depth + 1))
    ax.set_xlabel("layer l")
    ax.set_ylabel("gradient norm of layer l")
    ax.yaxis.set_label_coords(-0.34, 0.5)
    title = ax.set_title(" ", fontsize=9)
    bars = sx.bar(np.arange(len(runs)), np.zeros(len(runs)), color=colors)
    spread_max = max(np.nanmax([layer_spread(g) for g in run.grad_norms[:, model]]) for run in runs.values())
    sx.set_ylim(0, max(1.0, math.ceil(spread_max)))
    sx.set_xticks([])
    sx.set_ylabel("spread over layers (decades)")
    sx.yaxis.set_label_coords(-0.45, 0.5)
    sx.set_title("spread", fontsize=9)
    dots = []
    for (name, run), c in zip(runs.items(), colors):
        keep = run.steps <= steps[-1]
        lx.plot(run.steps[keep], run.train[keep, model], color=c, lw=1.2, label=name.split(" (")[-1].rstrip(")"))
        lx.plot(run.steps[keep], run.test[keep, model], color=c, lw=1.2, ls="--")
        dots.append(lx.plot([], [], ls="none", marker="o", ms=5, color=c)[0])
    cursor = lx.axvline(steps[0], color="0.4", lw=0.8, ls=":")
    lx.set_xlim(steps[0], steps[-1])
    lx.set_xlabel("step")
    lx.set_ylabel("loss (train -, test --)")
    lx.yaxis.set_label_coords(-0.16, 0.5)
    lx.legend(loc="center right", bbox_to_anchor=(1.0, 0.62), frameon=False, fontsize=8)
    lx.set_title("losses", fontsize=9)

    def update(step: int = int(steps[0])) -> str:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step not in steps:
            raise ValueError(f"step must be one of the recorded steps {steps.tolist()}; got {step!r}")
        zero = []
        for (name, run), line, bar, dot in zip(runs.items(), profile, bars, dots):
            i = int(np.flatnonzero(run.steps == step)[0])
            g = run.grad_norms[i, model]
            line.set_data(np.arange(1, g.size + 1), np.where(g > 0, g, np.nan))
            spread = layer_spread(g)
            bar.set_height(0.0 if math.isnan(spread) else spread)
            dot.set_data([step, step], [run.train[i, model], run.test[i, model]])
            if np.any(g == 0):
                zero.append(f"{name}, layer {int(np.argmax(g == 0)) + 1}")
        cursor.set_xdata([step, step])
        title.set_text(f"per-layer gradient, step {int(step)}")
        return f"zero gradient: exactly 0 in {'; '.join(zero)}" if zero else ""

    update()
    return fig, update


def make_diagnosis_figure_live(runs: Mapping[str, Run] | None = None) -> tuple[Figure, Callable]:
    """:func:`make_diagnosis_figure` with the fixed frame of its three axes (ticks, labels, legend) drawn
    once into pixels (:func:`vgplib.plots.freeze_decorations`): a move redraws only the data and titles."""
    fig, update = make_diagnosis_figure(runs)
    bars = fig.axes[1].patches
    for bar in bars:
        bar.set_visible(False)
    for ax in fig.axes:
        freeze_decorations(fig, ax)
    for bar in bars:
        bar.set_visible(True)
    return fig, update


@register_panel("ch15.diagnosis")
def diagnosis_panel(runs: Mapping[str, Run] | None = None) -> LivePanel:
    """A new live panel: a training-step slider over the three runs -> per-layer gradient norms, their
    spread in decades, and the losses at that step. ``runs`` defaults to :func:`panel_runs`."""
    steps = _panel_steps(panel_runs() if runs is None else runs)
    controls = {"step": ipywidgets.SelectionSlider(options=[int(s) for s in steps], value=int(steps[0]),
                                                   description="step")}
    return LivePanel(lambda: make_diagnosis_figure_live(runs), controls)


#: The scrubber's frames: the training steps it shows.
SCRUBBER_STEPS: tuple[int, ...] = (0, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 250, 300)


def diagnosis_scrubber(runs: Mapping[str, Run] | None = None, values: Sequence[int] = SCRUBBER_STEPS,
                       alt: str | None = None, dpi: int = 100):
    """The kernel-free twin of :func:`diagnosis_panel`: a scrubber over the training step, one frame per
    step of ``values`` (each a step that every run recorded). ``runs`` defaults to :func:`panel_runs`."""
    steps = _panel_steps(panel_runs() if runs is None else runs)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"values must be a non-empty list of recorded steps; got {values!r}")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v not in steps]
    if bad:
        raise ValueError(f"values must be recorded steps (of {steps.tolist()}); got {bad}")
    if alt is None:
        alt = ("Three panels at one training step of three runs (an overfitting tanh network, a tanh network "
               "at a saddle, a deep sigmoid network): the gradient norm of every layer on a log scale, its "
               "spread over the layers in decades, and the training and test losses with the step marked. "
               "Only the sigmoid network's layers spread over many decades, at the start of training.")
    return scrubber(lambda: make_diagnosis_figure(runs), "step", values=[int(v) for v in values], alt=alt, dpi=dpi)


def check_saddle_drop(drop) -> bool:
    """Self-check: the second-order loss change ``(1/2) lambda t^2`` for ``lambda = -0.24``, ``t = 0.5``
    along a unit eigenvector at a point with zero gradient (a fall, so a negative number)."""
    if unanswered("set drop to your number and run the cell again.", drop):
        return False
    drop = answer_number("drop", drop)
    expected = 0.5 * (-0.24) * 0.5**2
    if math.isclose(drop, expected, rel_tol=1e-3):
        return report_answer(True, f"E changes by (1/2) lambda t^2 = {expected:.3f}", "")
    if math.isclose(drop, -expected, rel_tol=1e-3):
        return report_answer(False, "", "right size, wrong sign: along a negative eigenvalue the loss falls.")
    if math.isclose(drop, 2 * expected, rel_tol=1e-3):
        return report_answer(False, "", "the quadratic term of the Taylor expansion carries a factor 1/2.")
    return report_answer(False, "", "with g = 0 only the quadratic term (1/2) t^2 v^T H v is left, and v^T H v = lambda.")


def check_samples_needed(n) -> bool:
    """Self-check: test error 0.10 at n = 100 and 0.05 at n = 400 (a power law ``e = c n^-beta``):
    the n at which the error reaches 0.025."""
    if unanswered("set n to your number and run the cell again.", n):
        return False
    n = answer_number("n", n)
    beta = math.log(0.10 / 0.05) / math.log(400 / 100)
    expected = 400 * (0.05 / 0.025) ** (1 / beta)
    if math.isclose(n, expected, rel_tol=1e-2):
        return report_answer(True, f"beta = {beta:.2f}, so halving the error takes 4x the data: n = {expected:.0f}", "")
    if math.isclose(n, 800, rel_tol=1e-2):
        return report_answer(False, "", "doubling the data halves the error only if beta = 1; here beta = 1/2.")
    return report_answer(False, "", "fit beta from the two points first: e(400)/e(100) = (400/100)^(-beta).")
