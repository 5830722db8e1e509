"""Chapter 2's figure functions, scrubber alt text and exercise self-checks (vgplib.panels.ch02).

The panels' kernels and corner sweeps are tested in tests/test_widgets.py; here: the static figures
draw exactly the numbers they are given, the scrubbers carry a specific alt sentence, and the
self-checks accept the solutions, reject the usual slips and answer ``None`` neutrally.
"""

from html import escape

import numpy as np
import pytest
from matplotlib.figure import Figure

from vgplib.panels import ch02


def test_nonnormal_figure_draws_the_norms_and_both_references():
    norms = np.array([1.0, 5.0, 8.0, 4.0])
    fig = ch02.nonnormal_figure(norms, 0.9)
    exact, radius, bound = fig.axes[0].lines
    np.testing.assert_allclose(exact.get_ydata(), norms)
    np.testing.assert_allclose(radius.get_ydata(), 0.9 ** np.arange(4))
    np.testing.assert_allclose(bound.get_ydata(), 5.0 ** np.arange(4))
    with pytest.raises(ValueError):
        ch02.nonnormal_figure(np.ones(1), 0.9)
    with pytest.raises(ValueError):
        ch02.nonnormal_figure(norms, -1.0)


def test_lyapunov_figure_draws_stretch_and_theory_per_direction():
    K = 5
    lam = np.array([-0.1, -0.2, -0.3, -0.5])
    c = np.arange(K + 1)[:, None] * lam[None, :]
    fig = ch02.lyapunov_figure(np.array([0.5 + 0.5j, -0.3]), c, lam)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    lines = fig.axes[1].lines
    np.testing.assert_allclose(lines[0].get_ydata(), c[:, 0] / np.log(10))
    np.testing.assert_allclose(lines[1].get_ydata(), np.arange(K + 1) * lam[0] / np.log(10))
    with pytest.raises(ValueError):
        ch02.lyapunov_figure(np.zeros(2), c, lam[:3])


def test_chi_figure_draws_measured_and_theory():
    sigmas = [1.0, 2.0]
    fig = ch02.chi_figure(sigmas, {"relu": [0.5, 2.0]}, {"relu": [0.5, 2.0]})
    theory, dots = fig.axes[0].lines[:2]
    np.testing.assert_allclose(dots.get_ydata(), [0.5, 2.0])
    np.testing.assert_allclose(theory.get_xdata(), sigmas)
    with pytest.raises(ValueError):
        ch02.chi_figure(sigmas, {"relu": [1, 1]}, {"tanh": [1, 1]})


def test_scrubbers_carry_a_specific_alt_sentence(monkeypatch):
    monkeypatch.setattr(ch02, "SCALAR_SCRUBBER_FACTORS", (0.25, 2.0))
    html = ch02.scalar_scrubber(depth=100).data
    assert escape("Plot of log10 of r^l against l up to 100 factors", quote=True) in html
    monkeypatch.setattr(ch02, "GRADIENT_SCRUBBER_SIGMAS", (0.5, 2.0))
    html = ch02.gradient_scrubber("sigmoid", depth=20).data
    assert "sigmoid network of depth 20" in html and "no critical value" in html
    assert "A custom sentence." in ch02.gradient_scrubber("tanh", depth=5, alt="A custom sentence.").data
    with pytest.raises(ValueError):
        ch02.scalar_scrubber(depth=0)


def test_self_checks_accept_solutions_reject_slips_and_answer_none_neutrally(capsys):
    assert ch02.check_horizon(64) and not ch02.check_horizon(63) and not ch02.check_horizon(True)
    assert ch02.check_nilpotent(0, 0, 4) and not ch02.check_nilpotent(0, 0, 0)
    assert ch02.check_relu(np.sqrt(2), -30.1) and not ch02.check_relu(1.0, -30.1)
    capsys.readouterr()
    assert not ch02.check_horizon(None) and not ch02.check_nilpotent(None, 0, 0)
    assert not ch02.check_relu(None, None)
    out = capsys.readouterr().out
    assert "Not yet" not in out and out.count("No answer yet") == 3
