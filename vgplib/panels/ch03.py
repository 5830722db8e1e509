"""Chapter 3, *Deep feedforward networks*: its live panel, its experiments' helpers and its exercises.

Notation (DESIGN.md 2b): ``a_l = W_l h_{l-1} + b_l`` is the pre-activation, ``h_l = phi(a_l)`` the
activation, ``h_0 = x``; ``g_l = dE/dh_l`` is the back-propagated gradient and
``delta_l = dE/da_l = phi'(a_l) * g_l`` the error signal, so ``dE/dW_l = delta_l h_{l-1}^T``.

The live panel measures, at initialization, the back-propagated gradient ``||g_l||`` and the
weight gradient ``||dE/dW_l||`` at every layer of an MLP ``h_l = phi(W_l h_{l-1})`` with
``W_l = sigma_w Z_l / sqrt(n)`` (``Z_l`` a fixed standard-normal matrix, no biases) for the loss
``E = u . h_L`` (``u`` a fixed unit vector), and draws two mean-field predictions over it
(Poole et al. 2016; Schoenholz et al. 2017):

    E||g_l||^2 = prod_{k=l+1}^{L} chi_1(q_k) ||g_L||^2,   chi_1(q) = sigma_w^2 E_z[phi'(sqrt(q) z)^2],

once with every ``q_k`` at the fixed point ``q*`` (the textbook ``chi_1^(L-l)``) and once with the
``q_k`` of the actual recursion ``q_1 = sigma_w^2 E[h_0^2]``, ``q_{k+1} = sigma_w^2 E[phi(sqrt(q_k) z)^2]``.
The network with its backward sweep in log space (float32) and the theory (float64, the library's
traceable :func:`vgplib.theory.length_map_and_chi` and :func:`vgplib.theory.q_star_and_chi`, so the
numbers drawn are those of :func:`vgplib.chi1` and :func:`vgplib.q_star`) are jitted functions with a
fixed maximum depth and a mask, and the activation is a traced index, so no slider move compiles. The
back-propagated gradient is renormalized after every layer and its scale kept as a logarithm, so
values far below float32's smallest normal number are drawn exactly (and flagged).

The other helpers serve the chapter's experiments: error signals of a tanh MLP with five hidden
layers under the "standard" and the normalized (Glorot) initialization (Glorot & Bengio 2010,
section 4.2 and figures 7-8), the per-layer sizes ``||delta_l||``, ``||h_{l-1}||`` and
``||dE/dW_l||`` that explain why the weight gradient stays level for tanh but not for the sigmoid,
and the figures of the training runs on the digits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import ipywidgets
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from vgplib._validate import check_name, check_positive, check_positive_int
from vgplib.activations import activation_by_index
from vgplib.data import load_digits
from vgplib.init import init_mlp
from vgplib.jacobians import renormalized_step, stable_log_norm
from vgplib.networks import dense
from vgplib.plots import FLOAT32_MAX, FLOAT32_TINY, new_figure, plain_log_yaxis
from vgplib.theory import length_map_and_chi, q_star_and_chi
from vgplib.training import TrainHistory
from vgplib.widgets import (
    LivePanel,
    depth_slider,
    float32_range_status,
    register_panel,
    report_answer,
    scrubber,
    sigma_w_slider,
    sweep_values,
    unanswered,
)

Array = jax.Array

#: The live panel's network: width, batch of inputs, largest depth; the activations it offers.
PANEL_WIDTH = 64
PANEL_BATCH = 16
MAX_DEPTH = 50
PANEL_ACTIVATIONS: tuple[str, ...] = ("sigmoid", "tanh", "relu")
#: sigma_w slider: 0.5 to 3.0 in steps of 0.05.
SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP = 0.5, 3.0, 0.05
#: sigma_w values of the kernel-free scrubber (tanh, depth 50).
SCRUBBER_SIGMAS: tuple[float, ...] = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0)
_COLORS = {"sigmoid": "#d62728", "tanh": "#1f77b4", "relu": "#2ca02c"}
_LN10 = math.log(10.0)


# --------------------------------------------------------------------------- the jitted kernel


@jax.jit
def _panel_kernel(Z: Array, x0: Array, u: Array, act_idx: Array, sigma_w: Array, depth: Array):
    """Measured log-norms for the network made of the first ``depth`` layers (float32).

    Returns natural logs: ``log_dh`` ``(L+1,)`` (batch-RMS ``||g_l|| = ||dE/dh_l||``) and ``log_dw``
    ``(L,)`` (batch-RMS ``||dE/dW_l||`` for ``l = 1..L``). Entries beyond ``depth`` are meaningless
    (masked by the caller). The predictions come from :func:`_theory_kernel`.
    """
    L, n = Z.shape[0], Z.shape[-1]
    scale = sigma_w / jnp.sqrt(jnp.float32(n))

    def forward(h, Z_l):
        a = jnp.matmul(h, Z_l.T, precision=jax.lax.Precision.HIGHEST) * scale  # a_l = W_l h_{l-1}
        h_next, dphi = activation_by_index(act_idx, a, PANEL_ACTIVATIONS)
        return h_next, (dphi, h)

    _, (dphis, hs_prev) = jax.lax.scan(forward, x0, Z)  # (L, B, n): phi'(a_l) and h_{l-1}

    B = x0.shape[0]
    v0 = jnp.broadcast_to(u / jnp.linalg.norm(u), (B, n))

    def backward(carry, inputs):
        v, s = carry  # v: unit rows, s: log ||g_l|| per example
        dphi, Z_l, l = inputs
        delta = dphi * v  # delta_l / ||g_l||
        log_delta = s + stable_log_norm(delta)
        w = jnp.matmul(delta, Z_l, precision=jax.lax.Precision.HIGHEST) * scale  # W_l^T delta_l
        v_new, s_new = renormalized_step(v, s, w, active=l <= depth)
        return (v_new, s_new), (s_new, log_delta)

    _, (s_all, log_delta) = jax.lax.scan(
        backward, (v0, jnp.zeros(B)), (dphis, Z, jnp.arange(1, L + 1)), reverse=True
    )
    log_g = jnp.concatenate([s_all, jnp.zeros((1, B))])  # (L+1, B)
    log_h = stable_log_norm(hs_prev)  # (L, B): log ||h_{l-1}||
    log_w = log_delta + log_h  # ||dE/dW_l||_F = ||delta_l|| ||h_{l-1}|| per example

    def rms(logs):
        return 0.5 * (jax.scipy.special.logsumexp(2.0 * logs, axis=-1) - jnp.log(jnp.float32(B)))

    return rms(log_g), rms(log_w)


@jax.jit
def _theory_kernel(q1: Array, sigma_w: Array, act_idx: Array):
    """Mean-field ``log chi_1(q_k)``, ``k = 1..MAX_DEPTH``, along ``q_{k+1} = length_map(q_k)`` from ``q1``,
    and ``(q*, chi_1(q*))``: the library's traceable :func:`vgplib.theory.length_map_and_chi` and
    :func:`vgplib.theory.q_star_and_chi` (the quadrature and root search of :func:`vgplib.chi1` and
    :func:`vgplib.q_star`), called in float64 by :func:`theory_profile`.
    """

    def layer(q, _):
        q_next, chi = length_map_and_chi(act_idx, sigma_w, 0.0, q, PANEL_ACTIVATIONS)
        return q_next, jnp.log(chi)

    _, log_chi = jax.lax.scan(layer, q1, None, length=MAX_DEPTH)
    q_star, chi_star = q_star_and_chi(act_idx, sigma_w, 0.0, 1.0, PANEL_ACTIVATIONS)
    return log_chi, chi_star, q_star


@functools.lru_cache(maxsize=512)
def _theory(activation: str, sigma_w: float) -> tuple[np.ndarray, float, float]:
    """:func:`_theory_kernel` in float64 for the panel's inputs (``q_1 = sigma_w^2`` times their mean
    square); cached, so a depth move costs no theory."""
    _, x0, _ = panel_data()
    q1 = sigma_w**2 * float(np.mean(np.asarray(x0, np.float64) ** 2))
    with jax.enable_x64(True):
        out = _theory_kernel(np.float64(q1), np.float64(sigma_w), np.int32(PANEL_ACTIVATIONS.index(activation)))
        log_chi, chi, q = (np.asarray(a, np.float64) for a in out)
    return log_chi, float(chi), float(q)


def theory_profile(activation: str, sigma_w: float, depth: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Natural-log predictions of ``||g_l||``, ``l = 0..depth``: ``theory_layer`` (layer-wise ``q_k``),
    ``theory_fixed`` (every ``q_k = q*``), and ``chi_star``, ``q_star``, which are the numbers
    :func:`vgplib.chi1` and :func:`vgplib.q_star` return (about 1e-12)."""
    log_chi, chi, q = _theory(activation, float(sigma_w))
    suffix = np.cumsum(log_chi[:depth][::-1])[::-1]
    theory_layer = 0.5 * np.concatenate([suffix, [0.0]])
    theory_fixed = 0.5 * (depth - np.arange(depth + 1)) * math.log(chi)
    return theory_layer, theory_fixed, chi, q


