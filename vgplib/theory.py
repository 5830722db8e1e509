"""Mean-field theory of signal and gradient propagation (Poole et al. 2016; Schoenholz et al. 2017).

For a wide MLP with ``W_ij ~ N(0, sigma_w^2 / n)`` and ``b_i ~ N(0, sigma_b^2)``, the
pre-activation variance follows the length map

    q_l = sigma_w^2 E_z[phi(sqrt(q_{l-1}) z)^2] + sigma_b^2,   z ~ N(0, 1),

to a fixed point ``q*``, and each layer multiplies the squared gradient norm by

    chi_1 = sigma_w^2 E_z[phi'(sqrt(q*) z)^2],

so ``E||dE/dx_l||^2 ~ chi_1^(L-l) ||dE/dx_L||^2``: vanishing for chi_1 < 1, exploding for
chi_1 > 1, and the gradient depth scale is ``xi = -1 / ln(chi_1)``. Gaussian expectations use
composite Gauss-Legendre quadrature in float64 (panels split at 0, so ReLU's kink is exact).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import check_positive, check_positive_int
from vgplib.activations import Activation, get_activation

Q_FLOOR = 1e-12  # fixed points below Q_FLOOR * q0 are rounding artefacts: reported as q* = 0
Z_MAX = 10.0  # the Gaussian tail beyond |z| = 10 weighs 1.5e-23
PANEL_WIDTH = 0.05  # resolves features of width ~0.01 in z, i.e. sqrt(q) up to ~100
NODES_PER_PANEL = 16


@functools.lru_cache(maxsize=4)
def _nodes(panel_width: float = PANEL_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre rule for ``E_z[.]``, ``z ~ N(0, 1)``, on ``[-Z_MAX, Z_MAX]``.

    Panels of width 0.05 with 16 nodes each, split at ``z = 0`` so that ReLU-type kinks sit on a
    panel boundary (exact for piecewise polynomials). Plain Gauss-Hermite with a few hundred nodes
    under-resolves ``phi'(sqrt(q) z)^2`` once ``sqrt(q) z`` varies faster than its node spacing:
    for tanh at sigma_w = 4 (q* = 12.5) 200 nodes were 0.3% off.
    """
    x, w = np.polynomial.legendre.leggauss(NODES_PER_PANEL)
    edges = np.linspace(-Z_MAX, Z_MAX, round(2 * Z_MAX / panel_width) + 1)
    mid, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
    z = (mid[:, None] + half[:, None] * x[None, :]).ravel()
    wz = (half[:, None] * w[None, :]).ravel() * np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return z, wz


@functools.lru_cache(maxsize=64)
def _expectation_kernel(f):
    """A jitted float64 ``sqrt_q -> E_z[f(sqrt_q z)]`` for one function (cached: no re-tracing)."""
    z, w = _nodes()

    @jax.jit
    def kernel(sqrt_q):
        return jnp.dot(jnp.asarray(w), f(sqrt_q * jnp.asarray(z)))

    return kernel


def gaussian_expectation(f, q: float) -> float:
    """``E_z[f(sqrt(q) z)]`` for ``z ~ N(0, 1)`` by composite Gauss-Legendre quadrature, float64.

    Accurate to about 1e-12 relative for smooth ``f`` up to ``q ~ 10^4``; a kink at 0 (ReLU) costs no
    accuracy because a panel edge sits at ``z = 0``. Panels of width 0.05 cover ``|z| <= 10``.
    """
    if not callable(f):
        raise TypeError(f"f must be callable; got {type(f).__name__}")
    q = check_positive("q", q, allow_zero=True)
    with jax.enable_x64(True):
        return float(_expectation_kernel(f)(jnp.asarray(math.sqrt(q), dtype=jnp.float64)))


def _squared(fn):
    return _SQUARED.setdefault(fn, lambda h: fn(h) ** 2)


_SQUARED: dict = {}


def length_map(activation: str | Activation, sigma_w: float, sigma_b: float, q: float) -> float:
    """One step of the variance map ``q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2``."""
    act = get_activation(activation)
    sigma_w = check_positive("sigma_w", sigma_w)
    sigma_b = check_positive("sigma_b", sigma_b, allow_zero=True)
    return sigma_w**2 * gaussian_expectation(_squared(act.fn), q) + sigma_b**2


