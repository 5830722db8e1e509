"""Mean-field theory: exact critical cases, quadrature against closed forms, theory against a wide network."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib


def test_exact_critical_cases():
    # ReLU: E[relu'(z)^2] = 1/2 at every q, so chi_1 = sigma_w^2 / 2 = 1 for sigma_w^2 = 2.
    assert vgplib.chi1("relu", math.sqrt(2.0)) == pytest.approx(1.0, abs=1e-14)
    # tanh, sigma_w = 1, sigma_b = 0: q* = 0 and chi_1 = tanh'(0)^2 = 1.
    assert vgplib.q_star("tanh", 1.0, 0.0) == 0.0
    assert vgplib.chi1("tanh", 1.0, 0.0) == pytest.approx(1.0, abs=1e-12)
    assert vgplib.depth_scale(1.0) == math.inf
    assert vgplib.critical_sigma_w("relu") == pytest.approx(math.sqrt(2.0), rel=1e-9)


def test_quadrature_against_closed_forms():
    # E[z^2] = q, E[relu(sqrt q z)^2] = q/2, E[erf(sqrt q z)^2] = (2/pi) arcsin(2q / (1 + 2q)).
    assert vgplib.gaussian_expectation(lambda h: h**2, 2.5) == pytest.approx(2.5, rel=1e-13)
    assert vgplib.length_map("relu", math.sqrt(2.0), 0.0, 3.0) == pytest.approx(3.0, rel=1e-13)
    q = 0.7
    expected = 2 / math.pi * math.asin(2 * q / (1 + 2 * q))
    assert vgplib.gaussian_expectation(lambda h: jax.lax.erf(h) ** 2, q) == pytest.approx(expected, rel=1e-8)


def test_quadrature_resolves_large_q():
    """tanh'(sqrt(q) z)^2 is a bump of width ~1/sqrt(q) in z; check against a fine trapezoid rule in h."""
    q = 50.0
    h = np.linspace(-12 * math.sqrt(q), 12 * math.sqrt(q), 400_001)
    pdf = np.exp(-(h**2) / (2 * q)) / math.sqrt(2 * math.pi * q)
    reference = np.trapezoid((1 - np.tanh(h) ** 2) ** 2 * pdf, h)
    assert vgplib.gaussian_expectation(lambda x: (1 - jnp.tanh(x) ** 2) ** 2, q) == pytest.approx(reference, rel=1e-7)


def test_q_star_is_a_fixed_point_and_stable():
    q = vgplib.q_star("tanh", 1.5, 0.3)
    assert q > 0
    assert vgplib.length_map("tanh", 1.5, 0.3, q) == pytest.approx(q, rel=1e-10)
    # Iterating the map from another start converges to the same q*.
    qi = 5.0
    for _ in range(200):
        qi = vgplib.length_map("tanh", 1.5, 0.3, qi)
    assert qi == pytest.approx(q, rel=1e-8)
    assert vgplib.q_star("relu", 2.0) == math.inf
    assert vgplib.q_star("relu", 1.0) == 0.0


def test_depth_scale_sign():
    assert vgplib.depth_scale(math.exp(-0.1)) == pytest.approx(10.0)
    assert vgplib.depth_scale(math.exp(0.1)) == pytest.approx(-10.0)


