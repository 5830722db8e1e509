"""Chapter 6's panel module: log-space gradient profile and slopes against jax.grad and a direct histogram,
theory against vgplib.chi1 / length_map / slope_distribution, no compilation per move, readable figures,
the stacked training network against mlp_forward, bad input, exercise checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import layerwise_theory, statuses_without_compiling

import vgplib
from vgplib.panels import ch06
from vgplib.plots import MIN_TEXT_PX, min_text_px
from vgplib.units import slope_distribution


def _explicit_network(depth, sigma_w, sigma_b):
    Z, x0, u, B = ch06.panel_data()
    n = ch06.PANEL_WIDTH
    params = [{"W": sigma_w * Z[l] / np.sqrt(n), "b": sigma_b * B[l]} for l in range(depth)]
    return params, x0, u


@pytest.mark.parametrize(("activation", "depth"), [("gelu", 5), ("elu", 1), ("sigmoid", 4), ("relu", 5)])
def test_profile_and_slopes_equal_jax_grad_and_a_direct_histogram(activation, depth):
    sigma_w, sigma_b = 1.3, 0.4
    params, x0, u = _explicit_network(depth, sigma_w, sigma_b)
    prof = ch06.gradient_profile(activation, sigma_w, depth, sigma_b)
    trace = vgplib.mlp_forward(params, x0, activation, return_all=True)

    def energy(eps):  # E = sum_b u . h_L with a zero perturbation added to every h_l: dE/deps_l = g_l
        h = x0 + eps[0]
        for l, p in enumerate(params):
            h = vgplib.get_activation(activation).fn(vgplib.dense(p, h)) + eps[l + 1]
        return jnp.sum(h @ u)

    eps = [jnp.zeros_like(h) for h in trace.post]
    g = jax.jit(jax.grad(energy))(eps)
    rms = np.array([np.sqrt(np.mean(np.sum(np.asarray(gl, np.float64) ** 2, -1))) for gl in g])
    np.testing.assert_allclose(10 ** prof["g"], rms, rtol=2e-4)
    slopes = np.asarray(vgplib.get_activation(activation).grad(trace.pre[-1]))
    counts, _ = np.histogram(slopes, bins=ch06.SLOPE_EDGES)
    np.testing.assert_allclose(prof["slopes"], counts / slopes.size, atol=1e-7)


@pytest.mark.parametrize(("activation", "sigma_w", "sigma_b"),
                         [("tanh", 1.2, 0.3), ("elu", 1.2, 0.2), ("swish", 1.35, 1.0), ("sigmoid", 2.0, 0.0)])
def test_theory_is_the_librarys_number(activation, sigma_w, sigma_b):
    depth = 8
    prof = ch06.gradient_profile(activation, sigma_w, depth, sigma_b)
    assert prof["chi_star"] == pytest.approx(vgplib.chi1(activation, sigma_w, sigma_b), rel=1e-12)
    assert prof["q_star"] == pytest.approx(vgplib.q_star(activation, sigma_w, sigma_b), rel=1e-10)
    _, x0, _, _ = ch06.panel_data()
    q1 = sigma_w**2 * float(np.mean(np.asarray(x0, np.float64) ** 2)) + sigma_b**2
    expected, qs, _ = layerwise_theory(activation, sigma_w, sigma_b, q1, depth)
    last_q = qs[-1]
    np.testing.assert_allclose(prof["theory_layer"], expected, atol=1e-9)
    assert prof["q_depth"] == pytest.approx(last_q, rel=1e-10)
    np.testing.assert_allclose(prof["slopes_theory"], slope_distribution(activation, last_q, ch06.SLOPE_EDGES),
                               atol=1e-10)


def test_panel_moves_do_not_compile_and_report_underflow():
    panel = ch06.activation_panel()
    low, fine, one = statuses_without_compiling(
        panel, {"activation": "sigmoid", "sigma_w": 0.5, "depth": 100}, {"activation": "gelu", "sigma_w": 1.55, "depth": 37},
        {"activation": "leaky_relu", "sigma_w": 3.0, "depth": 1})
    assert low.startswith("underflow") and fine == "" and one == ""
    assert min_text_px(panel.fig) >= MIN_TEXT_PX


def test_figures_text_is_at_least_10_px():
    assert min_text_px(ch06.activations_figure()) >= MIN_TEXT_PX
    settings = {a: (1.0, 1.0) for a in ch06.PANEL_ACTIVATIONS}
    assert min_text_px(ch06.slope_distributions_figure(settings)) >= MIN_TEXT_PX
    from vgplib.theory import critical_line

    lines = {a: critical_line(a, np.geomspace(0.01, 10, 5)) for a in ("tanh", "gelu")}
    assert min_text_px(ch06.critical_lines_figure(lines, points={"tanh": (1.5, 0.5)})) >= MIN_TEXT_PX
    prof = {a: ch06.gradient_profile(a, 1.4, 6) for a in ("relu", "tanh")}
    assert min_text_px(ch06.critical_profiles_figure(prof, {"relu": (1.4, 0.0), "tanh": (1.4, 0.0)})) >= MIN_TEXT_PX
    dead = {"relu": np.zeros((2, 4)), "elu": np.ones((2, 4))}
    assert min_text_px(ch06.dead_units_figure(dead, dead)) >= MIN_TEXT_PX
    norms = {"relu": np.ones((2, 5)), "elu": np.ones((2, 5))}
    pairs = {"relu": (np.zeros(4), np.zeros(4))}
    assert min_text_px(ch06.layer_gradients_figure(norms, pairs)) >= MIN_TEXT_PX
    results = {a: {"accuracy": np.array([0.5, 0.6]), "first_change": np.array([0.1, 0.2])} for a in ("relu", "gelu")}
    assert min_text_px(ch06.training_figure(results)) >= MIN_TEXT_PX
    html = ch06.activation_scrubber(sigma_w=1.4, depth=3, activations=("relu", "tanh")).data
    assert 'alt="One frame per activation at sigma_w = 1.4 and depth 3' in html


def test_stacked_network_equals_mlp_forward():
    params = ch06.stacked_mlp(jax.random.PRNGKey(0), width=7, depth=5, sigma_w=1.3, n_in=4, n_out=3, sigma_b=0.2)
    layers = ch06.as_layers(params)
    assert [p["W"].shape for p in layers] == [(7, 4), (7, 7), (7, 7), (7, 7), (3, 7)]
    x = jax.random.normal(jax.random.PRNGKey(1), (9, 4))
    y = jnp.arange(9) % 3
    loss = ch06.stacked_loss_fn("elu")
    assert ch06.stacked_loss_fn("elu") is loss  # cached: train_many reuses its compilation
    ref = vgplib.mlp_loss_fn("elu")(layers, x, y)
    assert float(loss(params, x, y)) == pytest.approx(float(ref), rel=1e-6)
    assert float(loss.accuracy(params, x, y)) == pytest.approx(float(vgplib.mlp_accuracy_fn("elu")(layers, x, y)))
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a]), params)
    np.testing.assert_allclose(np.asarray(ch06.model(batch, 1)[2]["W"]), 2 * np.asarray(layers[2]["W"]))
    # the mixed network picks its activation from its one-hot "act" and trains it not at all
    mixed = ch06.mixed_loss_fn(("relu", "elu"))
    pm = ch06.with_activation(params, 1, 2)
    assert float(mixed(pm, x, y)) == pytest.approx(float(loss(params, x, y)), rel=1e-6)
    assert float(mixed.accuracy(pm, x, y)) == pytest.approx(float(loss.accuracy(params, x, y)))
    g = jax.grad(mixed)(pm, x, y)
    assert float(jnp.abs(g["act"]).max()) == 0.0
    # the variance-preserving scale: He's sqrt 2 for ReLU; the length map keeps q = 1
    assert ch06.variance_preserving_sigma_w("relu") == pytest.approx(math.sqrt(2), rel=1e-10)
    sw = ch06.variance_preserving_sigma_w("gelu")
    assert vgplib.length_map("gelu", sw, 0.0, 1.0) == pytest.approx(1.0, rel=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        ch06.gradient_profile("erf", 1.0, 5)
    with pytest.raises(ValueError, match="depth"):
        ch06.gradient_profile("tanh", 1.0, ch06.MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="sigma_w"):
        ch06.gradient_profile("tanh", -1.0, 5)
    with pytest.raises(ValueError, match="sigma_b"):
        ch06.gradient_profile("tanh", 1.0, 5, sigma_b=-0.1)
    with pytest.raises(TypeError, match="depth"):
        ch06.gradient_profile("tanh", 1.0, 2.5)
    with pytest.raises(ValueError, match="activation"):
        ch06.activation_scrubber(activations=("relu", "softplus"))
    with pytest.raises(ValueError, match="depth"):
        ch06.stacked_mlp(jax.random.PRNGKey(0), width=4, depth=2, sigma_w=1.0)
    with pytest.raises(ValueError, match="activation"):
        ch06.mixed_loss_fn(("relu", "softsign"))


def test_exercise_checks(capsys):
    assert ch06.check_leaky_critical(math.sqrt(2 / 1.01))
    assert not ch06.check_leaky_critical(math.sqrt(2))
    assert not ch06.check_leaky_critical(math.sqrt(2 / 1.1))
    assert not ch06.check_leaky_critical(None)
    assert ch06.check_dead_at_init(2.0**-16)
    assert not ch06.check_dead_at_init(0.5)
    assert not ch06.check_dead_at_init(None)
    from scipy.stats import norm

    assert ch06.check_gelu_sup(norm.cdf(math.sqrt(2)) + math.sqrt(2) * norm.pdf(math.sqrt(2)))
    assert not ch06.check_gelu_sup(1.0)
    assert not ch06.check_gelu_sup(None)
    out = capsys.readouterr().out
    assert out.count("Correct") == 3 and out.count("No answer yet") == 3
    # the leaky slope 0.1 critical point is chi_1 = 1 by the library too
    act = vgplib.Activation("leaky0.1", lambda a: jnp.where(a > 0, a, 0.1 * a),
                            lambda a: jnp.where(a > 0, 1.0, 0.1), 1.0)
    assert vgplib.chi1(act, math.sqrt(2 / 1.01), q=1.0) == pytest.approx(1.0, rel=1e-10)
