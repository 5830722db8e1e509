"""Chapter 11's panel module (vgplib.panels.ch11): the cliff panel, its figures and the exercise checks."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib
from vgplib.panels import ch11
from vgplib.plots import MIN_TEXT_PX, min_text_px
from vgplib.widgets import count_compiles


@pytest.fixture(scope="module")
def panel():
    return ch11.cliff_panel()


def test_panel_moves_without_compiling_and_reads_well(panel):
    assert min_text_px(panel.fig) >= MIN_TEXT_PX
    with count_compiles() as c:
        for threshold in (ch11.THRESHOLDS[0], 1.0, ch11.THRESHOLDS[-1]):
            for lr in (ch11.LEARNING_RATES[0], ch11.LEARNING_RATES[-1]):
                status = panel.set(threshold=threshold, lr=lr, clip=True)
                assert status == "" or status.startswith(("zero", "nan"))
        assert panel.set(clip=False, lr=0.5).startswith("zero gradient")  # chapter 5's throw
    assert c.count == 0, c.names


def test_runs_are_the_library_descent_from_each_start():
    runs = ch11.cliff_runs(1.0, 0.5, steps=15)
    with jax.enable_x64(True):
        for i, (w0, b0) in enumerate(ch11.CLIFF_STARTS[:2]):
            one = vgplib.cliff_descent(jnp.float64(w0), jnp.float64(b0), lr=0.5, steps=15, clip_norm=1.0)
            np.testing.assert_allclose(runs["params"][i], np.asarray(one.params), rtol=1e-12)
    # norm clipping bounds every step by lr * c, and a clipped step has exactly that length
    assert runs["step"].max() <= 0.5 * (1 + 1e-12)
    clipped = runs["grad_norm"][:, :-1] >= 1.0
    np.testing.assert_allclose(runs["step"][clipped], 0.5, rtol=1e-12)


def test_status_names_runs_thrown_onto_a_plateau():
    runs = ch11.cliff_runs(None, 0.5, steps=40)
    assert ch11.cliff_status(runs).startswith("zero gradient: 1 of 6")
    assert ch11.cliff_status(ch11.cliff_runs(1.0, 0.5, steps=40)) == ""


def test_static_figures_read_well():
    fig = ch11.intuition_figure()
    assert min_text_px(fig) >= MIN_TEXT_PX
    plain, clipped = ch11.cliff_runs(None, 0.5, steps=20), ch11.cliff_runs(1.0, 0.5, steps=20)
    assert min_text_px(ch11.cliff_runs_figure(plain, clipped, 0.5, 1.0)) >= MIN_TEXT_PX
    fr = np.array([0.01, 0.1, 0.5])
    fig = ch11.angle_figure(fr, {"a": np.ones((2, 3))}, {"a": np.zeros((2, 3))})
    assert min_text_px(fig) >= MIN_TEXT_PX
    L = np.ones((30, 3))
    L[10:, 1] = np.nan
    fig = ch11.rnn_figure({"x": L, "y": L}, {"x": np.array([-1, 10, -1]), "y": np.array([-1, 10, -1])})
    assert min_text_px(fig) >= MIN_TEXT_PX


def test_scrubber_passes_a_specific_alt(monkeypatch):
    seen = {}

    def fake(make_figure, name, values, fixed=None, alt=None):
        seen.update(name=name, fixed=fixed, alt=alt)
        return "html"

    monkeypatch.setattr(ch11, "scrubber", fake)
    assert ch11.cliff_scrubber(lr=0.5, thresholds=(0.1, 1.0)) == "html"
    assert seen["name"] == "threshold" and seen["fixed"] == {"lr": 0.5, "clip": True} and "0.5" in seen["alt"]
    with pytest.raises(ValueError, match="lr"):
        ch11.cliff_scrubber(lr=-1.0)


def test_exercise_references():
    assert ch11.value_clip_angle() == pytest.approx(math.degrees(math.acos(7 / (5 * math.sqrt(2)))), rel=1e-12)


def test_checkers(capsys):
    assert ch11.check_value_clip_angle(None) is None
    assert ch11.check_longest_step(None) is None
    assert ch11.check_share_factor(None) is None
    out = capsys.readouterr().out
    assert out.count("No answer yet") == 3 and "Not yet" not in out
    assert ch11.check_value_clip_angle(8.13)
    assert ch11.check_longest_step(0.1)
    assert ch11.check_share_factor(1)
    assert not ch11.check_value_clip_angle(53.13)
    assert not ch11.check_longest_step(0.2)
    assert not ch11.check_share_factor(0.5)
    assert not ch11.check_share_factor("1")
    assert not ch11.check_value_clip_angle(float("nan"))
    out = capsys.readouterr().out
    assert out.count("Correct") == 3 and out.count("Not yet") == 5