def test_chi1_against_wide_random_network():
    """chi_1^L against the mean squared singular value of a wide network's input-output Jacobian.

    E[||J x||^2 / ||x||^2] over random weights is chi_1 per layer when the pre-activations sit at
    the fixed point q*, so (1/n) ||d x_L / d x_0||_F^2 estimates chi_1^L (Pennington et al. 2017).
    Width 512 and 4 inputs: the relative sampling error of the Frobenius estimate is about
    sqrt(2 L / (n * inputs)) + O(L/n) finite-width bias ~ 0.1; we allow 25% on chi_1^L for L = 10,
    i.e. about 2.3% per layer, while chi_1 itself differs from 1 by 7% here, so the test separates
    the prediction from "no decay".
    """
    n, L, sw, sb, act = 512, 10, 1.3, 0.3, "tanh"
    q = vgplib.q_star(act, sw, sb)
    chi = vgplib.chi1(act, sw, sb)
    params = vgplib.init_mlp(jax.random.PRNGKey(7), [n] * (L + 1), "gaussian", sigma_w=sw, sigma_b=sb)
    # Inputs at the fixed point: x_0 = phi(h_0) with h_0 ~ N(0, q*).
    h0 = math.sqrt(q) * jax.random.normal(jax.random.PRNGKey(8), (4, n))
    x0 = jnp.tanh(h0)
    J = vgplib.layer_jacobians(params, x0, act)
    msv = jnp.exp(2 * vgplib.log_norms(J).frobenius[:, 0]) / n  # (1/n)||P_0||_F^2 per input
    measured = float(jnp.mean(msv))
    assert abs(chi - 1) > 0.05
    assert measured == pytest.approx(chi**L, rel=0.25)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: vgplib.chi1("tanh", 0.0), ValueError, "sigma_w"),
        (lambda: vgplib.chi1("tanh", -1.0), ValueError, "sigma_w"),
        (lambda: vgplib.chi1("nope", 1.0), ValueError, "activation"),
        (lambda: vgplib.q_star("tanh", 1.0, -0.5), ValueError, "sigma_b"),
        (lambda: vgplib.q_star("tanh", 1.0, 0.0, q0=0.0), ValueError, "q0"),
        (lambda: vgplib.chi1("tanh", 1.0, q=float("nan")), ValueError, "q"),
        (lambda: vgplib.chi1("relu", 2.0), ValueError, "diverges"),
        (lambda: vgplib.depth_scale(0.0), ValueError, "chi"),
        (lambda: vgplib.gaussian_expectation("tanh", 1.0), TypeError, "f must be callable"),
        (lambda: vgplib.gaussian_expectation(jnp.tanh, -1.0), ValueError, "q"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_gaussian_lyapunov_exponents_closed_forms():
    # n = 1: the exponent is E[ln |sigma_w z|] = ln sigma_w - (gamma + ln 2) / 2.
    for sw in (0.5, 1.0, 3.0):
        expected = math.log(sw) - 0.5 * (0.5772156649015329 + math.log(2.0))
        assert vgplib.gaussian_lyapunov_exponents(1, sw)[0] == pytest.approx(expected, abs=1e-14)
    # Half-integer digamma against jax.scipy's series implementation (an independent path).
    n = 40
    with jax.enable_x64(True):
        psi = np.asarray(jax.scipy.special.digamma(jnp.arange(n, 0, -1, dtype=jnp.float64) / 2))
    lam = vgplib.gaussian_lyapunov_exponents(n, 1.3)
    np.testing.assert_allclose(lam, 0.5 * (math.log(2 * 1.3**2 / n) + psi), rtol=0, atol=1e-12)
    assert np.all(np.diff(lam) < 0)  # largest first, strictly decreasing


def test_gaussian_lyapunov_exponents_match_a_long_product():
    # (1/L) ln s_i(W_L ... W_1) -> lambda_i; at L = 4000 the sampling error is ~0.01 per exponent.
    n, L, sw = 8, 4000, 1.0
    W = sw / math.sqrt(n) * jax.random.normal(jax.random.PRNGKey(11), (L, n, n))
    rates = -np.sort(-np.asarray(vgplib.lyapunov_spectrum(W))[0]) / L
    np.testing.assert_allclose(rates, vgplib.gaussian_lyapunov_exponents(n, sw), atol=0.03)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: vgplib.gaussian_lyapunov_exponents(0), "width"),
        (lambda: vgplib.gaussian_lyapunov_exponents(2.5), "width"),
        (lambda: vgplib.gaussian_lyapunov_exponents(4, 0.0), "sigma_w"),
    ],
)
def test_gaussian_lyapunov_exponents_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
