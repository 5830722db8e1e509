"""Mean-field theory of signal and gradient propagation (Poole et al. 2016; Schoenholz et al. 2017).

For a wide MLP with ``W_ij ~ N(0, sigma_w^2 / n)`` and ``b_i ~ N(0, sigma_b^2)``, the
pre-activation variance follows the length map

    q_l = sigma_w^2 E_z[phi(sqrt(q_{l-1}) z)^2] + sigma_b^2,   z ~ N(0, 1),

to a fixed point ``q*``, and each layer multiplies the squared gradient norm by

    chi_1 = sigma_w^2 E_z[phi'(sqrt(q*) z)^2],

so ``E||g_l||^2 ~ chi_1^(L-l) ||g_L||^2`` for ``g_l = dE/dh_l``: vanishing for chi_1 < 1, exploding
for chi_1 > 1, and the gradient depth scale is ``xi = -1 / ln(chi_1)``. Here ``q_l`` is the variance
of the pre-activation ``a_l = W_l h_{l-1} + b_l`` (the mean-field papers call it ``h``). Gaussian
expectations use composite Gauss-Legendre quadrature in float64 (panels split at 0, so ReLU's kink
is exact).

:func:`length_map_and_chi` and :func:`q_star_and_chi` are the traceable twins of :func:`length_map`,
:func:`chi1` and :func:`q_star` for jitted code (the book's live panels): traced ``sigma_w`` and
``q``, the activation as an index (:func:`vgplib.activations.activation_by_index`), the same
quadrature nodes, and the dtype of the arguments (float64 under ``jax.enable_x64`` reproduces the
public functions to about 1e-12).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import check_positive, check_positive_int
from vgplib.activations import (
    ACTIVATION_NAMES,
    Activation,
    function_by_index,
    get_activation,
)

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


Q_SEARCH_DOUBLINGS = 120  # q_star brackets the root on q0 * 2^(+-k), k <= 120
_CHI_Q_FLOOR = 1e-30  # chi1 evaluates at max(q, 1e-30): its limit from above


def _theory_dtype(*args):
    dtype = jnp.result_type(*args, float)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def _check_concrete(arg: str, value, allow_zero: bool) -> None:
    if not isinstance(value, jax.core.Tracer) and jnp.ndim(value) == 0:
        check_positive(arg, float(value), allow_zero=allow_zero)


def length_map_and_chi(act_index, sigma_w, sigma_b, q, names: tuple[str, ...] = ACTIVATION_NAMES):
    """Traceable ``(length_map(q), chi1(q))`` for activation ``names[act_index]``: both from ONE quadrature.

    ``q' = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2`` and ``chi_1(q) = sigma_w^2 E[phi'(sqrt(q) z)^2]``
    with the composite Gauss-Legendre nodes of :func:`gaussian_expectation` (and ``q`` floored at 1e-30
    as :func:`chi1` does). Every argument may be traced (``act_index`` an integer); the result has the
    dtype of ``sigma_w, sigma_b, q`` (float64 under ``jax.enable_x64`` matches :func:`length_map` and
    :func:`chi1` to about 1e-12; float32 to about 1e-6). Concrete arguments are validated.
    """
    _check_concrete("sigma_w", sigma_w, allow_zero=False)
    _check_concrete("sigma_b", sigma_b, allow_zero=True)
    _check_concrete("q", q, allow_zero=True)
    dtype = _theory_dtype(sigma_w, sigma_b, q)
    z, w = _nodes()
    z, w = jnp.asarray(z, dtype), jnp.asarray(w, dtype)
    sigma_w, sigma_b, q = (jnp.asarray(v, dtype) for v in (sigma_w, sigma_b, q))
    # the length map at sqrt(q) z as length_map does, chi_1 at max(q, 1e-30) as chi1 does
    phi = function_by_index(act_index, jnp.sqrt(q) * z, names)
    dphi = function_by_index(act_index, jnp.sqrt(jnp.maximum(q, _CHI_Q_FLOOR)) * z, names, derivative=True)
    return sigma_w**2 * jnp.dot(w, phi**2) + sigma_b**2, sigma_w**2 * jnp.dot(w, dphi**2)


def _length_map_traced(act_index, sigma_w, sigma_b, q, names):
    z, w = _nodes()
    z, w = jnp.asarray(z, q.dtype), jnp.asarray(w, q.dtype)
    return sigma_w**2 * jnp.dot(w, function_by_index(act_index, jnp.sqrt(q) * z, names) ** 2) + sigma_b**2


def q_star_and_chi(act_index, sigma_w, sigma_b=0.0, q0=1.0, names: tuple[str, ...] = ACTIVATION_NAMES):
    """Traceable ``(q_star, chi1 at q_star)``: the algorithm of :func:`q_star` in ``lax.while_loop``.

    Same bracketing on ``q0 * 2^(+-k)``, ``k <= 120``, same bisection (to ``rtol = 1e-12`` in float64,
    ``1e-6`` in float32, at most 200 halvings), same special values: ``0`` when the variance decays,
    ``inf`` when it grows without bound, ``q0`` when ``q0`` is already a fixed point. Where
    ``q* = inf`` (ReLU with ``sigma_w^2 > 2``), ``chi`` is evaluated at the end of the search,
    ``q0 * 2^120`` (for ReLU ``chi_1 = sigma_w^2 / 2`` at every ``q``); :func:`chi1` raises there instead.
    """
    _check_concrete("q0", q0, allow_zero=False)
    dtype = _theory_dtype(sigma_w, sigma_b, q0)
    sigma_w, sigma_b, q0 = (jnp.asarray(v, dtype) for v in (sigma_w, sigma_b, q0))
    rtol = 1e-12 if dtype == jnp.float64 else 1e-6

    names = tuple(names)

    def g(q):  # the length map alone: no derivative evaluations in the root search
        return _length_map_traced(act_index, sigma_w, sigma_b, q, names) - q

    g0 = g(q0)
    direction = jnp.where(g0 > 0, 1, -1)

    def bracket(c):
        k, lo, _, found = c
        hi_new = jnp.ldexp(q0, direction * k)
        found = g(hi_new) * g0 <= 0
        return k + 1, jnp.where(found, lo, hi_new), hi_new, found

    _, lo, hi, found = jax.lax.while_loop(lambda c: (~c[3]) & (c[0] <= Q_SEARCH_DOUBLINGS), bracket,
                                          (jnp.int32(1), q0, q0, jnp.bool_(False)))
    a, b = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
    settled = jnp.abs(g0) <= rtol * q0
    floor = b < Q_FLOOR * q0

    def bisect(c):
        i, a, b, ga = c
        mid = 0.5 * (a + b)
        gm = g(mid)
        right = gm * ga > 0
        return i + 1, jnp.where(right, mid, a), jnp.where(right, b, mid), jnp.where(right, gm, ga)

    def more(c):
        i, a, b, _ = c
        return found & ~settled & ~floor & (b - a > rtol * b) & (i < 200)

    _, a, b, _ = jax.lax.while_loop(more, bisect, (jnp.int32(0), a, b, g(a)))
    diverged = jnp.where(direction > 0, jnp.inf, 0.0).astype(dtype)
    q = jnp.where(settled, q0, jnp.where(~found, diverged, jnp.where(floor, 0.0, 0.5 * (a + b))))
    q_chi = jnp.where(jnp.isinf(q), jnp.ldexp(q0, Q_SEARCH_DOUBLINGS), q)
    return q, length_map_and_chi(act_index, sigma_w, sigma_b, q_chi, names)[1]


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
    sw = 0.5 * (a + b)
    if abs(f(sw)) > 1e-6:  # the bisection closed in on a jump of chi_1(q*), not on a root
        raise ValueError(
            f"no critical sigma_w for {act.name} with sigma_b={sigma_b} on the fixed point reached from q0={q0}: "
            f"chi_1(q*) jumps across 1 at sigma_w = {sw:.6g}, where the fixed point reached from q0 jumps "
            "(an unstable fixed point at q0); see critical_line for the whole chi_1 = 1 line")
    return sw


class CriticalLine(NamedTuple):
    """Points of the ``chi_1 = 1`` line, one per fixed point ``q_star``: see :func:`critical_line`."""

    q_star: np.ndarray
    sigma_w: np.ndarray
    sigma_b: np.ndarray
    map_slope: np.ndarray


def critical_line(activation: str | Activation, q) -> CriticalLine:
    """The edge of chaos ``chi_1 = 1`` in the ``(sigma_w, sigma_b)`` plane, parametrized by the fixed point ``q*``.

    For each ``q > 0`` exactly one pair puts the fixed point of the length map at ``q`` AND makes
    ``chi_1 = 1`` there (Poole et al. 2016; Schoenholz et al. 2017):

        sigma_w^2 = 1 / E[phi'(sqrt(q) z)^2],     sigma_b^2 = q - sigma_w^2 E[phi(sqrt(q) z)^2],

    (NaN where ``sigma_b^2 < 0``: that ``q`` cannot be a critical fixed point). ``map_slope`` is the
    slope of the length map at the fixed point, ``dq'/dq = sigma_w^2 E[phi(a) phi'(a) z] / sqrt(q)``,
    ``a = sqrt(q) z`` (Gaussian integration by parts of ``d/dq E[phi(sqrt(q) z)^2]``): the fixed point is
    stable, i.e. reached by the layers' variances, where it is below 1; where it exceeds 1 the point is
    an unstable fixed point that a network moves away from (ReLU: exactly 1 at ``sigma_w^2 = 2`` for
    every ``q``). ``q`` is a 1-D array of positive numbers; float64 expectations with the composite
    Gauss-Legendre rule of :func:`gaussian_expectation`. Returns a :class:`CriticalLine` of arrays.
    """
    act = get_activation(activation)
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 1 or q.size == 0:
        raise ValueError(f"q must be a non-empty 1-D array of fixed points; got shape {q.shape}")
    if not np.all(np.isfinite(q)) or not np.all(q > 0):
        raise ValueError("q must hold finite numbers > 0")
    z, w = _nodes()
    with jax.enable_x64(True):
        a = jnp.asarray(np.sqrt(q)[:, None] * z[None, :])
        phi, dphi = (np.asarray(f(a), np.float64) for f in (act.fn, act.grad))
    e_dphi2, e_phi2 = (dphi**2) @ w, (phi**2) @ w
    sw2 = 1.0 / e_dphi2
    sb2 = q - sw2 * e_phi2
    slope = sw2 * ((phi * dphi * z[None, :]) @ w) / np.sqrt(q)
    # sigma_b^2 = 0 up to rounding (ReLU: q - 2 E[relu^2] = 0 for every q) counts as 0
    sigma_b = np.where(sb2 >= -1e-12 * q, np.sqrt(np.maximum(sb2, 0.0)), np.nan)
    return CriticalLine(q, np.sqrt(sw2), sigma_b, slope)


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


# --------------------------------------------------------------------------- correlations (order to chaos)

#: Gauss-Hermite nodes per dimension of the two-input expectations (128^2 = 16384 points).
CORRELATION_NODES = 128
#: Largest q* at which the correlation quantities are computed (relative error below ~1e-5 there).
CORRELATION_Q_MAX = 3.0


class CorrelationScale(NamedTuple):
    """The correlation map's fixed point ``c*``, its slope ``chi_c`` there, and ``xi_c = -1 / ln chi_c``."""

    c_star: float
    chi_c: float
    xi_c: float


