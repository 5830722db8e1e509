"""Chapter 2 panels, "Why products vanish or explode": scalar products and random-network gradients.

Two live panels (registered as ``"ch02.scalar_product"`` and ``"ch02.gradient_norms"``) and their
scrubber twins:

* :func:`scalar_panel`: ``r^l`` for ``l = 0..L`` as float32 computes it (a JAX cumulative product,
  subnormals flushed to zero on CPU) against the exact ``l log10 r``. Shows where float32 underflows
  (below 1.2e-38) or overflows (above 3.4e38).
* exercise self-checks :func:`check_horizon`, :func:`check_nilpotent`, :func:`check_relu`, which
  compute their answers (JAX float32, NumPy eigenvalues, :func:`vgplib.chi1`) rather than store them.
* :func:`gradient_panel`: the back-propagated gradient ``g_l = dE/dh_l = J_{l+1}^T ... J_L^T g_L`` of a
  random MLP ``a_l = W_l h_{l-1}``, ``h_l = phi(a_l)``, ``h_0 = x``, ``W_l ~ N(0, sigma_w^2 / n)``, with
  ``J_l = diag(phi'(a_l)) W_l``. Measured in log-space (exact at any depth), measured directly in
  float32 (it underflows), and the mean-field prediction (Poole et al. 2016; Schoenholz et al. 2017)

      E||g_{l-1}||^2 = chi_l E||g_l||^2,   chi_l = sigma_w^2 E_z[phi'(sqrt(q_l) z)^2],
      q_1 = sigma_w^2 ||x||^2 / n,   q_{l+1} = sigma_w^2 E_z[phi(sqrt(q_l) z)^2],

  computed by the library's traceable :func:`vgplib.theory.length_map_and_chi` in float64 (the
  composite Gauss-Legendre nodes of :func:`vgplib.chi1`), so each ``chi_l`` the panel draws is the
  number ``vgplib.chi1(activation, sigma_w, q=q_l)`` returns.

Each computation is a ``jax.jit`` function with fixed shapes: the network always has
:data:`MAX_DEPTH` layers and a mask switches off the layers above the slider's depth; the activation
is an index (:func:`vgplib.activations.activation_by_index`). So no slider move compiles.
"""

from __future__ import annotations

import math
from functools import lru_cache

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import check_name, check_positive, check_positive_int
from vgplib.activations import activation_by_index
from vgplib.jacobians import renormalized_step, stable_norm
from vgplib.plots import FLOAT32_MAX, FLOAT32_TINY, log10_or_nan, new_figure
from vgplib.theory import chi1, length_map_and_chi
from vgplib.widgets import (
    LivePanel,
    register_panel,
    report_answer,
    scrubber,
    unanswered,
)

MAX_DEPTH = 200  #: layers of the fixed-shape network (depth slider maximum)
WIDTH = 64  #: width n of every layer
BATCH = 8  #: inputs (and output gradients) averaged over
ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")  #: dropdown options, in lax.switch order
SEED = 2
#: Frames of the kernel-free scrubbers: 16 factors ``r`` from 0.1 to 2.0, 16 ``sigma_w`` from 0.5 to 2.0.
SCALAR_SCRUBBER_FACTORS: tuple[float, ...] = (0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25,
                                              1.5, 1.75, 2.0)
GRADIENT_SCRUBBER_SIGMAS: tuple[float, ...] = tuple(round(0.5 + 0.1 * i, 2) for i in range(16))

_LOG10_TINY = math.log10(FLOAT32_TINY)
_LOG10_MAX = math.log10(FLOAT32_MAX)


# --------------------------------------------------------------------------- scalar products


@jax.jit
def _scalar_powers(factor: jax.Array) -> jax.Array:
    """``factor^l`` for ``l = 0..MAX_DEPTH`` by a float32 cumulative product (underflows like float32)."""
    factors = jnp.full((MAX_DEPTH,), factor, dtype=jnp.float32)
    return jnp.concatenate([jnp.ones((1,), jnp.float32), jnp.cumprod(factors)])


