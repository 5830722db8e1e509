"""vgplib.finite_width: effective width and typical growth rate, against independent paths."""

import math

import numpy as np
import pytest

import vgplib
from vgplib.finite_width import typical_growth

TANH_GRAD = {"tanh": lambda a: 1.0 - np.tanh(a) ** 2, "relu": lambda a: (a > 0).astype(float)}


def exact_log_q(act: str, q: float, n: int) -> float:
    """E ln Q, Q = sum_i phi'(a_i)^2 z_i^2, by Frullani's integral (plain NumPy, trapezoid rules):

    E ln Q = int_0^inf (e^-t - M(t)^n) / t dt,   M(t) = E_a[(1 + 2 t phi'(a)^2)^(-1/2)].
    """
    z = np.linspace(-10.0, 10.0, 4001)
    wz = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) * (z[1] - z[0])
    c = TANH_GRAD[act](math.sqrt(q) * z) ** 2
    s = np.linspace(-25.0, 10.0, 1401)
    t = np.exp(s)
    M = ((1.0 + 2.0 * t[:, None] * c[None, :]) ** -0.5) @ wz
    f = (np.exp(-t) - M**n)  # (f / t) dt = f ds
    return float(np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(s)))


def test_tanh_sigma4_effective_width_and_chi():
    tg = typical_growth("tanh", 4.0, 64)
    assert tg.chi1 == pytest.approx(vgplib.chi1("tanh", 4.0), rel=1e-12)
    assert tg.q_star == pytest.approx(vgplib.q_star("tanh", 4.0), rel=1e-12)
    assert 13.5 < tg.effective_width < 14.0  # n E[phi'^2]^2 / E[phi'^4], far below n = 64
    assert tg.typical_rate < math.log(tg.chi1)


@pytest.mark.parametrize("n", [8, 64, 256])
def test_linear_matches_newman_top_lyapunov_exponent(n):
    # phi = identity: E ln F = ln(2 sigma^2 / n) + psi(n/2) exactly (twice Newman's lambda_1).
    sigma = 1.3
    tg = typical_growth("linear", sigma, n, q=1.0)  # phi' = 1: q is irrelevant
    exact = 2.0 * vgplib.gaussian_lyapunov_exponents(n, sigma)[0]
    assert tg.effective_width == pytest.approx(n, rel=1e-12)
    assert abs(tg.typical_rate - exact) < 1.0 / n**2  # the neglected term is -1/(3 n^2) + ...
    assert abs(tg.typical_rate - exact) > 0.0


def test_relu_effective_width_is_half_the_width():
    tg = typical_growth("relu", math.sqrt(2.0), 64)
    assert tg.effective_width == pytest.approx(32.0, rel=1e-9)
    assert tg.chi1 == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("sigma_w, n", [(4.0, 64), (2.0, 32), (3.0, 128)])
def test_second_order_form_against_exact_integral(sigma_w, n):
    # The exact E ln F = ln(sigma^2/n) + E ln Q under the independence assumption; the library's
    # second-order form differs by the third-order term only (measured: 0.003 at n_eff = 14,
    # bound 1/n_eff^2 = 0.005).
    tg = typical_growth("tanh", sigma_w, n)
    exact = math.log(sigma_w**2 / n) + exact_log_q("tanh", tg.q_star, n)
    assert abs(tg.typical_rate - exact) < 1.0 / tg.effective_width**2
    # and the mean-field rate is far off by comparison
    assert math.log(tg.chi1) - exact > 5 * abs(tg.typical_rate - exact)


def test_monte_carlo_of_independent_layers():
    # F = ||W^T D u||^2 with fresh Gaussian W, D = diag(tanh'(a)), a ~ N(0, q*), u uniform:
    # the sample mean and variance of ln F match the typical rate and the log-variance.
    rng = np.random.default_rng(0)
    n, sigma_w, m = 32, 4.0, 20000
    tg = typical_growth("tanh", sigma_w, n)
    a = rng.standard_normal((m, n)) * math.sqrt(tg.q_star)
    u = rng.standard_normal((m, n))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    W = rng.standard_normal((m, n, n)) * sigma_w / math.sqrt(n)
    v = np.einsum("mij,mi->mj", W, (1.0 - np.tanh(a) ** 2) * u)
    logF = np.log(np.sum(v**2, axis=1))
    se = logF.std() / math.sqrt(m)
    assert abs(logF.mean() - tg.typical_rate) < 4 * se + 1.0 / tg.effective_width**2
    assert abs(logF.var() / tg.log_variance - 1.0) < 0.2  # second order in 1/n_eff (n_eff = 7)


@pytest.mark.parametrize(
    "call, err, word",
    [
        (lambda: typical_growth("tanh", 4.0, 0), ValueError, "width"),
        (lambda: typical_growth("tanh", -1.0, 8), ValueError, "sigma_w"),
        (lambda: typical_growth("tanh", 4.0, 8, sigma_b=-1.0), ValueError, "sigma_b"),
        (lambda: typical_growth("nope", 4.0, 8), ValueError, "activation"),
        (lambda: typical_growth("relu", 2.0, 8), ValueError, "q\\* = inf"),
        (lambda: typical_growth("tanh", 4.0, 8.5), TypeError, "width"),
        (lambda: typical_growth("tanh", 4.0, 8, q=-1.0), ValueError, "q"),
    ],
)
def test_bad_input(call, err, word):
    with pytest.raises(err, match=word):
        call()
