"""Chapter 14's panel module: flushed fractions against an explicit float16 backward pass, the panel, figures, exercise."""

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import statuses_without_compiling

import vgplib
from vgplib.panels import ch14
from vgplib.plots import MIN_TEXT_PX, min_text_px
from vgplib.precision import flush_threshold


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


# --------------------------------------------------------------------------- flush theory against measurement

SCALES = list(range(21))


def test_float16_flushes_at_and_below_half_the_smallest_subnormal():
    thr = flush_threshold(jnp.float16)
    assert thr == 2.0**-25 == float(jnp.finfo(jnp.float16).smallest_subnormal) / 2
    above = np.nextafter(np.float32(thr), np.float32(1))  # the next float32 above 2^-25
    cast = lambda v: float(jnp.asarray(v, jnp.float32).astype(jnp.float16))
    assert cast(thr) == 0.0 and cast(-thr) == 0.0  # the tie rounds to even: 0
    assert cast(above) == 2.0**-24 and cast(np.nextafter(np.float32(thr), np.float32(0))) == 0.0


def _exact_signals(data):
    """Independent path: per-example signals delta_{l,b} = dE/da_{l,b} and activations from jax.grad in float64."""
    params, x, y, _ = data
    with jax.enable_x64(True):
        p = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), params)
        x64 = jnp.asarray(np.asarray(x, np.float64))

        def loss(eps):  # eps_l added to every pre-activation: dE/deps_l = delta_l, one row per example
            h, hs = x64, [x64]
            for layer, e in zip(p, eps):
                a = h @ layer["W"].T + layer["b"] + e
                h = jax.nn.sigmoid(a)
                hs.append(h)
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(a), jnp.asarray(y)[:, None], axis=1)), hs[:-1]

        eps = [jnp.zeros((x.shape[0], layer["W"].shape[0])) for layer in p]
        deltas, hs = jax.grad(loss, has_aux=True)(eps)
        return [np.asarray(d) for d in deltas], [np.asarray(h) for h in hs]


def _weight_and_bias(grads):
    """``(n, m + 1)`` arrays: a layer's weight gradient with its bias gradient as the last column."""
    return [np.concatenate([np.asarray(g["W"]), np.asarray(g["b"])[:, None]], axis=1) for g in grads]


def test_flush_theory_equals_a_float16_cast_of_the_exact_gradient(data):
    deltas, hs = _exact_signals(data)
    g32 = data[3]
    hs = [np.concatenate([h, np.ones((len(h), 1))], axis=1) for h in hs]  # the bias: an input of 1
    grads = [d.T @ h for d, h in zip(deltas, hs)]
    # the float64 gradient is jax.grad's float32 gradient to float32 precision
    for g, ref in zip(grads, _weight_and_bias(g32)):
        np.testing.assert_allclose(g, ref, rtol=2e-4, atol=1e-9)
    nonzero = sum(int(np.sum(r != 0)) for r in _weight_and_bias(g32))
    assert nonzero == sum(int(np.sum(g != 0)) for g in grads)
    theory = ch14.flush_theory(data, SCALES)
    for i, k in enumerate(SCALES):
        s = 2.0**k
        with np.errstate(over="ignore"):  # S = 2^19, 2^20: the largest entries overflow to inf
            cast = sum(int(np.sum((g != 0) & ((s * g).astype(np.float16) == 0))) for g in grads)
            rounded = [(s * d).astype(np.float16).astype(np.float64) for d in deltas]
            summed = sum(int(np.sum((g != 0) & ((r.T @ h).astype(np.float16) == 0)))
                         for g, r, h in zip(grads, rounded, hs))
        assert round(theory["cast"][i] * nonzero) == cast, k
        assert round(theory["per_example"][i] * nonzero) == summed, k
    assert theory["cast"][0] > 0 and theory["per_example"][0] > 3 * theory["cast"][0]
    largest = max(np.abs(g).max() for g in grads)
    assert np.isclose(theory["overflow_log2_scale"], np.log2(65504.0 / largest), rtol=1e-9)


def test_flush_theory_against_the_float16_measurement(data):
    theory = ch14.flush_theory(data, SCALES)
    measured = [ch14.flushed_by_scale(data, k) for k in SCALES]
    total = np.array([m[1] for m in measured])
    finite = np.array([m[2] for m in measured])
    # overflow: the first power of two above 65504 / max|G| is the first non-finite measurement
    assert np.flatnonzero(~finite)[0] == math.ceil(theory["overflow_log2_scale"])
    pred = theory["per_example"]
    # at S = 1 the per-example model is within 5 % of the measurement, the cast of the batch gradient 3x below
    assert abs(pred[0] / total[0] - 1) < 0.05 and total[0] > 3 * theory["cast"][0]
    # from S = 2^3 on, within 10 % wherever anything is flushed; nothing flushed from S = 2^12 on, in both
    on = slice(3, 12)
    assert np.all(total[on] > 0) and np.all(np.abs(pred[on] / total[on] - 1) < 0.1), pred[on] / total[on]
    assert np.all(total[12:][finite[12:]] == 0) and np.all(pred[12:] == 0)