def q_star(
    activation: str | Activation,
    sigma_w: float,
    sigma_b: float = 0.0,
    q0: float = 1.0,
    rtol: float = 1e-12,
) -> float:
    """The fixed point ``q*`` of the length map reached from ``q0`` (the stable one from there).

    Found by bracketing ``g(q) = length_map(q) - q`` on a geometric grid from ``q0`` in the
    direction the map moves, then bisection to ``rtol``. Returns ``0.0`` when the variance decays
    to zero (for example tanh with ``sigma_w <= 1``, ``sigma_b = 0``; any root below
    ``1e-12 q0`` is at the quadrature's rounding level and counts as 0), ``math.inf`` when it grows
    without bound (ReLU with ``sigma_w^2 > 2``), and ``q0`` when every ``q`` is a fixed point
    (ReLU with ``sigma_w^2 = 2``, ``sigma_b = 0``).
    """
    act = get_activation(activation)
    q0 = check_positive("q0", q0)

    def g(q: float) -> float:
        return length_map(act, sigma_w, sigma_b, q) - q

    g0 = g(q0)
    if abs(g0) <= rtol * q0:
        return q0
    direction = 1.0 if g0 > 0 else -1.0
    lo = q0
    for k in range(1, 121):  # q0 * 2^(+-k): from about 1e-36 q0 to 1e36 q0
        hi = q0 * 2.0 ** (direction * k)
        if g(hi) * g0 <= 0:
            break
        lo = hi
    else:
        return math.inf if direction > 0 else 0.0
    a, b = sorted((lo, hi))
    if b < Q_FLOOR * q0:  # a root at the quadrature's rounding level (~1e-16 q0) is q* = 0
        return 0.0
    ga = g(a)
    while b - a > rtol * b:
        mid = 0.5 * (a + b)
        gm = g(mid)
        if gm * ga > 0:
            a, ga = mid, gm
        else:
            b = mid
    return 0.5 * (a + b)


def chi1(
    activation: str | Activation,
    sigma_w: float,
    sigma_b: float = 0.0,
    q: float | None = None,
) -> float:
    """``chi_1 = sigma_w^2 E[phi'(sqrt(q) z)^2]`` at ``q = q*`` (Schoenholz et al. 2017, eq. 5).

    The mean squared gain of the backward signal per layer. Pass ``q`` to evaluate away from
    the fixed point (for example at the variance of the actual inputs).
    """
    act = get_activation(activation)
    sigma_w = check_positive("sigma_w", sigma_w)
    if q is None:
        q = q_star(act, sigma_w, sigma_b)
        if math.isinf(q):
            raise ValueError("the variance map diverges (q* = inf) for these sigma_w, sigma_b; pass q explicitly")
    # q = 0 is the limit from above (for ReLU, chi_1 = sigma_w^2 / 2 at every q > 0).
    q = max(check_positive("q", q, allow_zero=True), 1e-30)
    return sigma_w**2 * gaussian_expectation(_squared(act.grad), q)


def depth_scale(chi: float) -> float:
    """Gradient depth scale ``xi = -1 / ln(chi_1)``: gradients change by ``e`` every ``|xi|`` layers.

    Positive for vanishing (chi_1 < 1), negative for exploding, infinite at criticality.
    """
    chi = check_positive("chi", chi)
    return math.inf if chi == 1.0 else -1.0 / math.log(chi)


def critical_sigma_w(activation: str | Activation, sigma_b: float = 0.0, q0: float = 1.0) -> float:
    """The ``sigma_w`` at which ``chi_1 = 1`` (the edge of chaos), by bisection on ``[0.1, 10]``."""
    act = get_activation(activation)

    def f(sw: float) -> float:
        q = q_star(act, sw, sigma_b, q0)
        return (math.inf if math.isinf(q) else chi1(act, sw, sigma_b, q)) - 1.0

    a, b = 0.1, 10.0
    if f(a) > 0 or f(b) < 0:
        raise ValueError(f"no critical sigma_w in [0.1, 10] for {act.name} with sigma_b={sigma_b}")
    for _ in range(60):
        mid = 0.5 * (a + b)
        if f(mid) > 0:
            b = mid
        else:
            a = mid
    return 0.5 * (a + b)


def _digamma_half_integer(m: int) -> float:
    """``psi(m / 2)`` for a positive integer ``m``, exactly (no series): ``psi(1) = -gamma``,
    ``psi(k) = -gamma + sum_{j<k} 1/j`` and ``psi(k + 1/2) = -gamma - 2 ln 2 + sum_{j<=k} 2/(2j - 1)``.
    """
    euler_gamma = 0.5772156649015329
    if m % 2 == 0:
        return -euler_gamma + math.fsum(1.0 / j for j in range(1, m // 2))
    return -euler_gamma - 2.0 * math.log(2.0) + math.fsum(2.0 / (2 * j - 1) for j in range(1, m // 2 + 1))


def gaussian_lyapunov_exponents(width: int, sigma_w: float = 1.0) -> np.ndarray:
    """Lyapunov exponents of a product of i.i.d. Gaussian ``width x width`` matrices.

    For ``W_ij ~ N(0, sigma_w^2 / n)`` (Newman 1986, "The distribution of Lyapunov exponents: exact
    results for random matrices", Commun. Math. Phys. 103, 121-126), the ``i``-th largest exponent is

        lambda_i = (1/2) [ ln(2 sigma_w^2 / n) + psi((n - i + 1) / 2) ],   i = 1..n,

    with ``psi`` the digamma function: ``(1/L) ln s_i(W_L ... W_1) -> lambda_i`` almost surely. All are
    negative at ``sigma_w = 1`` (a product of "norm-preserving" random matrices still shrinks almost
    every direction). Returns a float64 array of shape ``(width,)``, largest first.
    """
    n = check_positive_int("width", width)
    sigma_w = check_positive("sigma_w", sigma_w)
    psi = np.array([_digamma_half_integer(n - i) for i in range(n)])
    return 0.5 * (math.log(2.0 * sigma_w**2 / n) + psi)
