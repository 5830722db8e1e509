"""Mean-field theory: exact critical cases, quadrature against closed forms, theory against a wide network."""

import math

import jax
import jax.numpy as jnp
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
        (lambda: vgplib.gaussian_expectation(jnp.tanh, 1.0, n=1), ValueError, "n"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
