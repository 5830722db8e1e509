"""Mean-field theory of signal and gradient propagation (Poole et al. 2016; Schoenholz et al. 2017).

For a wide MLP with ``W_ij ~ N(0, sigma_w^2 / n)`` and ``b_i ~ N(0, sigma_b^2)``, the
pre-activation variance follows the length map

    q_l = sigma_w^2 E_z[phi(sqrt(q_{l-1}) z)^2] + sigma_b^2,   z ~ N(0, 1),

to a fixed point ``q*``, and each layer multiplies the squared gradient norm by

    chi_1 = sigma_w^2 E_z[phi'(sqrt(q*) z)^2],

so ``E||dE/dx_l||^2 ~ chi_1^(L-l) ||dE/dx_L||^2``: vanishing for chi_1 < 1, exploding for
chi_1 > 1, and the gradient depth scale is ``xi = -1 / ln(chi_1)``. Gaussian expectations use
Gauss-Hermite quadrature in float64 (an even number of nodes, so no node sits on ReLU's kink).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import check_positive, check_positive_int
from vgplib.activations import Activation, get_activation

N_QUADRATURE = 200  # even: no node at 0, so E[relu'(z)^2] is exactly 1/2


def _nodes(n: int = N_QUADRATURE) -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(n)  # weight exp(-z^2/2)
    return z, w / math.sqrt(2.0 * math.pi)


@functools.lru_cache(maxsize=64)
def _expectation_kernel(f, n: int):
    """A jitted float64 ``sqrt_q -> E_z[f(sqrt_q z)]`` for one function (cached: no re-tracing)."""
    z, w = _nodes(n)

    @jax.jit
    def kernel(sqrt_q):
        return jnp.dot(jnp.asarray(w), f(sqrt_q * jnp.asarray(z)))

    return kernel


def gaussian_expectation(f, q: float, n: int = N_QUADRATURE) -> float:
    """``E_z[f(sqrt(q) z)]`` for ``z ~ N(0, 1)`` by ``n``-point Gauss-Hermite quadrature, float64."""
    q = check_positive("q", q, allow_zero=True)
    n = check_positive_int("n", n, minimum=2)
    with jax.enable_x64(True):
        return float(_expectation_kernel(f, n)(jnp.asarray(math.sqrt(q), dtype=jnp.float64)))


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
    to zero (for example tanh with ``sigma_w <= 1``, ``sigma_b = 0``), ``math.inf`` when it grows
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
