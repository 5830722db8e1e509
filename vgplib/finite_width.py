"""Finite width: the typical (log) growth rate of a back-propagated gradient, below mean field.

Mean field (:func:`vgplib.chi1`) predicts the *mean* of the squared gradient norm: with
``g_l = dE/dh_l`` and ``g_{l-1} = J_l^T g_l``, ``J_l = diag(phi'(a_l)) W_l``, each layer multiplies
``E ||g||^2`` by ``chi_1 = sigma_w^2 E[phi'(a)^2]``, ``a ~ N(0, q*)``. One network of finite width
``n`` follows the *typical* rate instead, ``lambda = E ln F`` per layer, where

    F = ||g_{l-1}||^2 / ||g_l||^2 = ||W_l^T D_l u||^2,   D_l = diag(phi'(a_l)),   u = g_l / ||g_l||.

Treat ``W_l`` as independent of ``D_l`` and ``u`` (the usual gradient-independence assumption of
mean field). Then ``W^T D u ~ N(0, (sigma_w^2/n) ||D u||^2 I)`` and, with ``u = z / ||z||``
uniform on the sphere, the two chi-square factors cancel in the logarithm:

    E ln F = ln(sigma_w^2 / n) + E ln Q,   Q = sum_i phi'(a_i)^2 z_i^2,   z_i, a_i independent.

``E Q = n m_2`` and ``Var Q = n (3 m_4 - m_2^2)`` with ``m_k = E[phi'(a)^k]``; expanding the
logarithm to second order (Jensen: ``ln E Q - E ln Q ~ Var Q / (2 (E Q)^2)``),

    lambda ~ ln chi_1 - (3 m_4 / m_2^2 - 1) / (2 n) = ln chi_1 - 3 / (2 n_eff) + 1 / (2 n),

with the effective width ``n_eff = n m_2^2 / m_4`` (the degrees of freedom of the weighted
chi-square ``Q`` for fixed ``D``; ``n_eff = n`` for a linear network, ``n / 2`` for ReLU, much
smaller than ``n`` for saturated tanh, whose ``phi'^2`` is a narrow bump). The per-layer variance
of ``ln F`` is ``3 / n_eff - 1 / n`` to the same order: ``2 / n_eff`` from the weighted chi-square
at fixed ``D`` and ``1 / n_eff - 1 / n`` from the layer-to-layer spread of ``mean_i phi'(a_i)^2``.
For ``phi`` linear the exact value is Newman's top Lyapunov exponent (twice it, for the square),
``ln(2 sigma_w^2 / n) + psi(n / 2) = ln sigma_w^2 - 1/n - O(1/n^2)``
(:func:`vgplib.gaussian_lyapunov_exponents`).

Moments come from :func:`vgplib.gaussian_expectation` at ``q*`` (:func:`vgplib.q_star`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from vgplib._validate import check_positive, check_positive_int
from vgplib.activations import Activation, get_activation
from vgplib.theory import gaussian_expectation, q_star


class TypicalGrowth(NamedTuple):
    """Per-layer growth of ``ln ||g_l||^2`` at finite width (see the module docstring).

    ``q_star``: the variance used (the fixed point ``q*`` unless given); ``chi1``: mean field's ``ln E`` rate is ``ln chi1``;
    ``effective_width``: ``n_eff = n m_2^2 / m_4``; ``log_variance``: ``Var ln F ~ 3/n_eff - 1/n``;
    ``typical_rate``: ``E ln F ~ ln chi1 - 3/(2 n_eff) + 1/(2 n)`` (second order in ``1/n``).
    A norm grows by ``exp(typical_rate / 2)`` per layer.
    """

    q_star: float
    chi1: float
    effective_width: float
    log_variance: float
    typical_rate: float


def _grad_power(act: Activation, power: int):
    return _POWERS.setdefault((act.grad, power), lambda a: act.grad(a) ** power)


_POWERS: dict = {}


def typical_growth(activation: str | Activation, sigma_w: float, width: int, sigma_b: float = 0.0,
                   q: float | None = None) -> TypicalGrowth:
    """Mean-field and typical (log) growth rates of ``||g_l||^2`` per layer for width ``width``.

    ``W_ij ~ N(0, sigma_w^2 / n)``, biases ``N(0, sigma_b^2)``, the pre-activations at their
    variance fixed point ``q*`` (:func:`vgplib.q_star` from 1), or at the variance ``q`` if given
    (as :func:`vgplib.chi1` takes it). Raises ``ValueError`` when ``q*`` is infinite (the forward
    variance diverges; pass ``q``) or ``E[phi'^2] = 0``.
    """
    act = get_activation(activation)
    sigma_w = check_positive("sigma_w", sigma_w)
    n = check_positive_int("width", width)
    sigma_b = check_positive("sigma_b", sigma_b, allow_zero=True)
    if q is None:
        q = q_star(act, sigma_w, sigma_b)
        if math.isinf(q):
            raise ValueError("the variance map diverges (q* = inf) for these sigma_w, sigma_b; pass q")
    q = max(check_positive("q", q, allow_zero=True), 1e-30)
    m2 = gaussian_expectation(_grad_power(act, 2), q)
    m4 = gaussian_expectation(_grad_power(act, 4), q)
    if not m2 > 0:
        raise ValueError(f"E[phi'(a)^2] = 0 at q* = {q:g}: the gradient is zero after one layer")
    n_eff = n * m2**2 / m4
    chi = sigma_w**2 * m2
    return TypicalGrowth(
        q_star=q,
        chi1=chi,
        effective_width=n_eff,
        log_variance=3.0 / n_eff - 1.0 / n,
        typical_rate=math.log(chi) - 1.5 / n_eff + 0.5 / n,
    )
