"""Chapter 13 (attention and state-space models): figures, the live panel, its scrubber, self-checks.

* :func:`distance_panel` (``ch13.distance``): the gradient that reaches back a distance ``T - k``
  in three sequence models on one plot: one causal self-attention layer with a residual
  (``||d y_T / d x_k||``, :func:`vgplib.attention_jacobian`), chapter 4's tanh RNN
  (``||d h_T / d h_k||``, :func:`vgplib.step_jacobians` and :func:`vgplib.pairwise_log_norms`) and a
  diagonal state-space recurrence with a fixed step (``||d h_T / d h_k|| = a^(T - k)``, from
  :func:`vgplib.diagonal_decays`). Sliders: the sequence length ``T`` and the SSM's decay ``a``.
  The attention and RNN curves are computed once for ``T_MAX`` (both models are causal, so the
  row ``T`` of the ``T_MAX`` computation is the length-``T`` answer); a move only slices them and
  evaluates the decays: no JAX compilation per move.
* :func:`distance_scrubber`: the same figure over the decay, kernel-free.
* :func:`softmax_figure`, :func:`layernorm_figure`, :func:`adding_figure`: the chapter's static
  figures; :func:`check_decay_product`, :func:`check_uniform_softmax`: exercise self-checks.
"""

from __future__ import annotations

import math
from functools import lru_cache

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np

from vgplib.attention import attention_jacobian, init_attention
from vgplib.plots import freeze_decorations, new_figure
from vgplib.recurrent import (
    _diagonal_gates,
    init_diagonal,
    init_rnn,
    pairwise_log_norms,
    step_jacobians,
)
from vgplib.widgets import (
    LivePanel,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

T_MAX = 128
WIDTH = 16
Y_FLOOR = -40.0
_LN10 = math.log(10.0)


@lru_cache(maxsize=1)
def distance_data() -> dict[str, np.ndarray]:
    """``log10`` of the gradient norm at every (target ``T``, source ``k``), relative to ``k = T``.

    ``"attention"[T - 1, k - 1] = log10(||d y_T / d x_k|| / ||d y_T / d x_T||)`` for one causal
    attention layer (``d = 16``, weights ``N(0, 1/d)``, inputs ``N(0, 1)``, key 0);
    ``"rnn"[T, k] = log10(||d h_T / d h_k|| / ||I||)`` for a tanh RNN of 16 units (Gaussian ``W``,
    scale 1, chapter 4) driven by ``N(0, 1)`` inputs. Both ``(T_MAX + 1, T_MAX + 1)``-sized, NaN
    where ``k > T``.
    """
    k_att, k_x, k_rnn = jax.random.split(jax.random.key(0), 3)
    X = jax.random.normal(k_x, (T_MAX, WIDTH))
    J = attention_jacobian(init_attention(k_att, WIDTH), X, causal=True)         # (T, d, T, d)
    norms = np.asarray(jnp.sqrt(jnp.sum(J ** 2, axis=(1, 3))), np.float64)       # [t, k]
    with np.errstate(divide="ignore"):
        att = np.log10(norms) - np.log10(np.diag(norms))[:, None]
    att[np.triu(np.ones_like(att, bool), 1)] = np.nan
    rnn_params = init_rnn(k_rnn, WIDTH, WIDTH, w_init="gaussian", scale=1.0)
    L = np.asarray(pairwise_log_norms(step_jacobians(rnn_params, X, cell="rnn")), np.float64)
    rnn = (L - 0.5 * math.log(WIDTH)) / _LN10
    return {"attention": att, "rnn": rnn, "xs": np.asarray(X)}


@jax.jit
def _decays_kernel(params, xs):
    """:func:`vgplib.diagonal_decays` without its checks, compiled once (traced parameters)."""
    return _diagonal_gates(params, xs)[0]


def ssm_log10_curve(decay: float, T: int) -> np.ndarray:
    """``log10 ||d h_T / d h_k|| / ||I||`` for ``k = T, T-1, ..., 0`` (distance 0..T) of a fixed-step diagonal SSM.

    Every channel starts at the decay ``a = decay`` (:func:`vgplib.init_diagonal` with
    ``r_min = r_max = decay``, whose ``nu`` is ``log(-log(a))`` at ``Delta = 1``); the step Jacobian
    is ``diag(a_t)``, so the product over the last ``T - k`` steps is ``diag(prod a_t)``: a
    cumulative sum of ``log10 a_t``.
    """
    p = dict(_ssm_template(), nu=np.full(WIDTH, math.log(-math.log(decay)), np.float32))
    a = np.asarray(_decays_kernel(p, distance_data()["xs"]), np.float64)[:T]      # (T, n)
    logs = np.log10(a)[::-1]                                                      # last step first
    per_channel = np.concatenate([np.zeros((1, WIDTH)), np.cumsum(logs, axis=0)])  # (T + 1, n)
    return 0.5 * np.log10(np.mean(10.0 ** (2 * per_channel), axis=1))            # Frobenius / sqrt(n)


@lru_cache(maxsize=1)
def _ssm_template() -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in init_diagonal(jax.random.key(0), WIDTH, WIDTH, r_min=0.99, r_max=0.99).items()}


