"""Chapter 13's panel module: gradient against distance for attention, RNN and SSM; figures; self-checks.

Oracles: vgplib.attention_jacobian at a shorter length (causality: the T_MAX computation's row T is
the length-T answer), vgplib.backward_products of the RNN's step Jacobians, the closed form a^(T-k)
of a fixed-step diagonal SSM, and the checkers' own reference numbers.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import statuses_without_compiling
from matplotlib.figure import Figure

import vgplib
from vgplib.panels import ch13
from vgplib.plots import MIN_TEXT_PX, min_text_px


def test_distance_data_against_direct_computations():
    d = ch13.distance_data()
    X = jnp.asarray(d["xs"])
    T = 20  # attention at length T alone: the row T - 1 of the T_MAX computation
    p = vgplib.init_attention(jax.random.split(jax.random.key(0), 3)[0], ch13.WIDTH)
    J = vgplib.attention_jacobian(p, X[:T], causal=True)
    norms = np.linalg.norm(np.asarray(J[-1]).transpose(1, 0, 2).reshape(T, -1), axis=1)
    np.testing.assert_allclose(d["attention"][T - 1, :T], np.log10(norms / norms[-1]), atol=1e-4)
    # the RNN: log10 ||d h_T / d h_k|| / sqrt(n) from the plain product of step Jacobians (no underflow at T = 20)
    rnn = vgplib.init_rnn(jax.random.split(jax.random.key(0), 3)[2], ch13.WIDTH, ch13.WIDTH)
    P = vgplib.backward_products(vgplib.step_jacobians(rnn, X[:T], cell="rnn"))
    direct = np.log10(np.linalg.norm(np.asarray(P, np.float64), axis=(1, 2)) / math.sqrt(ch13.WIDTH))
    np.testing.assert_allclose(d["rnn"][T, : T + 1], direct, atol=1e-3)


@pytest.mark.parametrize("decay", [0.8, 0.99, 0.999])
def test_ssm_curve_is_the_closed_form(decay):
    curve = ch13.ssm_log10_curve(decay, 50)
    np.testing.assert_allclose(curve, np.arange(51) * math.log10(decay), atol=2e-4)


def test_panel_moves_without_compiling_and_is_readable():
    panel = ch13.distance_panel()
    statuses = statuses_without_compiling(panel, {"T": 8, "decay": 0.8}, {"T": 128, "decay": 0.999},
                                          {"T": 64, "decay": 0.95})
    assert statuses == ["", "", ""]
    assert isinstance(panel.fig, Figure)
    assert min_text_px(panel.fig) >= MIN_TEXT_PX
    ssm_line = panel.fig.axes[0].lines[2]
    np.testing.assert_allclose(ssm_line.get_ydata()[-1], 64 * math.log10(0.95), atol=2e-4)


def test_static_figures_are_readable():
    scales = np.array([0.1, 1.0, 10.0])
    figs = [ch13.softmax_figure(scales, {16: np.array([0.24, 0.3, 0.15])}, (16, 64)),
            ch13.layernorm_figure({"post-LN": np.ones((2, 3)), "pre-LN": 2 * np.ones((2, 3))}),
            ch13.adding_figure({"a": np.ones((30, 2))}, 50)]
    for fig in figs:
        assert min_text_px(fig) >= MIN_TEXT_PX


def test_checks(capsys):
    assert ch13.check_decay_product(None) is False
    assert "No answer yet" in capsys.readouterr().out
    assert ch13.check_decay_product(0.99 ** 100) is True
    assert ch13.check_decay_product(99.0) is False
    assert ch13.check_uniform_softmax(math.sqrt(15) / 16) is True
    assert ch13.check_uniform_softmax(0.25) is False
    assert "Not yet" in capsys.readouterr().out
