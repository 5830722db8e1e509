"""Chapter 8's panel module: the panel's exact batch gradients, its theory numbers, the experiments' helpers,
figures, exercise checks and bad input.

Oracles: vgplib.batch_gradient_norms on the truncated network (unmasked, per batch size),
vgplib.normalized_gradient_growth / vgplib.chi1, vgplib.mlp_loss_fn on the unstacked layers.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import run_worked_solutions
from matplotlib.figure import Figure

import vgplib
from vgplib.panels import ch08
from vgplib.plots import MIN_TEXT_PX, min_text_px
from vgplib.widgets import count_compiles


@pytest.mark.parametrize(("activation", "norm", "batch", "depth"),
                         [("relu", "batch", 5, 4), ("tanh", "layer", 9, 3), ("linear", "none", 4, 2)])
def test_profile_equals_the_unmasked_library_sweep(activation, norm, batch, depth):
    prof = ch08.gradient_profile(activation, norm, batch, depth)
    Z, X, G = ch08.panel_data()
    s = ch08.SIGMA_W[activation]
    params = [{"W": s * Z[l], "b": jnp.zeros(ch08.PANEL_WIDTH)} for l in range(depth)]
    ref = vgplib.batch_gradient_norms(params, X[:batch], G[:batch], activation,
                                      norm=None if norm == "none" else norm)
    np.testing.assert_allclose(prof["measured"], (np.asarray(ref) - float(ref[-1])) / math.log(10), atol=2e-5)
    lam = ch08.growth_factor(activation, norm, batch)
    np.testing.assert_allclose(prof["theory"], 0.5 * (depth - np.arange(depth + 1)) * math.log10(lam), atol=1e-12)


def test_theory_numbers_are_the_library_numbers():
    assert ch08.growth_factor("relu", "batch", 16) == pytest.approx(
        vgplib.normalized_gradient_growth("relu", "batch", 16), rel=1e-12)
    assert ch08.growth_factor("tanh", "layer", 7) == vgplib.normalized_gradient_growth("tanh", "layer")
    assert ch08.growth_factor("tanh", "none", 7) == pytest.approx(vgplib.chi1("tanh", 1.0), rel=1e-12)
    assert ch08.growth_factor("relu", "none", 7) == pytest.approx(1.0, rel=1e-9)  # sigma_w^2 / 2 at sqrt 2


def test_panel_never_compiles_after_the_first_draw_and_its_figure_is_readable():
    panel = ch08.gradient_panel()
    with count_compiles() as c:
        for norm in ch08.PANEL_NORMS:
            assert panel.set(batch=4, depth=50, norm=norm, activation="relu") == ""
            assert panel.set(batch=64, depth=1, norm=norm, activation="tanh") == ""
    assert c.count == 0, c.names
    assert min_text_px(panel.fig) >= MIN_TEXT_PX
    fig, update = ch08.make_gradient_figure()
    update(batch=8, depth=20, norm="batch", activation="linear")
    assert min_text_px(fig, dpi=100) >= MIN_TEXT_PX  # the scrubber's frames are drawn at dpi 100
    # the live panel draws its fixed frame (ticks, labels, grid, legend) once, as pixels behind the
    # data; the scrubber's figure stays plain
    assert panel.make_figure is ch08.make_gradient_figure_live
    assert panel.fig.images and not fig.images
    assert not panel.fig.axes[0].yaxis.get_visible() and fig.axes[0].yaxis.get_visible()


def test_growth_experiment_is_float64_and_matches_batch_gradient_norms():
    # the experiment draws and runs in float64; oracle: the unmasked float64 sweep of
    # vgplib.batch_gradient_norms on the same draws (seed 1, batch 5 of 7), slope over l = 0..depth - skip_top
    width, depth, skip_top, batches = 8, 6, 2, (5, 7)
    r = ch08.growth_experiment(activations=("tanh",), batches=batches, norms=("batch",), width=width,
                               depth=depth, seeds=2, skip_top=skip_top)
    got = r[("tanh", "batch")]
    assert got.dtype == np.float64 and got.shape == (2, 2)
    with jax.enable_x64(True):
        kz, kx, kg = jax.random.split(jax.random.split(jax.random.PRNGKey(100), 2)[1], 3)
        W = jax.random.normal(kz, (depth, width, width), jnp.float64) / math.sqrt(width)
        X = jax.random.normal(kx, (7, width), jnp.float64)[:5]
        G = jax.random.normal(kg, (7, width), jnp.float64)[:5]
        params = [{"W": W[l], "b": jnp.zeros(width, jnp.float64)} for l in range(depth)]
        logs = np.asarray(vgplib.batch_gradient_norms(params, X, G, "tanh", norm="batch", eps=ch08.EPS))
    assert logs.dtype == np.float64
    layers = np.arange(depth - skip_top + 1)
    want = math.exp(-2.0 * np.polyfit(layers, logs[: layers.size], 1)[0])
    assert abs(got[1, 0] / want - 1) < 1e-12, (got, want)


def test_growth_experiment_and_figures():
    r = ch08.growth_experiment(activations=("linear",), batches=(4, 8), norms=("batch",), width=16, depth=8,
                               seeds=2, skip_top=2)
    assert r[("linear", "batch")].shape == (2, 2) and np.all(r[("linear", "batch")] > 0)
    fig = ch08.growth_figure(r)
    assert isinstance(fig, Figure) and min_text_px(fig) >= MIN_TEXT_PX
    X = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
    layer = [{"W": jnp.eye(4), "b": jnp.zeros(4)}]
    Jb = vgplib.batch_layer_jacobians(layer, X, "tanh", norm="batch")[0]
    Jl = vgplib.batch_layer_jacobians(layer, X, "tanh", norm="layer")[0]
    fig = ch08.jacobian_figure(Jb, Jl)
    assert isinstance(fig, Figure) and min_text_px(fig) >= MIN_TEXT_PX
    changes = {"a": np.array([[0.0, 1e-3, 0.5]]), "b": np.array([[0.1, 0.2, 0.3]])}
    fig = ch08.training_figure(np.arange(3), {"a": np.ones((3, 1)), "b": np.ones((3, 1))}, changes)
    assert isinstance(fig, Figure) and min_text_px(fig) >= MIN_TEXT_PX
    html = ch08.gradient_scrubber("relu", "batch", depth=3, batches=(4, 8)).data
    assert 'alt="Gradient norm against layer (log scale) in a relu network with batch normalization' in html


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_scanned_loss_equals_mlp_loss_fn(norm):
    params = vgplib.init_mlp(jax.random.PRNGKey(0), [8, 8, 8, 8, 3], init="standard")
    x = jax.random.uniform(jax.random.PRNGKey(1), (6, 8))
    y = jnp.array([0, 1, 2, 0, 1, 2])
    stacked = ch08.stack_classifier(params)
    norm_arg = None if norm == "none" else norm
    loss_ref = vgplib.mlp_loss_fn("sigmoid", norm=norm_arg) if norm_arg else vgplib.mlp_loss_fn("sigmoid")
    ref = jax.jit(loss_ref)(params, x, y)
    np.testing.assert_allclose(jax.jit(ch08.scanned_loss_fn("sigmoid", norm))(stacked, x, y), ref, rtol=1e-6)
    acc_ref = jax.jit(lambda p: vgplib.mlp_forward(p, x, "sigmoid", linear_output=True, norm=norm_arg))(params)
    assert ch08.classifier_accuracy(stacked, x, y, "sigmoid", norm) == pytest.approx(
        float(jnp.mean(jnp.argmax(acc_ref, -1) == y)))
    moved = jax.tree.map(lambda v: v * 1.5, stacked)
    np.testing.assert_allclose(ch08.weight_change(moved, stacked), 0.5, rtol=1e-6)
    batch2 = jax.tree.map(lambda *v: jnp.stack(v), stacked, moved)
    assert ch08.weight_change(batch2, batch2).shape == (2, 4)


def test_exercise_checks(capsys):
    assert ch08.check_bn_rank(8)
    assert not ch08.check_bn_rank(9)
    assert not ch08.check_bn_rank(None)
    assert ch08.check_relu_limit(math.pi / (math.pi - 1))
    assert not ch08.check_relu_limit(1.0)
    assert not ch08.check_relu_limit(None)
    assert ch08.check_linear_bn_factor(8 / 7)
    assert not ch08.check_linear_bn_factor(1.0)
    assert not ch08.check_linear_bn_factor(None)
    out = capsys.readouterr().out
    assert out.count("Correct") == 3 and out.count("No answer yet") == 3
    with jax.enable_x64(True):  # the rank the first check expects
        a = jax.random.normal(jax.random.PRNGKey(3), (10, 1), jnp.float64)
        assert np.linalg.matrix_rank(np.asarray(vgplib.batch_norm_jacobian(a, eps=0.0)[0])) == 8


def test_exercise_expected_answers_are_computed():
    """The checks' answers come from autodiff / quadrature; they agree with the closed forms."""
    assert ch08.expected_bn_rank() == 10 - 2
    assert ch08.expected_relu_limit() == pytest.approx(math.pi / (math.pi - 1), rel=1e-9)
    assert ch08.expected_relu_decades() == pytest.approx(25 * math.log10(math.pi / (math.pi - 1)), rel=1e-9)
    assert ch08.expected_linear_bn_factor() == pytest.approx(8 / 7, rel=1e-12)