def test_flush_theory_validates_its_arguments(data):
    with pytest.raises(ValueError, match="log2_scales"):
        ch14.flush_theory(data, [])
    with pytest.raises(ValueError, match="log2_scales"):
        ch14.flush_theory(data, [0, float("nan")])
    theory = ch14.flush_theory(data, [0, 1])
    with pytest.raises(ValueError, match="measured"):
        ch14.flush_theory_figure([0, 1], [0.1], [True, True], theory)
    fig = ch14.flush_theory_figure([0, 1], [0.2, 0.1], [True, False], theory)
    assert min_text_px(fig) >= MIN_TEXT_PX


def test_jmp_dynamic_loss_scale_equals_the_chapters_rule(data):
    """The chapter's prose: jmp's DynamicLossScale (not a dependency; tested where installed) follows the same
    rule as vgplib.loss_scale_update, and its scale/unscale gives scaled_grad's float16 gradient bit for bit."""
    jmp = pytest.importorskip("jmp")
    flags = np.random.default_rng(0).random(300) > 0.1  # about one overflow in ten steps
    flags[:3] = False
    theirs = jmp.DynamicLossScale(jnp.asarray(2.0**15, jnp.float32), period=5)
    ours = vgplib.loss_scale_init(2.0**15)
    for finite in flags:
        theirs = theirs.adjust(jnp.asarray(finite))
        ours = vgplib.loss_scale_update(ours, finite, period=5)
        assert float(theirs.loss_scale) == float(ours.scale) and int(theirs.counter) == int(ours.good_steps)
    params, x, y, _ = data
    loss16 = lambda p: ch14.precision_loss(p, x, y, jnp.float16)
    scale = jmp.DynamicLossScale(jnp.asarray(2.0**4, jnp.float32))
    g_jmp = scale.unscale(jax.grad(lambda p: scale.scale(loss16(p)))(params))
    _, g_ours, finite = vgplib.scaled_grad(lambda p, x, y: loss16(p), params, x, y, scale=2.0**4)
    assert finite and all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(g_jmp), jax.tree.leaves(g_ours)))


def _random_histograms(seed=0, shape=(2, 3, 4, 10)):
    return np.random.default_rng(seed).integers(0, 40, shape), np.linspace(-10.0, 0.0, shape[-1] + 1)


def test_histogram_event_file_round_trip(tmp_path):
    hists, edges = _random_histograms()
    hists[1, 2, 3] = 0  # an empty histogram survives too
    path = ch14.write_histogram_events(str(tmp_path), hists, edges, (0, 50, 100), ["a", "b"])
    back = ch14.read_histogram_events(path)
    assert len(back) == hists[..., 0].size
    for r, run in enumerate("ab"):
        for t, step in enumerate((0, 50, 100)):
            for layer in range(hists.shape[2]):
                limits, counts = back[(f"gradients/{run}/layer{layer}", step)]
                np.testing.assert_array_equal(limits, edges[1:])
                np.testing.assert_array_equal(counts, hists[r, t, layer])
    # a second file in the same directory is found by its own call, not confused with the first
    path2 = ch14.write_histogram_events(str(tmp_path), hists[:, :1] * 2, edges, (7,), ["a", "b"])
    assert path2 != path
    np.testing.assert_array_equal(ch14.read_histogram_events(path2)[("gradients/b/layer0", 7)][1], 2 * hists[1, 0, 0])


def test_histogram_event_file_checksums_catch_corruption(tmp_path):
    hists, edges = _random_histograms(1)
    path = ch14.write_histogram_events(str(tmp_path), hists, edges, (0, 1, 2), ["a", "b"])
    file = pathlib.Path(path)
    data = bytearray(file.read_bytes())
    file.write_bytes(bytes(data[:-3]))
    with pytest.raises(ValueError, match="truncated"):
        ch14.read_histogram_events(path)
    data[-10] ^= 0x01  # flip one bit inside the last record's data
    file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum mismatch in the record at"):
        ch14.read_histogram_events(path)
    data[-10] ^= 0x01
    data[3] ^= 0x01  # and one in the first record's length
    file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="record header"):
        ch14.read_histogram_events(path)


@pytest.mark.parametrize(
    ("hists", "edges", "steps", "runs", "match"),
    [
        (np.ones((3, 4, 10)), np.linspace(0, 1, 11), (0,) * 3, ["a"], "shape"),
        (np.ones((1, 2, 3, 10)), np.linspace(0, 1, 10), (0, 1), ["a"], "edges"),
        (np.ones((1, 2, 3, 10)), np.linspace(0, 1, 11), (0,), ["a"], "steps"),
        (np.ones((1, 2, 3, 10)), np.linspace(0, 1, 11), (0, 1), ["a", "b"], "run_names"),
        (-np.ones((1, 2, 3, 10)), np.linspace(0, 1, 11), (0, 1), ["a"], "counts"),
        (np.full((1, 2, 3, 10), 0.5), np.linspace(0, 1, 11), (0, 1), ["a"], "counts"),
    ],
)
def test_histogram_event_file_validates_its_arguments(tmp_path, hists, edges, steps, runs, match):
    with pytest.raises(ValueError, match=match):
        ch14.write_histogram_events(str(tmp_path), hists, edges, steps, runs)
