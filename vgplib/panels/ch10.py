"""Chapter 10, *Gating: LSTM and GRU*: its live panel, its experiments' helpers and its exercises.

Notation (DESIGN.md 2b): the recurrent state is ``s_t``; for the LSTM ``s_t = [h_t; c_t]`` with::

    i, f, o = sigmoid(W_. h_{t-1} + U_. x_t + b_.),  c~ = tanh(W_c~ h_{t-1} + U_c~ x_t + b_c~),
    c_t = f * c_{t-1} + i * c~,                        h_t = o * tanh(c_t)

(Hochreiter & Schmidhuber 1997, with the forget gate of Gers, Schmidhuber & Cummins 2000), and for
the GRU ``h_t = z * h_{t-1} + (1 - z) * tanh(W_h (r * h_{t-1}) + U_h x_t + b_h)`` (Cho et al. 2014).
The step Jacobian ``J_t = d s_t / d s_{t-1}`` has the carousel block ``d c_t / d c_{t-1} = diag(f_t)``
(:func:`vgplib.lstm_step_blocks`); the GRU's has the term ``diag(z_t)`` (:func:`vgplib.gru_step_jacobian`).

* :func:`carousel_products`: ``log ||d c_T / d c_k||`` of an LSTM for forget-gate biases 0, 1, 3, and
  ``log ||d h_T / d h_k||`` of tanh RNNs (spectral radius 0.9, 1.0) and of GRUs (update-gate biases
  0, 1, 3), all in log-space up to ``T = 1000``, with the forget (update) gates' own prediction
  ``log ||prod_t diag(f_t)||`` and the per-step decay rates fitted on lags >= 100.
* :func:`gated_adding_experiment`: the adding problem of chapter 4 at ``T = 100`` for the RNN, the LSTM
  and the GRU (321 to 361 parameters), several seeds, trained by :func:`vgplib.train_adding`;
  test error by lag, BPTT contributions per lag (:func:`vgplib.bptt_contributions`) during
  training, and what truncating the backward pass at ``k`` steps removes from the gradient.
* :func:`carousel_panel` (registered ``"ch10.carousel"``): forget-gate bias and sequence length ->
  heat maps of ``log10 ||d c_t / d c_k||`` and ``log10 ||d h_t / d h_k||`` over ``0 <= k <= t <= T``
  (:func:`vgplib.pairwise_log_norms` with ``block=``); one compiled kernel, the bias traced, the
  network run to :data:`PANEL_T` steps once (``s_t`` for ``t <= T`` does not depend on later steps).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgplib._validate import check_positive_int
from vgplib.activations import get_activation
from vgplib.data import ADDING_BASELINE_MSE, adding_problem
from vgplib.jacobians import log_norms
from vgplib.plots import freeze_axes, freeze_decorations, new_figure
from vgplib.recurrent import (
    _jacobians_one,
    _pairwise,
    adding_predict,
    bptt_contributions,
    init_gru,
    init_lstm,
    init_rnn,
    lstm_gates,
    lstm_log_norms,
    lstm_split,
    step_jacobians,
    train_adding,
    unroll,
)
from vgplib.widgets import (
    LivePanel,
    answer_number,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

_LN10 = math.log(10.0)
HIDDEN = 16  #: hidden size of the product experiment
PRODUCT_T = 1000  #: length of the product experiment
FORGET_BIASES = (0.0, 1.0, 3.0)  #: forget-gate (and GRU update-gate) biases compared
RHOS = (0.9, 1.0)  #: spectral radii of the tanh RNNs compared
FIT_MIN_LAG = 100  #: decay rates are fitted on lags T - k >= this
CELL_HIDDEN = {"rnn": 16, "lstm": 8, "gru": 9}  #: hidden sizes of the adding experiment (321, 361, 334 parameters)
#: Forget-gate bias of the adding experiment's LSTM: sigma(3) = 0.95, the carousel of :func:`carousel_products`
#: that keeps 1e-8 of the gradient over 1000 steps. With b_f = 1 (mean forget gate 0.69) whether an LSTM escaped
#: the constant predictor within 600 steps changed from seed to seed, and for one seed with the CPU's rounding.
ADDING_FORGET_BIAS = 3.0
CELLS = ("rnn", "lstm", "gru")
_CELL_COLORS = {"rnn": "0.45", "lstm": "C0", "gru": "C2"}
_CELL_LABELS = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}


# --------------------------------------------------------------------------- the product over T steps


def _diag_path_log_norm(log_gates: np.ndarray) -> np.ndarray:
    """``log ||prod_{t > k} diag(gate_t)||_F`` for ``k = 0..T`` from ``log gate`` ``(T, n)`` (float64, exact)."""
    suffix = np.concatenate([np.cumsum(log_gates[::-1], axis=0)[::-1], np.zeros((1, log_gates.shape[1]))])
    top = suffix.max(axis=1, keepdims=True)
    return top[:, 0] + 0.5 * np.log(np.sum(np.exp(2.0 * (suffix - top)), axis=1))


def _rate(lags: np.ndarray, values: np.ndarray, min_lag: int = FIT_MIN_LAG) -> float:
    """Least-squares slope of a log-norm against the lag, on lags >= ``min_lag``: the per-step log-decay."""
    sel = lags >= min_lag
    return float(np.polyfit(lags[sel], values[sel], 1)[0])


class Products(NamedTuple):
    """What :func:`carousel_products` measured (natural logs, NumPy, index ``k = 0..T``; lag ``T - k``)."""

    lags: np.ndarray
    lstm_cc: dict          # bias -> log ||d c_T / d c_k||_F (all paths)
    lstm_hh: dict          # bias -> log ||d h_T / d h_k||_F
    lstm_pred: dict        # bias -> log ||prod_{t>k} diag(f_t)||_F (the carousel alone)
    rnn: dict              # rho -> log ||d h_T / d h_k||_F
    gru: dict              # bias -> log ||d h_T / d h_k||_F
    gru_pred: dict         # bias -> log ||prod_{t>k} diag(z_t)||_F
    mean_gate: dict        # ("lstm"|"gru", bias) -> mean forget / update gate
    rates: dict            # (name, key) -> fitted per-step log-decay


def carousel_products(T: int = PRODUCT_T, n: int = HIDDEN, seed: int = 1) -> Products:
    """The products ``d s_T / d s_k`` of chapter 10's figure, exact in log-space.

    One input sequence ``x_t ~ N(0, I_2)`` (key 11) drives: LSTMs from :func:`vgplib.init_lstm`
    (``W`` Gaussian, scale 1, key ``seed``) with forget-gate bias ``b_f`` in :data:`FORGET_BIASES`;
    tanh RNNs with ``W`` rescaled to spectral radius ``rho`` in :data:`RHOS`; GRUs from
    :func:`vgplib.init_gru` with ``b_f`` added to the update-gate bias. Every curve comes from the
    exact step Jacobians (:func:`vgplib.step_jacobians`) through :func:`vgplib.lstm_log_norms` /
    :func:`vgplib.log_norms`; the gates' prediction is the diagonal path alone,
    ``log ||prod_{t>k} diag(f_t)||_F`` from the gates the network actually had.
    """
    T = check_positive_int("T", T, minimum=2 * FIT_MIN_LAG)
    n = check_positive_int("n", n)
    xs = jax.random.normal(jax.random.key(11), (T, 2), jnp.float32)
    lags = T - np.arange(T + 1)
    out = Products(lags, {}, {}, {}, {}, {}, {}, {}, {})
    for b in FORGET_BIASES:
        p = init_lstm(jax.random.key(seed), 2, n, forget_bias=b)
        blocks = lstm_log_norms(step_jacobians(p, xs, cell="lstm"))
        h, _ = lstm_split(unroll(p, xs, cell="lstm"))
        h_prev = jnp.concatenate([jnp.zeros((1, n)), h[:-1]])
        f = np.asarray(lstm_gates(p, h_prev, xs).f, np.float64)
        out.lstm_cc[b] = np.asarray(blocks.c_c, np.float64)
        out.lstm_hh[b] = np.asarray(blocks.h_h, np.float64)
        out.lstm_pred[b] = _diag_path_log_norm(np.log(f))
        out.mean_gate[("lstm", b)] = float(f.mean())
        p = init_gru(jax.random.key(seed), 2, n)
        p = dict(p, b=p["b"].at[:n].add(b))
        out.gru[b] = np.asarray(log_norms(step_jacobians(p, xs, cell="gru")).frobenius, np.float64)
        hs = unroll(p, xs, cell="gru")
        h_prev = jnp.concatenate([jnp.zeros((1, n)), hs[:-1]])
        z = np.asarray(jax.nn.sigmoid(h_prev @ p["W"][:n].T + xs @ p["U"][:n].T + p["b"][:n]), np.float64)
        out.gru_pred[b] = _diag_path_log_norm(np.log(z))
        out.mean_gate[("gru", b)] = float(z.mean())
    for rho in RHOS:
        p = init_rnn(jax.random.key(seed), 2, n, w_init="spectral_radius", scale=rho)
        out.rnn[rho] = np.asarray(log_norms(step_jacobians(p, xs, cell="rnn")).frobenius, np.float64)
    for name, curves in (("lstm_cc", out.lstm_cc), ("lstm_hh", out.lstm_hh), ("lstm_pred", out.lstm_pred),
                         ("rnn", out.rnn), ("gru", out.gru), ("gru_pred", out.gru_pred)):
        for key, values in curves.items():
            out.rates[(name, key)] = _rate(lags, values)
    return out


def make_products_figure(prod: Products):
    """Left: LSTM ``log10 ||d c_T/d c_k||`` (solid) and the forget gates' prediction (dashed) against the
    lag, with the tanh RNNs (grey). Right: the GRU and its update gates' prediction."""
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.6), ncols=2,
                                 margins={"left": 0.1, "right": 0.98, "bottom": 0.14, "top": 0.9, "wspace": 0.3})
    lags = prod.lags
    colors = dict(zip(FORGET_BIASES, ("C3", "C1", "C0")))
    for b in FORGET_BIASES:
        ax1.plot(lags, prod.lstm_cc[b] / _LN10, "-", color=colors[b], lw=1.8, label=f"LSTM, b_f = {b:g}")
        ax1.plot(lags, prod.lstm_pred[b] / _LN10, "--", color=colors[b], lw=1.2)
        ax2.plot(lags, prod.gru[b] / _LN10, "-", color=colors[b], lw=1.8, label=f"GRU, b_z = {b:g}")
        ax2.plot(lags, prod.gru_pred[b] / _LN10, "--", color=colors[b], lw=1.2)
    for rho, ls in zip(RHOS, (":", "-.")):
        ax1.plot(lags, prod.rnn[rho] / _LN10, ls, color="0.4", lw=1.4, label=f"tanh RNN, ρ = {rho:g}")
    ax1.plot([], [], "--", color="k", lw=1.2, label="gates alone: ‖Π diag(f)‖")
    ax2.plot([], [], "--", color="k", lw=1.2, label="gates alone: ‖Π diag(z)‖")
    for ax, title, ylabel in ((ax1, "LSTM cell state vs tanh RNN", "log₁₀ ‖∂c_T/∂c_k‖ or ‖∂h_T/∂h_k‖"),
                              (ax2, "GRU hidden state", "log₁₀ ‖∂h_T/∂h_k‖")):
        ax.set_xlabel("lag T − k (steps)")
        ax.set_ylabel(ylabel)
        ax.yaxis.set_label_coords(-0.16, 0.5)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, lags[0])
        ax.legend(fontsize=8, loc="lower left", frameon=False)
    ax1.set_ylim(-400, 5)
    ax2.set_ylim(-400, 5)
    return fig


