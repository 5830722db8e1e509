"""Tests of vgplib.training against an independent hand-written SGD loop and NumPy float64."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgplib import (
    accuracy,
    cross_entropy,
    evaluate_many,
    init_mlp,
    layer_gradient_norms,
    mlp_accuracy_fn,
    mlp_forward,
    mlp_loss_fn,
    relative_weight_change,
    scanned_mlp_loss_fn,
    stack_params,
    summarize,
    train_many,
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


# ---- train_many: a batch of models in one compiled function -------------------------------------

LOSS = mlp_loss_fn("tanh")
ADAM = optax.adam(0.05)
TWO = [init_mlp(jax.random.PRNGKey(s), [4, 8, 8, 2], init="glorot_normal") for s in (3, 4)]
BATCH = jax.tree.map(lambda *leaves: jnp.stack(leaves), *TWO)


@partial(jax.jit, static_argnames="optimizer")
def _optax_step(params, state, xb, yb, optimizer):
    updates, state = optimizer.update(_oracle_grad(params, xb, yb), state, params)
    return optax.apply_updates(params, updates), state


def _python_loop(params, optimizer, steps, rows_per_step):
    """Independent reference: one optax step at a time in a Python loop, on the oracle loss."""
    state = optimizer.init(params)
    for t in range(steps):
        rows = rows_per_step(t)
        xb, yb = (X, Y) if rows is None else (X[rows], Y[rows])
        params, state = _optax_step(params, state, xb, yb, optimizer)
    return params


def _documented_rows(key, steps, k, batch):
    chunk_keys = jax.random.split(key, steps // k)
    return lambda t: np.asarray(jax.random.randint(chunk_keys[t // k], (k, batch), 0, X.shape[0]))[t % k]


def _assert_close(trained_batch, m, ref):
    for mine, r in zip(trained_batch, ref):
        for name in ("W", "b"):
            np.testing.assert_allclose(np.asarray(mine[name][m]), np.asarray(r[name]), rtol=2e-4, atol=2e-5)


def test_train_many_equals_a_python_loop_of_optax_steps_full_batch():
    trained, losses = train_many(LOSS, BATCH, X, Y, SGD, steps=30, record_every=10)
    assert losses.shape == (4, 2)
    for m, p0 in enumerate(TWO):
        ref = _python_loop(p0, SGD, 30, lambda t: None)
        _assert_close(trained, m, ref)
        expected0 = float(_oracle_loss_jit(p0, X, Y))
        np.testing.assert_allclose(losses[[0, -1], m], [expected0, float(_oracle_loss_jit(ref, X, Y))], rtol=1e-4)
    np.testing.assert_allclose(losses[0], [float(LOSS(p, X, Y)) for p in TWO], rtol=1e-5)


def test_train_many_equals_a_python_loop_with_adam_and_the_documented_minibatches():
    key = jax.random.PRNGKey(7)
    trained, losses = train_many(LOSS, BATCH, X, Y, ADAM, steps=20, batch_size=16, key=key, record_every=10)
    for m, p0 in enumerate(TWO):  # same_batches=True: both models see the stream drawn from `key`
        _assert_close(trained, m, _python_loop(p0, ADAM, 20, _documented_rows(key, 20, 10, 16)))
    trained2, _ = train_many(LOSS, BATCH, X, Y, ADAM, steps=20, batch_size=16, key=key, record_every=10,
                             same_batches=False)
    for m, p0 in enumerate(TWO):  # own stream: model m draws from split(key, M)[m]
        own = jax.random.split(key, 2)[m]
        _assert_close(trained2, m, _python_loop(p0, ADAM, 20, _documented_rows(own, 20, 10, 16)))
    assert not np.allclose(np.asarray(trained[0]["W"][1]), np.asarray(trained2[0]["W"][1]))
    assert np.all(losses[-1] < losses[0])


def test_train_many_models_do_not_interact_and_divergence_is_recorded():
    clip = optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(LR))  # a per-model global norm
    both, losses = train_many(LOSS, BATCH, X, Y, clip, steps=20, record_every=10)
    alone, alone_losses = train_many(LOSS, jax.tree.map(lambda a: a[1:], BATCH), X, Y, clip, steps=20,
                                     record_every=10)
    np.testing.assert_allclose(np.asarray(both[0]["W"][1]), np.asarray(alone[0]["W"][0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses[:, 1], alone_losses[:, 0], rtol=1e-5)
    lin = mlp_loss_fn("linear")
    deep = [init_mlp(jax.random.PRNGKey(5), [4, 16, 16, 16, 2], init="gaussian", sigma_w=s) for s in (2.0, 0.5)]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *deep)
    _, div = train_many(lin, stacked, X, Y, optax.sgd(10.0), steps=40, record_every=40)
    assert not np.isfinite(div[-1, 0])  # the sigma_w = 2 linear net diverges ...
    assert np.isfinite(div[-1, 1])  # ... and the other model does not notice


def test_train_many_record_fn_equals_a_python_loop_that_measures_as_it_goes():
    """record_fn is evaluated at steps 0, k, ..., steps of ONE run (Adam's state is never restarted):
    against a Python loop of optax steps that measures the same things at the same steps."""

    def measure(p):
        return {"loss": LOSS(p, X, Y), "first_W": p[0]["W"], "grad_norm": optax.global_norm(jax.grad(LOSS)(p, X, Y))}

    trained, records = train_many(LOSS, BATCH, X, Y, ADAM, steps=30, record_every=10, record_fn=measure)
    assert records["loss"].shape == (4, 2) and records["first_W"].shape == (4, 2, 8, 4)
    assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(records))
    _, losses = train_many(LOSS, BATCH, X, Y, ADAM, steps=30, record_every=10)
    np.testing.assert_array_equal(records["loss"], losses)  # the default record is this loss
    for m, p0 in enumerate(TWO):
        p, state = p0, ADAM.init(p0)
        for t in range(31):
            if t % 10 == 0:
                i = t // 10
                np.testing.assert_allclose(records["loss"][i, m], float(_oracle_loss_jit(p, X, Y)), rtol=1e-4,
                                           atol=1e-6)  # float32 cross-entropy near 0 (5.7e-5 at step 30)
                np.testing.assert_allclose(records["first_W"][i, m], np.asarray(p[0]["W"]), rtol=2e-4, atol=2e-5)
                np.testing.assert_allclose(records["grad_norm"][i, m],
                                           float(optax.global_norm(_oracle_grad(p, X, Y))), rtol=1e-3)
            if t < 30:
                p, state = _optax_step(p, state, X, Y, ADAM)
        _assert_close(trained, m, p)
    # a restart of Adam at every record (what a loop of 10-step train_many calls does) is not the same run
    restarted = BATCH
    for _ in range(3):
        restarted, _ = train_many(LOSS, restarted, X, Y, ADAM, steps=10)
    assert not np.allclose(np.asarray(restarted[0]["W"]), np.asarray(trained[0]["W"]), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("record_fn", "exc", "match"),
    [("loss", TypeError, "record_fn must be None or a callable"),
     (lambda p: None, TypeError, "record_fn must return a pytree of arrays"),
     (lambda p: "not an array", TypeError, "record_fn\\(params\\) failed"),
     (lambda p: p[0]["W"] @ p[0]["W"], TypeError, "record_fn\\(params\\) failed")],
)
def test_train_many_record_fn_bad_input(record_fn, exc, match):
    with pytest.raises(exc, match=match):
        train_many(LOSS, BATCH, X, Y, SGD, steps=20, record_every=10, record_fn=record_fn)


def test_evaluate_many_and_the_loss_factories():
    assert mlp_loss_fn("tanh") is LOSS  # cached: the compilation is reused
    acc = evaluate_many(mlp_accuracy_fn("tanh"), BATCH, X, Y)
    assert acc.shape == (2,)
    assert acc.tolist() == [accuracy(p, X, Y, "tanh") for p in TWO]
    np.testing.assert_allclose(evaluate_many(LOSS, BATCH, X, Y), [float(cross_entropy(p, X, Y)) for p in TWO],
                               rtol=1e-5)
    trained, _ = train_many(LOSS, BATCH, X, Y, SGD, steps=30)  # record_every=None: start and end only
    assert np.all(evaluate_many(mlp_accuracy_fn("tanh"), trained, X, Y) == 1.0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"loss_fn": "ce"}, TypeError, "loss_fn"),
        ({"optimizer": 0.1}, TypeError, "optimizer"),
        ({"params_batch": {}}, TypeError, "no leaves"),
        ({"params_batch": {"W": jnp.ones((2, 3)), "b": jnp.ones((3, 3))}}, ValueError, "leading model axis"),
        ({"params_batch": {"W": jnp.ones(())}}, ValueError, "scalar"),
        ({"params_batch": [{"W": np.ones((2, 8, 4), np.int32), "b": np.ones((2, 8))}]}, TypeError, "floating"),
        ({"params_batch": jax.tree.map(lambda a: a.at[0].set(jnp.nan), BATCH)}, ValueError, "params_batch"),
        ({"y": Y[:10]}, ValueError, "rows"),
        ({"x": "abc"}, TypeError, "x must"),
        ({"x": np.where(np.arange(4) == 0, np.inf, X)}, ValueError, "x must be finite"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"steps": 30, "record_every": 20}, ValueError, "record_every"),
        ({"batch_size": 65, "key": jax.random.PRNGKey(0)}, ValueError, "batch_size"),
        ({"batch_size": 16}, ValueError, "key"),
        ({"batch_size": 16, "key": 3}, TypeError, "key"),
        ({"same_batches": "yes"}, TypeError, "same_batches"),
        ({"loss_fn": lambda p, x, y: mlp_forward(p, x)}, ValueError, "scalar"),
        ({"x": X[:, :3]}, TypeError, "loss_fn"),
    ],
)
def test_train_many_bad_input(kwargs, exc, match):
    args = {"loss_fn": LOSS, "params_batch": BATCH, "x": X, "y": Y, "optimizer": SGD, "steps": 20}
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        train_many(args.pop("loss_fn"), args.pop("params_batch"), args.pop("x"), args.pop("y"),
                   args.pop("optimizer"), **args)
    with pytest.raises(TypeError, match="fn must"):
        evaluate_many(None, BATCH, X, Y)


@pytest.mark.parametrize(("norm", "first"), [(None, True), ("batch", False), ("layer", True)])
def test_scanned_mlp_loss_fn_equals_mlp_loss_fn_on_the_unstacked_layers(norm, first):
    widths = [5, 6, 6, 6, 3] if first else [6, 6, 6, 6, 3]
    layers = init_mlp(jax.random.PRNGKey(0), widths, "gaussian", sigma_w=1.3, sigma_b=0.2)
    x = jax.random.normal(jax.random.PRNGKey(1), (7, widths[0]))
    y = jnp.arange(7) % 3
    stacked = {"hidden": stack_params(layers[1:-1] if first else layers[:-1]), "out": layers[-1]}
    if first:
        stacked["first"] = layers[0]
    loss = scanned_mlp_loss_fn("tanh", norm)
    assert scanned_mlp_loss_fn("tanh", norm) is loss  # cached: train_many reuses its compilation
    kwargs = {"norm": norm} if norm else {}
    ref = jax.jit(mlp_loss_fn("tanh", **kwargs))(layers, x, y)
    np.testing.assert_allclose(jax.jit(loss)(stacked, x, y), ref, rtol=1e-6)
    g, g_ref = jax.grad(loss)(stacked, x, y), jax.grad(mlp_loss_fn("tanh", **kwargs))(layers, x, y)
    np.testing.assert_allclose(g["hidden"]["W"][-1], g_ref[-2]["W"], rtol=1e-5, atol=1e-7)
    assert float(loss.accuracy(stacked, x, y)) == pytest.approx(float(mlp_accuracy_fn("tanh", **kwargs)(layers, x, y)))


def test_scanned_mlp_loss_fn_with_a_tuple_of_activations_picks_each_models_and_never_trains_it():
    layers = init_mlp(jax.random.PRNGKey(2), [4, 5, 5, 5, 3], "gaussian", sigma_w=1.4)
    stacked = {"first": layers[0], "hidden": stack_params(layers[1:-1]), "out": layers[-1]}
    x = jax.random.normal(jax.random.PRNGKey(3), (6, 4))
    y = jnp.arange(6) % 3
    names = ("relu", "elu", "sigmoid")
    mixed = scanned_mlp_loss_fn(names)
    for i, name in enumerate(names):
        p = dict(stacked, act=jax.nn.one_hot(i, 3, dtype=jnp.float32))
        assert float(mixed(p, x, y)) == pytest.approx(float(mlp_loss_fn(name)(layers, x, y)), rel=1e-6)
        assert float(mixed.accuracy(p, x, y)) == pytest.approx(float(mlp_accuracy_fn(name)(layers, x, y)))
        assert float(jnp.abs(jax.grad(mixed)(p, x, y)["act"]).max()) == 0.0


def test_scanned_mlp_loss_fn_bad_input():
    with pytest.raises(ValueError, match="activation"):
        scanned_mlp_loss_fn("softsign")
    with pytest.raises(ValueError, match="activation"):
        scanned_mlp_loss_fn(())
    with pytest.raises(ValueError, match="activation"):
        scanned_mlp_loss_fn(("relu", "softsign"))
    with pytest.raises(ValueError, match="norm"):
        scanned_mlp_loss_fn("tanh", "group")
    with pytest.raises(ValueError, match="eps"):
        scanned_mlp_loss_fn("tanh", "layer", -1.0)
