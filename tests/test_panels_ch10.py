"""Chapter 10's panel module: the carousel heat maps, the product experiment's helpers, truncated BPTT.

Oracles: the explicit product of step Jacobians (vgplib.step_jacobians / backward_products) for the
panel's heat maps, the closed form log ||prod diag(f_t)|| in NumPy, a stop_gradient truncation
against the sum of the last k BPTT terms, and the exercises' answers computed by hand.
"""

import contextlib
import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

import vgplib
from vgplib.panels import ch10
from vgplib.plots import MIN_TEXT_PX, min_text_px
from vgplib.widgets import count_compiles


def test_panel_maps_match_direct_products():
    m = ch10.panel_maps(2.0, 12)
    d = ch10.panel_data()
    n = ch10.PANEL_N
    params = {"W": d["W"], "U": d["U"], "b": d["b"].at[n:2 * n].add(2.0)}
    J = np.asarray(vgplib.step_jacobians(params, d["xs"][:12], cell="lstm"), np.float64)
    for t, k in ((12, 0), (12, 5), (7, 3), (4, 4)):
        P = np.eye(2 * n)
        for s in range(t, k, -1):
            P = P @ J[s - 1]
        assert m["cc"][t, k] == pytest.approx(np.log(np.linalg.norm(P[n:, n:])), abs=2e-4)
        assert m["hh"][t, k] == pytest.approx(np.log(np.linalg.norm(P[:n, :n])), abs=2e-4)
    assert np.isnan(m["cc"][3, 7])
    f = vgplib.lstm_gates(params, jnp.zeros(n), d["xs"][0]).f
    np.testing.assert_allclose(m["f"][0], f, rtol=1e-6)


def test_carousel_panel_no_compiles_and_readable():
    panel = ch10.carousel_panel()
    with count_compiles() as compiles:
        assert panel.set(forget_bias=-2.0, T=60).startswith("underflow of the colour scale")
        assert panel.set(forget_bias=6.0, T=20) == ""
        panel.set(forget_bias=1.0, T=2)
    assert compiles.count == 0
    assert isinstance(panel.fig, Figure)
    assert min_text_px(panel.fig) >= MIN_TEXT_PX


def test_diag_path_log_norm_closed_form():
    rng = np.random.default_rng(0)
    f = rng.uniform(0.2, 0.99, size=(30, 4))
    got = ch10._diag_path_log_norm(np.log(f))
    for k in (0, 10, 29, 30):
        expected = np.log(np.linalg.norm(np.prod(f[k:], axis=0)))
        assert got[k] == pytest.approx(expected, rel=1e-12)


def test_adding_params_start_at_the_constant_predictor_with_the_lstm_forget_bias():
    n = ch10.CELL_HIDDEN["lstm"]
    p = ch10.adding_params("lstm", 0)
    assert ch10.ADDING_FORGET_BIAS == 3.0
    np.testing.assert_array_equal(p["b"][n:2 * n], ch10.ADDING_FORGET_BIAS)   # forget block (i, f, g, o)
    np.testing.assert_array_equal(np.delete(p["b"], np.s_[n:2 * n]), 0.0)
    np.testing.assert_array_equal(p["W"], vgplib.init_lstm(jax.random.key(0), 2, n, forget_bias=3.0)["W"])
    assert np.all(p["v"] == 0) and p["c"] == 1.0
    assert [ch10.n_parameters(c) for c in ch10.CELLS] == [321, 361, 334]


def test_truncated_gradient_is_the_sum_of_the_last_k_terms():
    params = ch10.adding_params("gru", 4)
    params = dict(params, v=jnp.linspace(-1, 1, ch10.CELL_HIDDEN["gru"]))
    task = vgplib.adding_problem(jax.random.key(5), 12, 6)
    g = 2.0 * (vgplib.adding_predict(params, task.inputs, cell="gru") - task.targets)[:, None] \
        * params["v"][None, :] / 6
    terms = vgplib.bptt_contributions({k: params[k] for k in ("W", "U", "b")}, task.inputs,
                                      grad_output=g, cell="gru")
    for k in (4, 12):
        stop = ch10.truncated_gradient(params, task.inputs, task.targets, k, "gru")
        for key in ("W", "U", "b"):
            np.testing.assert_allclose(stop[key], terms[key][12 - k:].sum(0), rtol=1e-4, atol=1e-7)


def test_figures_are_readable():
    prod = ch10.Products(np.arange(300, -1, -1), *[{} for _ in range(8)])
    for b in ch10.FORGET_BIASES:
        for d in (prod.lstm_cc, prod.lstm_pred, prod.gru, prod.gru_pred):
            d[b] = -0.1 * (1 + b) * prod.lags
    for rho in ch10.RHOS:
        prod.rnn[rho] = -0.5 * prod.lags
    figs = [ch10.make_products_figure(prod)]
    S, T = 2, 20
    run = ch10.GatedRun(T, (0, 1), (50, 100), {}, np.linspace(10, 20, 6), {}, {}, {}, {}, {})
    for c in ch10.CELLS:
        run.lag_ratio[c] = np.full((S, 5), 0.5)
        run.history[c] = np.full((100, S), 0.5)
        run.contrib[c] = np.zeros((2, S, T))
    figs += [ch10.make_adding_figure(run), ch10.make_contrib_figure(run)]
    trunc = {c: {"rel": np.full((S, len(ch10.TRUNCATIONS)), 0.1)} for c in ch10.CELLS}
    figs.append(ch10.make_truncation_figure(trunc))
    for fig in figs:
        assert isinstance(fig, Figure) and min_text_px(fig) >= MIN_TEXT_PX


def _said(fn, *args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert fn(*args) is None
    return out.getvalue()


def test_exercise_checks():
    # by hand: ln(1e-3) / ln(sigmoid(3)) = 142.2, so 143 steps; sigmoid(2) = 0.8808
    assert math.log(1e-3) / math.log(1 / (1 + math.exp(-3))) == pytest.approx(142.17, abs=0.01)
    assert _said(ch10.check_carousel_steps, 143).startswith("Correct")
    assert _said(ch10.check_carousel_steps, 142).startswith("Not yet")
    assert _said(ch10.check_gru_factor, 0.8808).startswith("Correct")
    assert _said(ch10.check_gru_factor, 0.5).startswith("Not yet")
    assert _said(ch10.check_carousel_steps).startswith("No answer yet")
    assert _said(ch10.check_gru_factor).startswith("No answer yet")
    with pytest.raises(TypeError, match="steps"):
        ch10.check_carousel_steps("143")


@pytest.mark.parametrize("call,error", [
    (lambda: ch10.panel_maps(1.0, 0), ValueError),
    (lambda: ch10.panel_maps(1.0, ch10.PANEL_T + 1), ValueError),
    (lambda: ch10.panel_maps("1", 10), TypeError),
    (lambda: ch10.panel_maps(float("nan"), 10), ValueError),
    (lambda: ch10.carousel_products(T=100), ValueError),
    (lambda: ch10.gated_adding_experiment(checkpoints=(75,)), ValueError),
])
def test_bad_input(call, error):
    with pytest.raises(error):
        call()
