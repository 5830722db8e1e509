"""Tests of vgplib.training against an independent hand-written SGD loop and NumPy float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgplib import (
    accuracy,
    cross_entropy,
    init_mlp,
    layer_gradient_norms,
    relative_weight_change,
    summarize,
    train_mlp,
)

LR = 0.5
SGD = optax.sgd(LR)  # one object for every test, so the compiled loop is reused


def _blobs(n=64, d=4, seed=0):
    """Two Gaussian blobs at +-1.5 along every axis: an easy, linearly separable problem."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, d)).astype(np.float32) * 0.7 + np.where(y[:, None] == 1, 1.5, -1.5).astype(np.float32)
    return x, y.astype(np.int32)


X, Y = _blobs()
PARAMS = init_mlp(jax.random.PRNGKey(0), [4, 8, 8, 2], init="glorot_uniform")


def _oracle_loss(params, x, y):
    """Cross-entropy written out independently of vgplib: tanh layers, linear last layer."""
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["W"].T + layer["b"])
    logits = h @ params[-1]["W"].T + params[-1]["b"]
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])


_oracle_grad = jax.jit(jax.grad(_oracle_loss))
_oracle_loss_jit = jax.jit(_oracle_loss)


def test_loss_decreases_on_an_easy_problem():
    params, hist = train_mlp(PARAMS, X, Y, SGD, activation="tanh", steps=60, record_every=20)
    assert hist.step.tolist() == [0, 20, 40, 60]
    assert hist.loss.shape == (4,) and hist.weight_change.shape == (4, 3) and hist.grad_norms.shape == (4, 3)
    assert hist.loss[-1] < 0.25 * hist.loss[0]
    assert np.all(np.diff(hist.loss) < 0)
    assert hist.accuracy[-1] == 1.0
    assert accuracy(params, X, Y, "tanh") == 1.0


def test_full_batch_training_equals_a_hand_written_sgd_loop():
    params, hist = train_mlp(PARAMS, X, Y, SGD, activation="tanh", steps=60, record_every=20)
    p = [dict(layer) for layer in PARAMS]
    losses = [float(_oracle_loss_jit(p, X, Y))]
    for t in range(1, 61):
        g = _oracle_grad(p, X, Y)
        p = [{k: layer[k] - LR * gl[k] for k in layer} for layer, gl in zip(p, g)]
        if t % 20 == 0:
            losses.append(float(_oracle_loss_jit(p, X, Y)))
    np.testing.assert_allclose(hist.loss, losses, rtol=1e-4)
    for mine, ref in zip(params, p):
        np.testing.assert_allclose(np.asarray(mine["W"]), np.asarray(ref["W"]), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(mine["b"]), np.asarray(ref["b"]), rtol=1e-4, atol=1e-5)


def test_relative_weight_change_equals_a_direct_computation():
    params, hist = train_mlp(PARAMS, X, Y, SGD, activation="tanh", steps=60, record_every=20)
    direct = [
        np.linalg.norm(np.asarray(p["W"], np.float64) - np.asarray(p0["W"], np.float64))
        / np.linalg.norm(np.asarray(p0["W"], np.float64))
        for p, p0 in zip(params, PARAMS)
    ]
    np.testing.assert_allclose(hist.weight_change[-1], direct, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(relative_weight_change(params, PARAMS)), direct, rtol=1e-4)
    assert np.all(hist.weight_change[0] == 0.0)
    assert np.all(hist.weight_change[-1] > 0.0)


def test_recorded_gradient_norms_match_layer_gradient_norms():
    params, hist = train_mlp(PARAMS, X, Y, SGD, activation="tanh", steps=60, record_every=20)
    for t, p in ((0, PARAMS), (-1, params)):
        expected = np.asarray(layer_gradient_norms(_oracle_loss_jit, p, X, Y))
        np.testing.assert_allclose(hist.grad_norms[t], expected, rtol=1e-4)
        np.testing.assert_allclose(hist.gradients.global_norm[t], np.sqrt(np.sum(expected**2)), rtol=1e-4)
    assert np.all(hist.gradients.finite)


