"""Chapter 1's panel module: masked log-space sweep, mean-field decay, live panel, figures, exercise checks.

Oracles: the direct product by jax.vjp of the truncated network (float64), closed forms of chi_1
(ReLU: sigma_w^2 / 2; linear: sigma_w^2), jax.grad for the exercise answers.
"""

import math
from html import escape as html_escape

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

import vgplib
from vgplib.panels import ch01
from vgplib.widgets import all_panels, corner_values, count_compiles


def _net(depth, width=6, activation="tanh", seed=0):
    params = vgplib.init_mlp(jax.random.PRNGKey(seed), [width] * (depth + 1), init="gaussian", sigma_w=1.3,
                             sigma_b=0.1, dtype=jnp.float64)
    x = jax.random.normal(jax.random.PRNGKey(seed + 1), (width,), dtype=jnp.float64)
    return params, x


# --------------------------------------------------------------------------- prefix_log_gradient_norms


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("depth", [1, 3, 7])
def test_prefix_log_norms_equal_vjp_of_truncated_network(activation, depth):
    with jax.enable_x64(True):
        params, x = _net(7, activation=activation)
        J = vgplib.layer_jacobians(params, x, activation)
        g = jnp.arange(1.0, 7.0, dtype=jnp.float64)
        logs = ch01.prefix_log_gradient_norms(J, g, depth)
        # independent path: vjp of the first `depth` layers as one function of each h_l
        trace = vgplib.mlp_forward(params[:depth], x, activation, return_all=True)
        for l in range(depth + 1):
            def tail(xl, l=l):
                return vgplib.mlp_forward(params[l:depth], xl, activation) if l < depth else xl
            _, vjp = jax.vjp(tail, trace.post[l])
            expected = float(jnp.linalg.norm(vjp(g)[0]))
            assert logs[l] == pytest.approx(math.log(expected), rel=1e-9, abs=1e-9)
        # layers above `depth` are masked: their entries stay log ||g||
        np.testing.assert_allclose(logs[depth:], math.log(float(jnp.linalg.norm(g))), rtol=1e-12)


def test_prefix_log_norms_exact_below_float32_underflow():
    # 60 diagonal layers of 0.1: the product is 1e-60, far below float32's 1.2e-38, yet the log is exact.
    J = jnp.broadcast_to(0.1 * jnp.eye(4, dtype=jnp.float32), (60, 4, 4))
    logs = ch01.prefix_log_gradient_norms(J, jnp.ones(4) / 2.0, 60)
    assert logs[0] / math.log(10) == pytest.approx(-60.0, abs=1e-4)
    assert logs[30] / math.log(10) == pytest.approx(-30.0, abs=1e-4)


def test_prefix_log_norms_zero_gradient_is_minus_inf_not_nan():
    J = jnp.stack([jnp.eye(3), jnp.zeros((3, 3)), jnp.eye(3)])
    logs = ch01.prefix_log_gradient_norms(J, jnp.ones(3), 3)
    assert np.isneginf(logs[0]) and np.isneginf(logs[1]) and np.isfinite(logs[2:]).all()
    assert not np.isnan(logs).any()


def test_prefix_log_norms_one_compilation_for_every_depth():
    J = jax.random.normal(jax.random.PRNGKey(0), (9, 5, 5))
    g = jnp.ones(5)
    ch01.prefix_log_gradient_norms(J, g, 1)
    with count_compiles() as c:
        for d in range(1, 10):
            ch01.prefix_log_gradient_norms(J, g, d)
    assert c.count == 0, c.names


@pytest.mark.parametrize(
    "args, err",
    [
        ((np.ones((2, 3, 4)), np.ones(4), 1), ValueError),  # not square
        ((np.ones((2, 3, 3)), np.ones(4), 1), ValueError),  # wrong grad_output width
        ((np.ones((2, 3, 3)), np.ones(3), 3), ValueError),  # depth > L
        ((np.ones((2, 3, 3)), np.ones(3), 0), ValueError),  # depth < 1
        ((np.ones((2, 3, 3)), np.ones(3), 1.5), TypeError),  # depth not an int
        ((np.full((2, 3, 3), np.nan), np.ones(3), 1), ValueError),  # NaN
        ((np.ones((2, 3, 3)), np.array([1.0, np.inf, 0.0]), 1), ValueError),  # inf
        (("J", np.ones(3), 1), TypeError),
    ],
)
def test_prefix_log_norms_rejects_bad_input(args, err):
    with pytest.raises(err):
        ch01.prefix_log_gradient_norms(*args)


# --------------------------------------------------------------------------- mean-field decay


def test_mean_field_decay_closed_forms():
    # ReLU: chi_1 = sigma_w^2 / 2 at every q > 0, so entry l is (L - l) log(sigma_w^2 / 2).
    out = ch01.mean_field_log_gradient_decay("relu", 1.2, 5)
    np.testing.assert_allclose(out, (5 - np.arange(6)) * math.log(1.2**2 / 2), rtol=1e-9)
    # linear: chi_1 = sigma_w^2.
    out = ch01.mean_field_log_gradient_decay("linear", 0.7, 4, sigma_b=0.3)
    np.testing.assert_allclose(out, (4 - np.arange(5)) * math.log(0.49), rtol=1e-9)


