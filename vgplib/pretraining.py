"""Greedy layer-wise pretraining of an MLP with stacked autoencoders (chapter 12).

Before 2010 the deep networks that trained well were first *pretrained* one layer at a time
without labels: Hinton, Osindero & Teh (2006) stacked restricted Boltzmann machines, Bengio,
Lamblin, Popovici & Larochelle (2007) replaced them by autoencoders ("auto-associators"). Each
hidden layer ``l`` is trained as the encoder of a one-layer autoencoder on the codes of the layers
below it, which stay fixed; then the whole network is fine-tuned by gradient descent on the labels.

Here the autoencoder of layer ``l`` has tied weights (the decoder is ``W_l^T``, our choice):

    h_l = phi(W_l h_{l-1} + b_l),    r = phi(W_l^T h_l + c_l),    E_AE = (1/B) sum_b ||r_b - h_{l-1,b}||^2,

with ``h_0 = x``. The encoder ``(W_l, b_l)`` starts from the network's own initialization and
``c_l`` from 0; the output layer is left as initialized. Training uses the book's shared trainer
:func:`vgplib.train_many`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgplib._validate import check_finite, check_mlp_params, check_positive_int
from vgplib.activations import get_activation
from vgplib.networks import dense
from vgplib.training import train_many

Array = jax.Array

__all__ = ["autoencoder_loss_fn", "pretrain_layerwise"]


@cache
def autoencoder_loss_fn(activation: str = "sigmoid") -> Callable[[Any, Array, Array], Array]:
    """``loss_fn(params, x, y)`` of a tied-weight autoencoder layer, for :func:`vgplib.train_many`.

    ``params = {"W": (n_h, n_in), "b": (n_h,), "c": (n_in,)}``;
    ``E = (1/B) sum_b ||phi(W^T phi(W x_b + b) + c) - y_b||^2`` (pass ``y = x`` to reconstruct the
    input). Traceable and cached (the same ``activation`` returns the same object, so
    :func:`vgplib.train_many` reuses its compilation).
    """
    act = get_activation(activation)

    def loss_fn(params, x, y):
        code = act.fn(x @ params["W"].T + params["b"])
        recon = act.fn(code @ params["W"] + params["c"])
        return jnp.mean(jnp.sum((recon - y) ** 2, axis=-1))

    loss_fn.__name__ = f"autoencoder_loss_{act.name}"
    return loss_fn


def pretrain_layerwise(
    params: Any,
    x: Any,
    optimizer: optax.GradientTransformation,
    *,
    steps: int,
    batch_size: int | None = None,
    key: Array | None = None,
    activation: str = "sigmoid",
    n_layers: int | None = None,
) -> tuple[list[dict[str, Array]], np.ndarray]:
    """Greedy layer-wise autoencoder pretraining of the hidden layers of one MLP.

    ``params``: ``[{"W": (n_l, n_{l-1}), "b": (n_l,)}, ...]`` (e.g. :func:`vgplib.init_mlp`), ``x``:
    inputs ``(N, n_0)``. For ``l = 1 .. n_layers`` (default: every layer but the output layer) the
    autoencoder of layer ``l`` (module docstring) is trained for ``steps`` steps of ``optimizer`` on
    the codes ``h_{l-1}`` of the already pretrained layers below, starting from the layer's own
    ``(W_l, b_l)``; ``batch_size``/``key`` as in :func:`vgplib.train_many` (``None``: full batch;
    layer ``l`` draws its minibatches from ``jax.random.fold_in(key, l)``).

    Returns ``(params, losses)``: the network with its first ``n_layers`` layers replaced by the
    trained encoders (the rest unchanged), and ``losses`` ``(n_layers, 2)``, each layer's
    reconstruction error ``E_AE`` on all of ``x``'s codes before and after its training.

    One network per call: the codes that layer ``l`` learns from depend on that network's own lower
    layers, and :func:`vgplib.train_many` shares its data across the models of a batch; seeds are
    therefore separate calls (they reuse one compilation while the widths are equal).
    """
    check_mlp_params(params)
    if not isinstance(x, (jax.Array, np.ndarray)) or np.ndim(x) != 2:
        raise ValueError(f"x must be a 2-D array (N, n_0); got {type(x).__name__} of shape {np.shape(x)}")
    if x.shape[1] != np.shape(params[0]["W"])[1]:
        raise ValueError(f"x has {x.shape[1]} features but the first layer takes {np.shape(params[0]['W'])[1]}")
    check_finite("x", x)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be an optax.GradientTransformation; got {type(optimizer).__name__}")
    steps = check_positive_int("steps", steps)
    L = len(params)
    n_layers = L - 1 if n_layers is None else check_positive_int("n_layers", n_layers)
    if n_layers > L:
        raise ValueError(f"n_layers must be at most the number of layers, {L}; got {n_layers}")
    if batch_size is not None and key is None:
        raise ValueError("key is required with a batch_size (minibatches are random)")
    act = get_activation(activation)
    loss_fn = autoencoder_loss_fn(act.name)
    out = [dict(layer) for layer in params]
    h = jnp.asarray(x)
    losses = np.zeros((n_layers, 2))
    for l in range(n_layers):
        W, b = jnp.asarray(params[l]["W"]), jnp.asarray(params[l]["b"])
        ae = {"W": W[None], "b": b[None], "c": jnp.zeros((1, W.shape[1]), W.dtype)}
        k = None if key is None else jax.random.fold_in(key, l)
        trained, loss = train_many(loss_fn, ae, h, h, optimizer, steps=steps, batch_size=batch_size, key=k)
        losses[l] = np.asarray(loss)[[0, -1], 0]
        out[l] = {"W": trained["W"][0], "b": trained["b"][0]}
        h = act.fn(dense(out[l], h))
    return out, losses
