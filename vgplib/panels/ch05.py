"""Chapter 5, *Exploding gradients*: its live panel, the divergence grid, the cliff figures, the exercises.

The live panel (registered as ``"ch05.overflow"``) back-propagates a unit output gradient
``g_L = dE/dh_L`` through a tanh MLP ``a_l = W_l h_{l-1}``, ``h_l = tanh(a_l)``, ``h_0 = x``,
``W_l = sigma_w Z_l / sqrt(n)`` (``Z_l`` a fixed standard-normal matrix, no biases), twice:

* in plain float32, ``g_{l-1} = J_l^T g_l = W_l^T (tanh'(a_l) * g_l)``, as backpropagation does: above
  ``3.4e38`` an entry becomes ``inf`` and the next product turns it into ``NaN``;
* renormalized after every layer, with the scale kept as a logarithm: exact at any depth.

Over it the mean-field prediction (Poole et al. 2016; Schoenholz et al. 2017)
``log E||g_l||^2 = sum_{k=l+1}^{L} log chi_1(q_k)``, ``chi_1(q) = sigma_w^2 E_z[tanh'(sqrt(q) z)^2]``,
``q_1 = sigma_w^2 ||x||^2 / n``, ``q_{k+1} = sigma_w^2 E_z[tanh(sqrt(q_k) z)^2]``, from the library's
traceable :func:`vgplib.theory.length_map_and_chi` in float64 (the quadrature of :func:`vgplib.chi1`,
so ``chi_star`` is the number :func:`vgplib.chi1` returns), cached per ``sigma_w``. Both backward sweeps
are ONE jitted function with a fixed maximum depth and a mask, so no slider move compiles. The status
line names the depth at which float32 overflows.

The divergence grid trains a small ReLU MLP on the digits by full-batch gradient descent for every
``(sigma_w, learning rate)`` pair at once (``vmap`` of a ``lax.scan``); :func:`grid_params` builds the
very parameters, so one cell can be re-run with :func:`vgplib.train_mlp` as an independent check.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from vgplib._validate import check_positive, check_positive_int
from vgplib.data import load_digits
from vgplib.jacobians import renormalized_step
from vgplib.landscapes import CLIFF_A0, cliff_wall
from vgplib.networks import dense, mlp_forward
from vgplib.plots import FLOAT32_MAX, FLOAT32_TINY, new_figure
from vgplib.theory import length_map_and_chi, q_star_and_chi
from vgplib.widgets import (
    LivePanel,
    depth_slider,
    register_panel,
    report_answer,
    scrubber,
    sigma_w_slider,
    sweep_values,
    unanswered,
)

Array = jax.Array

MAX_DEPTH = 300  #: layers of the fixed-shape panel network (depth slider maximum)
WIDTH = 64  #: width n of every layer of the panel network
SEED = 5
SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP = 0.5, 5.0, 0.05
SCRUBBER_DEPTHS: tuple[int, ...] = (10, 25, 50, 75, 100, 125, 150, 175, 200, 225, 250, 275, 300)
LOG10_MAX = math.log10(FLOAT32_MAX)  # 38.53
LOG10_TINY = math.log10(FLOAT32_TINY)  # -37.93
_LN10 = math.log(10.0)



# --------------------------------------------------------------------------- the panel network


def _network(seed: int, depth: int = MAX_DEPTH) -> dict[str, Array]:
    kz, kx, kg = jax.random.split(jax.random.PRNGKey(seed), 3)
    Z = jax.random.normal(kz, (depth, WIDTH, WIDTH), jnp.float32)
    x0 = jax.random.normal(kx, (WIDTH,), jnp.float32)
    x0 = x0 * jnp.sqrt(WIDTH / jnp.sum(x0**2))
    g = jax.random.normal(kg, (WIDTH,), jnp.float32)
    return {"Z": Z, "x0": x0, "g": g / jnp.linalg.norm(g)}


@lru_cache(maxsize=1)
def panel_network() -> dict[str, Array]:
    """The fixed random tanh network (key ``SEED``), created once.

    ``Z`` ``(MAX_DEPTH, n, n)`` standard normal, so ``W_l = sigma_w Z_l / sqrt(n)``; ``x0`` ``(n,)``
    (the input ``h_0 = x``) with ``||x||^2 = n``; ``g`` ``(n,)`` a unit vector, the output gradient
    ``g_L = dE/dh_L``.
    """
    return _network(SEED)


ENSEMBLE_SEED = 1000  #: networks of :func:`ensemble_log10_norms` use keys 1000, 1001, ...


def ensemble_curves(sigma_w: float, networks: int = 32, depth: int = MAX_DEPTH) -> dict[str, np.ndarray]:
    """The panel's exact and float32 backprop for ``networks`` further random networks, in one call.

    Each is built like :func:`panel_network` (keys ``ENSEMBLE_SEED + i``, same width, unit output
    gradient) and back-propagated by the same kernel (``vmap``). Keys: ``log10_exact``
    ``(networks, depth + 1)``, ``log10 ||g_l||`` in log space (exact at any depth): the spread of a
    single network's gradient around the typical rate of :func:`vgplib.typical_growth`; and
    ``overflow_layer`` ``(networks,)``, the highest ``l`` whose plain float32 ``g_l`` holds ``inf``
    or ``NaN`` (``-1`` where none does).
    """
    sigma_w = check_positive("sigma_w", sigma_w)
    networks = check_positive_int("networks", networks)
    depth = _check_depth(depth)
    nets = [_network(ENSEMBLE_SEED + i, depth) for i in range(networks)]
    stack = {k: jnp.stack([net[k] for net in nets]) for k in ("Z", "x0", "g")}
    kernel = jax.vmap(_overflow_kernel, in_axes=(0, 0, 0, None, None))
    direct, log_norm = kernel(stack["Z"], stack["x0"], stack["g"], np.float32(sigma_w), np.int32(depth))
    bad = ~np.all(np.isfinite(np.asarray(direct)), axis=2)  # (networks, depth + 1)
    layers = np.arange(depth + 1)
    overflow = np.where(bad.any(axis=1), np.max(np.where(bad, layers, -1), axis=1), -1)
    return {"log10_exact": np.asarray(log_norm, np.float64) / _LN10, "overflow_layer": overflow}


def ensemble_log10_norms(sigma_w: float, networks: int = 32, depth: int = MAX_DEPTH) -> np.ndarray:
    """``log10 ||g_l||`` ``(networks, depth + 1)`` of :func:`ensemble_curves` (exact, log space)."""
    return ensemble_curves(sigma_w, networks, depth)["log10_exact"]


def _scale(sigma_w, n: int):
    """``sigma_w / sqrt(n)`` in float32, computed the same way inside and outside the kernel."""
    return jnp.float32(sigma_w) / jnp.sqrt(jnp.float32(n))


def panel_params(sigma_w: float, depth: int) -> dict[str, Array]:
    """The first ``depth`` layers of the panel network, stacked: ``{"W": (depth, n, n), "b": (depth, n)}``.

    ``W_l = sigma_w Z_l / sqrt(n)`` (float32), ``b_l = 0``; :func:`vgplib.layer_jacobians` accepts it.
    """
    sigma_w = check_positive("sigma_w", sigma_w)
    depth = _check_depth(depth)
    Z = panel_network()["Z"][:depth]
    return {"W": Z * _scale(np.float32(sigma_w), WIDTH), "b": jnp.zeros((depth, WIDTH), jnp.float32)}


def _check_depth(depth: int) -> int:
    depth = check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be <= {MAX_DEPTH}; got {depth}")
    return depth


@jax.jit
def _overflow_kernel(Z: Array, x0: Array, g: Array, sigma_w: Array, depth: Array):
    """Direct float32 and log-space backprop through the first ``depth`` layers.

    Returns ``direct`` ``(L+1, n)``: the float32 ``g_l`` (``g_l = g`` for ``l >= depth``) and
    ``log_norm`` ``(L+1,)``: ``ln ||g_l||`` from the renormalized sweep. The mean-field line comes
    from :func:`_theory`.
    """
    L, n = Z.shape[0], Z.shape[-1]
    hp = jax.lax.Precision.HIGHEST
    W = Z * _scale(sigma_w, n)
    b = jnp.zeros((n,), Z.dtype)

    def forward(x, W_l):
        t = jnp.tanh(dense({"W": W_l, "b": b}, x))
        # J_l = diag(tanh'(a_l)) W_l, written as JAX's forward-mode rule for tanh writes it,
        # (g + g tanh) (1 - tanh): bit for bit what vgplib.layer_jacobians (jax.jacfwd) returns.
        return t, (W_l + W_l * t[:, None]) * (1.0 - t)[:, None]

    _, J = jax.lax.scan(forward, x0, W)
    active = jnp.arange(1, L + 1) <= depth

    def backward(carry, inputs):
        u, s, v = carry  # unit direction, ln ||g_l||, direct float32 g_l
        J_l, on = inputs
        a = jnp.matmul(u, J_l, precision=hp)  # J_l^T u
        u_new, s_new = renormalized_step(u, s, a, active=on)
        v_new = jnp.where(on, jnp.matmul(v, J_l, precision=hp), v)
        return (u_new, s_new, v_new), (s_new, v_new)

    zero = jnp.zeros((), jnp.float32)
    _, (s, vs) = jax.lax.scan(backward, (g, zero, g), (J, active), reverse=True)
    log_norm = jnp.concatenate([s, zero[None]])
    direct = jnp.concatenate([vs, g[None]], axis=0)
    return direct, log_norm


@jax.jit
def _theory_kernel(q1: Array, sigma_w: Array):
    """``ln chi_1(q_k)``, ``k = 1..MAX_DEPTH``, along ``q_{k+1} = length_map(q_k)`` from ``q1``, and
    ``ln chi_1(q*)``: the library's :func:`vgplib.theory.length_map_and_chi` and
    :func:`vgplib.theory.q_star_and_chi` for tanh (called in float64 by :func:`_theory`)."""

    def layer(q, _):
        q_next, chi = length_map_and_chi(0, sigma_w, 0.0, q, ("tanh",))
        return q_next, jnp.log(chi)

    _, log_chi = jax.lax.scan(layer, q1, None, length=MAX_DEPTH)
    _, chi_star = q_star_and_chi(0, sigma_w, 0.0, 1.0, ("tanh",))
    return log_chi, jnp.log(chi_star)


@lru_cache(maxsize=512)
def _theory(sigma_w: float) -> tuple[np.ndarray, float]:
    """:func:`_theory_kernel` in float64 for the panel network's input (``q_1 = sigma_w^2 ||x||^2 / n``);
    cached, so a depth move costs no theory. Returns ``log_chi`` ``(MAX_DEPTH + 1,)`` with
    ``log_chi[l] = ln chi_1(q_l)`` for ``l >= 1`` (``log_chi[0] = 0``) and ``ln chi_1(q*)``."""
    x0 = np.asarray(panel_network()["x0"], np.float64)
    q1 = sigma_w**2 * float(np.sum(x0**2)) / x0.size
    with jax.enable_x64(True):
        log_chi, log_chi_star = (np.asarray(a, np.float64)
                                 for a in _theory_kernel(np.float64(q1), np.float64(sigma_w)))
    return np.concatenate([[0.0], log_chi]), float(log_chi_star)


def overflow_curves(sigma_w: float, depth: int) -> dict[str, object]:
    """The panel's data for ``l = 0..depth`` (NumPy, float64 where derived).

    Keys: ``log10_exact`` ``log10 ||g_l||`` (log-space sweep, exact at any depth); ``direct_norm``
    ``||g_l||`` of the plain float32 backprop, its norm taken in float64 (``inf`` where the float32
    vector holds ``inf`` or ``NaN``; 0 where it underflowed to zero); ``log10_theory``
    ``0.5 log10 prod_{k>l} chi_1(q_k)``; ``chi_star`` (``chi_1`` at the variance fixed point);
    ``overflow_layer``: the highest ``l`` whose float32 ``g_l`` is not finite (``None`` if none);
    ``underflow_layer``: the highest ``l`` whose float32 ``g_l`` is exactly 0 (``None`` if none).
    """
    sigma_w = check_positive("sigma_w", sigma_w)
    depth = _check_depth(depth)
    net = panel_network()
    out = _overflow_kernel(net["Z"], net["x0"], net["g"], np.float32(sigma_w), np.int32(depth))
    direct, log_norm = (np.asarray(a) for a in jax.device_get(out))
    log_chi, log_chi_star = _theory(float(np.float32(sigma_w)))
    direct = direct[: depth + 1].astype(np.float64)
    finite = np.all(np.isfinite(direct), axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        norm = np.where(finite, np.linalg.norm(np.where(finite[:, None], direct, 0.0), axis=1), np.inf)
    log_chi = log_chi[: depth + 1].astype(np.float64)
    suffix = np.concatenate([np.cumsum(log_chi[1:][::-1])[::-1], [0.0]])  # sum_{k=l+1}^{L} ln chi_k
    bad = np.flatnonzero(~finite)
    zero = np.flatnonzero(finite & (norm == 0))
    return {
        "log10_exact": log_norm[: depth + 1].astype(np.float64) / _LN10,
        "direct_norm": norm,
        "log10_theory": 0.5 * suffix / _LN10,
        "chi_star": float(np.exp(log_chi_star)),
        "overflow_layer": int(bad.max()) if bad.size else None,
        "underflow_layer": int(zero.max()) if zero.size else None,
    }


def overflow_status(curves: dict[str, object], depth: int) -> str:
    """The status line: ``"overflow: ..."`` / ``"underflow: ..."`` of the float32 backprop, or ``""``."""
    exact0 = float(curves["log10_exact"][0])
    if curves["overflow_layer"] is not None:
        layer = int(curves["overflow_layer"])
        return (f"overflow: ||g_0|| above 3.4e38 in float32 at depth {depth} "
                f"(inf/NaN after {depth - layer} layers of backprop) \u2014 log-space value 1e+{exact0:.0f}")
    if curves["underflow_layer"] is not None:
        layer = int(curves["underflow_layer"])
        return (f"underflow: ||g_0|| below 1.2e-38 in float32 at depth {depth} "
                f"(0 after {depth - layer} layers of backprop) \u2014 log-space value 1e{exact0:.0f}")
    return ""


def make_overflow_figure() -> tuple[Figure, object]:
    """Figure of ``log10 ||g_l||`` (``g_l = dE/dh_l``) against ``l``; ``update(sigma_w, depth) -> status``."""
    fig, ax = new_figure()
    (theory,) = ax.plot([], [], "-", color="k", lw=1.2, label="mean field ½Σ log₁₀ χ₁(q_k)")
    (exact,) = ax.plot([], [], "-", color="C0", lw=2, label="exact (log-space)")
    (direct,) = ax.plot([], [], "--", color="C3", lw=1.5, label="plain float32 backprop")
    (mark,) = ax.plot([], [], "x", color="C3", ms=10, mew=2.5)
    ax.axhline(LOG10_MAX, color="0.5", ls="--", lw=1)
    max_label = ax.text(0.3, LOG10_MAX, "float32 max 3.4e38", va="bottom", fontsize=8, color="0.4",
                        transform=ax.get_yaxis_transform())
    ax.set_xlabel("layer l")
    ax.set_ylabel("log₁₀ ‖g_l‖ = log₁₀ ‖∂E/∂h_l‖")
    ax.legend(loc="upper right", fontsize=8)  # 8 pt at 96 dpi: 10.7 px in the book
    title = ax.set_title("", fontsize=10)

    def update(sigma_w: float = 4.0, depth: int = 250) -> str:
        c = overflow_curves(sigma_w, depth)
        ls = np.arange(depth + 1)
        norm = c["direct_norm"]
        ok = np.isfinite(norm) & (norm > 0)
        direct_log = np.full(depth + 1, np.nan)
        direct_log[ok] = np.log10(norm[ok])
        theory.set_data(ls, c["log10_theory"])
        exact.set_data(ls, c["log10_exact"])
        direct.set_data(ls, direct_log)
        layer = c["overflow_layer"]
        if layer is None:
            mark.set_data([], [])
        else:
            mark.set_data([layer], [LOG10_MAX])
        shown = np.concatenate([c["log10_theory"], c["log10_exact"]])
        lo, hi = float(np.min(shown)), float(np.max(shown))
        if hi > LOG10_MAX - 15:
            hi = max(hi, LOG10_MAX + 3)
        pad = max(2.0, 0.08 * (hi - lo))
        ax.set_xlim(0, depth)
        ax.set_ylim(lo - pad, hi + pad)
        max_label.set_visible(hi + pad > LOG10_MAX)
        title.set_text(f"tanh, σ_w = {sigma_w:.2f} (χ₁ = {c['chi_star']:.2f}), L = {depth}: "
                       f"‖g₀‖ = 10^{float(c['log10_exact'][0]):.1f}")
        return overflow_status(c, depth)

    return fig, update


def overflow_controls(sigma_w: float = 4.0, depth: int = 250) -> dict[str, ipywidgets.ValueWidget]:
    """The panel's sliders: weight scale ``sigma_w`` and depth ``L``."""
    return {
        "sigma_w": sigma_w_slider(sigma_w, SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP),
        "depth": depth_slider(depth, MAX_DEPTH),
    }


