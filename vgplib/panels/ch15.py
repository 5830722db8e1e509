"""Chapter 15, *What vanishing gradients are not*: the figures of its three runs and its exercises.

The chapter tells vanishing gradients apart from three problems that look like them in a loss curve,
each by one measurement: overfitting by the gap between test and training loss, a saddle point by
the negative eigenvalues of the exact Hessian (:func:`vgplib.hessian_eigenvalues`), and the curse of
dimensionality by the test error against the number of training samples. The per-layer gradient
profile ``||dE/dtheta_l|| / ||dE/dtheta_L||`` (:func:`vgplib.layer_gradient_norms`) is the
measurement of vanishing itself. The drawing code lives here so that the notebook shows the lesson.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.ticker import NullFormatter

from vgplib.plots import new_figure
from vgplib.widgets import answer_number, report_answer, unanswered

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