def scalar_powers(factor: float, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 product, exact log10)`` of ``factor^l`` for ``l = 0..depth`` (``factor`` is ``r``).

    The first is what float32 arithmetic gives (0 below 1.2e-38 on CPU, inf above 3.4e38); the
    second is ``l * log10(factor)`` in float64, exact at any depth.
    """
    factor = check_positive("factor", factor)
    depth = check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be <= {MAX_DEPTH}; got {depth}")
    direct = np.asarray(_scalar_powers(np.float32(factor)))[: depth + 1]
    exact = np.arange(depth + 1) * math.log10(factor)
    return direct, exact


def _float_status(direct_log: np.ndarray, exact_log: np.ndarray, what: str) -> str:
    """A status line naming the first index where a direct float32 result under- or overflows."""
    bad = ~np.isfinite(direct_log)
    if not bad.any():
        return ""
    k = int(np.argmax(bad))
    if exact_log[k] < 0:
        return f"underflow: {what} is below 1.2e-38 from l = {k} on: float32 stores 0 (exact: 10^{exact_log[-1]:.0f})"
    return f"overflow: {what} is above 3.4e38 from l = {k} on: float32 stores inf (exact: 10^{exact_log[-1]:.0f})"


def make_scalar_figure() -> tuple:
    """Figure of ``log10(r^l)``: exact line, float32 markers, float32 limits; ``update(factor, depth)``."""
    fig, ax = new_figure(margins={"top": 0.88})
    (exact_line,) = ax.plot([], [], "-", color="C0", lw=2, label="exact: l·log₁₀ r")
    (float_line,) = ax.plot([], [], "o", color="C3", ms=2.5, label="float32 product")
    ax.axhline(_LOG10_TINY, color="0.5", ls="--", lw=1)
    ax.axhline(_LOG10_MAX, color="0.5", ls="--", lw=1)
    ax.text(1, _LOG10_TINY, " 1.2e-38", va="bottom", fontsize=8, color="0.4")
    ax.text(1, _LOG10_MAX, " 3.4e38", va="top", fontsize=8, color="0.4")
    label = ax.set_xlabel("number of factors l")
    ax.set_ylabel("log₁₀ rˡ")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, fontsize=8, frameon=False)

    def update(factor: float, depth: int) -> str:
        direct, exact = scalar_powers(factor, depth)
        log_direct = log10_or_nan(direct)
        ls = np.arange(depth + 1)
        exact_line.set_data(ls, exact)
        float_line.set_data(ls, log_direct)
        float_line.set_markevery(max(1, depth // 50))
        lo = min(float(exact.min()), _LOG10_TINY) - 6  # both float32 limits always in view
        hi = max(float(exact.max()), _LOG10_MAX) + 6
        ax.set_xlim(0, depth)
        ax.set_ylim(lo, hi)
        label.set_text(f"number of factors l    (r = {factor:.2f}, L = {depth}: r^L = 10^{exact[-1]:.1f})")
        return _float_status(log_direct, exact, "r^l")

    return fig, update


def scalar_controls() -> dict[str, ipywidgets.ValueWidget]:
    """Sliders of the scalar panel: the factor ``r`` and the number of factors ``L``."""
    return {
        "factor": ipywidgets.FloatSlider(value=0.25, min=0.05, max=2.0, step=0.05, description="factor r",
                                         readout_format=".2f"),
        "depth": ipywidgets.IntSlider(value=60, min=1, max=MAX_DEPTH, description="depth L"),
    }


@register_panel("ch02.scalar_product")
def scalar_panel() -> LivePanel:
    """Live panel: ``r^L`` in float32 against the exact value, with under/overflow on the status line."""
    return LivePanel(make_scalar_figure, scalar_controls(), freeze_legend=True)


def scalar_scrubber(depth: int = 100, alt: str | None = None, dpi: int = 100):
    """Kernel-free twin of :func:`scalar_panel`: ``r`` from 0.1 to 2.0 at fixed depth.

    ``alt`` is the frames' alt text (by default a sentence on what is plotted and what it shows);
    ``dpi`` 100 draws a frame about 600 pixels wide, so its labels stay readable in the book's column.
    """
    depth = check_positive_int("depth", depth)
    if alt is None:
        alt = (f"Plot of log10 of r^l against l up to {depth} factors, one frame per factor r from "
               f"{SCALAR_SCRUBBER_FACTORS[0]} to {SCALAR_SCRUBBER_FACTORS[-1]}: the exact straight line "
               "and the float32 dots agree until the line crosses float32's limits 1.2e-38 or 3.4e38, "
               "where the dots stop at 0 or inf.")
    return scrubber(make_scalar_figure, "factor", list(SCALAR_SCRUBBER_FACTORS), fixed={"depth": depth},
                    alt=alt, dpi=dpi)


# --------------------------------------------------------------------------- random-network gradients


@lru_cache(maxsize=1)
def network_data() -> dict[str, jax.Array]:
    """The fixed random network, inputs and output gradients (NumPy generator seeded ``SEED``; made once).

    ``Z``: ``(MAX_DEPTH, n, n)`` standard normal, so ``W_l = sigma_w Z_l / sqrt(n)``; ``x0``:
    ``(BATCH, n)`` inputs ``h_0`` with ``||x0||^2 = n``; ``gL``: ``(BATCH, n)`` unit vectors (``dE/dh_L``). NumPy's
    generator needs no JAX compilation (``jax.random`` here cost seconds of compiling on first use).
    """
    rng = np.random.default_rng(SEED)
    Z = rng.standard_normal((MAX_DEPTH, WIDTH, WIDTH)).astype(np.float32)
    x0 = rng.standard_normal((BATCH, WIDTH))
    x0 = (x0 * np.sqrt(WIDTH / np.sum(x0**2, axis=1, keepdims=True))).astype(np.float32)
    gL = rng.standard_normal((BATCH, WIDTH))
    gL = (gL / np.linalg.norm(gL, axis=1, keepdims=True)).astype(np.float32)
    return {"Z": jnp.asarray(Z), "x0": jnp.asarray(x0), "gL": jnp.asarray(gL)}


@jax.jit
def _gradient_kernel(Z, x0, gL, sigma_w, depth, act_index):
    """Everything the gradient panel draws, for every layer of the MAX_DEPTH network at once.

    Layer ``l`` (1-based) is active when ``l <= depth``. Returns, for ``l = 0..MAX_DEPTH``:
    ``log_norm`` (B, L+1) natural log of ``||g_l||`` by a renormalized sweep, ``direct`` (B, L+1)
    ``||g_l||`` of the plain float32 sweep (norm taken by :func:`vgplib.jacobians.stable_norm`, so it is
    0 only where the float32 vector itself is all zeros), ``forward_finite`` (L+1,) whether every ``a_k``, ``k <= l``, is finite and
    ``forward_nonzero`` (L+1,) whether every ``h_k``, ``k <= l``, has a nonzero entry (float32 underflow
    of the forward signal makes it exactly 0). The mean-field theory is :func:`_theory_kernel`.
    """
    n = Z.shape[-1]
    L = Z.shape[0]
    W = sigma_w * Z / jnp.sqrt(jnp.float32(n))
    hp = jax.lax.Precision.HIGHEST

    def forward(h, W_l):
        a = jnp.matmul(h, W_l.T, precision=hp)  # a_l = W_l h_{l-1}
        h_next, dphi = activation_by_index(act_index, a, ACTIVATIONS)
        return h_next, (dphi, jnp.all(jnp.isfinite(a)), jnp.any(h_next != 0))

    _, (D, finite, nonzero) = jax.lax.scan(forward, x0, W)  # D: (L, B, n) = phi'(a_l)
    active = jnp.arange(1, L + 1) <= depth

    def backward(carry, inputs):
        u, s, v = carry  # unit direction, log-norm, direct vector
        W_l, D_l, on = inputs
        back = jnp.matmul(D_l * u, W_l, precision=hp)  # J_l^T u = W_l^T diag(phi'(a_l)) u
        u_new, s_new = renormalized_step(u, s, back, active=on)
        v_new = jnp.where(on, jnp.matmul(D_l * v, W_l, precision=hp), v)
        return (u_new, s_new, v_new), (s_new, stable_norm(v_new))

    s0 = jnp.zeros(gL.shape[0], jnp.float32)
    _, (s, vn) = jax.lax.scan(backward, (gL, s0, gL), (W, D, active), reverse=True)
    # s[l-1] holds log||g_{l-1}||; append l = L (g_L itself, norm 1).
    log_norm = jnp.concatenate([s, s0[None]], axis=0).T
    direct = jnp.concatenate([vn, jnp.ones((1, gL.shape[0]), jnp.float32)], axis=0).T

    forward_finite = jnp.concatenate([jnp.ones((1,), bool), jnp.cumprod(finite).astype(bool)])
    forward_nonzero = jnp.concatenate([jnp.ones((1,), bool), jnp.cumprod(nonzero).astype(bool)])
    return log_norm, direct, forward_finite, forward_nonzero


@jax.jit
def _theory_kernel(q1, sigma_w, act_index):
    """Mean-field ``log chi_l``, ``l = 1..MAX_DEPTH``, along ``q_{l+1} = length_map(q_l)`` from ``q1``.

    The library's traceable :func:`vgplib.theory.length_map_and_chi` (the nodes of :func:`vgplib.chi1`)
    in a ``lax.scan``; called in float64 (:func:`theory_log_chi`), so ``chi_l`` is the number
    ``vgplib.chi1(activation, sigma_w, q=q_l)`` returns.
    """

    def layer(q, _):
        q_next, chi = length_map_and_chi(act_index, sigma_w, 0.0, q, ACTIVATIONS)
        return q_next, jnp.log(chi)

    return jax.lax.scan(layer, q1, None, length=MAX_DEPTH)[1]


@lru_cache(maxsize=512)
def theory_log_chi(sigma_w: float, activation: str) -> np.ndarray:
    """``log chi_l`` for ``l = 1..MAX_DEPTH`` (float64): ``chi_l = vgplib.chi1(activation, sigma_w, q=q_l)``
    with ``q_1 = sigma_w^2 ||x_0||^2 / n`` (batch mean) and ``q_{l+1} = vgplib.length_map(q_l)``."""
    sigma_w = check_positive("sigma_w", sigma_w)
    check_name("activation", activation, ACTIVATIONS)
    x0 = np.asarray(network_data()["x0"], np.float64)
    q1 = sigma_w**2 * float(np.mean(np.sum(x0**2, axis=1))) / WIDTH
    with jax.enable_x64(True):
        out = _theory_kernel(np.float64(q1), np.float64(sigma_w), np.int32(ACTIVATIONS.index(activation)))
        out = np.asarray(out, np.float64)
    out.flags.writeable = False  # cached: shared by every caller
    return out


def gradient_curves(sigma_w: float, depth: int, activation: str) -> dict[str, np.ndarray]:
    """The gradient panel's data as NumPy arrays, for ``l = 0..depth`` (layer ``l`` of a depth-L net).

    Keys: ``log10_measured`` log10 of the root-mean-square ``||g_l||`` over the batch (from the
    log-space sweep, exact at any depth), ``log10_samples`` (B, L+1) per input, ``direct`` (B, L+1)
    the plain float32 ``||g_l||`` (0 where it underflowed), ``log10_theory`` the mean-field
    ``0.5 * sum_{k=l+1}^{L} log10 chi_k``, ``chi`` (L+1,) with ``chi[l] = chi_l`` (``chi[0]`` unused)
    ``forward_finite`` (L+1,) whether every pre-activation up to layer ``l`` is finite and
    ``forward_nonzero`` (L+1,) whether no ``h_k``, ``k <= l``, has underflowed to all zeros.
    ``||g_L|| = 1``.
    """
    sigma_w = check_positive("sigma_w", sigma_w)
    depth = check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be <= {MAX_DEPTH}; got {depth}")
    check_name("activation", activation, ACTIVATIONS)
    data = network_data()
    out = _gradient_kernel(data["Z"], data["x0"], data["gL"], np.float32(sigma_w), np.int32(depth),
                           np.int32(ACTIVATIONS.index(activation)))
    log_norm, direct, forward_finite, forward_nonzero = (np.asarray(a) for a in jax.device_get(out))
    log_norm = log_norm[:, : depth + 1].astype(np.float64)
    # log-mean-exp over the batch of 2 log||g||, halved: the log of the RMS norm.
    m = np.max(2 * log_norm, axis=0)
    finite_m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        rms = 0.5 * (m + np.log(np.mean(np.exp(2 * log_norm - finite_m), axis=0)))
    rms = np.where(m == -np.inf, -np.inf, rms)  # every sample exactly 0 (a dead ReLU net): -inf, not NaN
    log_chi = np.concatenate([[0.0], theory_log_chi(sigma_w, activation)[:depth]])
    suffix = np.concatenate([np.cumsum(log_chi[1:][::-1])[::-1], [0.0]])  # sum_{k=l+1}^{L} log chi_k
    return {
        "log10_measured": rms / math.log(10),
        "log10_samples": log_norm / math.log(10),
        "direct": direct[:, : depth + 1],
        "log10_theory": 0.5 * suffix / math.log(10),
        "chi": np.exp(log_chi),
        "forward_finite": forward_finite[: depth + 1],
        "forward_nonzero": forward_nonzero[: depth + 1],
    }


def make_gradient_figure() -> tuple:
    """Figure of ``log10 ||dE/dh_l||`` against ``l``; ``update(sigma_w, depth, activation)``."""
    fig, ax = new_figure(margins={"top": 0.88})
    (theory,) = ax.plot([], [], "-", color="k", lw=1.5, label="theory ½Σ log₁₀ χₖ")
    (direct,) = ax.plot([], [], "o", color="C3", ms=3, label="plain float32")
    (measured,) = ax.plot([], [], "-", color="C0", lw=2, label="log-space")
    ax.axhline(_LOG10_TINY, color="0.5", ls="--", lw=1)
    ax.text(0, _LOG10_TINY, " 1.2e-38", va="bottom", fontsize=8, color="0.4")
    label = ax.set_xlabel("layer l")
    ax.set_ylabel("log₁₀ ‖∂E/∂h_l‖")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize=8, frameon=False)

    def update(sigma_w: float, depth: int, activation: str) -> str:
        c = gradient_curves(sigma_w, depth, activation)
        ls = np.arange(depth + 1)
        ok = bool(c["forward_finite"][-1])
        nan = np.full(ls.shape, np.nan)
        meas = np.where(np.isfinite(c["log10_measured"]), c["log10_measured"], np.nan) if ok else nan
        direct_log = log10_or_nan(np.sqrt(np.mean(c["direct"].astype(np.float64) ** 2, axis=0))) if ok else nan
        theory.set_data(ls, c["log10_theory"])
        measured.set_data(ls, meas)
        direct.set_data(ls, direct_log)
        direct.set_markevery(max(1, depth // 50))
        shown = np.concatenate([c["log10_theory"], meas])
        shown = shown[np.isfinite(shown)]
        lo, hi = float(np.min(shown)), float(np.max(shown))
        pad = max(2.0, 0.08 * (hi - lo))
        ax.set_xlim(0, depth)
        ax.set_ylim(lo - pad, hi + pad)
        label.set_text(f"layer l    ({activation}, σ_w = {sigma_w:.2f}, L = {depth}: χ_L = {float(c['chi'][-1]):.3g})")
        if not ok:
            k = int(np.argmin(c["forward_finite"]))
            return (f"overflow: the forward signal exceeds 3.4e38 (float32) at layer {k}, "
                    "so every gradient is NaN: only the theory is drawn")
        if not c["forward_nonzero"][-1]:
            k = int(np.argmin(c["forward_nonzero"]))
            dead = " and the gradient below it is exactly 0" if not np.isfinite(meas[0]) else ""
            return f"underflow: the forward signal h_l is 0 in float32 from layer {k} on{dead}"
        return _direct_status(direct_log, c["log10_measured"])

    return fig, update


def _direct_status(direct_log: np.ndarray, exact_log: np.ndarray) -> str:
    """Status of plain float32 backprop: the highest layer whose gradient under- or overflowed.

    ``direct_log`` is -inf or NaN only where every input's float32 gradient is the zero vector (the
    kernel's norm does not underflow on its own), or inf where an entry overflowed.
    """
    bad = ~np.isfinite(direct_log)
    if not bad.any():
        return ""
    k = int(np.max(np.nonzero(bad)[0]))
    if exact_log[k] < 0:
        return (f"underflow: plain float32 backprop gives dE/dh_l = 0 (every entry, every input) for l <= {k}: "
                f"entries below 1.2e-38 are flushed to 0; log-space: 10^{exact_log[0]:.0f} at l = 0")
    return (f"overflow: plain float32 backprop gives inf for l <= {k} (above 3.4e38); "
            f"log-space: 10^{exact_log[0]:.0f} at l = 0")


def gradient_controls() -> dict[str, ipywidgets.ValueWidget]:
    """Controls of the gradient panel: weight scale, depth and activation."""
    return {
        "sigma_w": ipywidgets.FloatSlider(value=1.0, min=0.25, max=2.5, step=0.05, description="sigma_w",
                                          readout_format=".2f"),
        "depth": ipywidgets.IntSlider(value=50, min=1, max=MAX_DEPTH, description="depth L"),
        "activation": ipywidgets.Dropdown(options=list(ACTIVATIONS), value="tanh", description="activation"),
    }


@register_panel("ch02.gradient_norms")
def gradient_panel() -> LivePanel:
    """Live panel: gradient norms of a random MLP against mean-field theory, with under/overflow status."""
    return LivePanel(make_gradient_figure, gradient_controls(), freeze_legend=True)


def gradient_scrubber(activation: str = "tanh", depth: int = 100, alt: str | None = None, dpi: int = 100):
    """Kernel-free twin of :func:`gradient_panel`: ``sigma_w`` from 0.5 to 2.0 at fixed depth and activation.

    ``alt`` is the frames' alt text (by default a sentence on what is plotted and what it shows);
    ``dpi`` 100 draws a frame about 600 pixels wide, so its labels stay readable in the book's column.
    """
    check_name("activation", activation, ACTIVATIONS)
    depth = check_positive_int("depth", depth)
    if alt is None:
        alt = (f"Plot of log10 of the gradient norm ||dE/dh_l|| against layer l of a {activation} network "
               f"of depth {depth} and width {WIDTH}, one frame per sigma_w from {GRADIENT_SCRUBBER_SIGMAS[0]} "
               f"to {GRADIENT_SCRUBBER_SIGMAS[-1]}: the measured curve follows the mean-field line, "
               + ("falling towards the input at every sigma_w (the sigmoid has no critical value here)."
                  if activation == "sigmoid" else
                  "falling towards the input below the critical sigma_w and growing above it."))
    return scrubber(make_gradient_figure, "sigma_w", list(GRADIENT_SCRUBBER_SIGMAS),
                    fixed={"depth": depth, "activation": activation}, alt=alt, dpi=dpi)



# --------------------------------------------------------------------------- static figures


def nonnormal_figure(norms, rho: float):
    """``||A^k||_2`` (exact), ``rho(A)^k`` and the bound ``||A||_2^k`` against ``k = 0..K`` on a log axis.

    ``norms`` are ``||A^k||_2`` for ``k = 0..K`` (``norms[1] = ||A||_2``), ``rho`` the spectral radius.
    """
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim != 1 or norms.size < 2:
        raise ValueError(f"norms must hold ||A^k|| for k = 0..K, K >= 1; got shape {norms.shape}")
    rho = check_positive("rho", rho)
    ks = np.arange(norms.size)
    fig, ax = new_figure(figsize=(6.4, 3.4), dpi=100, margins={"left": 0.12, "bottom": 0.15, "top": 0.9})
    ax.semilogy(ks, norms, lw=2, label=r"$\|A^k\|_2$ (exact)")
    ax.semilogy(ks, rho**ks, "--", label=rf"$\rho(A)^k = {rho:.1f}^k$")
    ax.semilogy(ks, norms[1] ** ks, ":", label=r"$\|A\|_2^k$ (upper bound)")
    ax.set_ylim(1e-3, 1e3)
    ax.set_xlabel("power $k$")
    ax.legend()
    ax.set_title("A spectral radius below 1 does not stop transient growth")
    return fig


def lyapunov_figure(eigenvalues, log_stretch, exponents, directions=None):
    """Left: eigenvalues of one factor and the unit circle. Right: ``log10`` stretch of chosen directions.

    ``log_stretch`` is ``(K+1, n)``, the cumulative log stretches after ``k`` factors sorted in
    decreasing order, ``exponents`` the ``n`` theoretical Lyapunov exponents (natural log), drawn as
    ``k * lambda_i / ln 10``. ``directions`` are 0-based indices (default: first, middle, last).
    """
    c = np.asarray(log_stretch, dtype=np.float64)
    lam = np.asarray(exponents, dtype=np.float64)
    eig = np.asarray(eigenvalues)
    if c.ndim != 2 or lam.shape != (c.shape[1],):
        raise ValueError(f"log_stretch must be (K+1, n) and exponents (n,); got {c.shape}, {lam.shape}")
    n = c.shape[1]
    directions = (0, n // 2, n - 1) if directions is None else tuple(directions)
    fig, (ax1, ax2) = new_figure(figsize=(7.0, 3.2), dpi=96, ncols=2,
                                 margins={"left": 0.07, "right": 0.98, "bottom": 0.15, "top": 0.9, "wspace": 0.38})
    t = np.linspace(0, 2 * np.pi, 200)
    ax1.plot(np.cos(t), np.sin(t), "k-", lw=1)
    ax1.plot(eig.real, eig.imag, ".", ms=4)
    ax1.set_aspect("equal")
    ax1.set_title(rf"eigenvalues of $W$: $\rho$ = {np.max(np.abs(eig)):.2f}")
    ks = np.arange(c.shape[0])
    for i, color in zip(directions, ("C0", "C2", "C3")):
        ax2.plot(ks, c[:, i] / math.log(10), color=color, lw=2, label=f"direction {i + 1}")
        ax2.plot(ks, ks * lam[i] / math.log(10), "k--", lw=1)
    ax2.plot([], [], "k--", lw=1, label="theory $k\\lambda_i$")
    ax2.set_xlabel("number of factors $k$")
    ax2.set_ylabel(r"$\log_{10}$ stretch")
    ax2.yaxis.set_label_coords(-0.15, 0.5)  # clear of 3-digit tick labels on the narrow axes
    ax2.legend(fontsize=8)
    return fig


def chi_figure(sigmas, measured, theory):
    """Per-layer factor against ``sigma_w`` on a log axis: theory lines and measured dots per activation.

    ``measured`` and ``theory`` map an activation name to one value per entry of ``sigmas``.
    """
    sigmas = np.asarray(sigmas, dtype=np.float64)
    if not measured or set(measured) != set(theory):
        raise ValueError("measured and theory must name the same activations")
    fig, ax = new_figure(figsize=(6.4, 3.6), dpi=100, margins={"left": 0.12, "bottom": 0.15, "top": 0.9})
    for act, color in zip(measured, ("C7", "C2", "C0", "C3", "C1", "C4")):
        ax.semilogy(sigmas, theory[act], "-", color=color, lw=1.5)
        ax.semilogy(sigmas, measured[act], "o", color=color, label=act)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel(r"$\sigma_w$")
    ax.set_ylabel(r"per-layer factor $\chi_1$")
    ax.set_title(r"lines: theory $\sigma_w^2\,\mathbb{E}[\phi'(a)^2]$ (vgplib.chi1); dots: measured")
    ax.legend(fontsize=8, ncol=2)
    return fig


# --------------------------------------------------------------------------- exercises


def float32_horizon(factor: float = 0.25) -> int:
    """The first ``L`` at which ``factor^L`` is exactly 0 in float32 as JAX computes it (flush to zero)."""
    direct, _ = scalar_powers(factor, MAX_DEPTH)
    zero = direct == 0
    if not zero.any():
        raise ValueError(f"factor^L does not reach 0 within {MAX_DEPTH} factors; got factor = {factor}")
    return int(np.argmax(zero))


def check_horizon(L) -> bool:
    """Self-check for the float32 horizon exercise: is ``L`` the first depth where ``0.25^L`` is 0?

    The answer is computed, not stored: a float32 cumulative product in JAX (:func:`scalar_powers`).
    Prints a verdict and returns ``True``/``False``.
    """
    if unanswered("set L to your integer and run the cell again.", L):
        return False
    ok = isinstance(L, (int, np.integer)) and not isinstance(L, bool) and int(L) == float32_horizon(0.25)
    return report_answer(ok, "0.25^L reaches 2^-126 at L = 63; below that JAX flushes to 0",
                         "find the first L where 2^(-2L) is below float32's smallest normal 2^-126.")


def check_nilpotent(rho_A, rho_B, rho_AB) -> bool:
    """Self-check for the nilpotent-factors exercise: the spectral radii of ``A``, ``B`` and ``AB``.

    Compared (``atol=1e-9``) with NumPy's eigenvalues. Prints a verdict and returns ``True``/``False``.
    """
    if unanswered("set rho_A, rho_B and rho_AB and run the cell again.", rho_A, rho_B, rho_AB):
        return False
    A = np.array([[0.0, 2.0], [0.0, 0.0]])
    B = np.array([[0.0, 0.0], [2.0, 0.0]])

    def rho(M):
        return float(np.max(np.abs(np.linalg.eigvals(M))))

    ok = bool(np.allclose(np.asarray([rho_A, rho_B, rho_AB], dtype=np.float64), [rho(A), rho(B), rho(A @ B)],
                          rtol=0.0, atol=1e-9))
    return report_answer(ok, "the factors' spectral radii do not bound the product's",
                   "compute the eigenvalues of A, B and of the product A @ B.")


def check_relu(sigma_w, decades) -> bool:
    """Self-check for the critical-ReLU exercise: the critical ``sigma_w`` and the 100-layer decay at 1.

    ``sigma_w`` must give ``|chi_1 - 1| < 2e-3`` and ``decades`` must be within 0.05 of
    ``100 log10 chi_1(sigma_w = 1)``, both with :func:`vgplib.chi1`. Prints a verdict, returns ``True``/``False``.
    """
    if unanswered("set sigma_w and decades and run the cell again.", sigma_w, decades):
        return False
    sigma_w, decades = float(sigma_w), float(decades)
    ok_sigma = sigma_w > 0 and abs(chi1("relu", sigma_w, q=1.0) - 1) < 2e-3
    ok_decades = abs(decades - 100 * math.log10(chi1("relu", 1.0, q=1.0))) < 0.05
    if not ok_sigma:
        return report_answer(False, "", "use chi_1 = sigma_w^2 E[phi'(a)^2] with E[phi'(a)^2] = 1/2, and set chi_1 = 1.")
    if not ok_decades:
        return report_answer(False, "", "at sigma_w = 1, chi_1 = 1/2 per layer: the log10 of (1/2)^100.")
    return report_answer(True, "chi_1 = sigma_w^2 / 2 for ReLU", "")
