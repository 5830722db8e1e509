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
from collections.abc import Callable
from functools import cache, partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgplib._validate import (
    as_array,
    check_finite,
    check_finite_many,
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


# --------------------------------------------------------------------------------------------
# Many models at once: seeds, sigma_w values, depths behind a mask — one compiled function.
# --------------------------------------------------------------------------------------------


@cache
def mlp_loss_fn(activation: str = "tanh", **forward_kwargs: Any) -> Callable[[Any, Array, Array], Array]:
    """``loss_fn(params, x, y)``: the mean softmax cross-entropy of an MLP classifier, for :func:`train_many`.

    ``E = -(1/B) sum_b log softmax(logits_b)[y_b]`` with ``logits = mlp_forward(params, x, activation,
    linear_output=True, **forward_kwargs)`` (``forward_kwargs``: further options of
    :func:`vgplib.mlp_forward`, e.g. ``residual=True``). The function is traceable (usable inside
    ``jax.jit``/``jax.vmap``) and cached: the same arguments return the same object, so
    :func:`train_many` reuses its compilation.
    """
    act = get_activation(activation)

    def loss_fn(params, x, y):
        logits = mlp_forward(params, x, act, linear_output=True, **forward_kwargs)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    loss_fn.__name__ = f"mlp_loss_{act.name}"
    return loss_fn


@cache
def mlp_accuracy_fn(activation: str = "tanh", **forward_kwargs: Any) -> Callable[[Any, Array, Array], Array]:
    """``accuracy_fn(params, x, y)``: the fraction of rows whose largest logit is at the label ``y``.

    The companion of :func:`mlp_loss_fn` (same forward pass), traceable and cached; use it with
    :func:`evaluate_many` to score every model of a batch.
    """
    act = get_activation(activation)

    def accuracy_fn(params, x, y):
        logits = mlp_forward(params, x, act, linear_output=True, **forward_kwargs)
        return jnp.mean(jnp.argmax(logits, axis=-1) == y)

    accuracy_fn.__name__ = f"mlp_accuracy_{act.name}"
    return accuracy_fn


class _Phi(NamedTuple):
    """What :func:`vgplib.normalization.norm_layer` needs of an activation: its function."""

    fn: Callable[[Array], Array]


@cache
def scanned_mlp_loss_fn(activation: str | tuple[str, ...] = "tanh", norm: str | None = None,
                        eps: float = 1e-5) -> Callable[[Any, Array, Array], Array]:
    """``loss_fn(params, x, y)``: :func:`mlp_loss_fn` for a deep MLP whose equal-shape hidden layers are
    stacked and run in ``lax.scan`` (one layer body to compile instead of ``L``), for :func:`train_many`.

    ``params = {"first": layer (optional), "hidden": {"W": (K, n, n), "b": (K, n)}, "out": layer}``
    (``hidden`` as :func:`vgplib.networks.stack_params` stacks it). ``h_1 = phi(N(W_first x + b_first))``
    where ``"first"`` is present (else ``h_0 = x``), then ``h_l = phi(N(W_l h_{l-1} + b_l))`` for the
    ``K`` stacked layers, ``logits = W_out h + b_out`` (linear, not normalized) and
    ``E = -(1/B) sum_b log softmax(logits_b)[y_b]``; ``norm`` is ``None``, ``"batch"`` or ``"layer"``
    (variance ``+ eps``), as in :func:`vgplib.mlp_forward`. The same function as
    ``mlp_loss_fn(activation, norm=norm, eps=eps)`` on the unstacked layers (tested).

    With a tuple of activation names every model carries its own activation: ``params["act"]`` is a
    one-hot float vector over the names and ``phi = names[argmax(act)]``
    (:func:`vgplib.activations.function_by_index`); ``act`` is behind ``stop_gradient``, so an optimizer
    leaves it one-hot, and one :func:`train_many` call (one compilation) trains several activations at
    once (under ``jax.vmap`` every branch is evaluated).

    Traceable and cached (the same arguments return the same object, so :func:`train_many` reuses its
    compilation). ``loss_fn.accuracy(params, x, y)`` is the companion accuracy (the fraction of rows
    whose largest logit is at ``y``), for :func:`evaluate_many`.
    """
    from vgplib.activations import function_by_index
    from vgplib.networks import dense
    from vgplib.normalization import check_norm, norm_layer

    eps = check_norm(norm, eps)
    if isinstance(activation, tuple):
        if not activation:
            raise ValueError("activation must be a name or a non-empty tuple of names; got ()")
        names = tuple(get_activation(a).name for a in activation)
    else:
        act = get_activation(activation)
        names = None

    def logits(params, x):
        if names is None:
            phi = act
        else:
            idx = jnp.argmax(jax.lax.stop_gradient(params["act"]))
            phi = _Phi(lambda a: function_by_index(idx, a, names))
        h = norm_layer(params["first"], x, phi, norm, eps) if "first" in params else x

        def layer(h, p):
            return norm_layer(p, h, phi, norm, eps), None

        h, _ = jax.lax.scan(layer, h, params["hidden"])
        return dense(params["out"], h)

    def loss_fn(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()

    def accuracy_fn(params, x, y):
        return jnp.mean(jnp.argmax(logits(params, x), axis=-1) == y)

    suffix = act.name if names is None else "_".join(names)
    loss_fn.__name__, accuracy_fn.__name__ = f"scanned_mlp_loss_{suffix}", f"scanned_mlp_accuracy_{suffix}"
    loss_fn.accuracy = accuracy_fn
    return loss_fn


def _check_batch(params_batch: Any) -> int:
    leaves = jax.tree_util.tree_leaves(params_batch)
    if not leaves:
        raise TypeError("params_batch must be a pytree of arrays with a leading model axis; it has no leaves")
    sizes = set()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params_batch)[0]:
        shape = getattr(leaf, "shape", None)
        if shape is None or not jnp.issubdtype(getattr(leaf, "dtype", np.dtype(object)), jnp.floating):
            raise TypeError(f"params_batch{jax.tree_util.keystr(path)} must be a floating array; got {type(leaf).__name__}")
        if len(shape) == 0:
            raise ValueError(f"params_batch{jax.tree_util.keystr(path)} is a scalar: every leaf needs a leading model axis")
        sizes.add(shape[0])
    if len(sizes) != 1:
        raise ValueError(f"params_batch leaves must share one leading model axis; got sizes {sorted(sizes)}")
    n_models = sizes.pop()
    if n_models < 1:
        raise ValueError("params_batch has an empty model axis (0 models)")
    return int(n_models)


def _check_xy(x: Any, y: Any) -> tuple[Array, Array]:
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, (str, bytes, dict)) or v is None:
            raise TypeError(f"{name} must be an array; got {type(v).__name__}")
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or y.ndim < 1:
        raise ValueError(f"x and y need a leading example axis; got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError("x and y must not be empty")
    check_finite_many(("x", x), ("y", y))
    return x, y


@partial(jax.jit, static_argnames=("loss_fn", "optimizer", "full_batch", "same_batches", "record_fn"))
def _train_many(params_batch, x, y, idx, loss_fn, optimizer, full_batch, same_batches, record_fn=None):
    """Every model: record (the full-set loss, or ``record_fn``), ``record_every`` steps in ``lax.scan``,
    repeat; then record. Records come back with leading axes ``(records, models)``."""
    measure = (lambda p: loss_fn(p, x, y)) if record_fn is None else record_fn

    def one_model(params, idx_m):
        def step(carry, rows):
            p, o = carry
            xb, yb = (x, y) if full_batch else (x[rows], y[rows])
            g = jax.grad(loss_fn)(p, xb, yb)
            updates, o = optimizer.update(g, o, p)
            return (optax.apply_updates(p, updates), o), None

        def chunk(carry, idx_c):
            record = measure(carry[0])
            return jax.lax.scan(step, carry, idx_c)[0], record

        (p, _), records = jax.lax.scan(chunk, (params, optimizer.init(params)), idx_m)
        return p, jax.tree.map(lambda r, last: jnp.concatenate([r, last[None]]), records, measure(p))

    params_out, records = jax.vmap(one_model, in_axes=(0, None if same_batches else 0))(params_batch, idx)
    return params_out, jax.tree.map(lambda r: jnp.swapaxes(r, 0, 1), records)


def train_many(
    loss_fn: Callable[[Any, Array, Array], Array],
    params_batch: Any,
    x: Any,
    y: Any,
    optimizer: optax.GradientTransformation,
    *,
    steps: int,
    batch_size: int | None = None,
    key: Array | None = None,
    record_every: int | None = None,
    same_batches: bool = True,
    record_fn: Callable[[Any], Any] | None = None,
) -> tuple[Any, Any]:
    """Train a batch of models in ONE compiled function: ``jax.vmap`` over models, ``lax.scan`` over steps.

    ``params_batch`` is any pytree whose leaves carry a leading model axis of size ``M`` (seeds:
    ``jax.vmap(lambda k: init_mlp(k, widths))(keys)``; or one network per ``sigma_w``; or
    ``jax.tree.map(lambda *l: jnp.stack(l), *list_of_params)``). Every model ``m`` runs
    ``steps`` steps of ``optimizer`` (any ``optax.GradientTransformation``, its state per model, so
    e.g. ``clip_by_global_norm`` clips each model by its own norm) on ``loss_fn(params, x_b, y_b)``,
    a traceable scalar function of one model (:func:`mlp_loss_fn` for an MLP classifier, or the
    chapter's own network)::

        theta_m <- theta_m + optimizer.update(grad loss_fn(theta_m, x[rows_t], y[rows_t]))

    Minibatches: ``rows_t`` are ``batch_size`` row indices drawn uniformly with replacement. The
    steps run in chunks of ``k = record_every``; chunk ``i`` draws its ``(k, batch_size)`` indices as
    ``jax.random.randint(jax.random.split(key_m, steps // k)[i], (k, batch_size), 0, n)``, where
    ``key_m = key`` for every model with ``same_batches=True`` (the default: all models see the SAME
    minibatch sequence, so models differ only by their parameters — a paired comparison) and
    ``key_m = jax.random.split(key, M)[m]`` with ``same_batches=False`` (each model its own stream).
    ``batch_size=None`` trains full-batch (deterministic; ``key`` not needed).

    Returns ``(params_batch, losses)``: the trained parameters (same pytree, leading axis ``M``) and
    ``losses`` of shape ``(steps // record_every + 1, M)``, ``loss_fn`` on the WHOLE ``(x, y)`` at
    steps ``0, k, 2k, ..., steps`` (``record_every=None`` records only the start and the end). A
    diverging model is recorded, never raised: its losses become ``inf``/``NaN`` and the other models
    are unaffected. Reusing the same ``loss_fn`` and ``optimizer`` objects and shapes reuses the
    compilation.

    ``record_fn(params) -> pytree of arrays`` (traceable, one model's parameters) replaces the
    recorded loss: it is evaluated inside the same compiled run at the same steps ``0, k, ..., steps``
    and the second return value is its pytree, every leaf a NumPy array with leading axes
    ``(steps // record_every + 1, M)`` (e.g. train and test losses, per-layer gradient norms and the
    parameters themselves, as chapter 15's panel records them). The optimizer state runs on across
    records either way: recording never restarts the optimizer.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable loss_fn(params, x, y) -> scalar; got {type(loss_fn).__name__}")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be an optax.GradientTransformation; got {type(optimizer).__name__}")
    n_models = _check_batch(params_batch)
    x, y = _check_xy(x, y)
    steps = check_positive_int("steps", steps)
    record_every = steps if record_every is None else check_positive_int("record_every", record_every)
    if steps % record_every:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every})")
    if not isinstance(same_batches, bool):
        raise TypeError(f"same_batches must be a bool; got {type(same_batches).__name__}")
    if record_fn is not None and not callable(record_fn):
        raise TypeError(f"record_fn must be None or a callable record_fn(params) -> pytree; got {type(record_fn).__name__}")
    n = x.shape[0]
    full_batch = batch_size is None
    if not full_batch:
        batch_size = check_positive_int("batch_size", batch_size)
        if batch_size > n:
            raise ValueError(f"batch_size ({batch_size}) must not exceed the number of rows of x ({n})")
        if key is None:
            raise ValueError("key is required with batch_size (minibatch sampling); pass batch_size=None for full batch")
    if key is not None and not (isinstance(key, jax.Array) and key.shape in ((2,), ())):
        raise TypeError(f"key must be a JAX PRNG key (jax.random.PRNGKey or jax.random.key); got {key!r}")
    check_finite_many(("params_batch", params_batch))
    first = jax.tree_util.tree_map(lambda leaf: leaf[0], params_batch)
    rows = n if full_batch else batch_size
    try:
        out = jax.eval_shape(loss_fn, first, x[:rows], y[:rows])
    except (TypeError, ValueError) as err:
        raise TypeError(f"loss_fn(params, x, y) failed on one model of params_batch: {err}") from err
    if getattr(out, "shape", None) != () or not jnp.issubdtype(out.dtype, jnp.floating):
        raise ValueError(f"loss_fn must return a floating scalar; got {out}")
    if record_fn is not None:
        try:
            recorded = jax.eval_shape(record_fn, first)
        except (TypeError, ValueError) as err:
            raise TypeError(f"record_fn(params) failed on one model of params_batch: {err}") from err
        leaves = jax.tree.leaves(recorded)
        if not leaves or not all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves):
            raise TypeError(f"record_fn must return a pytree of arrays; got {recorded}")
    n_chunks = steps // record_every
    if full_batch:
        idx = jnp.zeros((n_chunks, record_every, 0), jnp.int32)  # the scans only need lengths
    else:
        def draw(k):
            chunk_keys = jax.random.split(k, n_chunks)
            return jax.vmap(lambda ck: jax.random.randint(ck, (record_every, batch_size), 0, n))(chunk_keys)

        idx = draw(key) if same_batches else jax.vmap(draw)(jax.random.split(key, n_models))
    if full_batch and not same_batches:
        idx = jnp.broadcast_to(idx, (n_models, *idx.shape))
    params_out, records = _train_many(params_batch, x, y, idx, loss_fn, optimizer, full_batch, same_batches,
                                      record_fn)
    return params_out, jax.tree.map(np.asarray, records)


def evaluate_many(fn: Callable[[Any, Array, Array], Array], params_batch: Any, x: Any, y: Any) -> np.ndarray:
    """``fn(params_m, x, y)`` for every model ``m`` of ``params_batch`` (vmapped, jitted), shape ``(M,)``.

    E.g. ``evaluate_many(mlp_accuracy_fn("tanh"), trained, x_test, y_test)`` after :func:`train_many`.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable fn(params, x, y) -> scalar; got {type(fn).__name__}")
    _check_batch(params_batch)
    x, y = _check_xy(x, y)
    return np.asarray(_evaluate_many(params_batch, x, y, fn))


@partial(jax.jit, static_argnames=("fn",))
def _evaluate_many(params_batch, x, y, fn):
    return jax.vmap(fn, in_axes=(0, None, None))(params_batch, x, y)