def make_distance_figure() -> tuple:
    """Gradient against distance for attention, RNN and SSM; ``update(T, decay)``."""
    fig, ax = new_figure(figsize=(6.4, 3.4), margins={"left": 0.13, "right": 0.97, "bottom": 0.15, "top": 0.8})
    (att,) = ax.plot([], [], "-", color="C0", lw=2, label="attention: ‖∂y_T/∂x_k‖ (one step)")
    (rnn,) = ax.plot([], [], "-", color="C3", lw=2, label="tanh RNN: ‖∂h_T/∂h_k‖ (T − k steps)")
    (ssm,) = ax.plot([], [], "--", color="C2", lw=2, label="diagonal SSM: a^(T − k)")
    ax.axhline(math.log10(np.finfo(np.float32).tiny), color="0.6", ls=":", lw=1)
    ax.set_xlim(0, T_MAX)
    ax.set_ylim(Y_FLOOR, 3)
    ax.set_xlabel("distance T − k")
    ax.set_ylabel("log₁₀ gradient norm (rel. to k = T)")
    ax.yaxis.set_label_coords(-0.1, 0.5)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=2, fontsize=8, frameon=False)
    data = distance_data()

    def update(T: int, decay: float) -> str:
        T = int(T)
        d = np.arange(T + 1)
        att.set_data(np.arange(T), data["attention"][T - 1, :T][::-1])
        rnn.set_data(d, data["rnn"][T, : T + 1][::-1])
        curve = ssm_log10_curve(float(decay), T)
        ssm.set_data(d, curve)
        low = float(np.nanmin(data["rnn"][T, : T + 1]))
        if low < math.log10(np.finfo(np.float32).tiny):
            return (f"underflow: the RNN's ‖∂h_T/∂h_0‖ is 10^{low:.0f} at T = {T}, below float32's 1.2e-38 "
                    "(log-space shown)")
        return ""

    return fig, update


def make_distance_figure_live() -> tuple:
    """:func:`make_distance_figure` with its fixed frame (limits, ticks, labels, legend) frozen into pixels."""
    fig, update = make_distance_figure()
    freeze_decorations(fig, fig.axes[0])
    return fig, update


def distance_controls() -> dict[str, ipywidgets.ValueWidget]:
    """Sequence length ``T`` and the SSM's per-step decay ``a``."""
    return {"T": ipywidgets.IntSlider(value=T_MAX, min=8, max=T_MAX, step=8, description="T"),
            "decay": ipywidgets.FloatSlider(value=0.99, min=0.8, max=0.999, step=0.001, description="SSM a",
                                            readout_format=".3f")}


@register_panel("ch13.distance")
def distance_panel() -> LivePanel:
    """Live panel: gradient against distance for attention, RNN and diagonal SSM."""
    return LivePanel(make_distance_figure_live, distance_controls())


def distance_scrubber(T: int = T_MAX):
    """Kernel-free twin of :func:`distance_panel`: the SSM decay from 0.8 to 0.999 at fixed ``T``."""
    values = [0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999]
    alt = (f"Log10 of the gradient norm against the distance T - k for T = {T}: flat near 0 for attention, "
           "falling by tens of orders of magnitude for the tanh RNN, and a straight line of slope log10(a) for "
           "the diagonal state-space recurrence, flatter as the decay a approaches 1.")
    return scrubber(make_distance_figure, "decay", values, fixed={"T": T}, alt=alt)