# --------------------------------------------------------------------------- the adding problem, gated


class GatedRun(NamedTuple):
    """What :func:`gated_adding_experiment` measured (NumPy; ``S`` seeds, ``C`` checkpoints).

    ``test_ratio[cell]`` ``(S,)``: test MSE / (1/6); ``lag_edges`` the bins of the first marker's lag
    (steps before the end); ``lag_ratio[cell]`` ``(S, bins)``: test MSE / (1/6) of the sequences in
    each bin; ``history[cell]`` ``(steps, S)``: training MSE / (1/6); ``params[cell]``: parameters
    after every ``record`` steps, leaves ``(R, S, ...)``; ``contrib[cell]`` ``(C, S, T)``:
    ``log10`` of ``||dE/dtheta_t|| / ||dE/dtheta_T||`` for the step ``t = T - lag`` (entry ``lag``),
    on ``n_contrib`` test sequences, at the steps in ``checkpoints``.
    """

    T: int
    seeds: tuple
    checkpoints: tuple
    test_ratio: dict
    lag_edges: np.ndarray
    lag_ratio: dict
    history: dict
    params: dict
    contrib: dict
    contrib_terms: dict


_INITS = {"rnn": init_rnn, "lstm": init_lstm, "gru": init_gru}


def adding_params(cell: str, seed: int) -> dict:
    """A network for the adding problem: the cell of :data:`CELL_HIDDEN` size (Gaussian ``W``, scale 1,
    LSTM forget bias :data:`ADDING_FORGET_BIAS`) from ``jax.random.key(seed)`` and the readout ``v = 0``,
    ``c = 1``: the constant predictor, test MSE 1/6, at step 0."""
    n = CELL_HIDDEN[cell]
    extra = {"forget_bias": ADDING_FORGET_BIAS} if cell == "lstm" else {}
    p = _INITS[cell](jax.random.key(seed), 2, n, **extra)
    return dict(p, v=jnp.zeros(n), c=jnp.ones(()))


