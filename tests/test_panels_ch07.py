"""Chapter 7's panel module: the isometry kernel against autodiff and NumPy, its theory, the figure,
the exercises and bad input.

Oracles: vgplib.layer_jacobians + a float64 NumPy product and SVD, jax.grad of u . h_L with respect
to an intermediate activation, vgplib.length_map / vgplib.chi1 in float64, init_mlp's weights.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import layerwise_theory, run_worked_solutions, statuses_without_compiling

import vgplib
from vgplib.panels import ch07
from vgplib.plots import MIN_TEXT_PX, min_text_px


@pytest.mark.parametrize(("init", "activation", "sigma_w", "depth"),
                         [("gaussian", "tanh", 1.2, 7), ("orthogonal", "relu", 1.4, 5)])
def test_profile_against_numpy_svd_and_jax_grad(init, activation, sigma_w, depth):
    params = ch07.panel_weights(init, sigma_w, depth)
    _, x0, u = ch07.panel_data()
    prof = ch07.isometry_profile(init, activation, sigma_w, depth)
    # singular values of dh_L/dh_0: product of the exact Jacobians in float64, NumPy SVD
    J = vgplib.layer_jacobians(params, x0, activation)
    P = np.linalg.multi_dot([np.asarray(j, np.float64) for j in J[::-1]]) if depth > 1 else np.asarray(J[0], np.float64)
    sv = np.linalg.svd(P, compute_uv=False)
    resolved = sv > 1e-4 * sv[0]  # float32 resolves singular values down to ~eps * s_max
    np.testing.assert_allclose(prof["log10_sv"][resolved], np.log10(sv[resolved]), atol=2e-4)
    assert prof["mean_sq_sv"] == pytest.approx(np.mean(sv**2), rel=1e-3)
    # ||g_l|| = ||d(u . h_L)/dh_l|| by jax.grad through the remaining layers
    hs = vgplib.mlp_forward(params, x0, activation, return_all=True).post
    for l in (0, depth // 2, depth):
        def rest(h, l=l):
            for layer in params[l:]:
                h = vgplib.get_activation(activation).fn(layer["W"] @ h)
            return u @ h
        g = jax.grad(rest)(hs[l])
        assert prof["log10_g"][l] == pytest.approx(math.log10(float(jnp.linalg.norm(g))), abs=1e-4)


def test_panel_weights_are_init_mlps_weights():
    Z, _, _ = ch07.panel_data()
    key = jax.random.split(jax.random.PRNGKey(0), 3)[0]
    for i, init in enumerate(ch07.PANEL_INITS):
        ref = vgplib.init_mlp(key, [ch07.PANEL_WIDTH] * (ch07.MAX_DEPTH + 1), init, sigma_w=1.7)
        got = ch07.panel_weights(init, 1.7, 3)
        for l in range(3):
            np.testing.assert_allclose(np.asarray(got[l]["W"]), np.asarray(ref[l]["W"]), rtol=1e-6, atol=1e-7)
        assert bool(jnp.all(Z[i, 0] == vgplib.init_mlp(key, [ch07.PANEL_WIDTH] * (ch07.MAX_DEPTH + 1), init)[0]["W"]))


@pytest.mark.parametrize("activation", ch07.PANEL_ACTIVATIONS)
def test_theory_is_vgplib_length_map_and_chi1(activation):
    sigma_w, depth = 1.3, 6
    _, x0, _ = ch07.panel_data()
    q1 = sigma_w**2 * float(np.mean(np.asarray(x0, np.float64) ** 2))
    expected, _, log_chi = layerwise_theory(activation, sigma_w, 0.0, q1, depth)
    prof = ch07.isometry_profile("gaussian", activation, sigma_w, depth)
    np.testing.assert_allclose(prof["theory_g"], expected, rtol=1e-9, atol=1e-12)
    assert prof["theory_mean_sq"] == pytest.approx(math.exp(sum(log_chi)), rel=1e-9)


def test_spectrum_variance_theory():
    # ReLU: phi'^2 is 0 or 1 with probability 1/2, so mu_2 / mu_1^2 - 1 = 1 per layer
    np.testing.assert_allclose(ch07.spectrum_variance_theory("relu", 1.0, 1.41, "orthogonal", [1, 10]), [1.0, 10.0],
                               rtol=1e-9)
    lin = ch07.spectrum_variance_theory("tanh", 1e-12, 1.0, "gaussian", 7)  # linear limit: Gaussian W adds 1
    assert float(lin) == pytest.approx(7.0, rel=1e-6)
    mu1, mu2 = ch07.phi_prime_moments("tanh", 0.5)
    rng = np.random.default_rng(0)
    d2 = (1 - np.tanh(math.sqrt(0.5) * rng.standard_normal(1_000_000)) ** 2) ** 2
    assert mu1 == pytest.approx(d2.mean(), rel=3e-3) and mu2 == pytest.approx((d2**2).mean(), rel=3e-3)


def test_panel_never_compiles_after_the_first_draw_and_text_is_readable():
    panel = ch07.isometry_panel()
    s1, s2, s3 = statuses_without_compiling(
        panel, {"init": "gaussian", "activation": "tanh", "sigma_w": 1.0, "depth": 100},
        {"init": "orthogonal", "activation": "relu", "sigma_w": 1.4, "depth": 3},
        {"init": "orthogonal", "activation": "tanh", "sigma_w": 0.5, "depth": 1})
    # How many of the 64 singular values fall below 1e-8 at depth 100 depends on rounding near the
    # threshold: 32 on the previous machine's CPU, 33 on this session's (AVX-512). The status must
    # name the underflow and a count of that size, not one exact count.
    m = re.match(r"underflow: (\d+) singular values below 1e-8", s1)
    assert m and 28 <= int(m.group(1)) <= 36 and s3 == "", s1
    assert "exactly 0" in s2  # ReLU units that are off make dh_L/dh_0 singular
    fig, update = ch07.make_isometry_figure()
    update(depth=20, sigma_w=1.0, init="gaussian", activation="tanh")
    assert min_text_px(fig, dpi=96) >= MIN_TEXT_PX  # the live panel and the scrubber render at 96 dpi


def test_live_figure_draws_the_plain_figure():
    # the live panel's frozen frames are pixel copies: its PNG matches the scrubber's figure except
    # where data now lies over a spine (under 0.5% of the pixels)
    import io

    from PIL import Image

    from vgplib.widgets import LivePanel

    live = ch07.isometry_panel()
    assert live.make_figure is ch07.make_isometry_figure_live
    plain = LivePanel(ch07.make_isometry_figure, ch07.isometry_controls(), freeze_legend=True)
    for setting in ({"depth": 100, "sigma_w": 0.5, "init": "gaussian", "activation": "tanh"},
                    {"depth": 3, "sigma_w": 2.0, "init": "orthogonal", "activation": "relu"}):
        assert live.set(**setting) == plain.set(**setting)
        a, b = (np.asarray(Image.open(io.BytesIO(p.image.value)).convert("RGB"), np.int16) for p in (live, plain))
        assert a.shape == b.shape
        assert np.mean(np.abs(a - b).max(axis=-1) > 40) < 0.005


def test_scrubber_alt():
    html = ch07.isometry_scrubber(depths=(1, 2)).data
    assert 'alt="Histogram of the log10 singular values of the input-output Jacobian of a width-64 tanh' in html


def test_exercise_checks(capsys):
    assert ch07.check_glorot_variance(0.004)
    assert not ch07.check_glorot_variance(0.01)
    assert not ch07.check_glorot_variance(None)
    assert ch07.check_negative_mean(-0.25)
    assert not ch07.check_negative_mean(0.25)
    assert ch07.check_isometry_depth(10)
    assert not ch07.check_isometry_depth(5)
    assert not ch07.check_isometry_depth(None)
    out = capsys.readouterr().out
    assert out.count("Correct") == 3 and out.count("No answer yet") == 2


def test_exercise_expected_answers_from_the_library():
    """The checks' answers are computed (init formulas, quadrature), and agree with the solutions' arithmetic."""
    assert ch07.expected_glorot_variance() == pytest.approx(2 / 500, rel=1e-12)
    assert ch07.expected_glorot_ratios() == pytest.approx((0.4, 1.6), rel=1e-12)
    assert ch07.expected_negative_mean() == -0.25
    assert ch07.expected_negative_mean_shift() == pytest.approx(-4.0, rel=1e-12)
    assert ch07.expected_isometry_depth() == 10
    # the shift measured on a sampled negative-mean layer: E[a] over 4096 units with inputs of mean 1/2
    w = vgplib.init_layer(jax.random.PRNGKey(0), 32, 4096, "negative_mean")["W"]
    assert float(jnp.mean(w @ jnp.full((32,), 0.5))) == pytest.approx(-4.0, abs=0.05)


def test_worked_solutions_pass_their_checks_and_slips_do_not(capsys):
    runs = run_worked_solutions("ch07_initialization.ipynb", {"ch07": ch07, "math": math, "np": np})
    assert [label for label, _ in runs] == ["ch7-ex-glorot", "ch7-ex-negmean", "ch7-ex-relu"]
    assert [out.count("Correct: ") for _, out in runs] == [2, 2, 1]
    assert all("Not yet" not in out for _, out in runs)
    assert not ch07.check_glorot_ratios(1.6, 0.4)          # swapped
    assert not ch07.check_glorot_ratios(1.0, 1.0)
    assert not ch07.check_negative_mean_shift(-0.125)      # one input's share
    assert not ch07.check_negative_mean_shift(4.0)
    assert not ch07.check_glorot_ratios(0.4, None) and not ch07.check_negative_mean_shift(None)
    out = capsys.readouterr().out
    assert out.count("Not yet: ") == 4 and out.count("No answer yet: ") == 2
    with pytest.raises(TypeError, match="shift"):
        ch07.check_negative_mean_shift("-4")


def test_bad_input():
    with pytest.raises(ValueError, match="init"):
        ch07.isometry_profile("he", "tanh", 1.0, 5)
    with pytest.raises(ValueError, match="activation"):
        ch07.isometry_profile("gaussian", "sigmoid", 1.0, 5)
    with pytest.raises(ValueError, match="depth"):
        ch07.isometry_profile("gaussian", "tanh", 1.0, ch07.MAX_DEPTH + 1)
    with pytest.raises(TypeError, match="depth"):
        ch07.isometry_profile("gaussian", "tanh", 1.0, 2.5)
    with pytest.raises(ValueError, match="sigma_w"):
        ch07.isometry_profile("gaussian", "tanh", -1.0, 5)
    with pytest.raises(ValueError, match="weights"):
        ch07.spectrum_variance_theory("tanh", 0.5, 1.0, "he", 5)