@functools.lru_cache(maxsize=2)
def panel_data(width: int = PANEL_WIDTH, batch: int = PANEL_BATCH, max_depth: int = MAX_DEPTH, seed: int = 0):
    """The panel's fixed random numbers: ``Z`` ``(max_depth, n, n)``, inputs ``x0`` ``(B, n)``, unit ``u``.

    ``Z ~ N(0, 1)`` (so ``W_l = sigma_w Z_l / sqrt(n)`` has ``Var(W_ij) = sigma_w^2 / n``), ``x0 ~ N(0, 1)``
    (mean square 1 per unit, so ``q_1 = sigma_w^2``), ``u`` a random unit vector; keys from ``PRNGKey(seed)``.
    """
    width = check_positive_int("width", width)
    batch = check_positive_int("batch", batch)
    max_depth = check_positive_int("max_depth", max_depth)
    kz, kx, ku = jax.random.split(jax.random.PRNGKey(seed), 3)
    Z = jax.random.normal(kz, (max_depth, width, width))
    x0 = jax.random.normal(kx, (batch, width))
    u = jax.random.normal(ku, (width,))
    return Z, x0, u / jnp.linalg.norm(u)


def gradient_profile(activation: str, sigma_w: float, depth: int) -> dict[str, np.ndarray | float]:
    """The panel's numbers for one setting, as NumPy float64 **log10** values.

    Keys: ``dx`` ``(depth+1,)`` measured batch-RMS ``||g_l|| = ||dE/dh_l||``, ``l = 0..depth``; ``dw``
    ``(depth,)`` measured ``||dE/dW_l||``, ``l = 1..depth``; ``theory_layer``, ``theory_fixed``
    ``(depth+1,)`` the mean-field predictions of ``||g_l||`` (layer-wise ``q_k`` and fixed point ``q*``);
    ``chi_star`` and ``q_star`` (plain numbers: :func:`vgplib.chi1` and :func:`vgplib.q_star` to about 1e-12, from the jitted
    float64 theory of the library).
    """
    check_name("activation", activation, PANEL_ACTIVATIONS)
    sigma_w = check_positive("sigma_w", sigma_w)
    depth = check_positive_int("depth", depth)
    if depth > MAX_DEPTH:
        raise ValueError(f"depth must be at most {MAX_DEPTH}; got {depth}")
    Z, x0, u = panel_data()
    out = _panel_kernel(Z, x0, u, np.int32(PANEL_ACTIVATIONS.index(activation)), np.float32(sigma_w),
                        np.int32(depth))
    dx, dw = (np.asarray(a, dtype=np.float64) for a in out)
    tl, tf, chi, q = theory_profile(activation, sigma_w, depth)
    return {
        "dx": dx[: depth + 1] / _LN10,
        "dw": dw[:depth] / _LN10,
        "theory_layer": tl[: depth + 1] / _LN10,
        "theory_fixed": tf[: depth + 1] / _LN10,
        "chi_star": float(chi),
        "q_star": float(q),
    }