def test_mean_field_decay_tends_to_fixed_point_chi1():
    # deep in the network q_k has converged to q*, so the per-layer log-factor is log chi_1(q*).
    out = ch01.mean_field_log_gradient_decay("tanh", 1.5, 60, sigma_b=0.2)
    assert out[-2] - out[-1] == pytest.approx(math.log(vgplib.chi1("tanh", 1.5, 0.2)), rel=1e-6)
    assert out[-1] == 0.0


def test_mean_field_decay_matches_wide_networks():
    # sigmoid nets of width 128 (standard init, sigma_w^2 = 1/3), mean squared gradient over 8 networks
    # x 8 inputs: within 0.3 decades of the layer-by-layer theory while it falls about 20 decades.
    # (One network alone scatters by about 0.2 decades at this depth: finite-width fluctuations.)
    n, L, B, nets = 128, 12, 8, 8
    X = jax.random.normal(jax.random.PRNGKey(8), (B, n))
    u = jax.random.normal(jax.random.PRNGKey(9), (n,))
    U = jnp.broadcast_to(u / jnp.linalg.norm(u), (B, n))
    mean_sq = np.zeros(L + 1)
    for seed in range(nets):
        params = vgplib.init_mlp(jax.random.PRNGKey(100 + seed), [n] * (L + 1), init="standard")
        G = vgplib.backward_vector_products(vgplib.layer_jacobians(params, X, "sigmoid"), U)
        mean_sq += np.mean(np.sum(np.asarray(G, np.float64) ** 2, -1), 0) / nets
    predicted = ch01.mean_field_log_gradient_decay("sigmoid", 1 / math.sqrt(3), L) / math.log(10)
    assert predicted[0] < -15
    assert np.abs(np.log10(mean_sq) - predicted).max() < 0.3


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"activation": "nope", "sigma_w": 1.0, "depth": 3}, ValueError),
        ({"activation": "tanh", "sigma_w": -1.0, "depth": 3}, ValueError),
        ({"activation": "tanh", "sigma_w": 1.0, "depth": 0}, ValueError),
        ({"activation": "tanh", "sigma_w": 1.0, "depth": 3, "q0": 0.0}, ValueError),
        ({"activation": "tanh", "sigma_w": 1.0, "depth": 3, "sigma_b": math.nan}, ValueError),
    ],
)
def test_mean_field_decay_rejects_bad_input(kwargs, err):
    with pytest.raises(err):
        ch01.mean_field_log_gradient_decay(**kwargs)


# --------------------------------------------------------------------------- the live panel


def test_panel_registered_and_corners_run_without_compiling():
    assert "ch01.depth" in all_panels()
    panel = ch01.depth_panel()
    with count_compiles() as c:
        for corner in corner_values(panel.controls):
            status = panel.set(**corner)
            assert isinstance(status, str)
    assert c.count == 0, c.names


def test_panel_curves_are_the_exact_gradients():
    fig, update = ch01.make_depth_figure()
    J_all, u = ch01.panel_data()
    update(depth=12, activation="tanh")
    line = next(ln for ln in fig.axes[0].lines if ln.get_label().startswith("tanh"))
    x, y = line.get_data()
    np.testing.assert_array_equal(x, np.arange(13))
    # oracle: direct float32 backward products of the first 12 Jacobians (no underflow at this depth)
    direct = np.asarray(vgplib.backward_vector_products(J_all[1, :12], u))
    np.testing.assert_allclose(y, np.linalg.norm(direct, axis=-1), rtol=1e-4)


def test_panel_reports_underflow_and_zero_gradient(monkeypatch):
    _, update = ch01.make_depth_figure()
    assert update(depth=20, activation="relu") == ""
    # a panel whose stack underflows: sigmoid Jacobians scaled by 1e-2 per layer
    J_all, u = ch01.panel_data()
    monkeypatch.setattr(ch01, "panel_data", lambda: (J_all * jnp.asarray([1e-2, 1.0, 0.0])[:, None, None, None], u))
    _, update = ch01.make_depth_figure()
    assert update(depth=40, activation="sigmoid").startswith("underflow")
    assert update(depth=3, activation="relu").startswith("zero gradient")


def test_panel_update_rejects_bad_values():
    _, update = ch01.make_depth_figure()
    with pytest.raises(ValueError):
        update(depth=ch01.MAX_DEPTH + 1, activation="tanh")
    with pytest.raises(ValueError):
        update(depth=3, activation="gelu")
    with pytest.raises(TypeError):
        update(depth=2.5, activation="tanh")


def test_scrubber_has_one_frame_per_depth():
    html = ch01.depth_scrubber("relu", depths=(1, 5, 40)).data
    assert html.count("data:image/png;base64") == 3
    with pytest.raises(ValueError):
        ch01.depth_scrubber("softmax")


