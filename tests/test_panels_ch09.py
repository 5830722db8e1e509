"""Chapter 9's panel module: spectra against direct products and jax.jacrev, the mean field against
the library's chi1/length_map, the classifier loss against a hand-written forward pass, the shattered
gradients against jax.grad, the panel's compile count and text size, exercise checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import run_worked_solutions

import vgplib
from vgplib.panels import ch09
from vgplib.plots import MIN_TEXT_PX, min_text_px
from vgplib.widgets import count_compiles


@pytest.mark.parametrize(("depth", "rule"), [(1, "1"), (7, "1/sqrt(L)"), (12, "1/L")])
def test_spectra_equal_the_svd_of_jacrev(depth, rule):
    alpha = ch09.alpha_value(rule, depth)
    s = ch09.spectra(depth, alpha)
    W, x0 = ch09.panel_data()
    with jax.enable_x64(True):
        net = vgplib.unstack_params({"W": jnp.asarray(W[:depth]), "b": jnp.zeros((depth, W.shape[-1]))})
        for key, kw in (("plain", {}), ("residual", {"residual": True, "residual_scale": alpha})):
            full = np.asarray(jax.jacrev(lambda v, kw=kw: vgplib.mlp_forward(net, v, "tanh", **kw))(jnp.asarray(x0)))
            sv = np.linalg.svd(full, compute_uv=False)
            np.testing.assert_allclose(s[key][:4], np.log10(sv[:4]), atol=1e-9)
            assert s[f"{key}_geo"] == pytest.approx(np.log10(abs(np.linalg.det(full))) / len(x0), abs=1e-9)


def test_mean_field_matches_a_loop_over_vgplib_theory():
    depth, alpha, m0 = 5, 0.3, 0.8
    m, total_res = m0, 0.0
    for _ in range(depth):
        q = m
        chi = vgplib.chi1("tanh", 1.0, q=q)
        total_res += 0.5 * math.log10(1 + alpha**2 * chi)
        m = m + alpha**2 * vgplib.length_map("tanh", 1.0, 0.0, q)
    assert ch09.mean_field_log_rms(depth, alpha, mean_square_input=m0) == pytest.approx(total_res, abs=1e-10)
    m, total = m0, 0.0
    for _ in range(depth):
        total += 0.5 * math.log10(vgplib.chi1("tanh", 1.0, q=m))
        m = vgplib.length_map("tanh", 1.0, 0.0, m)
    assert ch09.mean_field_log_rms(depth, None, mean_square_input=m0) == pytest.approx(total, abs=1e-10)


def test_classifier_loss_matches_a_hand_written_network():
    params = vgplib.init_mlp(jax.random.PRNGKey(0), [6, 5, 5, 5, 3], sigma_w=1.2)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 6))
    y = jnp.array([0, 2, 1, 2])
    h = jnp.tanh(x @ params[0]["W"].T + params[0]["b"])
    for p in params[1:-1]:
        h = h + 0.5 * jnp.tanh(h @ p["W"].T + p["b"])
    logits = h @ params[-1]["W"].T + params[-1]["b"]
    ref = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y])
    loss = ch09.classifier_loss_fn("tanh", True, 0.5)(params, x, y)
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)
    assert ch09.classifier_loss_fn("tanh", True, 0.5) is ch09.classifier_loss_fn("tanh", True, 0.5)
    batch = ch09.init_classifiers(3, 8, seeds=2)
    assert batch[0]["W"].shape == (2, 8, 64) and float(jnp.abs(batch[-1]["W"]).max()) == 0.0


def test_shattered_gradients_equal_jax_grad_and_are_smooth_for_one_layer():
    corr, g = ch09.gradient_correlation(2, residual=True, width=8, n_points=16, seeds=1, alpha=0.5)
    assert g.shape == (16,) and -1 <= corr <= 1
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(100), 3)
    w_in, b_in = jax.random.normal(k1, (2, 8)) * jnp.array([[math.sqrt(2.0)], [1.0]])
    hidden = vgplib.init_mlp(k2, [8] * 3, "gaussian", sigma_w=math.sqrt(2.0), sigma_b=0.1)
    w_out = jax.random.normal(k3, (8,)) / math.sqrt(8)

    def y(x):
        h = jax.nn.relu(w_in * x + b_in)
        for p in hidden:
            h = h + 0.5 * jax.nn.relu(p["W"] @ h + p["b"])
        return w_out @ h

    xs = jnp.linspace(-2.0, 2.0, 16)
    np.testing.assert_allclose(g, [float(jax.grad(y)(x)) for x in xs], rtol=1e-5, atol=1e-6)


def test_highway_measurements_closed_gate():
    hw = ch09.highway_measurements((-30.0,), depth=3, width=4)
    assert hw["carry"][0] == pytest.approx(1.0, abs=1e-6)
    assert abs(hw["max"][0]) < 0.05 and hw["spread"][0] < 0.05


def test_panel_never_compiles_after_the_first_draw_and_reports_the_floor():
    panel = ch09.spectrum_panel()
    with count_compiles() as c:
        assert panel.set(depth=1, alpha_rule="1") == ""
        status = panel.set(depth=1000, alpha_rule="1/L")
        panel.set(depth=500, alpha_rule="1/sqrt(L)")
    assert c.count == 0, c.names
    assert "rounding floor" in status
    assert min_text_px(panel.fig) >= MIN_TEXT_PX


def test_figures_are_readable():
    depths = (2, 5)
    sweep = ch09.depth_sweep(depths)
    assert min_text_px(ch09.depth_sweep_figure(depths, sweep)) >= MIN_TEXT_PX
    steps = np.arange(3)
    losses = {k: np.ones((3, 2)) for k in ("a", "b", "c")}
    assert min_text_px(ch09.degradation_figure(steps, losses)) >= MIN_TEXT_PX
    corr = {"plain": np.array([0.9, 0.8]), "residual": np.array([1.0, 1.0])}
    grads = {"plain": np.linspace(-1, 1, 8), "residual": np.linspace(0, 1, 8)}
    assert min_text_px(ch09.shattered_figure(depths, corr, grads)) >= MIN_TEXT_PX


def test_bad_input():
    with pytest.raises(ValueError, match="rule"):
        ch09.alpha_value("1/L^2", 10)
    with pytest.raises(ValueError, match="depth"):
        ch09.spectra(1001, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        ch09.spectra(10, float("nan"))
    with pytest.raises(ValueError, match="depth"):
        ch09.mean_field_log_rms(0, 1.0)


def test_exercise_checks(capsys):
    assert ch09.check_rms_limit(None) is None and ch09.check_cancelling_weight(None) is None
    assert ch09.check_gate_bias(None) is None
    assert "No answer yet" in capsys.readouterr().out
    assert ch09.check_rms_limit(0.5 * math.log10(math.e)) is True
    assert ch09.check_rms_limit(math.log10(math.e)) is False
    assert ch09.check_cancelling_weight(-1.0) is True and ch09.check_cancelling_weight(1.0) is False
    assert ch09.check_gate_bias(-math.log(19)) is True and ch09.check_gate_bias(math.log(19)) is False


def test_highway_exercise_answers_are_computed():
    """The bias by bisection on the library's sigmoid, the layer count from the library's gates: both agree
    with the closed forms -ln 19 and ceil(ln 10 / -ln 0.95)."""
    assert ch09.expected_gate_bias() == pytest.approx(-math.log(19), abs=1e-9)
    assert ch09.expected_carry_layers() == math.ceil(math.log(10) / -math.log(0.95)) == 45
    assert ch09.expected_carry_layers(0.9, 10.0) == 22     # 0.9^22 = 0.098 < 0.1 < 0.9^21 = 0.109


def test_worked_solutions_pass_their_checks_and_slips_do_not(capsys):
    runs = run_worked_solutions("ch09_residual.ipynb", {"ch09": ch09, "math": math, "np": np})
    assert [label for label, _ in runs] == ["ch9-ex-limit", "ch9-ex-cancel", "ch9-ex-gate"]
    assert [out.count("Correct: ") for _, out in runs] == [1, 1, 2]
    assert all("Not yet" not in out for _, out in runs)
    assert ch09.check_carry_layers(45.0) is True            # an integral float counts
    assert ch09.check_carry_layers(44) is False             # one short
    assert ch09.check_carry_layers(math.log(10) / -math.log(0.95)) is False   # 44.9: not rounded up
    assert ch09.check_carry_layers(20) is False             # 1 / 0.05: a linear loss
    assert ch09.check_carry_layers(None) is None
    out = capsys.readouterr().out
    assert out.count("Correct: ") == 1 and out.count("Not yet: ") == 3 and out.count("No answer yet: ") == 1
    with pytest.raises(TypeError, match="layers"):
        ch09.check_carry_layers("45")


def test_live_figure_is_pixel_identical_to_the_scrubbers_figure():
    """The live panel draws its static x axis, y label and legend from pixels copied once; every
    move's PNG must equal that of the plain figure (same dpi, legend frozen as the panel does)."""
    import io

    from PIL import Image

    from vgplib.plots import figure_png
    from vgplib.widgets import LivePanel

    live = ch09.spectrum_panel()
    plain = LivePanel(ch09.make_spectrum_figure, ch09.spectrum_controls(), freeze_legend=True)
    ax = live.fig.axes[0]
    assert not ax.xaxis.get_visible() and not ax.yaxis.label.get_visible()  # drawn as pixels
    for move in ({"depth": 1, "alpha_rule": "1"}, {"depth": 1000, "alpha_rule": "1/L"},
                 {"depth": 37, "alpha_rule": "1/sqrt(L)"}, {"depth": 1000, "alpha_rule": "1"}):
        assert live.set(**move) == plain.set(**move)
        a, b = (np.asarray(Image.open(io.BytesIO(figure_png(p.fig)))) for p in (live, plain))
        np.testing.assert_array_equal(a, b, err_msg=str(move))
