"""Chapter 4 panels, "Recurrent networks and backpropagation through time".

Two live panels (registered as ``"ch04.bptt"`` and ``"ch04.cobweb"``) and their scrubber twins:

* :func:`bptt_panel`: a vanilla RNN ``a_t = W h_{t-1} + U x_t + b``, ``h_t = phi(a_t)`` (Elman 1990), with a fixed
  random ``W = rho * W_0`` (``W_0`` Gaussian, rescaled to spectral radius exactly 1) driven by a fixed
  input sequence. Left: the heat map ``log10 ||d h_t / d h_k||_F`` over ``0 <= k <= t <= T``, with

      d h_t / d h_k = J_t J_{t-1} ... J_{k+1},    J_s = diag(phi'(a_s)) W     (BPTT, Werbos 1990),

  every entry carried in log-space (:func:`vgplib.pairwise_log_norms`). Right: the row ``t = T`` in the
  spectral norm against the bound of Pascanu, Mikolov & Bengio (2013, eq. 7)

      ||d h_T / d h_k||_2 <= (gamma ||W||_2)^(T - k),   gamma = sup |phi'| (1/4 sigmoid, 1 tanh and ReLU).

* :func:`cobweb_panel`: the one-neuron map ``h <- sigmoid(w h + b)``: a cobweb plot of the orbit from
  ``h_0 =`` :data:`COBWEB_H0` and the exact ``d h_t / d h_0 = prod_s w sigmoid'(w h_{s-1} + b)`` (by
  forward-mode autodiff in float32, and as a log-space sum), which collapses once the orbit is trapped
  at a saturated fixed point (Bengio, Simard & Frasconi 1994). The per-step factor at a fixed point is
  1 exactly on the fold curve :func:`vgplib.recurrent.sigmoid_neuron_fold`; :func:`make_fold_figure`
  draws it with the bistable region in the ``(w, b)`` plane.
* :func:`adding_experiment`: vanilla tanh RNNs trained on the adding problem for several lengths and
  seeds, with the error signal ``delta_t = dE/da_t`` measured per lag during training.

Each computation is ONE ``jax.jit`` function with fixed shapes: the RNN always runs :data:`T_MAX`
steps and the slider ``T`` only selects the rows shown (``h_t`` for ``t <= T`` does not depend on
later steps) and masks the step Jacobians above ``T`` with the identity for the ``t = T`` row; the
activation is an index into ``jax.lax.switch``. So no slider move compiles.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import NamedTuple

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.ticker import MaxNLocator

from vgplib._validate import check_name, check_positive, check_positive_int
from vgplib.activations import get_activation
from vgplib.data import ADDING_BASELINE_MSE, adding_problem
from vgplib.jacobians import _log_sweep
from vgplib.plots import (
    FLOAT32_MAX,
    FLOAT32_TINY,
    freeze_axes,
    freeze_decorations,
    new_figure,
)
from vgplib.recurrent import (
    _pairwise,
    adding_mse,
    init_rnn,
    sigmoid_neuron_fold,
    train_adding,
)
from vgplib.recurrent import adding_predict as _lib_adding_predict
from vgplib.widgets import (
    LivePanel,
    answer_number,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

T_MAX = 80  #: steps of the fixed-shape RNN (the T slider's maximum)
HIDDEN = 16  #: hidden size n
N_IN = 4  #: input size d
ACTIVATIONS = ("tanh", "sigmoid", "relu")  #: dropdown options, in lax.switch order
SEED = 4
HEAT_RANGE = (-30.0, 15.0)  #: colour limits of the heat map, log10 (values beyond are clipped)

COBWEB_STEPS = 40  #: steps of the one-neuron map
COBWEB_H0 = 0.6  #: its initial state

_LN10 = math.log(10.0)


def _real(arg: str, value) -> float:
    """Raise unless ``value`` is a finite real number; return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{arg} must be a real number; got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{arg} must be finite; got {value}")
    return float(value)
_LOG_TINY = math.log(FLOAT32_TINY)
_LOG_MAX = math.log(FLOAT32_MAX)


# --------------------------------------------------------------------------- the RNN of the BPTT panel


@lru_cache(maxsize=1)
def rnn_data() -> dict[str, np.ndarray]:
    """The panel's fixed network and inputs: ``W0`` (spectral radius exactly 1), ``U``, ``b``, ``xs``, norms.

    ``W0 = init_rnn(..., w_init="spectral_radius", scale=1)["W"]``, ``U ~ N(0, 1/d)``, ``b ~ N(0, 0.1^2)``,
    ``x_t ~ N(0, 1)`` iid, ``h_0 = 0``; ``norm_W0`` is ``||W0||_2`` (NumPy, float64).
    """
    k_net, k_x = jax.random.split(jax.random.key(SEED))
    params = init_rnn(k_net, N_IN, HIDDEN, w_init="spectral_radius", scale=1.0, sigma_u=1.0, sigma_b=0.1)
    xs = jax.random.normal(k_x, (T_MAX, N_IN), jnp.float32)
    out = {key: np.asarray(value) for key, value in params.items()}
    out["xs"] = np.asarray(xs)
    out["norm_W0"] = float(np.linalg.norm(out["W"].astype(np.float64), 2))
    out["rho_W0"] = float(np.max(np.abs(np.linalg.eigvals(out["W"].astype(np.float64)))))
    return out