@register_panel("ch05.overflow")
def overflow_panel() -> LivePanel:
    """Live panel: exploding gradients of a tanh MLP, exact against float32, with the overflow status."""
    controls = overflow_controls()
    # The mean-field line costs about 16 ms per new sigma_w: compute it once for every slider value
    # at first show, so that a move costs only the backward sweeps and the redraw (the 100 ms bar).
    for sigma_w in sweep_values(controls["sigma_w"], n=10_000):
        _theory(float(np.float32(sigma_w)))
    return LivePanel(make_overflow_figure, controls, freeze_legend=True)


OVERFLOW_ALT = ("Log10 of the back-propagated gradient norm against the layer of a tanh network at "
                "sigma_w = {sigma_w:g}, one frame per depth: the exact curve and the mean-field line "
                "rise towards the input, and from the depth where the exact value passes the dashed "
                "float32 maximum the plain float32 curve stops with a red cross.")


def overflow_scrubber(sigma_w: float = 4.0, depths=SCRUBBER_DEPTHS, alt: str | None = None):
    """Kernel-free twin of :func:`overflow_panel`: the depth from 10 to 300 at fixed ``sigma_w``.

    ``alt`` is the frames' alt text; by default :data:`OVERFLOW_ALT` for this ``sigma_w``.
    """
    check_positive("sigma_w", sigma_w)
    alt = OVERFLOW_ALT.format(sigma_w=sigma_w) if alt is None else alt
    return scrubber(make_overflow_figure, "depth", list(depths), fixed={"sigma_w": sigma_w}, alt=alt)