# --------------------------------------------------------------------------- static figures


def softmax_figure(scales: np.ndarray, saturation: dict[int, np.ndarray], dims: tuple[int, ...]):
    """Mean ``||softmax Jacobian||_F`` against the logit scale (one line per ``T``), with the scales
    ``sqrt(d)`` that unscaled dot products of width ``d`` reach marked."""
    fig, ax = new_figure(figsize=(6.0, 3.2), margins={"left": 0.12, "right": 0.97, "bottom": 0.16, "top": 0.9})
    for i, (T, sat) in enumerate(saturation.items()):
        ax.plot(scales, sat, "-", color=f"C{i}", lw=2, label=f"T = {T} logits")
    for d in dims:
        ax.axvline(math.sqrt(d), color="0.5", ls=":", lw=1)
        ax.text(math.sqrt(d), 0.31, f"√{d}", fontsize=8, ha="center", va="bottom", color="0.3")
    ax.axvline(1.0, color="k", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 0.36)
    ax.set_xlabel("logit scale c (logits c·z, z ~ N(0, I))")
    ax.set_ylabel("mean ‖∂p/∂z‖_F")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return fig


def layernorm_figure(norms: dict[str, np.ndarray], key: str = "W2"):
    """Per-layer gradient norm ``||dE/dW^l||`` (median and range over seeds) for pre-LN and post-LN."""
    fig, ax = new_figure(figsize=(6.0, 3.2), margins={"left": 0.12, "right": 0.97, "bottom": 0.16, "top": 0.9})
    for i, (name, g) in enumerate(norms.items()):
        layers = np.arange(1, g.shape[1] + 1)
        ax.plot(layers, np.median(g, axis=0), "o-", color=f"C{i}", lw=2, ms=4, label=name)
        ax.fill_between(layers, g.min(0), g.max(0), color=f"C{i}", alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("layer l")
    ax.set_ylabel(f"‖∂E/∂{key}ˡ‖_F")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return fig


def adding_figure(curves: dict[str, np.ndarray], T: int, window: int = 10):
    """Training MSE over the baseline 1/6 (moving average over ``window`` steps), one line per seed."""
    fig, ax = new_figure(figsize=(6.0, 3.2), margins={"left": 0.12, "right": 0.97, "bottom": 0.16, "top": 0.9})
    kernel = np.ones(window) / window
    for i, (name, c) in enumerate(curves.items()):
        for s in range(c.shape[1]):
            smooth = np.convolve(c[:, s], kernel, mode="valid")
            ax.plot(np.arange(window, c.shape[0] + 1), smooth, "-", color=f"C{i}", lw=1.2,
                    label=name if s == 0 else None)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("training MSE / (1/6)")
    ax.set_title(f"adding problem, T = {T}", fontsize=9)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    return fig


# --------------------------------------------------------------------------- self-checks


def check_decay_product(answer) -> bool:
    """Self-check: ``||d h_T / d h_{T-100}||`` / ``||I||`` of a fixed-step diagonal SSM with ``a = 0.99``."""
    if unanswered("set answer to your number and run the cell again.", answer):
        return False
    ref = 0.99 ** 100
    if math.isclose(float(answer), ref, rel_tol=1e-2):
        return report_answer(True, f"0.99^100 = {ref:.3f}: a third of the gradient survives 100 steps", "")
    if math.isclose(float(answer), 0.99 * 100, rel_tol=1e-2):
        return report_answer(False, "", "the step Jacobians multiply, they do not add.")
    return report_answer(False, "", "the step Jacobian is diag(a); multiply 100 of them.")


def check_uniform_softmax(answer) -> bool:
    """Self-check: ``||diag(p) - p p^T||_F`` at the uniform ``p`` of ``T = 16`` logits."""
    if unanswered("set answer to your number and run the cell again.", answer):
        return False
    ref = math.sqrt(15) / 16
    if math.isclose(float(answer), ref, rel_tol=1e-2):
        return report_answer(True, f"sqrt(T - 1) / T = {ref:.3f}", "")
    return report_answer(False, "", "the diagonal entries are 1/T - 1/T^2, the others -1/T^2; add their squares.")
