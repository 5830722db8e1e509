"""Chapter 3's panel module: log-space gradient profile, mean-field theory, Glorot experiment, exercise checks.

Oracles: jax.grad of the truncated network (per input), vgplib.chi1 / vgplib.length_map in float64,
jax.grad of the per-example cost with respect to the biases, materialized per-example weight gradients.
The oracles run eagerly (op by op): each is called once per shape, and compiling it with jax.jit cost
more than it saved (measured: 4.0 s against 6.4 s CPU for the profile test's 27 calls).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import layerwise_theory, statuses_without_compiling
from matplotlib.figure import Figure

import vgplib
from vgplib.panels import ch03


def _explicit_network(depth, sigma_w):
    Z, x0, u = ch03.panel_data()
    n = ch03.PANEL_WIDTH
    params = [{"W": sigma_w * Z[l] / np.sqrt(n), "b": jnp.zeros(n)} for l in range(depth)]
    return params, x0, u


@pytest.mark.parametrize("activation", ch03.PANEL_ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 6])
def test_profile_equals_jax_grad_of_the_truncated_network(activation, depth):
    sigma_w = 1.2
    params, x0, u = _explicit_network(depth, sigma_w)
    prof = ch03.gradient_profile(activation, sigma_w, depth)
    trace = vgplib.mlp_forward(params, x0, activation, return_all=True)

    def grads_at(x_l, l_params):
        def energy(x):
            return jnp.sum(vgplib.mlp_forward(l_params, x, activation) @ u)
        return jax.grad(energy)(x_l)  # rows: dE_b/dx_l (the sum decouples the inputs)

    for l in range(depth):
        g = np.asarray(grads_at(trace.post[l], params[l:]), np.float64)
        rms = np.sqrt(np.mean(np.sum(g**2, axis=-1)))
        np.testing.assert_allclose(10 ** prof["dx"][l], rms, rtol=2e-4)
    assert prof["dx"][depth] == pytest.approx(0.0, abs=1e-6)  # ||u|| = 1

    def energy_params(p, x):
        return vgplib.mlp_forward(p, x, activation) @ u

    per_input = jax.vmap(jax.grad(energy_params), in_axes=(None, 0))(params, x0)
    rms_w = [np.sqrt(np.mean(np.sum(np.asarray(g["W"], np.float64) ** 2, axis=(1, 2)))) for g in per_input]
    np.testing.assert_allclose(10 ** prof["dw"], rms_w, rtol=2e-4)


@pytest.mark.parametrize(("activation", "sigma_w"), [("sigmoid", 0.7), ("sigmoid", 2.5), ("tanh", 1.3),
                                                      ("tanh", 2.8), ("relu", 0.9), ("relu", 1.8)])
def test_theory_matches_vgplib_theory_in_float64(activation, sigma_w):
    depth = 12
    prof = ch03.gradient_profile(activation, sigma_w, depth)
    ref_chi = vgplib.chi1(activation, sigma_w, q=1.0) if activation == "relu" else vgplib.chi1(activation, sigma_w)
    assert prof["chi_star"] == pytest.approx(ref_chi, rel=1e-12)  # the library's number, not a copy
    if activation == "relu":
        assert prof["chi_star"] == pytest.approx(sigma_w**2 / 2, rel=1e-5)  # closed form
    # layer-wise: q_1 = sigma_w^2 mean(x0^2), q_{k+1} = length_map(q_k), prediction sum of log chi_1(q_k)
    _, x0, _ = ch03.panel_data()
    q1 = sigma_w**2 * float(np.mean(np.asarray(x0, np.float64) ** 2))
    expected, _, _ = layerwise_theory(activation, sigma_w, 0.0, q1, depth)
    np.testing.assert_allclose(prof["theory_layer"], expected, atol=1e-9)
    fixed = 0.5 * (depth - np.arange(depth + 1)) * math.log10(ref_chi)
    np.testing.assert_allclose(prof["theory_fixed"], fixed, atol=1e-9)


def test_panel_reports_underflow_and_never_compiles_after_the_first_draw():
    panel = ch03.gradient_panel()
    status, fine, shallow = statuses_without_compiling(
        panel, {"activation": "sigmoid", "sigma_w": 0.5, "depth": 50}, {"activation": "relu", "sigma_w": 1.4, "depth": 10},
        {"activation": "tanh", "sigma_w": 3.0, "depth": 1})
    assert status.startswith("underflow") and "1e-46" in status
    assert fine == "" and shallow == ""


GLOROT = {"width": 12, "n_hidden": 3, "batch": 5, "seed": 3}


@pytest.fixture(scope="module")
def glorot_run():
    """One small Glorot experiment, shared by the gradient check and the figure checks."""
    return ch03.glorot_experiment("standard", **GLOROT)


@pytest.fixture(scope="module")
def training_history():
    """A 4-step training history of a tiny network, shared by the figure tests."""
    params = vgplib.init_mlp(jax.random.PRNGKey(0), [4, 5, 3], init="glorot_uniform")
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (12, 4)), np.float32)
    y = (np.arange(12) % 3).astype(np.int32)
    return vgplib.train_mlp(params, x, y, vgplib_optimizer(), activation="tanh", steps=4, record_every=2)[1]


def test_glorot_experiment_against_jax_grad(glorot_run):
    width, n_hidden, batch = GLOROT["width"], GLOROT["n_hidden"], GLOROT["batch"]
    r = glorot_run
    digits = vgplib.load_digits()
    x, y = jnp.asarray(digits.x_train[:batch]), jnp.asarray(digits.y_train[:batch])
    params = vgplib.init_mlp(jax.random.PRNGKey(3), [64] + [width] * n_hidden + [10], init="standard")

    def cost(p, xb, yb):  # one example
        logits = vgplib.mlp_forward(p, xb, "tanh", linear_output=True)
        return -jax.nn.log_softmax(logits)[yb]

    g = jax.vmap(jax.grad(cost), in_axes=(None, 0, 0))(params, x, y)
    for l in range(n_hidden):  # dCost_b/db_l = dCost_b/dh_l
        np.testing.assert_allclose(r["deltas"][l], np.asarray(g[l]["b"]), rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(r["var_delta"][l], np.var(np.asarray(g[l]["b"], np.float64)), rtol=1e-3)
    for l in range(n_hidden + 1):  # per-example weight gradients, materialized
        np.testing.assert_allclose(r["var_wgrad"][l], np.var(np.asarray(g[l]["W"], np.float64)), rtol=1e-3)
    assert isinstance(ch03.glorot_histograms({"standard": r}), Figure)
    assert isinstance(ch03.glorot_variances({"standard": r}), Figure)


def test_training_figure_and_its_bad_input(training_history):
    h = training_history
    assert isinstance(ch03.training_figure({"a": h, "b": h}, per_layer=("a", "b")), Figure)
    with pytest.raises(ValueError, match="per_layer"):
        ch03.training_figure({"a": h}, per_layer=("a", "c"))


def vgplib_optimizer():
    import optax

    return optax.sgd(0.1)


def test_exercise_checks(capsys):
    assert ch03.check_backward_limit(math.sqrt(3 / 1000))
    assert not ch03.check_backward_limit(math.sqrt(3 / 64))
    assert not ch03.check_backward_limit(math.sqrt(6 / 1064))
    assert not ch03.check_backward_limit(None)
    chi = vgplib.chi1("sigmoid", 1 / math.sqrt(3))
    answer = math.ceil(2 * math.log(1e-7) / math.log(chi))
    assert chi ** (answer / 2) < 1e-7 < chi ** ((answer - 1) / 2)
    assert ch03.check_depth_to_vanish(answer)
    assert not ch03.check_depth_to_vanish(answer - 1)
    assert ch03.adam_steady_step(1e-18) == pytest.approx(1e-13, rel=1e-6)
    assert ch03.adam_steady_step(1.0) == pytest.approx(1e-3, rel=1e-6)
    assert ch03.check_adam_step(1e-13)
    assert not ch03.check_adam_step(1e-3)
    assert not ch03.check_adam_step(None)
    out = capsys.readouterr().out
    assert out.count("Correct") == 3 and out.count("No answer yet") == 2
    assert not ch03.check_depth_to_vanish(None)
    # The message names the notebook's variable, depth_answer.
    assert "set depth_answer to your integer" in capsys.readouterr().out


def test_bad_input():
    with pytest.raises(ValueError, match="activation"):
        ch03.gradient_profile("gelu", 1.0, 5)
    with pytest.raises(ValueError, match="depth"):
        ch03.gradient_profile("tanh", 1.0, ch03.MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="sigma_w"):
        ch03.gradient_profile("tanh", 0.0, 5)
    with pytest.raises(TypeError, match="depth"):
        ch03.gradient_profile("tanh", 1.0, 2.5)
    with pytest.raises(ValueError, match="init"):
        ch03.glorot_experiment("orthogonal")
    with pytest.raises(ValueError, match="width"):
        ch03.glorot_experiment("standard", width=0)
    with pytest.raises(ValueError, match="lr"):
        ch03.adam_steady_step(1e-3, lr=-1.0)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_layer_gradient_sizes_against_per_example_jax_grad(activation):
    digits = vgplib.load_digits()
    x, y = digits.x_train[:7], digits.y_train[:7]
    params = vgplib.init_mlp(jax.random.PRNGKey(2), [64, 9, 9, 9, 10], init="standard")
    sizes = ch03.layer_gradient_sizes(params, x, y, activation)

    def cost(p, xb, yb):  # one example, the loss of vgplib.train_mlp
        logits = vgplib.mlp_forward(p, xb, activation, linear_output=True)
        return -jax.nn.log_softmax(logits)[yb]

    g = jax.vmap(jax.grad(cost), in_axes=(None, 0, 0))(params, jnp.asarray(x), jnp.asarray(y))
    trace = vgplib.mlp_forward(params[:-1], jnp.asarray(x), activation, return_all=True)
    for l in range(len(params)):
        d = np.asarray(g[l]["b"], np.float64)  # dE_b/db_l = delta_l
        w = np.asarray(g[l]["W"], np.float64)
        h = np.asarray(trace[1][l], np.float64)  # h_{l-1} (layer l + 1 in the book's numbering)
        np.testing.assert_allclose(sizes["delta"][l], np.sqrt(np.mean(np.sum(d**2, -1))), rtol=1e-4)
        np.testing.assert_allclose(sizes["dW"][l], np.sqrt(np.mean(np.sum(w**2, (-2, -1)))), rtol=1e-4)
        np.testing.assert_allclose(sizes["h_prev"][l], np.sqrt(np.mean(np.sum(h**2, -1))), rtol=1e-6)
    with pytest.raises(ValueError, match="activation"):
        ch03.layer_gradient_sizes(params, x, y, "gelu")


def test_depth_profiles_figure_and_scrubber_alt():
    sigmas = {"sigmoid": 1.0, "relu": math.sqrt(2.0)}
    profiles = {a: ch03.gradient_profile(a, s, 4) for a, s in sigmas.items()}
    fig = ch03.depth_profiles_figure(profiles, sigmas)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    html = ch03.gradient_scrubber("sigmoid", depth=3, sigmas=(0.5, 1.0)).data
    assert 'alt="Gradient norm against layer (log scale) in a sigmoid network of depth 3' in html
    html = ch03.gradient_scrubber("tanh", depth=3, sigmas=(0.5, 1.0), alt="A specific sentence.").data
    assert 'alt="A specific sentence."' in html


def _smallest_text_px(fig, dpi=None):
    """Height in CSS pixels of the figure's smallest text when its PNG is shown in the book's column
    (``vgplib.plots.COLUMN_PX`` at most): ``pt * dpi / 72``, scaled down when the PNG is wider."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    dpi = fig.dpi if dpi is None else dpi
    FigureCanvasAgg(fig).draw()
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    from vgplib.plots import COLUMN_PX

    return min(sizes) * dpi / 72 * min(1.0, COLUMN_PX / (fig.get_figwidth() * dpi))


def test_figures_text_is_at_least_10_px_in_the_book(glorot_run, training_history):
    sigmas = {"sigmoid": 1.0, "tanh": 1.0, "relu": math.sqrt(2.0)}
    profiles = {a: ch03.gradient_profile(a, s, 6) for a, s in sigmas.items()}
    assert _smallest_text_px(ch03.depth_profiles_figure(profiles, sigmas)) >= 10
    r = glorot_run
    assert _smallest_text_px(ch03.glorot_histograms({"standard": r, "normalized": r})) >= 10
    assert _smallest_text_px(ch03.glorot_variances({"standard": r})) >= 10
    h = training_history
    assert _smallest_text_px(ch03.training_figure({"a": h, "b": h}, per_layer=("a", "b"))) >= 10
    fig, update = ch03.make_gradient_figure()
    update(depth=20, sigma_w=1.0, activation="tanh")
    assert _smallest_text_px(fig, dpi=100) >= 10  # the scrubber's frames are drawn at dpi 100