def test_worked_solutions_pass_their_checks_and_slips_do_not(capsys):
    runs = run_worked_solutions("ch08_normalization.ipynb", {"ch08": ch08, "math": math, "np": np, "jax": jax,
                                                             "jnp": jnp, "vgplib": vgplib})
    assert [label for label, _ in runs] == ["ch8-ex-rank", "ch8-ex-relu", "ch8-ex-linear"]
    assert [out.count("Correct: ") for _, out in runs] == [1, 2, 1]
    assert all("Not yet" not in out for _, out in runs)
    assert runs[0][1].splitlines()[-1] == "8"        # the rank confirmed numerically, as the solution says
    assert ch08.check_relu_decades(4.2)              # the rounded value of the prose
    assert not ch08.check_relu_decades(8.3)          # the growth of ||g||^2
    assert not ch08.check_relu_decades(4.0)
    assert not ch08.check_relu_decades(None)
    out = capsys.readouterr().out
    assert out.count("Correct: ") == 1 and out.count("Not yet: ") == 2 and out.count("No answer yet: ") == 1
    with pytest.raises(TypeError, match="decades"):
        ch08.check_relu_decades("4.2")


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        ch08.gradient_profile("gelu", "batch", 8, 5)
    with pytest.raises(ValueError, match="norm"):
        ch08.gradient_profile("relu", "group", 8, 5)
    with pytest.raises(ValueError, match="batch"):
        ch08.gradient_profile("relu", "batch", 3, 5)
    with pytest.raises(ValueError, match="depth"):
        ch08.gradient_profile("relu", "batch", 8, ch08.MAX_DEPTH + 1)
    with pytest.raises(TypeError, match="depth"):
        ch08.gradient_profile("relu", "batch", 8, 2.5)
    with pytest.raises(ValueError, match="batches"):
        ch08.growth_experiment(batches=(2, 8))
    with pytest.raises(ValueError, match="skip_top"):
        ch08.growth_experiment(depth=8, skip_top=7)
    with pytest.raises(ValueError, match="norm"):
        ch08.scanned_loss_fn("sigmoid", "group")