# --------------------------------------------------------------------------- static figures


def _static_figure(figsize: tuple[float, float], ncols: int = 1):
    """A pyplot-free figure for a static (non-live) chapter figure, constrained layout."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=True)
    return fig, axes


INTUITION_SIGMAS: tuple[tuple[float, str], ...] = ((0.8, "#1f77b4"), (1.0, "0.3"), (1.5, "#ff7f0e"),
                                                   (4.0, "#d62728"))


def intuition_figure(depth: int = MAX_DEPTH) -> Figure:
    """Mean-field ``log10 ||g_l||`` after ``k`` layers of backprop, tanh, four ``sigma_w``."""
    from vgplib.theory import chi1

    ks = np.arange(0, check_positive_int("depth", depth) + 1)
    fig, ax = _static_figure((6.4, 3.4))
    for sw, color in INTUITION_SIGMAS:
        chi_sw = chi1("tanh", sw)
        ax.plot(ks, 0.5 * ks * np.log10(chi_sw), color=color, lw=2,
                label=f"σ_w = {sw}: χ₁ = {chi_sw:.2f}")
    ax.axhline(LOG10_MAX, color="0.5", ls="--", lw=1)
    ax.text(ks[-1], LOG10_MAX - 1, "float32 max 3.4e38", fontsize=9, color="0.3", ha="right", va="top")
    ax.set_xlabel("layers of backpropagation k = L − l")
    ax.set_ylabel("predicted log₁₀ ‖g_l‖")
    ax.legend(fontsize=9, loc="upper left")
    ax.set_ylim(-30, 60)
    ax.grid(alpha=0.3)
    return fig


def growth_figure(curves: dict, log10_frob: np.ndarray, chi: float, typical_rate: float,
                  ensemble: np.ndarray | None = None) -> Figure:
    """Theory over measurement for the panel network (``curves`` from :func:`overflow_curves`).

    Lines: mean field ``(L - l)/2 log10 chi_1``; the typical rate ``(L - l)/2 lambda / ln 10``
    (:func:`vgplib.typical_growth`); the band holding the middle 80 % of ``ensemble``
    (``log10 ||g_l||`` of other networks, :func:`ensemble_log10_norms`); the exact
    ``log10 ||g_l||`` of the panel network; ``log10_frob`` (``log10 ||P_l||_F / sqrt(n)``); and the
    plain float32 backprop with a cross where it first holds ``inf``.
    """
    exact = np.asarray(curves["log10_exact"], np.float64)
    L = exact.size - 1
    ls = np.arange(L + 1)
    fig, ax = _static_figure((6.8, 4.0))
    if ensemble is not None:
        lo, hi = np.percentile(np.asarray(ensemble), [10, 90], axis=0)
        ax.fill_between(ls, lo, hi, color="C0", alpha=0.18, lw=0,
                        label=f"{len(ensemble)} other networks (middle 80 %)")
    ax.plot(ls, 0.5 * (L - ls) * math.log10(chi), "k-", lw=1.2, label="mean field ½(L−l) log₁₀ χ₁")
    ax.plot(ls, 0.5 * (L - ls) * typical_rate / _LN10, "k--", lw=1.2, label="typical rate ½(L−l) λ / ln 10")
    ax.plot(ls, exact, "-", color="C0", lw=2, label="this network: exact ‖g_l‖ (log space)")
    ax.plot(ls, log10_frob, ":", color="C2", lw=2, label="exact ‖P_l‖_F / √n (vgplib.log_norms)")
    norm = np.asarray(curves["direct_norm"])
    ok = np.isfinite(norm) & (norm > 0)
    direct = np.full(L + 1, np.nan)
    direct[ok] = np.log10(norm[ok])
    ax.plot(ls, direct, "--", color="C3", lw=1.5, label="plain float32 backprop")
    layer = curves["overflow_layer"]
    if layer is not None:
        ax.plot([layer], [LOG10_MAX], "x", color="C3", ms=11, mew=2.5)
        ax.annotate(f"inf, then NaN\nfor l ≤ {layer}", (layer, LOG10_MAX), (layer + 25, LOG10_MAX + 12),
                    fontsize=9, color="C3", arrowprops={"arrowstyle": "->", "color": "C3"})
    ax.axhline(LOG10_MAX, color="0.5", ls="--", lw=1)
    ax.set_xlabel(f"layer l (the output is l = {L})")
    ax.set_ylabel("log₁₀ of the norm")
    ax.set_xlim(0, L)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return fig


def divergence_map(sigma_ws, lrs, labels: np.ndarray, nan_step: np.ndarray) -> Figure:
    """The learning-rate map: one cell per ``(sigma_w, lr)``, coloured by :func:`classify_runs`
    (green learning, grey stalled, red diverged), numbered with the step of the first NaN/inf."""
    from matplotlib.colors import ListedColormap

    sws, lrs = np.asarray(sigma_ws), np.asarray(lrs)
    fig, ax = _static_figure((6.6, 4.0))
    cmap = ListedColormap(["#2ca02c", "#d9d9d9", "#d62728"])
    ax.imshow(np.asarray(labels).T, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=2,
              extent=[-0.5, len(sws) - 0.5, -0.5, len(lrs) - 0.5])
    for i, j in zip(*np.nonzero(np.asarray(nan_step) >= 0)):
        ax.text(i, j, str(nan_step[i, j]), ha="center", va="center", fontsize=9, color="white")
    x_crit = float(np.interp(math.sqrt(2.0), sws, np.arange(len(sws))))
    ax.axvline(x_crit, color="k", ls="--", lw=1)
    ax.text(x_crit + 0.1, -0.2, "σ_w = √2", fontsize=9)
    ax.set_xticks(range(len(sws)), [f"{s:g}" for s in sws], fontsize=9)
    ax.set_yticks(range(len(lrs)), [f"{r:.0e}" for r in lrs], fontsize=9)
    ax.set_xlabel("σ_w")
    ax.set_ylabel("learning rate η")
    ax.set_title("green: learning, grey: stalled, red: diverged (number: step of the first NaN/inf)",
                 fontsize=9)
    return fig


def monitor_figure(bad, good, explode_norm: float, first_nonfinite: int | None,
                   labels: tuple[str, str] = ("σ_w = 2.25", "σ_w = √2")) -> Figure:
    """Left: per-layer and global gradient norms of the diverging run ``bad`` (a
    :class:`vgplib.TrainHistory`); right: the loss of ``bad`` and ``good`` (a gap is a NaN)."""
    fig, axes = _static_figure((7.0, 3.3), ncols=2)  # <= 688 px wide: shown unscaled in the book
    norms = np.asarray(bad.grad_norms)
    colors = [f"C{i % 10}" for i in range(norms.shape[1])]
    with np.errstate(divide="ignore", invalid="ignore"):
        for layer in range(norms.shape[1]):
            last = layer in (0, norms.shape[1] - 1)
            axes[0].semilogy(bad.step, norms[:, layer], "o-", ms=3, lw=1, color=colors[layer],
                             alpha=1.0 if last else 0.5, label=f"layer {layer + 1}" if last else None)
        axes[0].semilogy(bad.step, bad.gradients.global_norm, "k-", lw=2, label="global")
    axes[0].axhline(explode_norm, color="C3", ls=":", lw=1)
    if first_nonfinite is not None:
        axes[0].axvline(first_nonfinite, color="C3", lw=1)
    axes[0].set_title(f"{labels[0]}, η = 0.1: ‖∂E/∂θ_l‖", fontsize=10)
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=8)
    for run, label in zip((bad, good), labels):
        axes[1].semilogy(run.step, run.loss, "o-", ms=3, label=label)
    axes[1].set_xlabel("step")
    axes[1].set_title("loss (a gap = NaN)", fontsize=10)
    axes[1].legend(fontsize=9)
    return fig


def cliff_figure(ws, bs, grid, path, w_cut: float, b_wall: float, b_cut, cut_loss, cut_norm) -> Figure:
    """Three panels: ``log10 E`` over ``(w, b)`` with the wall and the descent path ``path`` (a
    :class:`vgplib.CliffPath`) up to its longest step; ``log10 ||grad E||`` on the grid; and, below
    them, the loss and gradient norm on the float64 slice ``b_cut`` across the wall at ``w_cut``.
    Two rows, 7 inches wide, so that the book shows it unscaled (text at 10 px or more)."""
    ws, bs = np.asarray(ws), np.asarray(bs)
    pts = np.asarray(path.params)
    jumps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    k = int(np.argmax(jumps))
    fig = Figure(figsize=(7.0, 6.4), layout="constrained")
    ax = fig.subplot_mosaic([["loss", "grad"], ["cut", "cut"]], height_ratios=[1.25, 1.0])
    extent = [ws[0], ws[-1], bs[0], bs[-1]]
    im = ax["loss"].imshow(np.log10(np.asarray(grid.loss)), origin="lower", extent=extent, aspect="auto",
                           cmap="viridis")
    fig.colorbar(im, ax=ax["loss"], fraction=0.05)
    ax["loss"].plot(*wall_line(ws), "w--", lw=1)
    ax["loss"].plot(pts[: k + 1, 0], pts[: k + 1, 1], "o-", color="C1", ms=2.5, lw=1)
    throw = (pts[k + 1] - pts[k]) / jumps[k]
    ax["loss"].annotate("", xy=tuple(pts[k] + 1.9 * throw), xytext=tuple(pts[k]),
                        arrowprops={"arrowstyle": "->", "color": "k", "lw": 1.5})
    ax["loss"].text(ws[0] + 0.15, bs[-1] - 0.15,
                    f"step {k}: thrown to\n(w, b) = ({pts[k + 1, 0]:.0f}, {pts[k + 1, 1]:.0f})",
                    fontsize=8, va="top", bbox={"fc": "w", "ec": "0.5", "alpha": 0.85})
    ax["loss"].set_title("log₁₀ E(w, b); dashed: b_wall(w)", fontsize=10)
    ax["loss"].set_xlabel("w")
    ax["loss"].set_ylabel("b")
    im = ax["grad"].imshow(np.log10(np.asarray(grid.grad_norm)), origin="lower", extent=extent,
                           aspect="auto", cmap="magma", vmin=-6)
    fig.colorbar(im, ax=ax["grad"], fraction=0.05)
    ax["grad"].set_title("log₁₀ ‖∇E‖ on the grid", fontsize=10)
    ax["grad"].set_xlabel("w")
    db = (np.asarray(b_cut) - b_wall) * 1e3
    cut_norm = np.asarray(cut_norm)
    ax["cut"].semilogy(db, cut_norm, color="C3", lw=1.2)
    i_peak = int(np.argmax(cut_norm))
    ax["cut"].plot([db[i_peak]], [cut_norm[i_peak]], "v", color="C3", ms=6)  # a one-sample spike
    ax["cut"].set_xlim(-2, 2)
    ax["cut"].set_ylabel("‖∇E‖", color="C3")
    twin = ax["cut"].twinx()
    twin.plot(db, cut_loss, color="C0", lw=1.5)
    twin.set_ylabel("E", color="C0")
    ax["cut"].set_xlabel(f"(b − b_wall) × 10³ at w = {w_cut:g}")
    ax["cut"].set_title("slice across the wall (float64)", fontsize=10)
    return fig


def table(header: tuple[str, ...], rows, formats: tuple[str, ...] | None = None) -> str:
    """A small aligned text table: first column left-aligned, the others right-aligned.

    ``formats`` are format specs per column (``""`` for ``str``); the result is ready to ``print``.
    """
    formats = formats or ("",) * len(header)
    cells = [list(header)] + [[format(v, f) for v, f in zip(row, formats)] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- the divergence grid


GRID_HIDDEN = 32  #: width of the hidden layers of the grid network
GRID_LAYERS = 8  #: weight layers: 64 -> 32, 6 x (32 -> 32), 32 -> 10
GRID_SAMPLES = 256  #: training images used (full batch)


@lru_cache(maxsize=1)
def grid_problem() -> tuple[Array, Array, list[Array]]:
    """``(x, y, Z)``: the first ``GRID_SAMPLES`` digits of the training split and standard-normal
    matrices ``Z_l`` ``(n_l, n_{l-1})`` (key 0) for widths ``64, 32, ..., 32, 10``."""
    digits = load_digits()
    x = jnp.asarray(digits.x_train[:GRID_SAMPLES])
    y = jnp.asarray(digits.y_train[:GRID_SAMPLES])
    widths = [64] + [GRID_HIDDEN] * (GRID_LAYERS - 1) + [10]
    keys = jax.random.split(jax.random.PRNGKey(0), GRID_LAYERS)
    Z = [jax.random.normal(k, (n_out, n_in), jnp.float32) for k, n_in, n_out in zip(keys, widths[:-1], widths[1:])]
    return x, y, Z


def _scaled(Z: list[Array], sigma_w) -> list[dict[str, Array]]:
    return [{"W": z * (sigma_w / jnp.sqrt(jnp.float32(z.shape[1]))), "b": jnp.zeros(z.shape[0], z.dtype)} for z in Z]


def grid_params(sigma_w: float) -> list[dict[str, Array]]:
    """The grid network's initial parameters at ``sigma_w``: ``W_l = sigma_w Z_l / sqrt(n_{l-1})``, ``b = 0``."""
    sigma_w = check_positive("sigma_w", sigma_w)
    return _scaled(grid_problem()[2], jnp.float32(sigma_w))


