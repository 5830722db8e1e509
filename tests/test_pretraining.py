"""Tests of vgplib.pretraining: the tied-weight autoencoder loss and greedy layer-wise pretraining."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vgplib
from vgplib.pretraining import autoencoder_loss_fn, pretrain_layerwise


@pytest.fixture(scope="module")
def small():
    key = jax.random.PRNGKey(0)
    params = vgplib.init_mlp(key, [6, 5, 4, 3], init="standard")
    x = jax.random.uniform(jax.random.PRNGKey(1), (12, 6))
    return params, x


def test_autoencoder_loss_matches_formula(small):
    params, x = small
    W, b = params[0]["W"], params[0]["b"]
    c = jnp.linspace(-0.5, 0.5, 6)
    sig = lambda a: 1 / (1 + np.exp(-a))
    Wn, bn, xn, cn = (np.asarray(v, np.float64) for v in (W, b, x, c))
    recon = sig(sig(xn @ Wn.T + bn) @ Wn + cn)
    expected = np.mean(np.sum((recon - xn) ** 2, axis=1))
    got = autoencoder_loss_fn("sigmoid")({"W": W, "b": b, "c": c}, x, x)
    assert abs(float(got) - expected) < 1e-5 * expected
    assert autoencoder_loss_fn("sigmoid") is autoencoder_loss_fn("sigmoid")  # cached: one compilation


def test_pretrain_equals_a_python_loop_of_optax_steps(small):
    """Full batch, 2 hidden layers: each encoder equals plain optax steps on its own codes."""
    params, x = small
    opt = optax.sgd(0.5)
    out, losses = pretrain_layerwise(params, x, opt, steps=5)
    loss_fn = autoencoder_loss_fn("sigmoid")
    h = x
    for l in range(2):
        p = {"W": params[l]["W"], "b": params[l]["b"], "c": jnp.zeros(params[l]["W"].shape[1])}
        state = opt.init(p)
        first = float(loss_fn(p, h, h))
        for _ in range(5):
            g = jax.grad(loss_fn)(p, h, h)
            upd, state = opt.update(g, state, p)
            p = optax.apply_updates(p, upd)
        np.testing.assert_allclose(out[l]["W"], p["W"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[l]["b"], p["b"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(losses[l], [first, float(loss_fn(p, h, h))], rtol=1e-5)
        h = jax.nn.sigmoid(h @ p["W"].T + p["b"])
    assert out[2] is not params[2] and np.array_equal(out[2]["W"], params[2]["W"])  # output layer untouched
    assert np.all(losses[:, 1] < losses[:, 0])  # reconstruction improves in every layer


def test_pretrain_minibatches_and_n_layers(small):
    params, x = small
    out, losses = pretrain_layerwise(params, x, optax.adam(1e-2), steps=4, batch_size=4,
                                     key=jax.random.PRNGKey(2), n_layers=1)
    assert losses.shape == (1, 2)
    assert not np.array_equal(out[0]["W"], params[0]["W"])
    assert np.array_equal(out[1]["W"], params[1]["W"])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"x": "digits"}, ValueError, "x must be a 2-D array"),
        ({"x": np.zeros((3, 5))}, ValueError, "features"),
        ({"x": np.full((3, 6), np.nan)}, ValueError, "x"),
        ({"optimizer": "adam"}, TypeError, "optimizer"),
        ({"steps": 0}, ValueError, "steps"),
        ({"n_layers": 4}, ValueError, "n_layers"),
        ({"batch_size": 4}, ValueError, "key"),
    ],
)
def test_bad_input(small, kwargs, exc, match):
    params, x = small
    args = {"x": x, "optimizer": optax.sgd(0.1), "steps": 2}
    args.update(kwargs)
    steps = args.pop("steps")
    with pytest.raises(exc, match=match):
        pretrain_layerwise(params, args.pop("x"), args.pop("optimizer"), steps=steps, **args)