def test_cross_entropy_and_accuracy_against_numpy():
    logits = np.asarray(X, np.float64)
    for layer in PARAMS[:-1]:
        logits = np.tanh(logits @ np.asarray(layer["W"], np.float64).T + np.asarray(layer["b"], np.float64))
    logits = logits @ np.asarray(PARAMS[-1]["W"], np.float64).T + np.asarray(PARAMS[-1]["b"], np.float64)
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    np.testing.assert_allclose(float(cross_entropy(PARAMS, X, Y, "tanh")), -np.mean(logp[np.arange(64), Y]), rtol=1e-5)
    assert accuracy(PARAMS, X, Y, "tanh") == pytest.approx(np.mean(np.argmax(logits, 1) == Y))


def test_minibatches_are_reproducible_and_depend_on_the_key():
    kw = {"activation": "tanh", "steps": 40, "batch_size": 16, "record_every": 20}
    p1, h1 = train_mlp(PARAMS, X, Y, SGD, key=jax.random.PRNGKey(1), **kw)
    p2, h2 = train_mlp(PARAMS, X, Y, SGD, key=jax.random.PRNGKey(1), **kw)
    p3, _ = train_mlp(PARAMS, X, Y, SGD, key=jax.random.PRNGKey(2), **kw)
    np.testing.assert_array_equal(np.asarray(p1[0]["W"]), np.asarray(p2[0]["W"]))
    np.testing.assert_array_equal(h1.loss, h2.loss)
    assert not np.allclose(np.asarray(p1[0]["W"]), np.asarray(p3[0]["W"]))
    assert h1.loss[-1] < 0.5 * h1.loss[0]


def test_a_diverging_run_is_recorded_and_flagged_not_raised():
    deep_linear = init_mlp(jax.random.PRNGKey(5), [4, 16, 16, 16, 2], init="gaussian", sigma_w=2.0)
    _, hist = train_mlp(deep_linear, X, Y, optax.sgd(10.0), activation="linear", steps=40, record_every=2)
    summary = summarize(hist.gradients)
    assert summary.first_nonfinite is not None
    assert not np.all(np.isfinite(hist.loss))
    assert summary.first_exploding is not None and summary.first_exploding <= summary.first_nonfinite
    assert not hist.gradients.finite[-1]


def test_progress_bar_goes_to_stderr_only(capsys):
    train_mlp(PARAMS, X, Y, SGD, activation="tanh", steps=40, record_every=20, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "40/40" in err
    train_mlp(PARAMS, X, Y, SGD, activation="tanh", steps=40, record_every=20)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"y": Y.astype(np.float32)}, TypeError, "y must"),
        ({"y": Y[:10]}, ValueError, "labels"),
        ({"y": np.full(64, 2, np.int32)}, ValueError, r"\[0, 2\)"),
        ({"x": X[:, :3]}, ValueError, "width"),
        ({"x": X[0]}, ValueError, "x must have 2"),
        ({"x": np.where(np.arange(4) == 0, np.nan, X)}, ValueError, "x must be finite"),
        ({"optimizer": 0.1}, TypeError, "optimizer"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"steps": 30, "record_every": 20}, ValueError, "record_every"),
        ({"batch_size": 65}, ValueError, "batch_size"),
        ({"batch_size": 16}, ValueError, "key"),
        ({"activation": "softplus"}, ValueError, "activation"),
        ({"thresholds": (1.0,)}, TypeError, "thresholds"),
        ({"progress": "yes"}, TypeError, "progress"),
        ({"params": [{"W": jnp.zeros((2, 4)), "b": jnp.zeros(2)}]}, ValueError, "all zeros"),
        ({"params": {"W": jnp.ones((2, 4))}}, TypeError, "params"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = {"params": PARAMS, "x": X, "y": Y, "optimizer": SGD}
    args.update({"activation": "tanh", "steps": 20, "record_every": 10})
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        train_mlp(args.pop("params"), args.pop("x"), args.pop("y"), args.pop("optimizer"), **args)


def test_bad_input_of_accuracy_and_cross_entropy():
    with pytest.raises(ValueError, match="labels"):
        accuracy(PARAMS, X, Y[:3])
    with pytest.raises(TypeError, match="y must"):
        cross_entropy(PARAMS, X, Y.astype(np.float32))
    with pytest.raises(ValueError, match="activation"):
        accuracy(PARAMS, X, Y, "nope")
