"""Chapter 14's panel module: flushed fractions against an explicit float16 backward pass, the panel, figures, exercise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import statuses_without_compiling

import vgplib
from vgplib.panels import ch14
from vgplib.plots import MIN_TEXT_PX, min_text_px


@pytest.fixture(scope="module")
def data():
    return ch14.panel_data()


def test_flushed_fraction_equals_an_explicit_float16_gradient(data):
    params, x, y, g32 = data
    # oracle: the same network with float16 parameters and inputs, differentiated directly (no scaling helper)
    p16 = jax.tree.map(lambda a: a.astype(jnp.float16), params)

    def loss16(p):
        h = x.astype(jnp.float16)
        for layer in p[:-1]:
            h = jax.nn.sigmoid(h @ layer["W"].T + layer["b"])
        logits = (h @ p[-1]["W"].T + p[-1]["b"]).astype(jnp.float32)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    g16 = jax.jit(jax.grad(loss16))(p16)
    expected = [np.mean((np.asarray(a["W"]) != 0) & (np.asarray(b["W"]) == 0)) / np.mean(np.asarray(a["W"]) != 0)
                for a, b in zip(g32, g16)]
    per, total, finite = ch14.flushed_by_scale(data, 0)
    assert finite
    np.testing.assert_allclose(per, expected, atol=1e-12)
    assert per[0] == 1.0 and total > 0.1


def test_panel_corners_and_no_compile_per_move():
    panel = ch14.flush_panel()
    statuses = statuses_without_compiling(panel, *[{"log2_scale": k} for k in (0, 8, 15, ch14.LOG2_SCALE_MAX)])
    assert statuses[0].startswith("underflow")
    assert statuses[2] == ""
    assert statuses[3].startswith("overflow")


def test_figures_text_is_readable(data):
    fig, update = ch14.make_flush_figure(data)
    update(4)
    assert min_text_px(fig) >= MIN_TEXT_PX
    hists = np.ones((2, 3, 4, 10))
    fig = ch14.histograms_figure(hists, np.linspace(-10, 0, 11), (0, 1, 2), ["a", "b"])
    assert min_text_px(fig) >= MIN_TEXT_PX
    fig = ch14.precision_figure({"a": np.ones((2, 5))}, np.ones((2, 5)))
    assert min_text_px(fig) >= MIN_TEXT_PX


def test_reports_figure_colours_the_verdicts():
    params = [{"W": jnp.ones((2, 2)) * s} for s in (1.0, 1e-6)]  # a tiny last layer starves the first
    rep = vgplib.gradient_report(lambda p, x: jnp.sum(jnp.tanh(x @ p[0]["W"]) @ p[1]["W"]), params, jnp.ones((1, 2)))
    fig = ch14.reports_figure({"r": rep})
    assert min_text_px(fig) >= MIN_TEXT_PX
    assert rep.layer_verdict == ["vanishing", "healthy"]


def test_check_safe_scale(capsys):
    assert ch14.smallest_safe_scale(1e-9) == 32.0
    assert np.float16(1e-9 * 32) != 0 and np.float16(1e-9 * 16) == 0
    ch14.check_safe_scale(None)
    assert capsys.readouterr().out.startswith("No answer yet")
    ch14.check_safe_scale(32)
    assert capsys.readouterr().out.startswith("Correct")
    ch14.check_safe_scale(16)
    assert capsys.readouterr().out.startswith("Not yet")
    with pytest.raises(TypeError, match="scale"):
        ch14.check_safe_scale("32")
