"""Exercise self-checks of the chapter-5 panel module (vgplib.panels.ch05)."""

import math

import numpy as np
import pytest
from _helpers import layerwise_theory

from vgplib.panels import ch05


def test_overflow_count_reference():
    # 1.5^k first exceeds float32's largest number at k = 219 (ln(3.4e38) / ln 1.5 = 218.8).
    assert ch05.float32_overflow_count(1.5) == 219
    assert math.floor(math.log(float(np.finfo(np.float32).max)) / math.log(1.5)) + 1 == 219


def test_check_overflow_count_accepts_integral_numbers(capsys):
    assert ch05.check_overflow_count(219)
    assert ch05.check_overflow_count(np.int64(219))
    assert ch05.check_overflow_count(219.0)             # e.g. from np.ceil or np.floor(...) + 1
    assert ch05.check_overflow_count(np.float32(219.0))
    out = capsys.readouterr().out
    assert out.count("Correct") == 4


def test_check_overflow_count_rejects_wrong_answers(capsys):
    assert not ch05.check_overflow_count(218)
    assert not ch05.check_overflow_count(220.0)
    assert not ch05.check_overflow_count(218.8)         # the real-valued bound is not the count
    assert not ch05.check_overflow_count(219.5)
    assert not ch05.check_overflow_count("219")
    assert not ch05.check_overflow_count(True)
    assert not ch05.check_overflow_count(float("nan"))
    assert not ch05.check_overflow_count(float("inf"))
    assert not ch05.check_overflow_count(None)
    out = capsys.readouterr().out
    assert out.count("Correct") == 0 and out.count("Not yet") == 8 and out.count("No answer yet") == 1


def test_checkers_return_none_without_an_answer(capsys):
    # A committed exercise cell shows only the neutral message, not a False verdict.
    assert ch05.check_overflow_count(None) is None
    assert ch05.check_overflow_depth(None) is None
    assert ch05.check_wall(None) is None
    out = capsys.readouterr().out
    assert out.count("No answer yet") == 3 and "Not yet" not in out


def test_table_aligns_columns():
    text = ch05.table(("name", "x"), [("a", 1.5), ("long name", 12.25)], ("", ".2f"))
    lines = text.split("\n")
    assert lines[0].startswith("name") and set(lines[1]) <= {"-", " "}
    assert len({len(line) for line in lines}) == 1  # every line padded to the same width
    assert lines[2].endswith(" 1.50") and lines[3].endswith("12.25")


def test_ensemble_is_the_panel_kernel_on_other_networks():
    ens = ch05.ensemble_log10_norms(4.0, networks=2, depth=10)
    assert ens.shape == (2, 11) and np.all(ens[:, -1] == 0.0) and np.all(np.isfinite(ens))
    # Network 0 of the ensemble, run alone through the same kernel, gives the same curve up to
    # rounding: batched and single matmuls round differently, and at sigma_w = 4 the forward pass
    # amplifies that by about e^0.43 per layer (chaotic phase), so the depth is kept at 10.
    net = ch05._network(ch05.ENSEMBLE_SEED, 10)
    alone = ch05._overflow_kernel(net["Z"], net["x0"], net["g"], np.float32(4.0), np.int32(10))[1]
    np.testing.assert_allclose(ens[0], np.asarray(alone) / math.log(10.0), atol=1e-3)
    assert not np.allclose(ens[0], ens[1])


def test_ensemble_curves_overflow_layer():
    # Shallow: nothing overflows (-1), and the exact curves are ensemble_log10_norms'.
    e = ch05.ensemble_curves(4.0, networks=2, depth=10)
    assert e["overflow_layer"].tolist() == [-1, -1]
    np.testing.assert_array_equal(e["log10_exact"], ch05.ensemble_log10_norms(4.0, networks=2, depth=10))
    # Deep at sigma_w = 5: both overflow (the typical rate puts the norm past 3.4e38 near 190 layers
    # down); the reported layer holds an exact norm above the float32 maximum, and the norm 20 layers
    # higher up (closer to the output) is far below it.
    e = ch05.ensemble_curves(5.0, networks=2, depth=300)
    for ex, layer in zip(e["log10_exact"], e["overflow_layer"]):
        assert 0 <= layer < 300 and ex[layer] > ch05.LOG10_MAX > ex[layer + 20]


def test_static_figures_build():
    from matplotlib.figure import Figure

    fig = ch05.intuition_figure(depth=50)
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 5  # 4 sigma_w + float32 max
    c = ch05.overflow_curves(4.0, 30)
    fig = ch05.growth_figure(c, c["log10_exact"], 2.38, 0.76, ensemble=np.zeros((3, 31)))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("typical" in s for s in labels) and any("mean field" in s for s in labels)
    labels = np.array([[0, 1], [2, 2]])
    fig = ch05.divergence_map([1.0, 2.0], [0.1, 1.0], labels, np.array([[-1, -1], [3, 4]]))
    assert sorted(t.get_text() for t in fig.axes[0].texts if t.get_text().isdigit()) == ["3", "4"]


def test_overflow_scrubber_passes_a_specific_alt(monkeypatch):
    seen = {}

    def fake_scrubber(make_figure, name, values, fixed=None, alt=None):
        seen.update(name=name, alt=alt)
        return "html"

    monkeypatch.setattr(ch05, "scrubber", fake_scrubber)
    assert ch05.overflow_scrubber(sigma_w=4.0, depths=(10, 20)) == "html"
    assert seen["name"] == "depth" and "sigma_w = 4" in seen["alt"] and "float32" in seen["alt"]
    ch05.overflow_scrubber(sigma_w=3.0, depths=(10,), alt="custom sentence")
    assert seen["alt"] == "custom sentence"


def test_panel_theory_is_the_library_number():
    # One implementation per formula: the panel's mean-field line comes from vgplib.theory
    # (length_map_and_chi / q_star_and_chi), so chi_star is vgplib.chi1's number and the
    # layer-wise line is the product of vgplib.chi1 along vgplib.length_map.
    import vgplib

    for sigma_w in (0.5, 1.5, 4.0):
        c = ch05.overflow_curves(sigma_w, 12)
        assert c["chi_star"] == pytest.approx(vgplib.chi1("tanh", sigma_w), rel=1e-10)
        x0 = np.asarray(ch05.panel_network()["x0"], np.float64)
        sw = float(np.float32(sigma_w))
        expected, _, _ = layerwise_theory("tanh", sw, 0.0, sw**2 * float(np.sum(x0**2)) / x0.size, 12)
        np.testing.assert_allclose(c["log10_theory"], expected, rtol=1e-9, atol=1e-12)
