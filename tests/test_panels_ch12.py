"""Chapter 12's panel module: one optimizer step per layer, the flush thresholds, figures, ES helpers, checks.

Oracles: optax's own update applied op by op outside jit, the float64 formulas of Kingma & Ba's Adam and
optax's RMSprop, jax.grad of the threshold network, the closed-form flush thresholds.
"""

import io
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import run_worked_solutions, statuses_without_compiling
from PIL import Image

from vgplib.panels import ch12
from vgplib.plots import MIN_TEXT_PX, min_text_px
from vgplib.widgets import LivePanel


@pytest.fixture(scope="module")
def setup():
    return ch12.deep_sigmoid_setup(0)


@pytest.mark.parametrize(("optimizer", "lr", "eps"), [("sgd", 0.1, 1e-8), ("adam", 1e-3, 1e-8),
                                                       ("rmsprop", 1e-3, 1e-8), ("adam", 1e-3, 1e-14)])
def test_one_step_equals_optax_and_the_formula(setup, optimizer, lr, eps):
    params, grads, _ = setup
    prof = ch12.one_step_profile(optimizer, lr, eps)
    opt = {"sgd": optax.sgd(lr), "adam": optax.adam(lr, eps=eps), "rmsprop": optax.rmsprop(lr, eps=eps)}[optimizer]
    updates, _ = opt.update(grads, opt.init(params), params)  # op by op, no jit
    for l, (p, u) in enumerate(zip(params, updates)):
        W, uW = np.asarray(p["W"]), np.asarray(u["W"])
        # float32 norms of 4096 entries, summed in different orders (stable_norm scales first): 1e-3
        np.testing.assert_allclose(prof["requested"][l], np.linalg.norm(uW) / np.linalg.norm(W), rtol=1e-3)
        changed = (W + uW) != W  # float32 rounding, as optax.apply_updates
        assert prof["moved"][l] == pytest.approx(changed.mean(), abs=2e-3)
    # the float64 formula (flush included) agrees with optax's float32 update in every layer
    np.testing.assert_allclose(prof["predicted"], prof["requested"], rtol=2e-2)
    # a layer changes in float32 exactly when one of its weights moves (a rounded change may exceed the
    # requested one: a weight moves by a whole ulp or not at all)
    assert np.array_equal(prof["realized"] > 0, prof["moved"] > 0)


def test_sgd_freezes_the_first_layers_exactly_and_adam_fewer(setup):
    sgd = ch12.one_step_profile("sgd", 0.1, 1e-8)
    adam = ch12.one_step_profile("adam", 1e-3, 1e-8)
    assert np.all(sgd["realized"][:8] == 0) and sgd["realized"][-1] > 1e-3
    assert np.sum(adam["realized"] == 0) < np.sum(sgd["realized"] == 0)
    tiny_eps = ch12.one_step_profile("adam", 1e-3, 1e-16)
    assert np.all(tiny_eps["realized"] > 0)


def test_flush_thresholds():
    tiny = float(np.finfo(np.float32).tiny)
    assert ch12.flush_threshold(0.999) == pytest.approx(math.sqrt(tiny / 1e-3))
    assert ch12.flush_threshold(0.0) == pytest.approx(math.sqrt(tiny))
    assert float(jnp.float32(1e-3) * jnp.float32(3e-18) ** 2) == 0.0  # flushed (JAX on CPU)
    for opt in ("adam", "rmsprop"):
        got = ch12.measured_flush_threshold(opt)
        assert math.sqrt(tiny) / 1.05 < got < ch12.flush_threshold(0.999) * 1.05, (opt, got)
    assert ch12.measured_flush_threshold("adam", jit=False) == pytest.approx(ch12.flush_threshold(0.999), rel=0.03)
    assert ch12.measured_flush_threshold("rmsprop") == pytest.approx(ch12.flush_threshold(0.9), rel=0.03)
    with pytest.raises(ValueError, match="decay"):
        ch12.flush_threshold(1.0)


def test_predicted_step_formulas_and_bad_input():
    g = np.array([1e-3, 1e-12])
    np.testing.assert_allclose(ch12.predicted_first_step(g, "adam", 1e-3, 1e-8), 1e-3 * g / (g + 1e-8))
    np.testing.assert_allclose(ch12.predicted_first_step(g, "rmsprop", 1e-3, 1e-8),
                               1e-3 * g / np.sqrt(0.1 * g**2 + 1e-8))
    np.testing.assert_allclose(ch12.predicted_first_step(g, "sgd", 0.1, 1.0), 0.1 * g)
    with pytest.raises(ValueError, match="optimizer"):
        ch12.predicted_first_step(g, "adagrad", 1e-3, 1e-8)
    with pytest.raises(ValueError, match="lr"):
        ch12.one_step_profile("adam", -1.0, 1e-8)


def test_panel_never_compiles_and_reports_frozen_layers():
    panel = ch12.step_panel()
    sgd, adam, rms = statuses_without_compiling(
        panel, {"optimizer": "sgd", "log10_lr": -1.0, "log10_eps": -8.0},
        {"optimizer": "adam", "log10_lr": ch12.LOG_LR_MIN, "log10_eps": ch12.LOG_EPS_MIN},
        {"optimizer": "rmsprop", "log10_lr": ch12.LOG_LR_MAX, "log10_eps": ch12.LOG_EPS_MAX})
    assert sgd == "zero change: float32 leaves layers 1-8 exactly unchanged", sgd
    assert adam == "" and rms.startswith("zero change: float32 leaves"), (adam, rms)
    assert min_text_px(panel.fig) >= MIN_TEXT_PX