def _act_and_grad(index: jax.Array, a: jax.Array) -> tuple[jax.Array, jax.Array]:
    branches = [lambda z, name=name: (get_activation(name).fn(z), get_activation(name).grad(z)) for name in ACTIVATIONS]
    return jax.lax.switch(index, branches, a)


@jax.jit
def _bptt_kernel(W0, U, b, xs, rho, act_index, T):
    """States, step Jacobians, the heat map and the ``t = T`` row (natural logs), for ``W = rho W0``."""
    W = rho * W0
    n = W.shape[0]

    def step(h, x):
        a = jnp.matmul(W, h, precision=jax.lax.Precision.HIGHEST) + jnp.matmul(
            U, x, precision=jax.lax.Precision.HIGHEST) + b
        h_new, d = _act_and_grad(act_index, a)
        return h_new, (h_new, d[:, None] * W)

    _, (hs, J) = jax.lax.scan(step, jnp.zeros((n,), W.dtype), xs)
    heat = _pairwise(J, spectral=False)  # (T_MAX+1, T_MAX+1): log ||d h_t / d h_k||_F
    t = jnp.arange(1, xs.shape[0] + 1)
    J_masked = jnp.where((t <= T)[:, None, None], J, jnp.eye(n, dtype=W.dtype))
    s, sv = _log_sweep(J_masked)  # P_k = J_T ... J_{k+1} for k <= T (identities above T)
    return hs, J, heat, s + jnp.log(sv[:, 0]), s


def bptt_curves(rho: float, activation: str, T: int) -> dict[str, np.ndarray | float]:
    """The BPTT panel's data for ``W = rho W0``, as NumPy arrays (natural logs).

    Keys: ``heat`` ``(T+1, T+1)`` with ``heat[t, k] = log ||d h_t / d h_k||_F`` (NaN for ``t < k``),
    ``spectral`` and ``frobenius`` ``(T+1,)`` with entry ``k`` the log norm of ``d h_T / d h_k``,
    ``bound`` ``(T+1,)`` the log of Pascanu's bound ``(T - k) log(gamma ||W||_2)``, ``gamma``,
    ``norm_W`` (``||W||_2 = rho ||W0||_2``), ``hs`` ``(T, n)`` the states ``h_1..h_T`` and ``J``
    ``(T, n, n)`` the step Jacobians.
    """
    rho = check_positive("rho", rho)
    check_name("activation", activation, ACTIVATIONS)
    T = check_positive_int("T", T)
    if T > T_MAX:
        raise ValueError(f"T must be <= {T_MAX}; got {T}")
    data = rnn_data()
    out = _bptt_kernel(data["W"], data["U"], data["b"], data["xs"], np.float32(rho),
                       np.int32(ACTIVATIONS.index(activation)), np.int32(T))
    hs, J, heat, spectral, frob = (np.asarray(a) for a in jax.device_get(out))
    gamma = float(get_activation(activation).sup_grad)
    norm_W = rho * data["norm_W0"]
    k = np.arange(T + 1)
    return {
        "heat": heat[: T + 1, : T + 1].astype(np.float64),
        "spectral": spectral[: T + 1].astype(np.float64),
        "frobenius": frob[: T + 1].astype(np.float64),
        "bound": (T - k) * math.log(gamma * norm_W),
        "gamma": gamma,
        "norm_W": norm_W,
        "hs": hs[:T],
        "J": J[:T],
    }


