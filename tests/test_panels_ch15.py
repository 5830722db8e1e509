"""Chapter 15's figures (text large enough in the book, one line per seed), exercise self-checks, the
recorded runs (against vgplib.train_many, evaluate_many and layer_gradient_norms) and the diagnosis panel."""

import jax
import numpy as np
import optax
import pytest
from _helpers import statuses_without_compiling

import vgplib
from vgplib.panels import ch15
from vgplib.plots import MIN_TEXT_PX, min_text_px


def test_figures_have_readable_text():
    steps = 50 * np.arange(4)
    runs = {"a, x": (np.ones((4, 3)), np.ones((4, 3))), "b, y": (np.ones((4, 3)), 2 * np.ones((4, 3)))}
    profiles = {"a, x": np.zeros(3), "b, y": np.linspace(-8, 0, 9)}
    fig = ch15.overfit_figure(steps, runs, profiles)
    assert min_text_px(fig) >= MIN_TEXT_PX
    assert len(fig.axes[0].lines) == 3 + 3 + 2  # 3 seeds train, 3 test, 2 legend handles
    lam = np.linspace(-0.2, 1.0, 50)
    fig = ch15.saddle_figure(np.arange(5), np.ones((5, 3)), 2, {"stall": lam, "end": lam})
    assert min_text_px(fig) >= MIN_TEXT_PX
    fig = ch15.learning_curve_figure([25, 50, 100], {"64": np.full((2, 3), 0.1), "256": np.full((2, 3), 0.2)})
    assert min_text_px(fig) >= MIN_TEXT_PX


def test_check_saddle_drop(capsys):
    assert not ch15.check_saddle_drop(None)
    assert "No answer yet" in capsys.readouterr().out
    assert ch15.check_saddle_drop(0.5 * -0.24 * 0.25)
    assert not ch15.check_saddle_drop(0.03)  # wrong sign
    assert not ch15.check_saddle_drop(-0.06)  # missing 1/2
    assert not ch15.check_saddle_drop(1.0)


def test_check_samples_needed(capsys):
    assert not ch15.check_samples_needed(None)
    assert "No answer yet" in capsys.readouterr().out
    assert ch15.check_samples_needed(1600)
    assert not ch15.check_samples_needed(800)
    assert not ch15.check_samples_needed(3)


# --------------------------------------------------------------------------- recorded runs and the panel

def _small_problem():
    d = vgplib.load_digits()
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    params = jax.vmap(lambda k: vgplib.init_mlp(k, [64, 12, 12, 10], init="glorot_normal"))(keys)
    return vgplib.mlp_loss_fn("tanh"), params, (d.x_train[:60], d.y_train[:60]), (d.x_test[:50], d.y_test[:50])


