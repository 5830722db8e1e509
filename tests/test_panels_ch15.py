"""Chapter 15's figures (text large enough in the book, one line per seed) and exercise self-checks."""

import numpy as np

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
