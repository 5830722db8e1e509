"""A small jit-compiled training loop for MLP classifiers, recording how every layer learns.

The model is ``logits = mlp_forward(params, x, activation, linear_output=True)`` and the loss the
mean softmax cross-entropy ``E = -(1/B) sum_b log softmax(logits_b)[y_b]``. Training runs
``steps`` optimizer steps of an ``optax`` optimizer, ``record_every`` steps at a time inside one
``lax.scan`` (so a 20-layer network trains thousands of steps in seconds), and records, at
``t = 0, k, 2k, ..., steps`` (``k = record_every``), on the whole training set:

- the loss ``E(theta_t)`` and the accuracy;
- the relative weight change per layer ``||W_l(t) - W_l(0)||_F / ||W_l(0)||_F``: the measure of
  "the first layers barely move while the last ones learn", which chapter 3 measures for a deep
  sigmoid network (our description of that run: it appears to train, but does not improve);
- the full-batch gradient ``dE/dtheta_l`` per layer through :func:`vgplib.monitor.monitor_step`
  (per-layer and global norms, vanishing / exploding / non-finite flags). A diverging run is
  recorded, never raised: its loss and norms become ``inf``/``NaN`` and the flags say when.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgplib._validate import (
    as_array,
    check_finite,
    check_mlp_params,
    check_positive_int,
)
from vgplib.activations import Activation, get_activation
from vgplib.monitor import (
    DEFAULT_THRESHOLDS,
    GradientRecord,
    MonitorThresholds,
    _check_thresholds,
    monitor_step,
)
from vgplib.networks import mlp_forward

Array = jax.Array


class TrainHistory(NamedTuple):
    """What :func:`train_mlp` records at ``R = steps / record_every + 1`` points (numpy arrays).

    ``step`` ``(R,)``; ``loss``, ``accuracy`` ``(R,)`` on the training set; ``weight_change``
    ``(R, L)``: ``||W_l(t) - W_l(0)|| / ||W_l(0)||``; ``gradients``: a stacked
    :class:`vgplib.monitor.GradientRecord` of the full-batch gradient (``layer_norms (R, L)``).
    """

    step: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    weight_change: np.ndarray
    gradients: GradientRecord

    @property
    def grad_norms(self) -> np.ndarray:
        """``(R, L)``: ``||dE/dtheta_l||`` (weights and biases of layer ``l`` together)."""
        return self.gradients.layer_norms


def _check_labels(params, x: Array, y: Any) -> Array:
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or not np.issubdtype(y_arr.dtype, np.integer):
        raise TypeError(f"y must be a 1-D array of integer class labels; got {y_arr.dtype} {y_arr.shape}")
    if y_arr.shape[0] != x.shape[0]:
        raise ValueError(f"y has {y_arr.shape[0]} labels but x has {x.shape[0]} rows")
    n_classes = params[-1]["W"].shape[0]
    if y_arr.min() < 0 or y_arr.max() >= n_classes:
        raise ValueError(f"y must hold labels in [0, {n_classes}) (the output width); got {y_arr.min()}..{y_arr.max()}")
    return jnp.asarray(y_arr, dtype=jnp.int32)


def _check_data(params, x: Any, y: Any) -> tuple[Array, Array]:
    check_mlp_params(params)
    x = as_array("x", x, (2,))
    n_0 = params[0]["W"].shape[1]
    if x.shape[1] != n_0:
        raise ValueError(f"x has width {x.shape[1]} but params[0]['W'] expects inputs of width {n_0}")
    check_finite("x", x)
    return x, _check_labels(params, x, y)


def _loss_and_logits(params, x: Array, y: Array, act: Activation) -> tuple[Array, Array]:
    logits = mlp_forward(params, x, act, linear_output=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


@partial(jax.jit, static_argnames=("act",))
def _cross_entropy(params, x: Array, y: Array, act: Activation) -> Array:
    return _loss_and_logits(params, x, y, act)[0]


@partial(jax.jit, static_argnames=("act",))
def _accuracy(params, x: Array, y: Array, act: Activation) -> Array:
    logits = mlp_forward(params, x, act, linear_output=True)
    return jnp.mean(jnp.argmax(logits, axis=-1) == y)


def cross_entropy(params, x, y, activation: str | Activation = "tanh") -> Array:
    """Mean softmax cross-entropy ``-(1/B) sum_b log softmax(W_L x_{L-1} + b_L)_{y_b}`` (a scalar)."""
    act = get_activation(activation)
    x, y = _check_data(params, x, y)
    return _cross_entropy(params, x, y, act)


def accuracy(params, x, y, activation: str | Activation = "tanh") -> float:
    """Fraction of rows of ``x`` whose largest logit is at the label ``y`` (a Python float)."""
    act = get_activation(activation)
    x, y = _check_data(params, x, y)
    return float(_accuracy(params, x, y, act))


def relative_weight_change(params, params0) -> Array:
    """``||W_l - W_l(0)||_F / ||W_l(0)||_F`` for every layer ``l`` (biases are not counted), ``(L,)``."""
    return jnp.stack(
        [jnp.linalg.norm(p["W"] - p0["W"]) / jnp.linalg.norm(p0["W"]) for p, p0 in zip(params, params0)]
    )


def _record(params, params0, x: Array, y: Array, act: Activation, th: MonitorThresholds):
    (loss, logits), grads = jax.value_and_grad(_loss_and_logits, has_aux=True)(params, x, y, act)
    acc = jnp.mean(jnp.argmax(logits, axis=-1) == y)
    return loss, acc, relative_weight_change(params, params0), monitor_step(grads, th)


@partial(jax.jit, static_argnames=("k", "batch_size", "n"))
def _batch_indices(key: Array, k: int, batch_size: int, n: int) -> Array:
    """``(k, batch_size)`` row indices, uniform with replacement: the minibatches of ``k`` steps.

    Drawn outside the training scan: the PRNG (threefry) inside the scan made the 20-layer loop
    compile about twice as slowly, and ``jax.random.choice(replace=False)`` sorts ``n`` keys per step.
    """
    return jax.random.randint(key, (k, batch_size), 0, n)


@partial(jax.jit, static_argnames=("act", "optimizer", "full_batch", "th"))
def _record_then_train(state, params0, x, y, idx, run, act, optimizer, full_batch, th):
    """Record at the current parameters, then (if ``run``) take one optimizer step per row of ``idx``."""
    params, opt_state = state
    record = _record(params, params0, x, y, act, th)

    def step(carry, rows):
        params, opt_state = carry
        xb, yb = (x, y) if full_batch else (x[rows], y[rows])
        grads = jax.grad(lambda p: _loss_and_logits(p, xb, yb, act)[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def train(carry):
        return jax.lax.scan(step, carry, idx)[0]

    state = jax.lax.cond(run, train, lambda carry: carry, (params, opt_state))
    return state, record


def train_mlp(
    params,
    x,
    y,
    optimizer: optax.GradientTransformation,
    *,
    activation: str | Activation = "tanh",
    steps: int = 1000,
    batch_size: int | None = None,
    key: Array | None = None,
    record_every: int = 10,
    thresholds: MonitorThresholds = DEFAULT_THRESHOLDS,
    progress: bool = False,
) -> tuple[list[dict[str, Array]], TrainHistory]:
    """Train an MLP classifier with ``optimizer`` for ``steps`` steps; return ``(params, history)``.

    Each step draws ``batch_size`` rows of ``(x, y)`` uniformly with replacement (``key`` required) or,
    with ``batch_size=None``, uses the whole set (full-batch gradient descent, deterministic),
    and applies ``theta <- theta + optimizer.update(dE/dtheta)``. ``steps`` must be a multiple of
    ``record_every``; see :class:`TrainHistory` for what is recorded. The training runs as one
    compiled function called ``steps / record_every + 1`` times (record, then ``record_every``
    steps in ``lax.scan``), so reusing the same ``optimizer`` object and activation reuses the
    compilation. ``progress=True`` shows a text ``tqdm`` bar on stderr (not a widget).
    Non-finite gradients do not raise: they are recorded and flagged (see :mod:`vgplib.monitor`).
    """
    act = get_activation(activation)
    x, y = _check_data(params, x, y)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be an optax.GradientTransformation; got {type(optimizer).__name__}")
    steps = check_positive_int("steps", steps)
    record_every = check_positive_int("record_every", record_every)
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    n = x.shape[0]
    batch_size = n if batch_size is None else check_positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) must not exceed the number of rows of x ({n})")
    if batch_size < n and key is None:
        raise ValueError("key is required when batch_size is smaller than the training set (minibatch sampling)")
    th = _check_thresholds(thresholds)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool; got {type(progress).__name__}")
    params = [{"W": jnp.asarray(p["W"]), "b": jnp.asarray(p["b"])} for p in params]
    for i, p in enumerate(params):
        if not bool(jnp.any(p["W"] != 0)):
            raise ValueError(f"params[{i}]['W'] is all zeros: the relative weight change is undefined")
    full_batch = batch_size == n

    from tqdm.std import tqdm  # text bar on stderr, never a notebook widget

    state = (params, optimizer.init(params))
    records = []
    n_chunks = steps // record_every
    chunk_keys = None if full_batch else jax.random.split(key, n_chunks)
    no_rows = jnp.zeros((record_every, 1), jnp.int32)  # full batch: the scan only needs a length
    with tqdm(total=steps, unit="step", file=sys.stderr, disable=not progress, mininterval=0.5) as bar:
        for i in range(n_chunks + 1):
            run = i < n_chunks
            if full_batch or not run:
                idx = no_rows if full_batch else _batch_indices(chunk_keys[0], record_every, batch_size, n)
            else:
                idx = _batch_indices(chunk_keys[i], record_every, batch_size, n)
            state, rec = _record_then_train(state, params, x, y, idx, jnp.asarray(run), act, optimizer,
                                            full_batch, th)
            records.append(rec)
            if run and progress:
                jax.block_until_ready(state[0])
                bar.update(record_every)
    loss, acc, change = (np.stack([np.asarray(r[j]) for r in records]) for j in range(3))
    grads = GradientRecord(*[np.stack([np.asarray(getattr(r[3], f)) for r in records]) for f in GradientRecord._fields])
    history = TrainHistory(np.arange(n_chunks + 1) * record_every, loss, acc, change, grads)
    return state[0], history
