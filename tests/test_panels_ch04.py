"""Chapter 4's panel module: the BPTT heat map and Pascanu bound, and the one-neuron cobweb map.

Oracles: vgplib.step_jacobians / vgplib.log_norms / vgplib.pairwise_log_norms on the same network,
jax.jacrev of the unrolled RNN (float64 where the product is short), the explicit float64 product of
step Jacobians with NumPy's spectral norm, jax.grad of the unrolled one-neuron map, and the closed form
of the fixed point h* = 1/2 for b = -w/2.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

import vgplib
from vgplib.panels import ch04
from vgplib.widgets import count_compiles


def _params(rho):
    data = ch04.rnn_data()
    return {"W": jnp.asarray(rho * data["W"]), "U": jnp.asarray(data["U"]), "b": jnp.asarray(data["b"])}, data["xs"]


def test_rnn_data_has_spectral_radius_one():
    data = ch04.rnn_data()
    assert abs(data["rho_W0"] - 1.0) < 1e-5
    assert abs(data["norm_W0"] - np.linalg.norm(data["W"].astype(np.float64), 2)) < 1e-12
    assert data["norm_W0"] > 1.0  # non-normal: the norm exceeds the spectral radius


@pytest.mark.parametrize("activation", ch04.ACTIVATIONS)
@pytest.mark.parametrize("rho,T", [(0.5, 7), (1.3, 40)])
def test_bptt_curves_match_vgplib_step_jacobians_and_log_norms(activation, rho, T):
    c = ch04.bptt_curves(rho, activation, T)
    params, xs = _params(rho)
    J = vgplib.step_jacobians(params, xs[:T], activation=activation)
    np.testing.assert_allclose(c["J"], np.asarray(J), rtol=1e-5, atol=1e-6)
    ln = vgplib.log_norms(J)
    np.testing.assert_allclose(c["spectral"], np.asarray(ln.spectral), atol=2e-4)
    np.testing.assert_allclose(c["frobenius"], np.asarray(ln.frobenius), atol=2e-4)
    heat = np.asarray(vgplib.pairwise_log_norms(J))
    np.testing.assert_allclose(c["heat"], heat, atol=2e-4)  # NaN above the diagonal in both
    assert c["heat"].shape == (T + 1, T + 1) and np.isnan(c["heat"][0, 1])


def test_bptt_row_equals_jacrev_of_the_unrolled_rnn():
    T, k = 12, 3
    c = ch04.bptt_curves(1.1, "tanh", T)
    params, xs = _params(1.1)
    states = vgplib.unroll(params, xs[:T])

    def h_T(h_k):
        return vgplib.unroll(params, xs[k:T], h_k)[-1]

    D = np.asarray(jax.jacrev(h_T)(states[k - 1]), np.float64)
    assert abs(c["spectral"][k] - math.log(np.linalg.norm(D, 2))) < 1e-4
    assert abs(c["frobenius"][k] - math.log(np.linalg.norm(D))) < 1e-4


@pytest.mark.parametrize("activation", ch04.ACTIVATIONS)
@pytest.mark.parametrize("rho", [0.25, 1.0, 2.0])
def test_pascanu_bound_holds_on_explicit_float64_products(activation, rho):
    T = ch04.T_MAX
    c = ch04.bptt_curves(rho, activation, T)
    gamma = vgplib.get_activation(activation).sup_grad
    assert c["gamma"] == gamma and abs(c["norm_W"] - rho * ch04.rnn_data()["norm_W0"]) < 1e-9
    J = c["J"].astype(np.float64)
    P = np.eye(ch04.HIDDEN)
    for k in range(T - 1, T - 11, -1):  # d h_T / d h_k = J_T ... J_{k+1}, the last 10 k
        P = P @ J[k]
        assert math.log(np.linalg.norm(P, 2)) <= (T - k) * math.log(gamma * c["norm_W"]) + 1e-6
    assert np.all(c["spectral"] <= c["bound"] + 1e-5)
    np.testing.assert_allclose(c["bound"], (T - np.arange(T + 1)) * math.log(gamma * c["norm_W"]))


def test_bptt_panel_statuses_and_no_compiles():
    panel = ch04.bptt_panel()
    with count_compiles() as compiles:
        assert panel.set(rho=0.25, activation="sigmoid", T=80).startswith("underflow")
        assert panel.set(rho=1.0, activation="tanh", T=10) == ""
        panel.set(rho=2.0, activation="relu", T=80)
    assert compiles.count == 0
    assert isinstance(panel.fig, Figure)


def test_fixed_points_closed_forms():
    roots, slopes = ch04.fixed_points(4.0, -2.0)  # the pitchfork: h* = 1/2, slope w/4 = 1
    assert roots.size == 1 and abs(roots[0] - 0.5) < 1e-4 and abs(slopes[0] - 1) < 1e-6
    roots, slopes = ch04.fixed_points(8.0, -4.0)  # symmetric and bistable
    assert roots.size == 3 and abs(roots[0] + roots[2] - 1) < 1e-9 and abs(slopes[1] - 2) < 1e-9
    for r in roots:
        assert abs(1 / (1 + math.exp(-(8 * r - 4))) - r) < 1e-9
    roots, slopes = ch04.fixed_points(0.0, -3.0)
    assert abs(roots[0] - 1 / (1 + math.exp(3))) < 1e-9 and slopes[0] == 0


@pytest.mark.parametrize("w,b", [(4.0, -2.0), (6.0, -2.0), (-5.0, 2.0), (12.0, -2.0)])
def test_cobweb_curves_match_jax_grad_of_the_unrolled_map(w, b):
    c = ch04.cobweb_curves(w, b)

    def h_t(h0, t):
        h = h0
        for _ in range(t):
            h = jax.nn.sigmoid(w * h + b)
        return h

    for t in (1, 5, 10):
        g = float(jax.grad(h_t)(jnp.float32(ch04.COBWEB_H0), t))
        assert abs(c["direct"][t] - g) <= 1e-5 * abs(g) + 1e-35
        assert abs(c["log10_abs"][t] - math.log10(abs(g))) < 1e-4
        assert abs(c["hs"][t] - float(h_t(jnp.float32(ch04.COBWEB_H0), t))) < 1e-6


def test_cobweb_panel_reports_underflow_and_zero():
    panel = ch04.cobweb_panel()
    assert panel.set(w=12.0, b=-2.0).startswith("underflow")
    assert panel.set(w=0.0, b=-2.0).startswith("zero")
    assert panel.set(w=4.0, b=-2.0) == ""


@pytest.mark.parametrize("call,error", [
    (lambda: ch04.bptt_curves(0.0, "tanh", 10), ValueError),
    (lambda: ch04.bptt_curves(1.0, "softsign", 10), ValueError),
    (lambda: ch04.bptt_curves(1.0, "tanh", 0), ValueError),
    (lambda: ch04.bptt_curves(1.0, "tanh", ch04.T_MAX + 1), ValueError),
    (lambda: ch04.fixed_points(float("nan"), 0.0), ValueError),
    (lambda: ch04.cobweb_curves("1", 0.0), TypeError),
    (lambda: ch04.cobweb_curves(6.0, -2.0, h0=1.0), ValueError),
    (lambda: ch04.adding_experiment(lengths=(6, 4)), ValueError),
    (lambda: ch04.adding_experiment(steps=120), ValueError),
    (lambda: ch04.bptt_scrubber(activation="gelu"), ValueError),
])
def test_bad_input_is_rejected(call, error):
    with pytest.raises(error):
        call()


def test_exercise_checks_accept_right_and_reject_wrong_answers(capsys):
    assert ch04.check_thresholds(1, 4) and ch04.check_thresholds(1.0, 4.0)
    assert not ch04.check_thresholds(1, 1) and not ch04.check_thresholds(4, 1)
    assert ch04.check_bifurcation(4.0) and not ch04.check_bifurcation(3.0) and not ch04.check_bifurcation(5.0)
    assert ch04.check_baseline(1.0, 1 / 6) and not ch04.check_baseline(0.5, 1 / 6)
    assert not ch04.check_baseline(1.0, 1 / 12)
    out = capsys.readouterr().out
    assert out.count("Correct:") == 4 and out.count("Not yet:") == 6


@pytest.mark.parametrize(
    "call",
    [lambda: ch04.check_thresholds("1", 4), lambda: ch04.check_bifurcation(True), lambda: ch04.check_baseline([1], 0.1)],
)
def test_exercise_checks_reject_non_numbers(call):
    with pytest.raises(TypeError, match="must be a number"):
        call()


def test_exercise_checks_without_an_answer_print_a_neutral_prompt(capsys):
    assert not ch04.check_thresholds() and not ch04.check_bifurcation() and not ch04.check_baseline()
    assert not ch04.check_thresholds(1.0, None)
    out = capsys.readouterr().out
    assert out.count("No answer yet") == 4 and "Not yet" not in out and "Correct" not in out


def test_cobweb_from_another_start_and_the_fold_path():
    w, b_fold = vgplib.recurrent.sigmoid_neuron_fold((1 - math.sqrt(1 / 3)) / 2)
    assert float(w) == pytest.approx(6.0) and ch04.FOLD_PATH_W == 6.0
    lo, hi = min(ch04.FOLD_PATH_B), max(ch04.FOLD_PATH_B)
    assert lo < -6.0 - float(b_fold) < float(b_fold) < hi  # the path crosses both fold branches
    c = ch04.cobweb_curves(6.0, -2.585, h0=ch04.FOLD_PATH_H0)
    assert c["hs"][0] == pytest.approx(ch04.FOLD_PATH_H0) and c["hs"][-1] < 0.25  # held by the lower point
    assert c["log10_abs"][-1] > -3  # at the fold the gradient survives 40 steps
    assert ch04.cobweb_curves(6.0, -2.0, h0=0.05)["log10_abs"][-1] < -25  # saturated upper point
    assert isinstance(ch04.make_fold_figure(), Figure)


def test_adding_predict_is_the_unpadded_recurrence_and_eps_gives_delta():
    params = vgplib.init_rnn(jax.random.key(3), 2, 5, sigma_b=0.2)
    params = dict(params, v=jnp.linspace(-1, 1, 5), c=jnp.asarray(0.3))
    task = vgplib.adding_problem(jax.random.key(4), 6, 3)
    T_max = 9
    xs = jnp.pad(task.inputs, ((0, 0), (T_max - 6, 0), (0, 0)))
    pred = ch04.adding_predict(params, xs, T_max - 6)
    core = {k: params[k] for k in ("W", "U", "b")}
    h_T = vgplib.unroll(core, task.inputs)[:, -1]
    np.testing.assert_allclose(pred, h_T @ params["v"] + params["c"], rtol=1e-5, atol=1e-6)
    # d(loss)/d(eps_t) is delta_t = dE/da_t: the step-t term of dE/db from vgplib.bptt_contributions.
    y = task.targets
    eps = jnp.zeros((3, T_max, 5))
    d = jax.grad(lambda e: ch04._adding_mse(params, xs, y, T_max - 6, e))(eps)
    g = 2.0 * (pred - y)[:, None] * params["v"][None, :] / 3  # dE/dh_T of the batch MSE
    terms = vgplib.bptt_contributions(core, task.inputs, grad_output=g)
    np.testing.assert_allclose(d[:, T_max - 6:].sum(0), terms["b"], rtol=1e-4, atol=1e-7)
    assert np.all(d[:, : T_max - 6] == 0)  # padding steps carry no gradient


def test_adding_experiment_small_run():
    run = ch04.adding_experiment(lengths=(4, 6), seeds=(0, 1), steps=100, checkpoints=(50, 100), n_eval=64)
    assert run.test_ratio.shape == (2, 2) and run.history.shape == (2, 100, 2)
    assert run.transmission.shape == (2, 2, 2, 6) and run.first_vs_second.shape == (2, 2, 2)
    assert np.all(run.transmission[..., 0] == 0)               # lag 0: delta_T / delta_T
    assert np.all(np.isnan(run.transmission[:, :, 0, 4:]))    # T = 4 has lags 0..3 only
    assert np.all(np.isfinite(run.test_ratio)) and np.all(run.history[:, 0] > 0.3)
    assert run.params["W"].shape == (2, 2, 2, 16, 16)