def make_gradient_figure() -> tuple[Figure, object]:
    """The panel: measured ``||g_l|| = ||dE/dh_l||`` (dots), ``||dE/dW_l||`` (squares), both predictions.

    ``update(depth, sigma_w, activation)`` redraws in place and returns a status string when a
    measured gradient leaves float32's range (underflow below 1.2e-38, overflow above 3.4e38; the
    panel computes in log space, a float32 backward pass would return 0 or inf).
    """
    fig, ax = new_figure(figsize=(6.0, 3.4), dpi=72, margins={"left": 0.19, "top": 0.78, "bottom": 0.15})
    # few ticks, no minor ticks: a log axis over 50 decades otherwise draws hundreds of them
    # (the PNG render took about 4x longer); plain-text "1e-47" tick labels
    plain_log_yaxis(ax)
    ax.set_xlim(-1, MAX_DEPTH + 1)
    ax.set_xlabel("layer $l$ (0 = input)")
    ax.set_ylabel("gradient norm")
    ax.yaxis.set_label_coords(-0.15, 0.5)  # clear of the widest tick label, "1e-45"
    ax.axhline(FLOAT32_TINY, color="0.5", lw=0.8, ls=":")
    ax.axhline(FLOAT32_MAX, color="0.5", lw=0.8, ls=":")
    ax.axhline(1.0, color="0.8", lw=0.6)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    (dx_line,) = ax.plot([], [], "o", ms=3.5, label="measured ‖∂E/∂h_l‖")
    (dw_line,) = ax.plot([], [], "s", ms=3, mfc="none", color="0.35", label="measured ‖∂E/∂W_l‖")
    (layer_line,) = ax.plot([], [], "-", lw=1.2, color="k", alpha=0.7, label=r"theory, layer-wise $q_k$")
    (fixed_line,) = ax.plot([], [], "--", lw=1.2, color="k", label=r"theory $\chi_1^{(L-l)/2}$ at $q^*$")
    # The legend sits above the axes, clear of the data, so a live panel can freeze it into pixels.
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, frameon=False, ncol=2)
    title = ax.set_title(" ", fontsize=9, y=1.2)
    Z, x0, u = panel_data()
    for i in range(len(PANEL_ACTIVATIONS)):  # warm-up: the compilations happen here
        _panel_kernel(Z, x0, u, np.int32(i), np.float32(1.0), np.int32(MAX_DEPTH))[0].block_until_ready()
        with jax.enable_x64(True):
            _theory_kernel(np.float64(1.0), np.float64(1.0), np.int32(i))[0].block_until_ready()

    def update(depth: int = 30, sigma_w: float = 1.0, activation: str = "tanh") -> str:
        prof = gradient_profile(activation, sigma_w, depth)
        layers = np.arange(depth + 1)
        dx_line.set_data(layers, 10.0 ** prof["dx"])
        dx_line.set_color(_COLORS[activation])
        dw_line.set_data(layers[1:], 10.0 ** prof["dw"])
        layer_line.set_data(layers, 10.0 ** prof["theory_layer"])
        fixed_line.set_data(layers, 10.0 ** prof["theory_fixed"])
        finite = np.concatenate([v[np.isfinite(v)] for v in (prof["dx"], prof["dw"], prof["theory_fixed"])])
        lo, hi = math.floor(finite.min()) - 1, math.ceil(finite.max()) + 1
        lo, hi = min(lo, -2), max(hi, 2)
        ax.set_ylim(10.0**lo, 10.0**hi)
        # plain text (no mathtext parsing on every move)
        title.set_text(
            f"{activation}, \u03c3_w = {sigma_w:.2f}, L = {depth}:  \u03c7\u2081(q*) = {prof['chi_star']:.3g},"
            f"  \u2016g\u2080\u2016 \u2248 1e{prof['dx'][0]:.1f}"
        )
        low = min(prof["dx"].min(), prof["dw"].min())
        high = max(prof["dx"].max(), prof["dw"].max())
        return float32_range_status(low, high)

    return fig, update