def make_bptt_figure() -> tuple:
    """Heat map of ``log10 ||d h_t/d h_k||_F`` and the row ``t = T`` against Pascanu's bound.

    ``update(rho, activation, T)``.
    """
    fig, (ax_heat, ax_row) = new_figure(figsize=(7.0, 3.3), ncols=2,
                                        margins={"left": 0.08, "right": 0.96, "bottom": 0.15, "top": 0.8,
                                                 "wspace": 0.42})
    blank = np.full((T_MAX + 1, T_MAX + 1), np.nan)
    image = ax_heat.imshow(blank, origin="lower", cmap="magma", vmin=HEAT_RANGE[0], vmax=HEAT_RANGE[1],
                           interpolation="nearest", aspect="auto", extent=(-0.5, T_MAX + 0.5, -0.5, T_MAX + 0.5))
    ax_heat.set_xticks(range(0, T_MAX + 1, 20))
    ax_heat.set_yticks(range(0, T_MAX + 1, 20))
    cbar = fig.colorbar(image, ax=ax_heat, fraction=0.06, pad=0.02)
    cbar.set_ticks([-30, -15, 0, 15])
    cbar.set_label("log₁₀ ‖∂h_t/∂h_k‖_F", fontsize=8)
    cbar.ax.tick_params(labelsize=8)
    cbar.ax.yaxis.set_label_coords(4.2, 0.5)
    ax_heat.set_xlabel("source step k")
    ax_heat.set_ylabel("target step t")
    ax_heat.yaxis.set_label_coords(-0.16, 0.5)
    heat_title = ax_heat.set_title("", fontsize=9, y=1.01)
    (exact,) = ax_row.plot([], [], "-", color="C0", lw=2, label="exact ‖∂h_T/∂h_k‖₂")
    (bound,) = ax_row.plot([], [], "--", color="k", lw=1.5, label="bound (γ‖W‖₂)^(T−k)")
    ax_row.axhline(math.log10(FLOAT32_TINY), color="0.6", ls=":", lw=1)
    ax_row.set_xlabel("source step k")
    ax_row.set_ylabel("log₁₀ norm")
    ax_row.yaxis.set_label_coords(-0.15, 0.5)
    ax_row.set_xlim(0, T_MAX)  # fixed, like the heat map: no new x ticks per move
    ax_row.set_xticks(range(0, T_MAX + 1, 20))
    ax_row.yaxis.set_major_locator(MaxNLocator(4, integer=True))
    ax_row.legend(loc="lower left", bbox_to_anchor=(-0.1, 1.02), ncol=1, fontsize=8, frameon=False)
    data = rnn_data()

    def update(rho: float, activation: str, T: int) -> str:
        c = bptt_curves(rho, activation, T)
        heat10 = np.full((T_MAX + 1, T_MAX + 1), np.nan)  # fixed axes (no new ticks per move): blank beyond T
        heat10[: T + 1, : T + 1] = c["heat"] / _LN10
        image.set_data(heat10)
        ks = np.arange(T + 1)
        spec10, bound10 = c["spectral"] / _LN10, c["bound"] / _LN10
        exact.set_data(ks, spec10)
        bound.set_data(ks, bound10)
        shown = np.concatenate([spec10, bound10])
        lo, hi = float(np.min(shown)), float(np.max(shown))
        pad = max(1.0, 0.08 * (hi - lo))
        ax_row.set_ylim(lo - pad, hi + pad)
        gn = c["gamma"] * c["norm_W"]
        verdict = "vanishing guaranteed" if gn < 1 else "growth allowed"
        heat_title.set_text(f"{activation}, ρ(W) = {rho * data['rho_W0']:.2f}, ‖W‖₂ = {c['norm_W']:.2f}\n"
                            f"γ‖W‖₂ = {gn:.2f}: {verdict}")
        if not np.all(np.isfinite(c["hs"])):
            return "overflow: the state h_t is not finite in float32"
        finite = c["heat"][np.isfinite(c["heat"])]
        if finite.min() < _LOG_TINY:
            return (f"underflow: ‖∂h_t/∂h_k‖ reaches 10^{finite.min() / _LN10:.0f}, below float32's 1.2e-38; "
                    "a plain float32 product is 0 there (log-space shown)")
        if finite.max() > _LOG_MAX:
            return (f"overflow: ‖∂h_t/∂h_k‖ reaches 10^{finite.max() / _LN10:.0f}, above float32's 3.4e38; "
                    "a plain float32 product is inf there (log-space shown)")
        return ""

    return fig, update


def make_bptt_figure_live() -> tuple:
    """:func:`make_bptt_figure` with its colorbar and the heat map's frame frozen into pixels (live panel)."""
    fig, update = make_bptt_figure()
    freeze_axes(fig, fig.axes[2])
    freeze_decorations(fig, fig.axes[0])
    return fig, update


def bptt_controls() -> dict[str, ipywidgets.ValueWidget]:
    """Controls of the BPTT panel: spectral radius of ``W``, activation and sequence length."""
    return {
        "rho": ipywidgets.FloatSlider(value=1.0, min=0.25, max=2.0, step=0.05, description="ρ(W)",
                                      readout_format=".2f"),
        "activation": ipywidgets.Dropdown(options=list(ACTIVATIONS), value="tanh", description="activation"),
        "T": ipywidgets.IntSlider(value=60, min=2, max=T_MAX, description="T"),
    }


@register_panel("ch04.bptt")
def bptt_panel() -> LivePanel:
    """Live panel: the BPTT heat map over (t, k) and Pascanu's bound on the row t = T."""
    return LivePanel(make_bptt_figure_live, bptt_controls(), freeze_legend=True)


def bptt_scrubber(activation: str = "tanh", T: int = 60):
    """Kernel-free twin of :func:`bptt_panel`: ``rho`` from 0.5 to 2.0 at fixed activation and ``T``."""
    check_name("activation", activation, ACTIVATIONS)
    values = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0]
    alt = (f"Heat map of log10 of the norm of dh_t/dh_k over source step k and target step t for a "
           f"{activation} RNN of 16 units with T = {T}, beside the row t = T against the Pascanu bound, "
           "for spectral radius 0.5 to 2: the gradient fades with the distance t - k and stays far "
           "below the bound at every radius.")
    return scrubber(make_bptt_figure, "rho", values, fixed={"activation": activation, "T": T}, alt=alt)


# --------------------------------------------------------------------------- the one-neuron map


@jax.jit
def _cobweb_kernel(w, b, h0):
    """Orbit ``h_0..h_S`` of ``h <- sigmoid(w h + b)``; ``d h_t/d h_0`` by jvp (float32) and as a log sum."""

    def orbit(h_start):
        def step(h, _):
            h_new = jax.nn.sigmoid(w * h + b)
            return h_new, h_new

        _, hs = jax.lax.scan(step, h_start, None, length=COBWEB_STEPS)
        return jnp.concatenate([h_start[None], hs])

    hs, direct = jax.jvp(orbit, (h0,), (jnp.ones_like(h0),))  # forward-mode autodiff: d h_t / d h_0
    s = jax.nn.sigmoid(w * hs[:-1] + b)
    log_factor = jnp.log(jnp.abs(w)) + jnp.log(s) + jnp.log1p(-s)  # log |w sigmoid'(w h_{t-1} + b)|
    log_abs = jnp.concatenate([jnp.zeros((1,), hs.dtype), jnp.cumsum(log_factor)])
    return hs, direct, log_abs