def _ce(params, x, y):
    logits = mlp_forward(params, x, "relu", linear_output=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _train_one(Z, x, y, sigma_w, lr, steps):
    params = _scaled(Z, sigma_w)

    def step(p, _):
        loss, g = jax.value_and_grad(_ce)(p, x, y)
        return jax.tree_util.tree_map(lambda a, b: a - lr * b, p, g), loss

    p, losses = jax.lax.scan(step, params, None, length=steps)
    return jnp.concatenate([losses, _ce(p, x, y)[None]])


@partial(jax.jit, static_argnames=("steps",))
def _grid_kernel(Z, x, y, sigma_ws, lrs, steps):
    over_lr = jax.vmap(_train_one, in_axes=(None, None, None, None, 0, None))
    return jax.vmap(over_lr, in_axes=(None, None, None, 0, None, None))(Z, x, y, sigma_ws, lrs, steps)


def divergence_grid(sigma_ws, lrs, steps: int = 40) -> np.ndarray:
    """Loss curves ``(len(sigma_ws), len(lrs), steps + 1)`` of full-batch gradient descent on the digits.

    For each pair, ReLU MLP :func:`grid_params` ``(sigma_w)`` is trained by ``theta <- theta - lr dE/dtheta``
    (``optax.sgd`` without momentum) on :func:`grid_problem`; entry ``[i, j, t]`` is the cross-entropy
    before step ``t`` (``t = steps``: after the last step). All pairs run in one jitted double ``vmap``.
    """
    sw = np.asarray(sigma_ws, dtype=np.float32)
    lr = np.asarray(lrs, dtype=np.float32)
    for arg, arr in (("sigma_ws", sw), ("lrs", lr)):
        if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
            raise ValueError(f"{arg} must be a non-empty 1-D array of finite positive numbers")
    steps = check_positive_int("steps", steps)
    x, y, Z = grid_problem()
    return np.asarray(_grid_kernel(Z, x, y, jnp.asarray(sw), jnp.asarray(lr), steps))


def classify_runs(losses: np.ndarray) -> np.ndarray:
    """Label each run from its loss curve ``(..., steps + 1)``.

    2 = diverged: the loss became ``inf``/``NaN``, or rose above 10 times its initial value at some
    step, or ended above its initial value; 0 = learning: otherwise, with a final loss below
    ``0.8 ln 10`` (80 % of the chance level of 10 classes); 1 = stalled: the rest.
    """
    losses = np.asarray(losses, dtype=np.float64)
    first, last = losses[..., 0], losses[..., -1]
    finite = np.all(np.isfinite(losses), axis=-1)
    peak = np.max(np.where(np.isfinite(losses), losses, np.inf), axis=-1)
    diverged = ~finite | (peak > 10.0 * first) | (last > first)
    learning = ~diverged & (last < 0.8 * math.log(10.0))
    return np.where(diverged, 2, np.where(learning, 0, 1))


def first_nonfinite_step(losses: np.ndarray) -> np.ndarray:
    """Index of the first non-finite loss along the last axis (-1 where every loss is finite)."""
    bad = ~np.isfinite(np.asarray(losses))
    return np.where(bad.any(axis=-1), np.argmax(bad, axis=-1), -1)


# --------------------------------------------------------------------------- cliff figure helper


def wall_line(ws: np.ndarray, a0: float = CLIFF_A0) -> tuple[np.ndarray, np.ndarray]:
    """``(w, b_wall(w))`` for the part of ``ws`` where the closed-form wall exists (``w sigmoid'(a_0) > 1``)."""
    ws = np.asarray(ws, dtype=np.float64)
    s = 1.0 / (1.0 + math.exp(-a0))
    ok = ws * s * (1 - s) > 1.0 + 1e-9
    return ws[ok], np.asarray(cliff_wall(ws[ok], a0=a0), dtype=np.float64)


# --------------------------------------------------------------------------- exercises


def float32_overflow_count(a: float) -> int:
    """The number of factors ``a > 1`` after which a float32 running product ``a^k`` is ``inf``."""
    a = check_positive("a", a)
    if a <= 1:
        raise ValueError(f"a must be above 1 for the product to overflow; got {a}")
    p = np.float32(1.0)
    k = 0
    with np.errstate(over="ignore"):
        while np.isfinite(p):
            p = np.float32(p * np.float32(a))
            k += 1
    return k


def check_overflow_count(answer) -> bool | None:
    """Self-check: after how many factors 1.5 does a float32 running product first become inf?"""
    if unanswered("set the variable to your integer and run the cell again.", answer):
        return None
    ref = float32_overflow_count(1.5)
    # An integral float such as 219.0 (e.g. from np.ceil) counts as an integer; 218.8 or "219" do not.
    number = isinstance(answer, (int, float, np.integer, np.floating)) and not isinstance(answer, (bool, np.bool_))
    ok = number and float(answer).is_integer() and int(answer) == ref
    return report_answer(ok, f"1.5^{ref} is the first power above 3.4e38 in float32",
                   "solve 1.5^k > 3.4028235e38 for the smallest integer k (take logarithms).")


def check_overflow_depth(answer, sigma_w: float = 3.0) -> bool | None:
    """Self-check: the mean-field depth at which ``||g_0||`` of a unit output gradient passes 3.4e38.

    Reference: ``L = ln(3.4e38) / (0.5 ln chi_1)`` with ``chi_1`` from :func:`vgplib.chi1` (tanh);
    answers within 2 % are accepted.
    """
    if unanswered("set the variable to your depth and run the cell again.", answer):
        return None
    from vgplib.theory import chi1

    ref = math.log(FLOAT32_MAX) / (0.5 * math.log(chi1("tanh", sigma_w)))
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report_answer(False, "", "the answer must be a number of layers.")
    ok = math.isfinite(value) and abs(value - ref) <= 0.02 * ref
    return report_answer(ok, f"about {ref:.0f} layers (chi_1 = {chi1('tanh', sigma_w):.3f})",
                   "the norm grows by sqrt(chi_1) per layer: solve chi_1^(L/2) = 3.4e38 for L.")


def check_wall(answer, w: float = 6.0) -> bool | None:
    """Self-check: the bias ``b`` at which the cliff crosses ``w`` (for ``a_0 = 0.5``)."""
    if unanswered("set the variable to your value of b and run the cell again.", answer):
        return None
    ref = float(cliff_wall(w))
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report_answer(False, "", "the answer must be a number.")
    ok = abs(value - ref) <= 1e-3
    return report_answer(ok, f"b_wall({w:g}) = {ref:.4f}", "a_0 must be a fixed point: solve a_0 = w sigmoid(a_0) + b for b.")