def gradient_controls(depth: int = 30, sigma_w: float = 1.0, activation: str = "tanh") -> dict:
    """Depth slider ``1..MAX_DEPTH``, ``sigma_w`` slider ``0.5..3``, activation selector."""
    return {
        "depth": depth_slider(depth, MAX_DEPTH),
        "sigma_w": sigma_w_slider(sigma_w, SIGMA_W_MIN, SIGMA_W_MAX, SIGMA_W_STEP),
        "activation": ipywidgets.ToggleButtons(options=list(PANEL_ACTIVATIONS), value=activation,
                                               description="activation"),
    }


@register_panel("ch03.init_gradients")
def gradient_panel() -> LivePanel:
    """A new live panel: per-layer gradients at initialization against the mean-field theory."""
    controls = gradient_controls()
    # The theory costs a few ms per new (activation, sigma_w): compute it once for every slider
    # value at first show, so that a move costs only the network sweep and the redraw (100 ms bar).
    for activation in PANEL_ACTIVATIONS:
        for sigma_w in sweep_values(controls["sigma_w"], n=10_000):
            _theory(activation, float(sigma_w))
    return LivePanel(make_gradient_figure, controls, freeze_legend=True)


def gradient_scrubber(activation: str = "tanh", depth: int = MAX_DEPTH, sigmas=SCRUBBER_SIGMAS,
                      alt: str | None = None, dpi: int = 100):
    """The kernel-free twin of :func:`gradient_panel`: a jshtml scrubber over ``sigma_w``.

    ``alt`` is the frames' alt text; by default a sentence naming the activation, the depth and the
    ``sigma_w`` range, and what the frames show. ``dpi`` 100 draws a 600-pixel-wide frame, so that
    its text is at least 10 pixels high at the book's column width.
    """
    check_name("activation", activation, PANEL_ACTIVATIONS)
    values = [float(s) for s in sigmas]
    if alt is None:
        alt = (f"Gradient norm against layer (log scale) in a {activation} network of depth {int(depth)} at "
               f"initialization, one frame per sigma_w from {min(values):g} to {max(values):g}: measured "
               "back-propagated and weight gradients with the layer-wise and fixed-point mean-field "
               "predictions, showing how the change of the gradient per layer depends on sigma_w.")
    return scrubber(make_gradient_figure, "sigma_w", values=values,
                    fixed={"depth": int(depth), "activation": activation}, alt=alt, dpi=dpi)


