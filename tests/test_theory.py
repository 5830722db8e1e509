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


# ------------------------------------------------------------------ traceable twins (live panels)

NAMES = ("tanh", "relu", "sigmoid", "erf")


def test_length_map_and_chi_equals_public_functions():
    from vgplib.theory import length_map_and_chi

    with jax.enable_x64(True):
        f = jax.jit(lambda i, sw, sb, q: length_map_and_chi(i, sw, sb, q, NAMES))  # traced sigma_w and q
        for i, name in enumerate(NAMES):
            for sw, sb, q in [(0.7, 0.0, 0.3), (1.3, 0.2, 2.5), (2.5, 0.05, 40.0), (1.0, 0.0, 0.0)]:
                q_next, chi = f(np.int32(i), sw, sb, q)
                assert q_next.dtype == jnp.float64
                assert float(q_next) == pytest.approx(vgplib.length_map(name, sw, sb, q), rel=1e-12, abs=1e-300)
                assert float(chi) == pytest.approx(vgplib.chi1(name, sw, sb, q=q), rel=1e-12)
    # float32 follows the arguments' dtype, within float32 rounding
    q_next, chi = length_map_and_chi(0, jnp.float32(1.5), jnp.float32(0.0), jnp.float32(0.8), NAMES)
    assert q_next.dtype == jnp.float32 and chi.dtype == jnp.float32
    assert float(chi) == pytest.approx(vgplib.chi1("tanh", 1.5, q=0.8), rel=1e-5)


def test_q_star_and_chi_equals_q_star_and_chi1():
    from vgplib.theory import q_star_and_chi

    with jax.enable_x64(True):
        f = jax.jit(lambda i, sw, sb: q_star_and_chi(i, sw, sb, 1.0, NAMES))
        for i, name in enumerate(NAMES):
            for sw, sb in [(0.5, 0.0), (1.0, 0.0), (1.2, 0.1), (2.0, 0.0), (3.0, 0.3)]:
                q, chi = (float(v) for v in f(np.int32(i), sw, sb))
                ref = vgplib.q_star(name, sw, sb)
                if math.isinf(ref) or ref == 0.0:
                    assert q == ref
                else:
                    assert q == pytest.approx(ref, rel=1e-10)
                if math.isinf(ref):  # chi1 raises there; the twin evaluates at the end of the search
                    assert chi == pytest.approx(vgplib.chi1(name, sw, sb, q=2.0**120), rel=1e-12)
                else:
                    assert chi == pytest.approx(vgplib.chi1(name, sw, sb), rel=1e-10)
                    assert f"{chi:.3g}" == f"{vgplib.chi1(name, sw, sb):.3g}"
        # ReLU at sigma_w^2 = 2, sigma_b = 0: every q is a fixed point, q* = q0
        assert float(q_star_and_chi(1, math.sqrt(2.0), 0.0, 1.0, NAMES)[0]) == vgplib.q_star("relu", math.sqrt(2.0))


def test_traceable_theory_bad_input():
    from vgplib.theory import length_map_and_chi, q_star_and_chi

    with pytest.raises(ValueError, match="sigma_w must be a finite number > 0"):
        length_map_and_chi(0, -1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="q must be a finite number >= 0"):
        length_map_and_chi(0, 1.0, 0.0, -1.0)
    with pytest.raises(ValueError, match="sigma_b must be"):
        length_map_and_chi(0, 1.0, math.nan, 1.0)
    with pytest.raises(ValueError, match="index must be in"):
        length_map_and_chi(len(vgplib.ACTIVATION_NAMES), 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="q0 must be a finite number > 0"):
        q_star_and_chi(0, 1.0, 0.0, 0.0)


def test_panel_theory_lines_are_the_numbers_chi1_returns():
    """The theory a live panel draws is vgplib.chi1's number (same quadrature, float64), to print precision."""
    from vgplib.panels import ch02, ch03

    for act in ("tanh", "sigmoid", "relu"):
        for sw in (0.75, 1.0, 1.5):
            c = ch02.gradient_curves(sw, 40, act)
            x0 = np.asarray(ch02.network_data()["x0"], np.float64)
            q = sw**2 * float(np.mean(np.sum(x0**2, axis=1))) / ch02.WIDTH
            ref = []
            for _ in range(40):
                ref.append(vgplib.chi1(act, sw, q=q))
                q = vgplib.length_map(act, sw, 0.0, q)
            np.testing.assert_allclose(c["chi"][1:], ref, rtol=1e-12)
            assert f"{c['chi'][-1]:.3g}" == f"{ref[-1]:.3g}"
            np.testing.assert_allclose(c["log10_theory"][0], 0.5 * np.sum(np.log10(ref)), rtol=1e-12)
            p = ch03.gradient_profile(act, sw, 20)
            if not (act == "relu" and sw > math.sqrt(2.0)):
                assert f"{p['chi_star']:.3g}" == f"{vgplib.chi1(act, sw):.3g}"
                assert p["chi_star"] == pytest.approx(vgplib.chi1(act, sw), rel=1e-10)
                np.testing.assert_allclose(p["theory_fixed"][0], 10 * math.log10(vgplib.chi1(act, sw)), rtol=1e-10)


# ---- correlation map and xi_c (chapter 7)


def test_correlation_map_at_c_equal_1_is_the_length_map_and_chi1():
    sw, sb = 1.7, 0.3
    q = vgplib.q_star("tanh", sw, sb)
    idx = vgplib.ACTIVATION_NAMES.index("tanh")
    with jax.enable_x64(True):
        c_next, chi_c = (float(v) for v in vgplib.theory.correlation_map_and_chi(idx, sw, sb, q, 1.0))
    assert c_next == pytest.approx(1.0, abs=1e-9)  # q* (1.41) is the length map's fixed point
    assert chi_c == pytest.approx(vgplib.chi1("tanh", sw, sb, q), rel=1e-8)