def n_parameters(cell: str) -> int:
    """Number of trained parameters of :func:`adding_params` (recurrent block plus readout)."""
    return int(sum(np.size(a) for a in adding_params(cell, 0).values()))


@lru_cache(maxsize=4)
def _adam(lr: float) -> optax.GradientTransformation:
    return optax.adam(lr)


def _core(p):
    return {k: p[k] for k in ("W", "U", "b")}


def contribution_norms(params, xs, y, cell: str) -> np.ndarray:
    """``||dE/dtheta_t||`` for every step ``t = 1..T`` (``(T,)``, float64): the per-step BPTT terms of the
    batch MSE of :func:`vgplib.adding_mse` (with ``theta = (W, U, b)``), by :func:`vgplib.bptt_contributions`
    with ``dE/dh_T = 2 (pred - y) v / B``."""
    terms = _bptt_terms(params, xs, y, cell)
    sq = sum(np.sum(np.asarray(terms[k], np.float64) ** 2, axis=tuple(range(1, terms[k].ndim))) for k in terms)
    return np.sqrt(sq)


def gated_adding_experiment(T: int = 100, seeds=(0, 1, 2), steps: int = 600, batch: int = 64, lr: float = 1e-2,
                            checkpoints=(50, 200, 600), n_eval: int = 2000, n_contrib: int = 64,
                            record: int = 50) -> GatedRun:
    """Train the RNN, the LSTM and the GRU on the adding problem of length ``T`` for every seed.

    The budget of chapter 4 (``steps`` Adam steps at ``lr`` on ``batch`` fresh sequences, the readout
    started at the constant predictor) with the hidden sizes of :data:`CELL_HIDDEN`, chosen so that
    the three cells have about the same number of parameters (chapter 4's RNN had 16 units). Seed
    ``s`` sets the initial weights (``jax.random.key(s)``) and the batch stream
    (``fold_in(key(s), 1)``), the same for the three cells. All seeds of a cell train side by side
    in one compiled :func:`vgplib.train_adding`. The test set is ``n_eval`` sequences (key 12345).
    """
    seeds, checkpoints = tuple(seeds), tuple(checkpoints)
    T = check_positive_int("T", T, minimum=8)
    if any(c % record or not 0 < c <= steps for c in checkpoints):
        raise ValueError(f"checkpoints must be multiples of record = {record} in (0, steps]")
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds])
    test = adding_problem(jax.random.key(12345), T, n_eval)
    first = T - np.argmax(np.asarray(test.inputs[:, :, 1]), axis=1)   # lag of the first marker: T/2+1 .. T
    edges = np.linspace(T // 2, T, 6)
    bins = np.clip(np.digitize(first, edges[1:-1]), 0, len(edges) - 2)
    xc, yc = test.inputs[:n_contrib], test.targets[:n_contrib]
    out = GatedRun(T, seeds, checkpoints, {}, edges, {}, {}, {}, {}, {})
    for cell in CELLS:
        params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *[adding_params(cell, s) for s in seeds])
        run = train_adding(params, keys, T, _adam(float(lr)), steps=steps, batch_size=batch, cell=cell,
                           record_every=record)
        final = jax.tree_util.tree_map(lambda a: a[-1], run.params)
        pred = jax.vmap(lambda p, cell=cell: _predict(p, test.inputs, cell))(final)
        err = (np.asarray(pred, np.float64) - np.asarray(test.targets, np.float64)) ** 2     # (S, n_eval)
        out.test_ratio[cell] = err.mean(axis=1) / ADDING_BASELINE_MSE
        out.lag_ratio[cell] = np.stack([err[:, bins == j].mean(axis=1) for j in range(len(edges) - 1)],
                                       axis=1) / ADDING_BASELINE_MSE
        out.history[cell] = np.asarray(run.losses, np.float64) / ADDING_BASELINE_MSE
        out.params[cell] = jax.tree_util.tree_map(np.asarray, run.params)
        terms = np.full((len(checkpoints), len(seeds), T), np.nan)
        for i, c in enumerate(checkpoints):
            for s in range(len(seeds)):
                p = jax.tree_util.tree_map(lambda a, i=c // record - 1, s=s: a[i, s], run.params)
                terms[i, s] = contribution_norms(p, xc, yc, cell)[::-1]            # entry l: lag l
        out.contrib_terms[cell] = terms
        with np.errstate(divide="ignore"):
            out.contrib[cell] = np.log10(terms / terms[..., :1])
    return out


def _predict(params, xs, cell):
    return adding_predict(params, xs, cell=cell)


def make_adding_figure(run: GatedRun):
    """Left: test MSE / (1/6) against the first marker's lag, median over seeds with the min-max band.
    Right: training MSE / (1/6) (mean over 25-step windows), one line per seed."""
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.5), ncols=2,
                                 margins={"left": 0.1, "right": 0.98, "bottom": 0.14, "top": 0.9, "wspace": 0.3})
    centers = 0.5 * (run.lag_edges[1:] + run.lag_edges[:-1])
    for cell in CELLS:
        r = run.lag_ratio[cell]
        col = _CELL_COLORS[cell]
        ax1.plot(centers, np.median(r, axis=0), "o-", color=col, label=_CELL_LABELS[cell])
        ax1.fill_between(centers, r.min(axis=0), r.max(axis=0), color=col, alpha=0.2, lw=0)
        h = run.history[cell]
        w = 25
        smooth = h[: len(h) // w * w].reshape(-1, w, h.shape[1]).mean(axis=1)
        steps = (np.arange(smooth.shape[0]) + 0.5) * w
        for s in range(h.shape[1]):
            ax2.plot(steps, smooth[:, s], "-", color=col, lw=1.2, label=_CELL_LABELS[cell] if s == 0 else None)
    ax1.axhline(1.0, color="k", ls="--", lw=1)
    ax1.text(centers[0], 1.04, "constant predictor", fontsize=8)
    ax1.set_ylim(0, 1.4)
    ax1.set_xlabel("lag of the first marker (steps before the end)")
    ax1.set_ylabel("test MSE / (1/6)")
    ax1.yaxis.set_label_coords(-0.13, 0.5)
    ax1.legend(fontsize=8, loc="center left", frameon=False)
    ax1.set_title(f"T = {run.T}: median and range of {len(run.seeds)} seeds", fontsize=10)
    ax2.axhline(1.0, color="k", ls="--", lw=1)
    ax2.set_yscale("log")
    ax2.set_xlabel("Adam step")
    ax2.set_ylabel("training MSE / (1/6)")
    ax2.yaxis.set_label_coords(-0.13, 0.5)
    ax2.legend(fontsize=8, loc="lower left", frameon=False)
    ax2.set_title("training (25-step means)", fontsize=10)
    return fig


def make_contrib_figure(run: GatedRun, cells=("rnn", "lstm")):
    """Per-lag BPTT contributions ``log10 ||dE/dtheta_{T-l}|| / ||dE/dtheta_T||`` at each checkpoint,
    one panel per cell, one line per seed (line style: checkpoint)."""
    fig, axes = new_figure(figsize=(7.0, 3.4), ncols=len(cells),
                           margins={"left": 0.1, "right": 0.98, "bottom": 0.15, "top": 0.9, "wspace": 0.3})
    styles = (":", "--", "-")
    lags = np.arange(run.T)
    for ax, cell in zip(axes, cells):
        for i, c in enumerate(run.checkpoints):
            for s in range(len(run.seeds)):
                ax.plot(lags, run.contrib[cell][i, s], styles[i % 3], color=f"C{s}", lw=1.2,
                        label=f"step {c}" if s == 0 else None)
        ax.set_xlabel("lag l = T − t (steps before the end)")
        ax.set_ylabel("log₁₀ ‖∂E/∂θ_t‖ / ‖∂E/∂θ_T‖")
        ax.yaxis.set_label_coords(-0.15, 0.5)
        ax.set_title(f"{_CELL_LABELS[cell]}, {CELL_HIDDEN[cell]} units", fontsize=10)
        ax.set_ylim(-25, 3)
        ax.legend(fontsize=8, loc="lower left", frameon=False, title="colour: seed", title_fontsize=8)
    return fig


# --------------------------------------------------------------------------- truncated BPTT


TRUNCATIONS = (1, 2, 5, 10, 20, 50, 75, 100)  #: k: steps the truncated backward pass keeps


def truncation_errors(run: GatedRun, step: int = 600, n_seq: int = 64) -> dict:
    """What cutting the backward pass at ``k`` steps removes from the gradient, measured.

    For a loss on ``h_T`` only, BPTT truncated at ``k`` steps (Williams & Peng 1990) keeps the terms
    ``dE/dtheta_t`` with ``t > T - k`` and drops the rest. At the parameters after ``step`` training
    steps, on ``n_seq`` test sequences, per cell and seed: ``rel[k] = ||g^(k) - g|| / ||g||`` and
    ``cos[k]`` = cosine between ``g^(k)`` and the full gradient ``g``, for ``k`` in
    :data:`TRUNCATIONS`. Returns ``{cell: {"rel": (S, K), "cos": (S, K)}}``.
    """
    if step not in run.checkpoints:
        raise ValueError(f"step must be one of the run's checkpoints {run.checkpoints}; got {step}")
    test = adding_problem(jax.random.key(12345), run.T, n_seq)
    out = {}
    for cell in CELLS:
        rel = np.zeros((len(run.seeds), len(TRUNCATIONS)))
        cos = np.zeros_like(rel)
        for s in range(len(run.seeds)):
            p = jax.tree_util.tree_map(lambda a, s=s: jnp.asarray(a[step // 50 - 1, s]), run.params[cell])
            terms = _terms(p, test.inputs, test.targets, cell)          # (T, P): flat per-step terms
            g = terms.sum(axis=0)
            for j, k in enumerate(TRUNCATIONS):
                gk = terms[run.T - k:].sum(axis=0)
                rel[s, j] = np.linalg.norm(gk - g) / np.linalg.norm(g)
                cos[s, j] = float(gk @ g / (np.linalg.norm(gk) * np.linalg.norm(g)))
        out[cell] = {"rel": rel, "cos": cos}
    return out


def _bptt_terms(params, xs, y, cell) -> dict:
    """The per-step BPTT terms ``dE/dtheta_t`` (``theta = (W, U, b)``) of the batch MSE of
    :func:`vgplib.adding_mse`, by :func:`vgplib.bptt_contributions` with ``dE/dh_T = 2 (pred - y) v / B``."""
    n = params["W"].shape[1]
    core = _core(params)
    hs = unroll(core, xs, cell=cell)[:, -1, :n]
    pred = hs @ params["v"] + params["c"]
    g = 2.0 * (pred - y)[:, None] * params["v"][None, :] / xs.shape[0]
    return bptt_contributions(core, xs, grad_output=g, cell=cell)


def _terms(params, xs, y, cell) -> np.ndarray:
    terms = _bptt_terms(params, xs, y, cell)
    T = xs.shape[1]
    return np.concatenate([np.asarray(terms[k], np.float64).reshape(T, -1) for k in ("W", "U", "b")], axis=1)


def truncated_gradient(params, xs, y, k: int, cell: str) -> dict:
    """Independent path for truncated BPTT: ``jax.grad`` of the batch MSE with the state stopped
    (``lax.stop_gradient``) at step ``T - k``, a Python loop over :func:`vgplib.unroll` pieces.
    Returns ``dE/d(W, U, b)`` of the truncated backward pass."""
    T = xs.shape[1]
    n = params["W"].shape[1]

    def loss(core):
        head = unroll(core, xs[:, : T - k], cell=cell)[:, -1] if k < T else None
        s0 = None if head is None else jax.lax.stop_gradient(head)
        tail = unroll(core, xs[:, T - k:], h0=s0, cell=cell)[:, -1, :n]
        return jnp.mean((tail @ params["v"] + params["c"] - y) ** 2)

    return jax.grad(loss)(_core(params))


def make_truncation_figure(trunc: dict):
    """Relative error ``||g^(k) - g|| / ||g||`` of the truncated gradient against ``k``, per cell (median,
    min-max band over seeds)."""
    fig, ax = new_figure(figsize=(5.0, 3.2), margins={"left": 0.14, "right": 0.97, "bottom": 0.16, "top": 0.9})
    k = np.array(TRUNCATIONS)
    for cell in CELLS:
        rel = trunc[cell]["rel"]
        col = _CELL_COLORS[cell]
        ax.plot(k, np.median(rel, axis=0), "o-", color=col, label=_CELL_LABELS[cell])
        ax.fill_between(k, rel.min(axis=0), rel.max(axis=0), color=col, alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_ylim(0, 2)
    ax.set_xlabel("k: steps kept by the truncated backward pass")
    ax.set_ylabel("‖g⁽ᵏ⁾ − g‖ / ‖g‖")
    ax.yaxis.set_label_coords(-0.15, 0.5)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("what truncation removes (T = 100)", fontsize=10)
    return fig


# --------------------------------------------------------------------------- the live panel


PANEL_T = 60  #: steps of the panel's fixed-shape LSTM (the T slider's maximum)
PANEL_N = 8   #: its hidden size
PANEL_SEED = 3
HEAT_RANGE = (-30.0, 1.0)  #: colour limits, log10


@lru_cache(maxsize=1)
def panel_data() -> dict:
    """The panel's fixed LSTM (forget bias 0; the slider adds ``b_f``) and input sequence ``x_t ~ N(0, I_2)``."""
    k_net, k_x = jax.random.split(jax.random.key(PANEL_SEED))
    p = init_lstm(k_net, 2, PANEL_N, forget_bias=0.0)
    xs = jax.random.normal(k_x, (PANEL_T, 2), jnp.float32)
    return {"W": p["W"], "U": p["U"], "b": p["b"], "xs": xs}


@jax.jit
def _panel_kernel(W, U, b, xs, forget_bias):
    """Heat maps ``log ||d c_t/d c_k||`` and ``log ||d h_t/d h_k||`` ``(T+1, T+1)`` and the mean forget gate."""
    n = W.shape[1]
    b = b.at[n:2 * n].add(forget_bias)
    params = {"W": W, "U": U, "b": b}
    act = get_activation("tanh")
    s0 = jnp.zeros((2 * n,), W.dtype)
    J = _jacobians_one(params, xs, s0, "lstm", act)
    cc = _pairwise(J, False, (n, 2 * n), (n, 2 * n))
    hh = _pairwise(J, False, (0, n), (0, n))
    f = jnp.diagonal(J[:, n:, n:], axis1=1, axis2=2)  # d c_t / d c_{t-1} = diag(f_t)
    return cc, hh, f


def panel_maps(forget_bias: float, T: int) -> dict:
    """The panel's data (natural logs): ``cc``, ``hh`` ``(T+1, T+1)`` (NaN for ``t < k``) and ``f`` ``(T, n)``."""
    if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.integer, np.floating)):
        raise TypeError(f"forget_bias must be a real number; got {type(forget_bias).__name__}")
    if not math.isfinite(forget_bias):
        raise ValueError(f"forget_bias must be finite; got {forget_bias}")
    T = check_positive_int("T", T)
    if T > PANEL_T:
        raise ValueError(f"T must be <= {PANEL_T}; got {T}")
    d = panel_data()
    cc, hh, f = jax.device_get(_panel_kernel(d["W"], d["U"], d["b"], d["xs"], np.float32(forget_bias)))
    return {"cc": np.asarray(cc)[: T + 1, : T + 1], "hh": np.asarray(hh)[: T + 1, : T + 1], "f": np.asarray(f)[:T]}


def make_panel_figure():
    """Two heat maps over (k, t): ``log10 ||d c_t/d c_k||`` and ``log10 ||d h_t/d h_k||``. ``update(forget_bias, T)``."""
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.3), ncols=2,
                                 margins={"left": 0.08, "right": 0.9, "bottom": 0.15, "top": 0.82, "wspace": 0.3})
    blank = np.full((PANEL_T + 1, PANEL_T + 1), np.nan)
    images = []
    for ax, name in ((ax1, "‖∂c_t/∂c_k‖ (cell state)"), (ax2, "‖∂h_t/∂h_k‖ (hidden state)")):
        im = ax.imshow(blank, origin="lower", cmap="magma", vmin=HEAT_RANGE[0], vmax=HEAT_RANGE[1],
                       interpolation="nearest", aspect="auto", extent=(-0.5, PANEL_T + 0.5, -0.5, PANEL_T + 0.5))
        ax.set_xticks(range(0, PANEL_T + 1, 20))
        ax.set_yticks(range(0, PANEL_T + 1, 20))
        ax.set_xlabel("source step k")
        ax.set_ylabel("target step t")
        ax.yaxis.set_label_coords(-0.14, 0.5)
        ax.set_title(f"log₁₀ {name}", fontsize=9)
        images.append(im)
    cax = fig.add_axes([0.92, 0.15, 0.015, 0.67])
    cbar = fig.colorbar(images[0], cax=cax)
    cbar.set_ticks([-30, -20, -10, 0])
    cbar.ax.tick_params(labelsize=8)
    suptitle = fig.suptitle("", fontsize=9, y=0.97)

    def update(forget_bias: float, T: int) -> str:
        m = panel_maps(forget_bias, T)
        for im, key in zip(images, ("cc", "hh")):
            data = np.full((PANEL_T + 1, PANEL_T + 1), np.nan)
            data[: T + 1, : T + 1] = m[key] / _LN10
            im.set_data(data)
        row_c, row_h = m["cc"][T, 0] / _LN10, m["hh"][T, 0] / _LN10
        suptitle.set_text(f"LSTM, {PANEL_N} units, forget bias b_f = {forget_bias:+.2f}: mean f = {m['f'].mean():.2f}; "
                          f"log₁₀‖∂c_T/∂c_0‖ = {row_c:.1f}, log₁₀‖∂h_T/∂h_0‖ = {row_h:.1f}")
        low = min(row_c, row_h)
        if low < HEAT_RANGE[0]:
            return f"underflow of the colour scale: the products reach 10^{low:.0f} (exact, in log-space)"
        return ""

    return fig, update


def panel_controls() -> dict:
    """The forget-gate bias and the sequence length."""
    return {
        "forget_bias": ipywidgets.FloatSlider(value=1.0, min=-2.0, max=6.0, step=0.25, description="b_f",
                                              readout_format="+.2f"),
        "T": ipywidgets.IntSlider(value=PANEL_T, min=2, max=PANEL_T, description="T"),
    }


def make_panel_figure_live():
    """:func:`make_panel_figure` with the colorbar and both heat maps' frames frozen into pixels (live panel)."""
    fig, update = make_panel_figure()
    ax1, ax2, cax = fig.axes
    freeze_axes(fig, cax)
    freeze_decorations(fig, ax1)
    freeze_decorations(fig, ax2)
    return fig, update


@register_panel("ch10.carousel")
def carousel_panel() -> LivePanel:
    """Live panel: forget-gate bias and T -> the heat maps of ||d c_t/d c_k|| and ||d h_t/d h_k||."""
    return LivePanel(make_panel_figure_live, panel_controls())


SCRUBBER_BIASES = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)


