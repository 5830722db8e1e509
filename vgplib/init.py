"""Weight initializers for MLPs: one layer at a time, or a whole network of given widths.

Every initializer returns ``{"W": (fan_out, fan_in), "b": (fan_out,)}``. The weight variance
``Var(W_ij)`` decides the per-layer gradient factor: for a linear network the backward signal
is multiplied by about ``fan_out * Var(W)`` per layer (Glorot & Bengio 2010), and in the
mean-field limit by ``chi_1 = sigma_w^2 E[phi'(a)^2]`` with ``sigma_w^2 = fan_in * Var(W)``
(Schoenholz et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from vgplib._validate import (
    check_float_dtype,
    check_name,
    check_positive,
    check_positive_int,
)

Array = jax.Array
Layer = dict[str, Array]


def _uniform(key: Array, shape: tuple[int, ...], limit: float, dtype) -> Array:
    return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)


def _orthogonal(key: Array, fan_in: int, fan_out: int, dtype) -> Array:
    # QR of a Gaussian matrix with the sign of diag(R) folded into Q is Haar-distributed
    # (Mezzadri 2007); a rectangular result has orthonormal rows or columns.
    n, m = max(fan_in, fan_out), min(fan_in, fan_out)
    a = jax.random.normal(key, (n, m), dtype)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r))
    return q if fan_out >= fan_in else q.T


def init_layer(
    key: Array,
    fan_in: int,
    fan_out: int,
    init: str = "gaussian",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    mean_scale: float = 8.0,
    dtype=jnp.float32,
) -> Layer:
    """Initialize one dense layer ``h = W x + b`` with ``W`` of shape ``(fan_out, fan_in)``.

    ``init`` is one of :data:`INIT_NAMES`:

    - ``gaussian``: ``W ~ N(0, sigma_w^2 / fan_in)``, ``b ~ N(0, sigma_b^2)`` (the mean-field
      parametrization of Poole et al. 2016 and Schoenholz et al. 2017).
    - ``standard``: ``W ~ U[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, so ``fan_in Var(W) = 1/3``: the
      pre-2010 default that Glorot & Bengio (2010) show makes back-propagated gradients shrink.
    - ``glorot_uniform``: ``W ~ U[-a, a]``, ``a = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio
      2010, eq. 16, "normalized initialization").
    - ``glorot_normal``: ``W ~ N(0, 2 / (fan_in + fan_out))``.
    - ``he``: ``W ~ N(0, 2 / fan_in)`` (He et al. 2015), so that ``chi_1 = 1`` for ReLU.
    - ``balanced``: ``W ~ N(0, 2 / (fan_in + fan_out))`` scaled by ``sigma_w``: the compromise
      between preserving forward and backward variance, equal to Glorot's for ``sigma_w = 1``.
    - ``orthogonal``: ``W = sigma_w Q`` with ``Q`` Haar-orthogonal (Saxe, McClelland & Ganguli
      2014); all singular values equal ``sigma_w`` (dynamical isometry for linear nets).
    - ``lecun``: ``W ~ N(0, sigma_w^2 / fan_in)`` with ``sigma_w = 1`` by default: the standard
      deviation ``fan_in^(-1/2)`` recommended in LeCun et al. (1998, *Efficient BackProp*; we did not
      read its text here), which keeps the forward variance for a unit-slope activation;
      ``sigma_w`` rescales it as for ``gaussian``.
    - ``negative_mean``: ``W ~ N(mu, 0.1^2)``, ``mu = max(-1, -mean_scale / fan_in)`` with
      ``mean_scale = 8`` by default (:data:`NEGATIVE_MEAN_SCALE`, :data:`NEGATIVE_MEAN_STD`), the
      negative-mean initialization for deep logistic-sigmoid MLPs of Yilmaz & Poli (2022). What we
      could check in the paper's stored text is its abstract: "initial back-propagation gradients do
      not vanish if the mean of the initial weights is negative and inversely proportional to the
      number of neurons in a layer". The constants (-8/N capped at -1, standard deviation 0.1) are
      our choice, of that form; we could not read the paper's own constants in its stored text.
      A unit's pre-activation sums ``fan_in`` sigmoid outputs of mean about 1/2, so the mean weight
      ``mu`` shifts it by about ``fan_in * mu / 2 = -4``; ``sigma_w`` is not used.

    Biases are ``N(0, sigma_b^2)`` for every init (zero by default).
    """
    fan_in = check_positive_int("fan_in", fan_in)
    fan_out = check_positive_int("fan_out", fan_out)
    check_name("init", init, INIT_NAMES)
    sigma_w = check_positive("sigma_w", sigma_w)
    sigma_b = check_positive("sigma_b", sigma_b, allow_zero=True)
    mean_scale = check_positive("mean_scale", mean_scale, allow_zero=True)
    check_float_dtype(dtype)
    key_w, key_b = jax.random.split(key)
    shape = (fan_out, fan_in)
    if init == "gaussian":
        W = sigma_w / math.sqrt(fan_in) * jax.random.normal(key_w, shape, dtype)
    elif init == "standard":
        W = _uniform(key_w, shape, 1.0 / math.sqrt(fan_in), dtype)
    elif init == "glorot_uniform":
        W = _uniform(key_w, shape, math.sqrt(6.0 / (fan_in + fan_out)), dtype)
    elif init == "glorot_normal":
        W = math.sqrt(2.0 / (fan_in + fan_out)) * jax.random.normal(key_w, shape, dtype)
    elif init == "he":
        W = math.sqrt(2.0 / fan_in) * jax.random.normal(key_w, shape, dtype)
    elif init == "balanced":
        W = sigma_w * math.sqrt(2.0 / (fan_in + fan_out)) * jax.random.normal(key_w, shape, dtype)
    elif init == "orthogonal":
        W = sigma_w * _orthogonal(key_w, fan_in, fan_out, dtype)
    elif init == "lecun":
        W = sigma_w / math.sqrt(fan_in) * jax.random.normal(key_w, shape, dtype)
    else:  # negative_mean
        W = negative_mean_value(fan_in, mean_scale) + NEGATIVE_MEAN_STD * jax.random.normal(key_w, shape, dtype)
    b = sigma_b * jax.random.normal(key_b, (fan_out,), dtype)
    return {"W": W, "b": b}


INIT_NAMES: tuple[str, ...] = (
    "gaussian",
    "standard",
    "glorot_uniform",
    "glorot_normal",
    "he",
    "balanced",
    "orthogonal",
    "negative_mean",
    "lecun",
)

#: The negative-mean init's constants: ``mu = max(-1, -NEGATIVE_MEAN_SCALE / fan_in)``, sd 0.1.
NEGATIVE_MEAN_SCALE = 8.0
NEGATIVE_MEAN_STD = 0.1


def negative_mean_value(fan_in: int, mean_scale: float = NEGATIVE_MEAN_SCALE) -> float:
    """The weight mean of the ``negative_mean`` init: ``mu = max(-1, -mean_scale / fan_in)``."""
    fan_in = check_positive_int("fan_in", fan_in)
    mean_scale = check_positive("mean_scale", mean_scale, allow_zero=True)
    return max(-1.0, -mean_scale / fan_in)


def init_variance(init: str, fan_in: int, fan_out: int, sigma_w: float = 1.0) -> float:
    """``Var(W_ij)`` of an initializer (its formula, not a sample): e.g. ``2 / (fan_in + fan_out)`` for Glorot.

    With it, a linear(ized) layer multiplies the forward variance by ``fan_in Var(W)`` and the
    backward variance by ``fan_out Var(W)`` (the two conditions of Glorot & Bengio 2010, in our
    notation ``a_l = W_l h_{l-1}``); the two are equal only when ``fan_in = fan_out``. ``orthogonal`` gives
    ``sigma_w^2 / max(fan_in, fan_out)`` (the orthonormal rows or columns spread their unit norm
    over the longer side); ``negative_mean`` its ``0.1^2`` about the mean.
    """
    fan_in = check_positive_int("fan_in", fan_in)
    fan_out = check_positive_int("fan_out", fan_out)
    check_name("init", init, INIT_NAMES)
    sigma_w = check_positive("sigma_w", sigma_w)
    return {
        "gaussian": sigma_w**2 / fan_in,
        "lecun": sigma_w**2 / fan_in,
        "standard": 1.0 / (3.0 * fan_in),
        "glorot_uniform": 2.0 / (fan_in + fan_out),
        "glorot_normal": 2.0 / (fan_in + fan_out),
        "he": 2.0 / fan_in,
        "balanced": sigma_w**2 * 2.0 / (fan_in + fan_out),
        "orthogonal": sigma_w**2 / max(fan_in, fan_out),
        "negative_mean": NEGATIVE_MEAN_STD**2,
    }[init]


def init_mlp(
    key: Array,
    widths: Sequence[int],
    init: str = "gaussian",
    sigma_w: float = 1.0,
    sigma_b: float = 0.0,
    mean_scale: float = 8.0,
    dtype=jnp.float32,
) -> list[Layer]:
    """Initialize an MLP with layer widths ``widths = [n_0, n_1, ..., n_L]`` (L layers).

    Returns ``[{"W": (n_1, n_0), "b": (n_1,)}, ..., {"W": (n_L, n_{L-1}), "b": (n_L,)}]``; layer
    ``l`` gets its own key from ``jax.random.split(key, L)``, so results are reproducible.
    See :func:`init_layer` for the initializers.
    """
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"widths must be a sequence of layer widths [n_0, ..., n_L]; got {widths!r}")
    if len(widths) < 2:
        raise ValueError(f"widths must list at least an input and an output width; got {list(widths)}")
    for i, w in enumerate(widths):
        check_positive_int(f"widths[{i}]", w)
    keys = jax.random.split(key, len(widths) - 1)
    return [
        init_layer(k, int(n_in), int(n_out), init, sigma_w, sigma_b, mean_scale, dtype)
        for k, n_in, n_out in zip(keys, widths[:-1], widths[1:])
    ]