@functools.lru_cache(maxsize=4)
def _hermite_2d(n: int = CORRELATION_NODES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for ``E[f(z1, z2)]``, ``z1, z2 ~ N(0, 1)`` independent."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / math.sqrt(2.0 * math.pi)
    z1, z2 = np.meshgrid(x, x, indexing="ij")
    return z1.ravel(), z2.ravel(), np.outer(w, w).ravel()


def correlation_map_and_chi(act_index, sigma_w, sigma_b, q, c, names: tuple[str, ...] = ACTIVATION_NAMES):
    """Traceable one step of the correlation map at the fixed point ``q`` and its slope ``chi_c``.

    Two inputs whose pre-activations have variance ``q`` and correlation ``c`` reach the next layer
    with correlation (Poole et al. 2016; Schoenholz et al. 2017, in our notation)

        c' = (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q,
        u_1 = sqrt(q) z_1,  u_2 = sqrt(q) (c z_1 + sqrt(1 - c^2) z_2),

    and ``chi_c = dc'/dc = sigma_w^2 E[phi'(u_1) phi'(u_2)]`` (Gaussian integration by parts);
    at ``c = 1`` it is ``chi_1``. Expectations by a 128 x 128 Gauss-Hermite rule: against :func:`chi1`
    for tanh, relative error 2e-9 at ``q = 1.4`` but 1e-3 at ``q = 6.4`` (``phi'^2`` narrows as ``q``
    grows), so :func:`correlation_depth_scale` refuses ``q* > CORRELATION_Q_MAX = 3``. Arguments may
    be traced.
    """
    dtype = _theory_dtype(sigma_w, sigma_b, q, c)
    z1, z2, w = (jnp.asarray(a, dtype) for a in _hermite_2d())
    sigma_w, sigma_b, q, c = (jnp.asarray(v, dtype) for v in (sigma_w, sigma_b, q, c))
    s = jnp.sqrt(jnp.maximum(q, _CHI_Q_FLOOR))
    u1 = s * z1
    u2 = s * (c * z1 + jnp.sqrt(jnp.clip(1.0 - c**2, 0.0, None)) * z2)
    phi1, phi2 = function_by_index(act_index, u1, names), function_by_index(act_index, u2, names)
    d1 = function_by_index(act_index, u1, names, derivative=True)
    d2 = function_by_index(act_index, u2, names, derivative=True)
    c_next = (sigma_w**2 * jnp.dot(w, phi1 * phi2) + sigma_b**2) / jnp.maximum(q, _CHI_Q_FLOOR)
    return c_next, sigma_w**2 * jnp.dot(w, d1 * d2)


def c_star_and_chi(act_index, sigma_w, sigma_b=0.0, q0=1.0, names: tuple[str, ...] = ACTIVATION_NAMES):
    """Traceable ``(q*, c*, chi_1, chi_c)``: the stable fixed point of the correlation map and its slope.

    In the ordered phase (``chi_1 <= 1``) ``c* = 1`` and ``chi_c = chi_1``; in the chaotic phase
    ``c = 1`` is unstable and ``c* < 1`` is found by bisection of ``c'(c) - c`` on ``[0, 1 - 1e-9]``
    (40 halvings; ``c'(0) = sigma_b^2 / q* >= 0`` for an odd ``phi``, ``c'(c) < c`` just below 1).
    Meant for odd activations (tanh, erf); ``q*`` and ``chi_1`` are :func:`q_star_and_chi`'s.
    """
    q, chi_1 = q_star_and_chi(act_index, sigma_w, sigma_b, q0, names)
    dtype = q.dtype

    def g(c):
        return correlation_map_and_chi(act_index, sigma_w, sigma_b, q, c, names)[0] - c

    def bisect(_, ab):
        a, b = ab
        mid = 0.5 * (a + b)
        up = g(mid) > 0
        return jnp.where(up, mid, a), jnp.where(up, b, mid)

    a, b = jax.lax.fori_loop(0, 40, bisect, (jnp.asarray(0.0, dtype), jnp.asarray(1.0 - 1e-9, dtype)))
    c = jnp.where(chi_1 <= 1.0, jnp.asarray(1.0, dtype), 0.5 * (a + b))
    chi_c = jnp.where(chi_1 <= 1.0, chi_1, correlation_map_and_chi(act_index, sigma_w, sigma_b, q, c, names)[1])
    return q, c, chi_1, chi_c


def correlation_depth_scale(activation: str | Activation = "tanh", sigma_w: float = 1.0,
                            sigma_b: float = 0.0) -> CorrelationScale:
    """``(c*, chi_c, xi_c)`` with ``xi_c = -1 / ln chi_c``: the depth over which two inputs' correlation
    forgets its start (Schoenholz et al. 2017 call this depth scale ``xi_c``; it diverges where
    ``chi_1 = 1``). In the ordered phase ``chi_c = chi_1``; in the chaotic phase it is the slope of the
    correlation map at its fixed point ``c* < 1`` (:func:`correlation_map_and_chi`). Float64.
    For odd activations with ``q* > 0`` (tanh, erf), and ``q* <= CORRELATION_Q_MAX`` (the quadrature's
    accurate range; ``ValueError`` otherwise).
    """
    act = get_activation(activation)
    if act.name not in ("tanh", "erf"):
        raise ValueError(f"activation must be odd with a finite q* (tanh or erf); got {act.name!r}")
    sigma_w = check_positive("sigma_w", sigma_w)
    sigma_b = check_positive("sigma_b", sigma_b, allow_zero=True)
    with jax.enable_x64(True):
        q, c, _, chi_c = _c_star_jit(np.int32(ACTIVATION_NAMES.index(act.name)), np.float64(sigma_w),
                                     np.float64(sigma_b))
        q, c, chi_c = float(q), float(c), float(chi_c)
    if q > CORRELATION_Q_MAX:
        raise ValueError(f"q* = {q:.3g} exceeds CORRELATION_Q_MAX = {CORRELATION_Q_MAX} (sigma_w = {sigma_w}, "
                         f"sigma_b = {sigma_b}): the two-input quadrature is not accurate there")
    return CorrelationScale(c, chi_c, math.inf if chi_c == 1.0 else -1.0 / math.log(chi_c))


@jax.jit
def _c_star_jit(act_index, sigma_w, sigma_b):
    return c_star_and_chi(act_index, sigma_w, sigma_b)