@pytest.mark.parametrize("activation", ch01.PANEL_ACTIVATIONS)
def test_scrubber_alt_text_names_the_plot_and_the_finding(activation):
    html = ch01.depth_scrubber(activation, depths=(1, 40)).data
    assert "one frame per depth L from 1 to 40: " in html
    assert html_escape(ch01._SCRUBBER_FINDINGS[activation], quote=True) in html
    custom = ch01.depth_scrubber(activation, depths=(2,), alt="A custom sentence.").data
    assert "A custom sentence." in custom
    with pytest.raises(ValueError):
        ch01.depth_scrubber(activation, depths=(2,), alt="  ")


def test_static_figures():
    assert isinstance(ch01.backprop_diagram(), Figure)
    params = vgplib.init_mlp(jax.random.PRNGKey(0), [4] * 4)
    J = vgplib.layer_jacobians(params, jnp.ones(4), "sigmoid")
    fig = ch01.jacobian_heatmaps(params, J, vgplib.backward_products(J)[0], layers=[1, 3])
    assert isinstance(fig, Figure)
    with pytest.raises(ValueError):
        ch01.jacobian_heatmaps(params, J, J[0], layers=[4])
    with pytest.raises(ValueError):
        ch01.backprop_diagram(factor=0.0)


def test_layer_gradient_and_mean_field_figures_draw_the_given_numbers():
    norms = {"sigmoid": np.logspace(-8, 0, 5), "relu": np.ones(5)}
    fig = ch01.layer_gradient_figure(norms, {"sigmoid": "standard", "relu": "he"})
    lines = fig.axes[0].lines
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(1, 6))
    np.testing.assert_allclose(lines[0].get_ydata(), norms["sigmoid"])
    assert [ln.get_label() for ln in lines] == ["sigmoid (standard init)", "relu (he init)"]
    with pytest.raises(ValueError):
        ch01.layer_gradient_figure(norms, {"sigmoid": "standard"})
    measured = {"tanh": np.array([-2.0, -1.0, 0.0])}
    predicted = {"tanh": np.array([-2.1, -1.0, 0.0])}
    fig = ch01.mean_field_figure(measured, predicted, {"tanh": "standard"})
    theory, dots = fig.axes[0].lines
    np.testing.assert_allclose(theory.get_ydata(), predicted["tanh"])
    np.testing.assert_allclose(dots.get_ydata(), measured["tanh"])
    with pytest.raises(ValueError):
        ch01.mean_field_figure(measured, {}, {"tanh": "standard"})


# --------------------------------------------------------------------------- exercises


def test_layer_jacobian_check_accepts_the_solution_and_rejects_slips(capsys):
    layer, x = ch01.exercise_layer()
    h = layer["W"] @ x + layer["b"]
    solution = (1 - np.tanh(h) ** 2)[:, None] * layer["W"]
    assert ch01.check_layer_jacobian(solution) is True
    assert ch01.check_layer_jacobian(solution.T) is False
    assert ch01.check_layer_jacobian(layer["W"]) is False
    assert ch01.check_layer_jacobian(solution[:2]) is False
    assert ch01.check_layer_jacobian(None) is False
    out = capsys.readouterr().out
    assert "Correct" in out and "transpose" in out and "No answer yet" in out


def test_deltas_check_accepts_the_recursion_by_hand():
    params, x0, y = ch01.exercise_two_layer_net()

    def sig(t):
        return 1 / (1 + np.exp(-t))

    (W1, b1), (W2, b2) = [(p["W"].astype(np.float64), p["b"].astype(np.float64)) for p in params]
    a1 = W1 @ x0 + b1
    h1 = sig(a1)
    a2 = W2 @ h1 + b2
    h2 = sig(a2)
    delta_2 = sig(a2) * (1 - sig(a2)) * (h2 - y)
    delta_1 = sig(a1) * (1 - sig(a1)) * (W2.T @ delta_2)
    assert ch01.check_deltas(delta_1, delta_2) is True
    assert ch01.check_deltas(delta_1, -delta_2) is False
    assert ch01.check_deltas(W2.T @ delta_2, delta_2) is False  # forgot phi'(a_1)
    assert ch01.check_deltas(None, delta_2) is False
    # and the library's recursion agrees with the hand computation
    lib = vgplib.backprop_deltas([{k: jnp.asarray(v) for k, v in p.items()} for p in params], x0, h2 - y, "sigmoid")
    np.testing.assert_allclose(lib[0], delta_1, rtol=1e-5)


def test_cost_exercise_solution_products_agree():
    L = 6
    params = vgplib.init_mlp(jax.random.PRNGKey(0), [8] * (L + 1), init="standard")
    J = vgplib.layer_jacobians(params, jax.random.normal(jax.random.PRNGKey(1), (8,)), "sigmoid")
    P = vgplib.backward_products(J)
    from functools import reduce

    naive = [reduce(jnp.matmul, J[::-1][: L - l]) for l in range(L)]
    assert all(np.allclose(P[l], naive[l], rtol=1e-4, atol=1e-12) for l in range(L))