def carousel_scrubber(T: int = PANEL_T):
    """Kernel-free twin of :func:`carousel_panel`: the forget-gate bias from -2 to 6 at fixed ``T``."""
    alt = (f"Two heat maps over source step k and target step t up to {T} of log10 of the norms of dc_t/dc_k "
           "and dh_t/dh_k of an 8-unit LSTM, for forget-gate biases -2 to 6: as the bias grows the cell-state "
           "map brightens far from the diagonal, the gradient carried back over many steps.")
    return scrubber(make_panel_figure, "forget_bias", list(SCRUBBER_BIASES), fixed={"T": T}, alt=alt)


# --------------------------------------------------------------------------- exercises


def check_carousel_steps(steps: int | None = None) -> None:
    """Self-check: with every forget gate held at ``sigmoid(3)`` and the paths through ``h`` cut, after
    how many steps has ``||d c_T / d c_k||_2`` first fallen below ``10^-3``? (Checked by multiplying
    the factors one by one, an independent path from the logarithm the question suggests.)"""
    if unanswered("check_carousel_steps(steps)", steps):
        return
    steps = answer_number("steps", steps)
    f = 1.0 / (1.0 + math.exp(-3.0))
    prod, k = 1.0, 0
    while prod >= 1e-3:
        prod *= f
        k += 1
    report_answer(steps == k, "the smallest k with sigmoid(3)^k < 10^-3",
                         "the carousel multiplies by f = sigmoid(3) per step: solve f^k < 10^-3 for the smallest integer k.")


def check_gru_factor(z: float | None = None) -> None:
    """Self-check: ``d h_t / d h_{t-1}`` of a GRU with ``W = 0``, input ``x_t = 0`` and update-gate bias
    2 is ``z I``: what is ``z``? (Checked against :func:`vgplib.gru_step_jacobian`.)"""
    if unanswered("check_gru_factor(z)", z):
        return
    z = answer_number("z", z)
    from vgplib.recurrent import gru_step_jacobian

    p = init_gru(jax.random.key(0), 2, 3)
    p = {"W": jnp.zeros_like(p["W"]), "U": p["U"], "b": jnp.zeros_like(p["b"]).at[:3].set(2.0)}
    J = np.asarray(gru_step_jacobian(p, jnp.full((3,), 0.3), jnp.zeros(2)))
    ok = abs(z - float(J[0, 0])) < 1e-3
    report_answer(ok, "z = sigmoid(2), the GRU's carousel",
                         "with W = 0 only the diag(z_t) term is left; z_t = sigmoid(b_z) at zero input.")