def fixed_points(w: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed points ``h* = sigmoid(w h* + b)`` in ``(0, 1)`` and their slopes ``w sigmoid'(w h* + b)``.

    Exact zeros and strict sign changes of ``sigmoid(w h + b) - h`` on a grid of 4,001 points, refined
    by 40 bisection steps (float64, NumPy); roots closer than 1e-4 are merged. At the tangency
    ``w = 4, b = -2`` the root ``1/2`` is triple and only found to about 1e-5. A fixed point is stable
    when ``|slope| < 1``.
    """
    w = _real("w", w)
    b = _real("b", b)
    grid = np.linspace(0.0, 1.0, 4001)

    def g(h):
        return 1.0 / (1.0 + np.exp(-(w * h + b))) - h

    vals = g(grid)
    exact = grid[vals == 0.0]
    idx = np.nonzero(vals[:-1] * vals[1:] < 0)[0]  # strict sign changes
    lo, hi = grid[idx], grid[idx + 1]
    g_lo = vals[idx]
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        same = g_lo * g(mid) > 0
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
        g_lo = g(lo)
    roots = np.sort(np.concatenate([exact, 0.5 * (lo + hi)]))
    if roots.size > 1:  # a tangency (w = 4, b = -2) is found from both sides: merge roots within 1e-4
        roots = roots[np.concatenate([[True], np.diff(roots) > 1e-4])]
    s = 1.0 / (1.0 + np.exp(-(w * roots + b)))
    return roots, w * s * (1.0 - s)


def cobweb_curves(w: float, b: float, h0: float = COBWEB_H0) -> dict[str, np.ndarray]:
    """The cobweb panel's data from ``h_0 = h0``: ``hs`` ``(S+1,)``, ``direct`` float32 ``d h_t/d h_0``
    (jvp), ``log10_abs`` ``log10 |d h_t/d h_0|`` from the log-space sum, fixed points ``roots`` and
    ``slopes`` (the per-step factor ``w h*(1 - h*)`` at each)."""
    w = _real("w", w)
    b = _real("b", b)
    h0 = _real("h0", h0)
    if not 0 < h0 < 1:
        raise ValueError(f"h0 must lie strictly between 0 and 1; got {h0}")
    out = _cobweb_kernel(np.float32(w), np.float32(b), np.float32(h0))
    hs, direct, log_abs = (np.asarray(a, dtype=np.float64) for a in jax.device_get(out))
    roots, slopes = fixed_points(w, b)
    return {"hs": hs, "direct": direct, "log10_abs": log_abs / _LN10, "roots": roots, "slopes": slopes}


def make_cobweb_figure() -> tuple:
    """Cobweb plot of ``h <- sigmoid(w h + b)`` and ``log10 |d h_t / d h_0|``; ``update(w, b)``."""
    fig, (ax_web, ax_grad) = new_figure(figsize=(7.0, 3.3), ncols=2,
                                        margins={"left": 0.08, "right": 0.96, "bottom": 0.15, "top": 0.82,
                                                 "wspace": 0.35})
    grid = np.linspace(0.0, 1.0, 201)
    ax_web.plot([0, 1], [0, 1], color="0.5", lw=1)
    (curve,) = ax_web.plot(grid, grid, color="C0", lw=2)
    (web,) = ax_web.plot([], [], color="C3", lw=0.9)
    (stable,) = ax_web.plot([], [], "o", color="k", ms=6)
    (unstable,) = ax_web.plot([], [], "o", mfc="white", mec="k", ms=6)
    ax_web.set_xlim(0, 1)
    ax_web.set_ylim(0, 1)
    ax_web.set_xlabel("h at step t−1")
    ax_web.set_ylabel("h_t")
    ax_web.yaxis.set_label_coords(-0.15, 0.5)
    web_title = ax_web.set_title("", fontsize=9, y=1.01)
    ts = np.arange(COBWEB_STEPS + 1)
    (exact,) = ax_grad.plot(ts, np.zeros_like(ts, dtype=float), "-", color="C0", lw=2, label="exact (log-space)")
    (direct,) = ax_grad.plot(ts, np.zeros_like(ts, dtype=float), "o", color="C3", ms=3, label="float32 jvp")
    ax_grad.axhline(math.log10(FLOAT32_TINY), color="0.6", ls=":", lw=1)
    ax_grad.set_xlim(0, COBWEB_STEPS)
    ax_grad.set_xlabel("step t")
    ax_grad.set_ylabel("log₁₀ |∂h_t/∂h_0|")
    ax_grad.yaxis.set_label_coords(-0.15, 0.5)
    ax_grad.yaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax_web.set_xticks([0, 0.5, 1])
    ax_web.set_yticks([0, 0.5, 1])
    ax_grad.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=8, frameon=False)
    grad_title = ax_grad.set_title("", fontsize=9, y=1.1)

    def update(w: float, b: float, h0: float = COBWEB_H0) -> str:
        c = cobweb_curves(w, b, h0)
        hs = c["hs"]
        curve.set_ydata(1.0 / (1.0 + np.exp(-(w * grid + b))))
        xs = np.repeat(hs, 2)[1:]
        ys = np.concatenate([[0.0], np.repeat(hs[1:], 2)])[: xs.size]
        web.set_data(np.concatenate([[hs[0]], xs]), np.concatenate([[0.0], ys]))
        ok = np.abs(c["slopes"]) < 1
        stable.set_data(c["roots"][ok], c["roots"][ok])
        unstable.set_data(c["roots"][~ok], c["roots"][~ok])
        web_title.set_text(f"h ← σ(w h + b),  w = {w:.2f}, b = {b:.3f}")
        log10_abs = c["log10_abs"]
        exact.set_ydata(np.where(np.isfinite(log10_abs), log10_abs, np.nan))
        with np.errstate(divide="ignore"):
            d10 = np.where(c["direct"] != 0, np.log10(np.abs(c["direct"])), np.nan)
        direct.set_ydata(d10)
        finite = log10_abs[np.isfinite(log10_abs)]
        lo, hi = float(np.min(finite)), float(np.max(finite))
        pad = max(1.0, 0.08 * (hi - lo))
        ax_grad.set_ylim(lo - pad, hi + pad)
        factor = abs(w) * hs[-1] * (1 - hs[-1])
        grad_title.set_text(f"h_T = {hs[-1]:.3f}: |w σ'| = {factor:.3g} per step")
        if w == 0:
            return "zero gradient: with w = 0, h_t does not depend on h_0"
        if not np.all(np.isfinite(log10_abs)):
            return "zero gradient: σ' rounds to 0 in float32 (fully saturated)"
        if np.any(c["direct"][1:] == 0):
            t0 = int(np.argmax(c["direct"] == 0))
            return (f"underflow: the float32 product is 0 from t = {t0} (below 1.2e-38); "
                    f"exact: 10^{log10_abs[-1]:.0f} at t = {COBWEB_STEPS}")
        if not np.all(np.isfinite(c["direct"])):
            return "overflow: the float32 product is inf (above 3.4e38)"
        return ""

    return fig, update


def cobweb_controls() -> dict[str, ipywidgets.ValueWidget]:
    """Controls of the cobweb panel: recurrent weight ``w`` and bias ``b``."""
    return {
        "w": ipywidgets.FloatSlider(value=8.0, min=-8.0, max=12.0, step=0.25, description="w", readout_format=".2f"),
        "b": ipywidgets.FloatSlider(value=-3.0, min=-8.0, max=4.0, step=0.25, description="b", readout_format=".2f"),
    }


def make_cobweb_figure_live() -> tuple:
    """:func:`make_cobweb_figure` with the cobweb axes' fixed frame frozen into pixels (live panel)."""
    fig, update = make_cobweb_figure()
    freeze_decorations(fig, fig.axes[0])
    return fig, update


@register_panel("ch04.cobweb")
def cobweb_panel() -> LivePanel:
    """Live panel: the one-neuron sigmoid map, its cobweb and the collapse of d h_T / d h_0."""
    return LivePanel(make_cobweb_figure_live, cobweb_controls(), freeze_legend=True)


#: The cobweb scrubber's path: ``b`` across the fold at ``w = 6`` (fold at ``b = -2.58491``, h* = 0.2113),
#: from ``h_0 = 0.05``, so the orbit sits on the lower fixed point until it disappears at the fold.
FOLD_PATH_W = 6.0
FOLD_PATH_H0 = 0.05
FOLD_PATH_B = (-4.0, -3.5, -3.2, -3.0, -2.8, -2.7, -2.65, -2.6, -2.585, -2.55, -2.5, -2.25, -2.0)


def cobweb_scrubber(w: float = FOLD_PATH_W, h0: float = FOLD_PATH_H0, values=FOLD_PATH_B):
    """Kernel-free twin of :func:`cobweb_panel`: ``b`` over ``values`` at fixed ``w``, orbit from ``h0``."""
    w, h0 = _real("w", w), _real("h0", h0)
    alt = (f"Cobweb of the one-neuron map h to sigmoid(w h + b) at w = {w:g}, from h_0 = {h0:g}, and the "
           f"log10 of dh_t/dh_0 over 40 steps, for b from {min(values):g} to {max(values):g}: the gradient "
           "decays fast while the orbit sits at a contracting fixed point, survives near the fold where "
           "that fixed point disappears (per-step factor 1), and collapses again once the orbit jumps to "
           "the saturated upper fixed point.")
    return scrubber(make_cobweb_figure, "b", list(values), fixed={"w": w, "h0": h0}, alt=alt)


def make_fold_figure(path_w: float = FOLD_PATH_W, path_b=FOLD_PATH_B):
    """The ``(w, b)`` plane of ``h -> sigmoid(w h + b)``: fold curve, bistable region, cusp, two paths.

    The fold is :func:`vgplib.recurrent.sigmoid_neuron_fold`; between its branches (``w > 4``) the map
    has three fixed points. Marked: the cusp ``(4, -2)``, the line ``b = -2`` (one fixed point for
    every ``w``, touching the region only at the cusp) and the scrubber's path at ``w = path_w``.
    """
    fig, ax = new_figure(figsize=(6.4, 3.4), margins={"left": 0.11, "right": 0.97, "bottom": 0.15, "top": 0.93})
    ws = np.linspace(4.0, 12.5, 800)
    h_low = 0.5 * (1.0 - np.sqrt(1.0 - 4.0 / ws))          # the fixed point on each branch: w h(1-h) = 1
    _, b_upper = sigmoid_neuron_fold(np.clip(h_low, 1e-12, 0.5))
    _, b_lower = sigmoid_neuron_fold(np.clip(1.0 - h_low, 0.5, 1 - 1e-12))
    ax.fill_between(ws, b_lower, b_upper, color="C0", alpha=0.15, lw=0, label="bistable: three fixed points")
    ax.plot(ws, b_upper, color="C0", lw=2, label="fold, h* < 1/2 (factor 1)")
    ax.plot(ws, b_lower, color="C1", lw=2, label="fold, h* > 1/2 (factor 1)")
    ax.axhline(-2.0, color="0.4", ls=":", lw=1.2, label="b = −2 (one fixed point for every w)")
    ax.plot([path_w, path_w], [min(path_b), max(path_b)], color="C3", lw=2.5, alpha=0.8,
            label=f"scrubber path, w = {path_w:g}")
    ax.plot([4.0], [-2.0], "ko", ms=6)
    ax.annotate("cusp (4, −2)", (4.0, -2.0), xytext=(1.2, -1.2), fontsize=9,
                arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlim(0, 12.5)
    ax.set_ylim(-8.5, 0.0)
    ax.set_xlabel("recurrent weight w")
    ax.set_ylabel("bias b")
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    ax.set_title("Fixed points of h ← σ(w h + b): where the per-step factor is 1", fontsize=10)
    return fig


# --------------------------------------------------------------------------- exercise self-checks


def check_thresholds(tanh_limit: float | None = None, sigmoid_limit: float | None = None) -> bool:
    """Self-check: the largest ``||W||_2`` for which the Pascanu et al. (2013) condition guarantees
    vanishing, ``gamma ||W||_2 < 1`` with ``gamma = sup |phi'|``, for tanh and for the sigmoid.
    With an answer left ``None`` it prints a neutral prompt and returns False."""
    if unanswered("check_thresholds(tanh_limit, sigmoid_limit)", tanh_limit, sigmoid_limit):
        return False
    answers = [answer_number("tanh_limit", tanh_limit), answer_number("sigmoid_limit", sigmoid_limit)]
    limits = [1 / get_activation(a).sup_grad for a in ("tanh", "sigmoid")]
    ok = bool(np.allclose(answers, limits, rtol=0, atol=1e-9))
    return report_answer(ok, "gamma ||W||_2 < 1 with gamma = sup |phi'|",
                         "the condition is gamma ||W||_2 < 1; what is sup |phi'| for tanh and for the sigmoid?")


def check_bifurcation(w: float | None = None) -> bool:
    """Self-check: the ``w`` at which the middle fixed point ``h = 1/2`` of ``h <- sigmoid(w h - w/2)``
    has slope exactly 1 (where one fixed point splits into three), found from :func:`fixed_points`.
    With ``w`` left ``None`` it prints a neutral prompt and returns False."""
    if unanswered("check_bifurcation(w)", w):
        return False
    w = answer_number("w", w)
    roots, slopes = fixed_points(w, -w / 2)
    mid = np.abs(roots - 0.5) < 1e-6
    ok = bool(mid.any()) and abs(float(slopes[mid][0]) - 1.0) < 1e-6
    return report_answer(ok, "w sigma'(0) = w / 4 = 1", "sigma'(0) = 1/4; solve w * 1/4 = 1.")


def check_baseline(c: float | None = None, mse: float | None = None) -> bool:
    """Self-check: the best constant prediction for the adding problem and its mean squared error.
    With an answer left ``None`` it prints a neutral prompt and returns False.

    The constant is checked against a Monte Carlo mean of ``u_1 + u_2`` (200,000 draws, an independent
    path), the error against :data:`vgplib.ADDING_BASELINE_MSE` = 1/6.
    """
    if unanswered("check_baseline(c, mse)", c, mse):
        return False
    c, mse = answer_number("c", c), answer_number("mse", mse)
    u = np.random.default_rng(0).uniform(size=(200_000, 2)).sum(1)
    ok = abs(c - float(np.mean(u))) < 0.01 and abs(mse - ADDING_BASELINE_MSE) < 1e-3
    return report_answer(ok, "the mean, with the variance 1/6 as error",
                         "the best constant is the mean of u1 + u2; its error is the variance.")



# --------------------------------------------------------------------------- the dependency-length experiment


class AddingRun(NamedTuple):
    """What :func:`adding_experiment` measured (NumPy arrays; ``S`` seeds, ``K`` lengths, ``C`` checkpoints).

    ``test_ratio`` ``(S, K)``: test MSE / :data:`vgplib.ADDING_BASELINE_MSE`; ``history`` ``(S, steps, K)``:
    training MSE / baseline per step; ``transmission`` ``(S, C, K, T_max)``: entry ``l`` is the median
    over evaluation sequences of ``log10(||delta_{T-l}|| / ||delta_T||)``, ``delta_t = dE/da_t`` (NaN for
    ``l >= T``); ``first_vs_second`` ``(S, C, K)``: the median of ``log10(||delta_{t_1}|| / ||delta_{t_2}||)``
    at the two marked steps ``t_1 < t_2`` (the marker column of the step-``t`` term of ``dE/dU`` is
    ``delta_t``); ``params`` the parameters at each checkpoint, stacked ``(S, C, K, ...)``.
    """

    lengths: tuple
    seeds: tuple
    checkpoints: tuple
    test_ratio: np.ndarray
    history: np.ndarray
    transmission: np.ndarray
    first_vs_second: np.ndarray
    params: dict


def adding_predict(params, xs, start, eps=None):
    """``v . h_T + c`` of a tanh RNN on front-padded sequences ``xs`` ``(B, T_max, 2)``:
    :func:`vgplib.adding_predict` with ``cell="rnn"`` (the state stays at ``h_0 = 0`` before
    step ``start``; ``eps`` is added to ``a_t``, so its gradient is ``delta_t = dE/da_t``)."""
    return _lib_adding_predict(params, xs, start, eps)


def _adding_mse(params, xs, y, start, eps=None):
    return adding_mse(params, xs, y, start, eps)


@lru_cache(maxsize=4)
def _adam(lr: float) -> optax.GradientTransformation:
    """One optimizer object per learning rate, so repeated runs reuse the compiled trainer."""
    return optax.adam(lr)


@partial(jax.jit, static_argnames=("lengths",))
def _adding_eval(params, xs, y, lengths):
    """Test MSE and per-step ``||delta_t||`` ``(C, K, S, B, T_max)`` for checkpointed ``params`` ``(C, K, S, ...)``."""
    starts = jnp.array([max(lengths) - T for T in lengths])

    def one(p, xs, y, start):
        eps = jnp.zeros(xs.shape[:2] + (p["W"].shape[0],), xs.dtype)
        loss, d = jax.value_and_grad(lambda e: _adding_mse(p, xs, y, start, e) * xs.shape[0])(eps)
        return loss / xs.shape[0], jnp.linalg.norm(d, axis=-1)

    over_seeds = jax.vmap(one, in_axes=(0, None, None, None))
    over_lengths = jax.vmap(over_seeds, in_axes=(0, 0, 0, 0))
    return jax.vmap(over_lengths, in_axes=(0, None, None, None))(params, xs, y, starts)


def adding_experiment(lengths=(10, 20, 25, 30, 40), seeds=(0, 1, 2, 3), steps: int = 600, batch: int = 64,
                      lr: float = 1e-2, hidden: int = 16, checkpoints=(50, 600), n_eval: int = 500) -> AddingRun:
    """Train vanilla tanh RNNs on the adding problem for every length and seed; measure the gradient per lag.

    Each network (``hidden`` units, ``W`` Gaussian with ``scale = 1`` from :func:`vgplib.init_rnn`,
    linear readout ``v . h_T + c`` started at ``v = 0, c = 1``, the constant predictor) is trained
    with Adam (``lr``) for ``steps`` steps of ``batch`` fresh sequences from
    :func:`vgplib.adding_problem`; seed ``s`` sets the initial weights (``jax.random.key(s)``) and the
    stream of training batches. All ``K x S`` networks train side by side in one compiled function.
    At each step in ``checkpoints`` (multiples of 50) the parameters are kept and, on ``n_eval``
    test sequences per length, the error signals ``delta_t = dE/da_t`` of every step are measured;
    the test MSE is of the final parameters on the same sequences. Returns :class:`AddingRun`.
    """
    lengths, seeds, checkpoints = tuple(lengths), tuple(seeds), tuple(checkpoints)
    if sorted(set(lengths)) != list(lengths) or min(lengths) < 2:
        raise ValueError(f"lengths must be increasing integers >= 2; got {lengths}")
    chunk = 50
    if steps % chunk or any(c % chunk or not 0 < c <= steps for c in checkpoints) or steps not in checkpoints:
        raise ValueError(f"steps and checkpoints must be multiples of {chunk}, with steps the last checkpoint")
    K, T_max = len(lengths), max(lengths)
    nets = []
    for s in seeds:
        row = [init_rnn(k, 2, hidden, w_init="gaussian", scale=1.0) for k in jax.random.split(jax.random.key(s), K)]
        nets.append([dict(p, v=jnp.zeros(hidden), c=jnp.ones(())) for p in row])
    # (K, S, ...): lengths first, as the training function expects
    params0 = jax.tree_util.tree_map(lambda *a: jnp.stack(a).reshape((len(seeds), K) + a[0].shape).swapaxes(0, 1),
                                     *[p for row in nets for p in row])
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds])
    ps, losses, _ = train_adding(params0, keys, lengths, _adam(float(lr)), steps=steps, batch_size=batch,
                                 record_every=chunk)
    ps = jax.tree_util.tree_map(lambda a: a[np.array(checkpoints) // chunk - 1], ps)    # (C, K, S, ...)
    test_keys = jax.random.split(jax.random.key(12345), K)
    tasks = [adding_problem(k, T, n_eval) for k, T in zip(test_keys, lengths)]
    xs = jnp.stack([jnp.pad(t.inputs, ((0, 0), (T_max - T, 0), (0, 0))) for t, T in zip(tasks, lengths)])
    ys = jnp.stack([t.targets for t in tasks])
    mses, deltas = jax.device_get(_adding_eval(ps, xs, ys, lengths))
    deltas = np.asarray(deltas, np.float64)                                            # (C, K, S, B, T_max)
    markers = np.asarray(xs[..., 1])                                                   # (K, B, T_max)
    C, S = len(checkpoints), len(seeds)
    transmission = np.full((S, C, K, T_max), np.nan)
    first_vs_second = np.full((S, C, K), np.nan)
    rows = np.arange(n_eval)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, T in enumerate(lengths):
            d = deltas[:, i, :, :, T_max - T:]                                         # (C, S, B, T)
            log_rel = np.log10(d / d[..., -1:])
            transmission[:, :, i, :T] = np.median(log_rel[..., ::-1], axis=2).swapaxes(0, 1)
            m = markers[i, :, T_max - T:]
            t1, t2 = m[:, : T // 2].argmax(1), T // 2 + m[:, T // 2:].argmax(1)
            first_vs_second[:, :, i] = np.median(np.log10(d[..., rows, t1] / d[..., rows, t2]), axis=-1).T
    base = ADDING_BASELINE_MSE
    return AddingRun(lengths, seeds, checkpoints,
                     test_ratio=np.asarray(mses[-1]).T / base,
                     history=np.moveaxis(np.asarray(losses), 2, 0) / base,
                     transmission=transmission, first_vs_second=first_vs_second,
                     params=jax.tree_util.tree_map(lambda a: np.asarray(a).swapaxes(1, 2).swapaxes(0, 1), ps))


def _seed_color(s: int) -> str:
    """The colour of seed index ``s``: the default cycle without its grey ``C7`` (grey is ``T = 20``)."""
    return f"C{(0, 1, 2, 3, 4, 5, 6, 8, 9)[s % 9]}"


def make_adding_figure(run: AddingRun, lag_lengths=(20, 40)):
    """Left: test MSE / baseline against ``T``, one line per seed. Right: the median per-lag error
    signal ``log10(||delta_{T-l}|| / ||delta_T||)`` after the first and the last checkpoint, for the
    lengths in ``lag_lengths`` (one line per seed)."""
    # At most 7 inches wide: the book shows it unscaled, so 8-pt text stays above 10 px.
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.8), ncols=2,
                                 margins={"left": 0.09, "right": 0.98, "bottom": 0.14, "top": 0.9, "wspace": 0.36})
    for s, seed in enumerate(run.seeds):
        ax1.plot(run.lengths, run.test_ratio[s], "o-", color=_seed_color(s), label=f"seed {seed}")
    ax1.axhline(1.0, color="k", ls="--", lw=1)
    ax1.axhline(0.5, color="0.5", ls=":", lw=1)
    ax1.text(run.lengths[0], 1.03, "constant predictor", fontsize=8, va="bottom")
    ax1.text(run.lengths[0], 0.53, "only the second number", fontsize=8, va="bottom", color="0.4")
    ax1.set_xticks(run.lengths)
    ax1.set_ylim(0, 1.6)
    ax1.set_xlabel("sequence length T")
    ax1.set_ylabel("test MSE / baseline 1/6")
    ax1.yaxis.set_label_coords(-0.15, 0.5)  # clear of the tick labels (new_figure pins -0.085)
    ax1.legend(fontsize=8, loc="upper left", ncol=2, frameon=False, handlelength=1.2,
               columnspacing=0.8)
    ax1.set_title("vanilla tanh RNN, 16 units, Adam", fontsize=10)
    styles = {lag_lengths[0]: ("0.6", 1.0), lag_lengths[-1]: (None, 1.8)}
    for T in lag_lengths:
        i = run.lengths.index(T)
        color, lw = styles[T]
        for s in range(len(run.seeds)):
            c = color or _seed_color(s)
            lags = np.arange(T)
            ax2.plot(lags, run.transmission[s, -1, i, :T], "-", color=c, lw=lw)
            ax2.plot(lags, run.transmission[s, 0, i, :T], ":", color=c, lw=1)
    ax2.plot([], [], "-", color="0.6", label=f"T = {lag_lengths[0]}, after {run.checkpoints[-1]} steps")
    ax2.plot([], [], "-", color="C0", lw=1.8, label=f"T = {lag_lengths[-1]}, after {run.checkpoints[-1]} steps")
    ax2.plot([], [], ":", color="k", label=f"after {run.checkpoints[0]} steps")
    ax2.set_xlabel("lag l (steps before the end)")
    ax2.set_ylabel("log₁₀ median ‖δ(T−l)‖ / ‖δ(T)‖")
    ax2.yaxis.set_label_coords(-0.16, 0.5)
    ax2.set_ylim(-18, 2)
    ax2.set_yticks([-15, -10, -5, 0])
    ax2.legend(fontsize=8, loc="lower left", frameon=False)
    ax2.set_title("error signal reaching back l steps", fontsize=10)
    return fig