def test_correlation_map_against_monte_carlo():
    sw, sb, q, c = 2.0, 0.2, 1.3, 0.4
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((2, 2_000_000))
    u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
    prod, dprod = np.tanh(u1) * np.tanh(u2), (1 - np.tanh(u1) ** 2) * (1 - np.tanh(u2) ** 2)
    idx = vgplib.ACTIVATION_NAMES.index("tanh")
    with jax.enable_x64(True):
        c_next, chi_c = (float(v) for v in vgplib.theory.correlation_map_and_chi(idx, sw, sb, q, c))
    se = sw**2 * prod.std() / math.sqrt(prod.size) / q
    assert c_next == pytest.approx((sw**2 * prod.mean() + sb**2) / q, abs=5 * se)
    assert chi_c == pytest.approx(sw**2 * dprod.mean(), abs=5 * sw**2 * dprod.std() / math.sqrt(dprod.size))


def test_correlation_depth_scale_phases_and_a_wide_network():
    sb = math.sqrt(0.05)
    ordered = vgplib.correlation_depth_scale("tanh", 1.0, sb)
    chi = vgplib.chi1("tanh", 1.0, sb, vgplib.q_star("tanh", 1.0, sb))
    assert ordered.c_star == 1.0 and ordered.chi_c == pytest.approx(chi, rel=1e-12)
    assert ordered.xi_c == pytest.approx(-1 / math.log(chi), rel=1e-12)
    chaotic = vgplib.correlation_depth_scale("tanh", 2.0, sb)
    assert 0 < chaotic.c_star < 1 and 0 < chaotic.chi_c < 1  # a stable fixed point below 1
    # a wide random tanh network drives the correlation of independent inputs to c* (mean of 45 pairs;
    # they share one network, so their errors move together: 0.124 here, 0.172 with n = 2000 and
    # another seed, against c* = 0.165; c* = 0 or chi_c > 1 would fail)
    n, depth = 1500, 20
    rng = np.random.default_rng(1)
    h = rng.standard_normal((10, n))
    for _ in range(depth):
        a = h @ (2.0 * rng.standard_normal((n, n)) / math.sqrt(n)).T + sb * rng.standard_normal(n)
        h = np.tanh(a)
    norms = np.sqrt(np.sum(a * a, axis=1))
    cos = (a @ a.T / np.outer(norms, norms))[np.triu_indices(10, 1)]
    assert abs(cos.mean() - chaotic.c_star) < 0.06
    with pytest.raises(ValueError, match="activation"):
        vgplib.correlation_depth_scale("relu", 1.0)
    with pytest.raises(ValueError, match="sigma_w"):
        vgplib.correlation_depth_scale("tanh", -1.0)
    with pytest.raises(ValueError, match="CORRELATION_Q_MAX"):
        vgplib.correlation_depth_scale("tanh", 3.0, sb)
    with pytest.raises(TypeError, match="sigma_b"):
        vgplib.correlation_depth_scale("tanh", 1.0, "0.1")


# --------------------------------------------------------------------------- the critical line (chapter 6)


def test_critical_line_points_are_critical_fixed_points():
    from vgplib.theory import critical_line

    for activation, q in (("tanh", np.array([0.05, 8.0])), ("elu", np.array([0.5]))):
        line = critical_line(activation, q)
        for qk, sw, sb, slope in zip(*line):
            assert slope < 1  # stable: q_star reaches it from q0 = 1
            assert vgplib.q_star(activation, sw, sb) == pytest.approx(qk, rel=1e-8)
            assert vgplib.chi1(activation, sw, sb) == pytest.approx(1.0, abs=1e-10)
            # the slope of the length map, against a central difference in float64
            h = 1e-4 * qk
            fd = (vgplib.length_map(activation, sw, sb, qk + h) - vgplib.length_map(activation, sw, sb, qk - h)) / (2 * h)
            assert slope == pytest.approx(fd, rel=1e-6)
    line = critical_line("tanh", np.array([2.0]))  # one independent path: bisection at that sigma_b
    assert vgplib.critical_sigma_w("tanh", float(line.sigma_b[0])) == pytest.approx(float(line.sigma_w[0]), rel=1e-9)
    relu = critical_line("relu", np.array([0.05, 0.5, 2.0, 8.0]))  # chi_1 = sigma_w^2 / 2 at every q: the point (sqrt 2, 0), marginal
    np.testing.assert_allclose(relu.sigma_w, math.sqrt(2), rtol=1e-12)
    np.testing.assert_allclose(relu.sigma_b, 0.0, atol=1e-6)
    np.testing.assert_allclose(relu.map_slope, 1.0, rtol=1e-10)
    sig = critical_line("sigmoid", np.array([1.0, 100.0]))  # sigma_b^2 < 0 at q* = 1: no such point
    assert math.isnan(sig.sigma_b[0]) and sig.sigma_b[1] > 0
    # swish and GELU: unstable (slope > 1) for small q*, stable for large q*
    for activation in ("swish", "gelu"):
        slope = critical_line(activation, np.array([0.5, 50.0])).map_slope
        assert slope[0] > 1 > slope[1]


def test_critical_sigma_w_refuses_a_jump_and_critical_line_bad_input():
    from vgplib.theory import critical_line

    with pytest.raises(ValueError, match="jumps"):
        vgplib.critical_sigma_w("swish")
    assert vgplib.critical_sigma_w("elu") == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="q"):
        critical_line("tanh", np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="q"):
        critical_line("tanh", np.ones((2, 2)))
    with pytest.raises(ValueError, match="activation"):
        critical_line("tanhh", np.ones(2))