def test_live_figure_freezes_the_frame_and_draws_the_same_pixels():
    """The live panel draws its fixed frame as pixels, yet its PNG equals the plain figure's (same dpi)."""
    live = ch12.step_panel()
    assert live.make_figure is ch12.make_step_figure_live
    ax = live.fig.axes[0]
    assert not ax.yaxis.get_visible() and not ax.xaxis.get_visible() and live.fig.images
    plain = LivePanel(ch12.make_step_figure, ch12.step_controls(), freeze_legend=True)
    assert ax.get_ylim() == plain.fig.axes[0].get_ylim()
    for move in ({"optimizer": "sgd", "log10_lr": -1.0, "log10_eps": -8.0},
                 {"optimizer": "rmsprop", "log10_lr": ch12.LOG_LR_MAX, "log10_eps": ch12.LOG_EPS_MIN}):
        assert live.set(**move) == plain.set(**move)
        a, b = (np.asarray(Image.open(io.BytesIO(bytes(p.image.value))).convert("RGB"), np.int16) for p in (live, plain))
        assert a.shape == b.shape
        assert np.sum(np.abs(a - b).max(-1) > 8) <= 20  # antialiasing at the frame's edges only


def test_figures_are_readable():
    rng = np.random.default_rng(0)
    changes = {"a": 10.0 ** rng.uniform(-15, -1, (3, ch12.DEPTH)), "b": np.zeros((3, ch12.DEPTH))}
    fig = ch12.layer_change_figure(changes, title="t")
    assert min_text_px(fig) >= MIN_TEXT_PX
    grads = {"random": 10.0 ** rng.uniform(-17, -1, (3, ch12.DEPTH))}
    fig = ch12.pretraining_figure(grads, {"random": rng.uniform(0, 2.3, (6, 3))})
    assert min_text_px(fig) >= MIN_TEXT_PX
    ratios = {"curriculum": rng.uniform(0.5, 1.0, 8), "control": np.array([0.2, 0.3, 1.0, 1.3])}
    fig = ch12.curriculum_figure(ratios)
    assert min_text_px(fig) >= MIN_TEXT_PX
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["curriculum", "control"]
    assert len(ax.lines) == 4 and ax.get_xlim()[1] > 1.3  # one row of dots per arm, the 0.5 and 1 lines


def test_threshold_network_has_exactly_zero_hidden_gradients():
    p = ch12.init_threshold_net(jax.random.PRNGKey(0), 5)
    x = jax.random.uniform(jax.random.PRNGKey(1), (7, 64))
    y = jnp.arange(7) % 10
    g = jax.grad(ch12.threshold_loss)(p, x, y)
    assert float(jnp.abs(g["W"]).max()) == 0.0 and float(jnp.abs(g["b"]).max()) == 0.0
    assert float(jnp.abs(g["V"]).max()) > 0
    h = (np.asarray(x) @ np.asarray(p["W"]).T + np.asarray(p["b"]) > 0).astype(np.float32)
    logits = h @ np.asarray(p["V"]).T + np.asarray(p["c"])
    ref = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(7), np.asarray(y)])
    assert float(ch12.threshold_loss(p, x, y)) == pytest.approx(ref, rel=1e-5)
    assert 0 <= float(ch12.threshold_accuracy(p, x, y)) <= 1
    with pytest.raises(ValueError, match="n_hidden"):
        ch12.init_threshold_net(jax.random.PRNGKey(0), 0)


def test_checkers(capsys):
    assert ch12.check_flush_threshold(None) is False
    assert ch12.check_flush_threshold(ch12.flush_threshold(0.9)) is True
    assert ch12.check_flush_threshold(ch12.flush_threshold(0.999)) is False
    assert ch12.check_es_evaluations(None) is False
    assert ch12.check_es_evaluations(6400) is True
    assert ch12.check_es_cosine(math.sqrt(32 / 1031)) is True
    assert ch12.check_es_cosine(0.5) is False
    out = capsys.readouterr().out
    assert out.count("No answer yet") == 2 and out.count("Correct") == 3


def test_es_cost_and_population_checks(capsys):
    # the cost: 6,400 evaluations / 3 per gradient; the population: cos^2 = M / (M + d - 1) = 1/4 at d = 1000,
    # checked against the chapter's own cosine formula (check_es_cosine's reference) at M = 333 and 332
    assert ch12.check_es_gradient_steps(6400 / 3) and ch12.check_es_gradient_steps(2100)
    assert not ch12.check_es_gradient_steps(19200) and not ch12.check_es_gradient_steps(6400)
    assert math.sqrt(333 / (333 + 999)) >= 0.5 > math.sqrt(332 / (332 + 999))
    assert ch12.check_es_population(666)
    assert not ch12.check_es_population(333) and not ch12.check_es_population(664)
    assert not ch12.check_es_gradient_steps(None) and not ch12.check_es_population(None)
    out = capsys.readouterr().out
    assert out.count("Correct: ") == 3 and out.count("Not yet: ") == 4 and out.count("No answer yet") == 2
    assert "divide, do not multiply" in out and "number of pairs M" in out
    with pytest.raises(TypeError, match="steps"):
        ch12.check_es_gradient_steps("2100")
    with pytest.raises(TypeError, match="population"):
        ch12.check_es_population(True)


def test_worked_solutions_pass_their_checks():
    runs = run_worked_solutions("ch12_optimizers.ipynb", {"ch12": ch12, "math": math, "np": np})
    assert [label for label, _ in runs] == ["ch12-ex-flush", "ch12-ex-evals", "ch12-ex-cosine"]
    assert [out.count("Correct: ") for _, out in runs] == [1, 2, 2]
    assert all("Not yet" not in out for _, out in runs)