@pytest.fixture(scope="module")
def small_runs():
    loss, params, train, test = _small_problem()
    return {"adam": ch15.record_run(loss, params, train, test, optax.adam(1e-2), steps=40, every=10),
            "sgd": ch15.record_run(loss, params, train, test, optax.sgd(0.5), steps=40, every=10)}


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_record_run_is_one_train_many_run_measured_by_the_library(small_runs, opt):
    """Losses and final parameters = one vgplib.train_many run (the optimizer state is never restarted);
    test losses = vgplib.evaluate_many, gradient norms = vgplib.layer_gradient_norms per model, both
    on the recorded snapshots."""
    loss, params, (x, y), (xt, yt) = _small_problem()
    run = small_runs[opt]
    optimizer = optax.adam(1e-2) if opt == "adam" else optax.sgd(0.5)
    trained, losses = vgplib.train_many(loss, params, x, y, optimizer, steps=40, record_every=10)
    np.testing.assert_array_equal(run.steps, [0, 10, 20, 30, 40])
    assert run.train.shape == run.test.shape == (5, 2) and run.grad_norms.shape == (5, 2, 3)
    np.testing.assert_allclose(run.train, losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(run.final), jax.tree.leaves(trained)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    for i, step in enumerate(run.steps):
        snapshot = run.at(int(step))
        np.testing.assert_allclose(run.test[i], vgplib.evaluate_many(loss, snapshot, xt, yt), rtol=1e-5)
        np.testing.assert_allclose(run.train[i], vgplib.evaluate_many(loss, snapshot, x, y), rtol=1e-5)
        for m in range(2):
            one = jax.tree.map(lambda a, m=m: a[m], snapshot)
            np.testing.assert_allclose(run.grad_norms[i, m], vgplib.layer_gradient_norms(loss, one, x, y), rtol=1e-5)
    assert run.train[-1].max() < run.train[0].min()  # it trained


def test_record_run_starts_from_the_given_parameters(small_runs):
    _, params, _, _ = _small_problem()
    for a, b in zip(jax.tree.leaves(small_runs["sgd"].at(0)), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_run_at_rejects_unrecorded_steps(small_runs):
    run = small_runs["sgd"]
    for a, b in zip(jax.tree.leaves(run.final), jax.tree.leaves(run.at(40))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for step in (5, -10, 50):
        with pytest.raises(ValueError, match="step must be one of the recorded steps"):
            run.at(step)
    for step in (10.0, True, "10", None):
        with pytest.raises(TypeError, match="step"):
            run.at(step)


@pytest.mark.parametrize("change, error, match", [
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": 35}, ValueError, "multiple"),
    ({"every": True}, ValueError, "every"),
    ({"every": 2.5}, ValueError, "every"),
    ({"loss_fn": "tanh"}, TypeError, "loss_fn"),
    ({"optimizer": 0.1}, TypeError, "optimizer"),
    ({"train": "digits"}, TypeError, "train"),
    ({"test": (np.ones((3, 64)),)}, TypeError, "test"),
    ({"train": (np.ones((3, 64), np.float32), np.zeros(4, np.int32))}, ValueError, "rows"),
    ({"params_batch": [{"W": np.ones((12, 64))}]}, TypeError, "params_batch"),
    ({"loss_fn": lambda p, x, y: x.sum(axis=1)}, ValueError, "scalar"),
])
def test_record_run_rejects_bad_input(change, error, match):
    loss, params, train, test = _small_problem()
    kwargs = {"loss_fn": loss, "params_batch": params, "train": train, "test": test,
              "optimizer": optax.sgd(0.1), "steps": 20, "every": 10, **change}
    with pytest.raises(error, match=match):
        ch15.record_run(**kwargs)


def test_layer_spread():
    assert ch15.layer_spread(np.array([1e-7, 1e-3, 0.1])) == pytest.approx(6.0, rel=1e-12)
    assert ch15.layer_spread(np.array([2.0])) == 0.0
    g = np.array([3e-5, 2e-2, 7e-1, 4e-4])
    assert ch15.layer_spread(g) == pytest.approx(np.log10(7e-1) - np.log10(3e-5), rel=1e-12)
    assert np.isnan(ch15.layer_spread(np.array([0.0, 1.0])))  # a layer with exactly zero gradient
    assert np.isnan(ch15.layer_spread(np.array([np.inf, 1.0])))
    for bad in (np.ones((2, 3)), np.array([]), np.array([-1.0, 1.0])):
        with pytest.raises(ValueError, match="norms"):
            ch15.layer_spread(bad)


def _fake_run(grad_norms, steps=(0, 10, 20)):
    r = len(steps)
    grad_norms = np.asarray(grad_norms, np.float64)
    return ch15.Run(steps=np.asarray(steps), train=np.linspace(2.3, 0.1, r)[:, None],
                    test=np.linspace(2.3, 0.5, r)[:, None], grad_norms=grad_norms, params=None)


def test_figure_shows_the_recorded_numbers_and_names_an_exact_zero():
    norms = np.array([[[1e-6, 1e-3, 1.0]], [[1e-5, 1e-3, 1e-1]], [[0.0, 1e-3, 1e-2]]])
    runs = {"vanishes": _fake_run(norms), "flat": _fake_run(np.full((3, 1, 2), 0.5))}
    fig, update = ch15.make_diagnosis_figure(runs)
    assert min_text_px(fig) >= MIN_TEXT_PX
    profile, bars = fig.axes[0].lines, fig.axes[1].patches
    assert update(10) == ""
    np.testing.assert_allclose(profile[0].get_ydata(), [1e-5, 1e-3, 1e-1])
    np.testing.assert_allclose([b.get_height() for b in bars], [4.0, 0.0], atol=1e-12)
    status = update(20)
    assert status.startswith("zero gradient") and "vanishes, layer 1" in status
    assert np.isnan(profile[0].get_ydata()[0]) and bars[0].get_height() == 0.0


def test_figure_and_panel_reject_bad_input():
    runs = {"a": _fake_run(np.ones((3, 1, 2)))}
    _, update = ch15.make_diagnosis_figure(runs)
    for step in (5, 30, 10.0, True):
        with pytest.raises(ValueError, match="step"):
            update(step)
    with pytest.raises(ValueError, match="model"):
        ch15.make_diagnosis_figure(runs, model=1)
    with pytest.raises(TypeError, match="runs"):
        ch15.diagnosis_panel([runs["a"]])
    with pytest.raises(TypeError, match="Run"):
        ch15.diagnosis_panel({"a": (np.ones(3), np.ones(3))})
    with pytest.raises(ValueError, match="1 to"):
        ch15.diagnosis_panel({str(i): runs["a"] for i in range(len(ch15.RUN_COLORS) + 1)})
    with pytest.raises(ValueError, match="share"):
        ch15.diagnosis_panel({"a": runs["a"], "b": _fake_run(np.ones((3, 1, 2)), steps=(0, 5, 15))})
    with pytest.raises(ValueError, match="values"):
        ch15.diagnosis_scrubber(runs, values=(0, 15))
    with pytest.raises(TypeError, match="values"):
        ch15.diagnosis_scrubber(runs, values=10)


def test_panel_moves_over_every_step_without_compiling(small_runs):
    panel = ch15.diagnosis_panel(small_runs)
    assert min_text_px(panel.fig) >= MIN_TEXT_PX
    options = list(panel.controls["step"].options)
    assert options == [0, 10, 20, 30, 40]
    statuses = statuses_without_compiling(panel, *({"step": s} for s in options + options[::-1]))
    assert statuses == [""] * 10  # no layer's gradient is exactly zero in these runs
    assert panel.fig.axes[0].get_title().endswith("step 0")


def test_scrubber_renders_one_frame_per_step(small_runs):
    html = ch15.diagnosis_scrubber(small_runs, values=(0, 20, 40)).data
    assert html.count("data:image/png;base64") >= 3 and "alt=" in html and "spread over the layers" in html
    html = ch15.diagnosis_scrubber(small_runs, values=(0, 40), alt="A specific sentence.").data
    assert "A specific sentence." in html