def depth_profiles_figure(profiles: Mapping[str, dict], sigmas: Mapping[str, float]) -> Figure:
    """One panel per activation: measured ``||g_l||`` and ``||dE/dW_l||`` with both predictions.

    ``profiles`` maps an activation to :func:`gradient_profile`'s output, ``sigmas`` to its
    ``sigma_w``. The fixed-point line is ``chi_1(q*)^((L-l)/2)`` with ``chi_1(q*)`` from
    :func:`vgplib.chi1` (float64), the layer-wise line the profile's ``theory_layer``.
    """
    from vgplib.theory import chi1

    fig, axes = new_figure(figsize=(7.1, 3.1), dpi=96, ncols=len(profiles),
                           margins={"left": 0.09, "right": 0.99, "bottom": 0.15, "top": 0.86, "wspace": 0.32})
    for ax, (act, p) in zip(np.atleast_1d(axes), profiles.items()):
        depth = len(p["dw"])
        layers = np.arange(depth + 1)
        chi = chi1(act, sigmas[act])
        fixed = 0.5 * (depth - layers) * math.log10(chi)
        ax.semilogy(layers, 10 ** p["dx"], "o", ms=3, color=_COLORS[act],
                    label=r"$\|g_l\| = \|\partial E/\partial h_l\|$")
        ax.semilogy(layers[1:], 10 ** p["dw"], "s", ms=2.5, mfc="none", color="0.4",
                    label=r"$\|\partial E/\partial W_l\|$")
        ax.semilogy(layers, 10 ** p["theory_layer"], "-", color="k", alpha=0.7, label="theory, layer-wise")
        ax.semilogy(layers, 10 ** fixed, "--", color="k", label=r"theory, $\chi_1(q^*)$")
        ax.set_title(f"{act}, $\\sigma_w$ = {sigmas[act]:.3g}\n$\\chi_1(q^*)$ = {chi:.3g}", fontsize=9)
        ax.set_xlabel("layer $l$")
        ax.grid(alpha=0.3)
    axes = np.atleast_1d(axes)
    axes[len(axes) // 2].legend(fontsize=8, frameon=False, loc="lower right")  # tanh: an empty corner
    return fig


def layer_gradient_sizes(params, x: Array, y: Array, activation: str) -> dict[str, np.ndarray]:
    """Per layer, the three sizes in ``dE_b/dW_l = delta_l h_{l-1}^T`` for each example, RMS over examples.

    The network is ``mlp_forward(params, x, activation, linear_output=True)`` with the per-example
    softmax cross-entropy ``E_b`` (as in :func:`vgplib.train_mlp`). ``delta_l`` comes from
    :func:`vgplib.backprop_deltas` on the hidden layers with ``g_{L-1} = W_L^T (softmax - onehot)``,
    then ``delta_L = softmax - onehot``. Since ``dE_b/dW_l`` is the outer product of ``delta_l`` and
    ``h_{l-1}``, ``||dE_b/dW_l||_F = ||delta_l|| ||h_{l-1}||`` exactly. Returns float64 arrays of
    length ``L``: ``delta`` (RMS ``||delta_l||``), ``h_prev`` (RMS ``||h_{l-1}||``) and ``dW``
    (RMS ``||dE_b/dW_l||_F``), layer ``l = 1..L`` at index ``l - 1``.
    """
    from vgplib.gradients import backprop_deltas
    from vgplib.networks import mlp_forward

    check_name("activation", activation, PANEL_ACTIVATIONS)
    x = jnp.asarray(x)
    y = jnp.asarray(y)

    @jax.jit  # one compilation instead of one per eager operation
    def sweep(params, x, y):
        inputs = mlp_forward(params[:-1], x, activation, return_all=True)[1]  # h_0 = x, ..., h_{L-1}
        logits = dense(params[-1], inputs[-1])
        delta_out = jax.nn.softmax(logits) - jax.nn.one_hot(y, logits.shape[-1])
        g_hidden = jnp.matmul(delta_out, params[-1]["W"], precision=jax.lax.Precision.HIGHEST)
        return [*backprop_deltas(params[:-1], x, g_hidden, activation), delta_out], inputs

    deltas, inputs = sweep(params, x, y)

    def rms(v):
        return np.sqrt(np.mean(np.sum(np.asarray(v, np.float64) ** 2, axis=-1)))

    def rms_product(d, h):
        sq = np.sum(np.asarray(d, np.float64) ** 2, -1) * np.sum(np.asarray(h, np.float64) ** 2, -1)
        return np.sqrt(np.mean(sq))

    return {
        "delta": np.array([rms(d) for d in deltas]),
        "h_prev": np.array([rms(h) for h in inputs]),
        "dW": np.array([rms_product(d, h) for d, h in zip(deltas, inputs)]),
    }


# --------------------------------------------------------------------------- Glorot & Bengio (2010)


@functools.partial(jax.jit, static_argnames=("n_hidden",))
def _glorot_kernel(params, x: Array, y: Array, n_hidden: int):
    """Per-example error signals ``delta_l = dCost_b/da_l`` for every layer, by autodiff.

    A zero perturbation ``e_l`` is added to every pre-activation, ``a_l + e_l``; the gradient of
    ``sum_b Cost_b`` with respect to ``e_l`` has row ``b`` equal to ``dCost_b/da_l`` (per example).
    Also returns the inputs ``h_{l-1}`` of every layer.
    """

    def cost(eps):
        h, xs = x, []
        for i, layer in enumerate(params):
            xs.append(h)
            pre = dense(layer, h) + eps[i]
            h = jnp.tanh(pre) if i < n_hidden else pre
        logp = jax.nn.log_softmax(h)
        return -jnp.sum(logp[jnp.arange(x.shape[0]), y]), xs

    eps = [jnp.zeros((x.shape[0], p["W"].shape[0])) for p in params]
    deltas, xs = jax.grad(cost, has_aux=True)(eps)
    return deltas, xs


def glorot_experiment(init: str, width: int = 1000, n_hidden: int = 5, batch: int = 256, seed: int = 0) -> dict:
    """Error signals and weight gradients of a tanh MLP at initialization, on digits, per layer.

    Network ``64 -> width x n_hidden -> 10`` (tanh hidden layers, softmax cross-entropy), weights from
    :func:`vgplib.init_mlp` with ``init`` (``"standard"`` or ``"glorot_uniform"``), zero biases; the
    first ``batch`` training digits. Returns NumPy arrays:

    - ``deltas``: list of ``(batch, width)`` error signals ``delta_l = dCost_b/da_l``, hidden layers
      (Glorot & Bengio's "back-propagated gradients" ``dCost/ds^i``, ``s^i`` their pre-activation);
    - ``var_delta`` ``(n_hidden,)``: their variance over examples and units;
    - ``var_wgrad`` ``(n_hidden + 1,)``: variance of the per-example weight gradients
      ``dCost_b/dW_{l,ij} = delta_{l,b,i} h_{l-1,b,j}`` over ``b, i, j`` (closed form, not materialized);
    - ``var_act`` ``(n_hidden,)``: variance of the hidden activations ``h_l``.
    """
    check_name("init", init, ("standard", "glorot_uniform", "glorot_normal", "he", "gaussian"))
    width = check_positive_int("width", width)
    n_hidden = check_positive_int("n_hidden", n_hidden)
    batch = check_positive_int("batch", batch)
    digits = load_digits()
    x = jnp.asarray(digits.x_train[:batch])
    y = jnp.asarray(digits.y_train[:batch])
    params = init_mlp(jax.random.PRNGKey(seed), [x.shape[1]] + [width] * n_hidden + [10], init=init)
    deltas, xs = _glorot_kernel(params, x, y, n_hidden)
    deltas = [np.asarray(d, dtype=np.float64) for d in deltas]
    xs = [np.asarray(a, dtype=np.float64) for a in xs]
    var_w = []
    for d, a in zip(deltas, xs):
        count = d.shape[0] * d.shape[1] * a.shape[1]
        mean_sq = np.sum(np.sum(d**2, 1) * np.sum(a**2, 1)) / count
        mean = np.sum(d.sum(1) * a.sum(1)) / count
        var_w.append(mean_sq - mean**2)
    return {
        "deltas": deltas[:n_hidden],
        "var_delta": np.array([d.var() for d in deltas[:n_hidden]]),
        "var_wgrad": np.array(var_w),
        "var_act": np.array([a.var() for a in xs[1:]]),
    }


def glorot_histograms(results: Mapping[str, dict], bins: int = 81) -> Figure:
    """Normalized histograms of the error signals ``delta_l`` per hidden layer, one row per init.

    The counterpart of Glorot & Bengio (2010), figure 7. ``results`` maps a label to the output of
    :func:`glorot_experiment`. Each row has its own x range, 4 standard deviations of its widest
    layer, so that the layers of one initialization can be compared with each other.
    """
    labels = list(results)
    fig, axes = new_figure(figsize=(6.5, 2.4 * len(labels)), dpi=96, nrows=len(labels), ncols=1,
                           margins={"left": 0.1, "right": 0.97, "top": 0.93, "bottom": 0.15, "hspace": 0.5})
    axes = np.atleast_1d(axes)
    cmap = ["#08306b", "#2171b5", "#6baed6", "#fd8d3c", "#d94801", "#7f2704"]
    for ax, label in zip(axes, labels):
        limit = 4.0 * math.sqrt(float(np.max(results[label]["var_delta"])))
        edges = np.linspace(-limit, limit, bins + 1)
        for l, d in enumerate(results[label]["deltas"], start=1):
            counts, _ = np.histogram(np.clip(d.ravel(), -limit, limit), bins=edges)
            ax.stairs(counts / counts.sum(), edges, color=cmap[(l - 1) % len(cmap)], label=f"layer {l}")
        ax.set_title(f"{label} initialization", fontsize=9)
        ax.set_xlim(-limit, limit)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
        ax.set_ylabel("fraction", fontsize=8)
    axes[0].legend(fontsize=8, frameon=False, ncol=1, loc="upper left")
    axes[-1].set_xlabel(r"error signal $\delta_{l,i} = \partial\,\mathrm{Cost}/\partial a_{l,i}$"
                        " (clipped to the range)")
    return fig


def glorot_variances(results: Mapping[str, dict]) -> Figure:
    """Per-layer variances (log scale): error signals ``delta_l`` (left), weight gradients (right)."""
    fig, (a1, a2) = new_figure(figsize=(7.0, 2.8), dpi=96, ncols=2,
                               margins={"left": 0.1, "right": 0.98, "top": 0.88, "bottom": 0.17, "wspace": 0.3})
    styles = ["o-", "s--", "^-."]
    for style, (label, r) in zip(styles, results.items()):
        n_hidden = len(r["var_delta"])
        a1.semilogy(np.arange(1, n_hidden + 1), r["var_delta"], style, ms=4, label=label)
        a2.semilogy(np.arange(1, n_hidden + 2), r["var_wgrad"], style, ms=4, label=label)
    a1.set_title(r"Var$(\delta_l)$, $\delta_l = \partial\,\mathrm{Cost}/\partial a_l$", fontsize=9)
    a2.set_title(r"Var$(\partial\,\mathrm{Cost}/\partial W_l)$ (per example)", fontsize=9)
    for ax in (a1, a2):
        ax.set_xlabel("layer $l$")
        ax.grid(alpha=0.3)
    a2.set_xticks(np.arange(1, n_hidden + 2))
    a2.set_xticklabels([str(i) for i in range(1, n_hidden + 1)] + ["out"])
    a1.legend(fontsize=8, frameon=False)
    return fig


# --------------------------------------------------------------------------- training figures


def training_figure(histories: Mapping[str, TrainHistory], per_layer: tuple[str, str]) -> Figure:
    """Left: training loss of every run. Middle and right: ``||W_l(t) - W_l(0)|| / ||W_l(0)||`` per layer
    over training for the two runs named in ``per_layer`` (one line per layer, dark = first layer).
    A relative change of exactly 0 (the weights did not change in float32) is not drawn on the log axis.
    """
    for name in per_layer:
        if name not in histories:
            raise ValueError(f"per_layer names {name!r}, which is not in histories {list(histories)}")
    fig, axes = new_figure(figsize=(7.1, 3.2), dpi=96, ncols=3,
                           margins={"left": 0.07, "right": 0.99, "top": 0.85, "bottom": 0.15, "wspace": 0.36})
    for name, h in histories.items():
        axes[0].plot(h.step, h.loss, label=name)
    axes[0].axhline(math.log(10), color="0.5", lw=0.8, ls=":")
    axes[0].text(h.step[-1], math.log(10) * 1.04, r"$\ln 10$ (chance)", ha="right", va="bottom", fontsize=8,
                 color="0.4")
    axes[0].set_ylim(0, 3.6)  # room for the legend above the curves
    axes[0].set_xlabel("step")
    axes[0].set_title("training loss", fontsize=9)
    axes[0].legend(fontsize=8, frameon=False, loc="upper right")
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for ax, name in zip(axes[1:], per_layer):
        h = histories[name]
        L = h.weight_change.shape[1]
        for l in range(L):
            wc = np.where(h.weight_change[:, l] > 0, h.weight_change[:, l], np.nan)
            ax.semilogy(h.step, wc, color=cmap(l / max(L - 1, 1)), lw=1.0)
        ax.set_title(f"{name}:\n" + r"$\|W_l(t) - W_l(0)\| / \|W_l(0)\|$", fontsize=8)
        ax.set_xlabel(f"step (dark: layer 1, yellow: {L})", fontsize=8)
        ax.set_ylim(1e-13, 1e1)
        ax.grid(alpha=0.3)
    return fig


# --------------------------------------------------------------------------- exercises


def check_backward_limit(a) -> bool:
    """Self-check: the half-width ``a`` of ``U[-a, a]`` that keeps the back-propagated variance of a
    tanh layer (linear regime) with ``n_in = 64`` inputs and ``n_out = 1000`` units constant.

    Backward, ``Var(dCost/dh_{l-1}) = n_out Var(W) Var(dCost/da_l)`` and ``Var(U[-a, a]) = a^2 / 3``,
    so ``a = sqrt(3 / n_out)``. Prints a verdict and returns ``True``/``False``.
    """
    if unanswered("set a to your number and run the cell again.", a):
        return False
    a = float(a)
    if math.isclose(a, math.sqrt(3.0 / 1000), rel_tol=1e-3):
        return report_answer(True, "a = sqrt(3 / n_out) = 0.0548 keeps n_out Var(W) = 1 on the way down", "")
    if math.isclose(a, math.sqrt(3.0 / 64), rel_tol=1e-3):
        return report_answer(False, "", "that preserves the FORWARD variance (fan-in); the backward pass sums over n_out.")
    if math.isclose(a, math.sqrt(6.0 / 1064), rel_tol=1e-3):
        return report_answer(False, "", "that is Glorot's compromise between forward and backward; solve n_out a^2/3 = 1.")
    return report_answer(False, "", "Var(U[-a, a]) = a^2 / 3; ask for n_out Var(W) = 1.")


def check_depth_to_vanish(depth) -> bool:
    """Self-check: the smallest depth ``L`` at which ``||g_0|| / ||g_L|| = chi_1^(L/2)`` falls
    below ``1e-7`` for a sigmoid network with the standard init (``sigma_w^2 = 1/3``, ``chi_1`` from
    :func:`vgplib.chi1` at ``q*``). Prints a verdict and returns ``True``/``False``.
    """
    from vgplib.theory import chi1

    if unanswered("set depth_answer to your integer and run the cell again.", depth):
        return False
    chi = chi1("sigmoid", 1.0 / math.sqrt(3.0))
    answer = math.ceil(2.0 * math.log(1e-7) / math.log(chi) - 1e-12)
    if int(depth) == answer:
        return report_answer(True, f"chi_1 = {chi:.4f}, so chi_1^(L/2) < 1e-7 from L = {answer} on", "")
    if int(depth) == answer - 1:
        return report_answer(False, "", "one short: at that depth the ratio is still above 1e-7.")
    return report_answer(False, "", "the NORM ratio is chi_1^(L/2) (chi_1 multiplies the SQUARED norm); solve for L.")


def adam_steady_step(grad: float, lr: float = 1e-3, eps: float = 1e-8) -> float:
    """Adam's step for a gradient entry that has been ``grad`` for many steps (Kingma & Ba 2015).

    With bias correction, the running means settle at ``m = grad`` and ``v = grad^2``, so the update
    is ``lr * m / (sqrt(v) + eps) = lr * |grad| / (|grad| + eps)``: about ``lr`` when ``|grad| >> eps``,
    but ``lr * |grad| / eps`` when the gradient is far below ``eps`` (``optax.adam``'s default 1e-8).
    """
    grad = abs(float(grad))
    lr = check_positive("lr", lr)
    eps = check_positive("eps", eps)
    return lr * grad / (grad + eps)


def check_adam_step(step) -> bool:
    """Self-check for the Adam exercise: the size of Adam's step (``lr = 1e-3``, ``eps = 1e-8``) for a
    gradient entry that has stayed at ``1e-18`` (compared with :func:`adam_steady_step`, ``rtol=1e-2``).
    """
    if unanswered("set step to your number and run the cell again.", step):
        return False
    step = abs(float(step))
    ref = adam_steady_step(1e-18)
    if math.isclose(step, ref, rel_tol=1e-2):
        return report_answer(True, f"the step is about {ref:.0e}: eps = 1e-8 dominates sqrt(v) = 1e-18, so Adam does not "
                             "rescale such a gradient, and a weight of size 0.1 does not change in float32", "")
    if math.isclose(step, 1e-3, rel_tol=1e-2):
        return report_answer(False, "", "that ignores eps: the denominator is sqrt(v) + eps with eps = 1e-8.")
    return report_answer(False, "", "in the steady state m = g and v = g^2; the step is lr * |g| / (|g| + eps).")
