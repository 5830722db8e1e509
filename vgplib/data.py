"""Tasks with long-range dependencies, and scikit-learn's bundled 8x8 handwritten digits.

- :func:`adding_problem`: the adding problem of Hochreiter & Schmidhuber (1997, experiment 4) in
  the form of Le, Jaitly & Hinton (2015): two input channels, random values ``U[0, 1]`` and a
  marker channel with exactly two ones, one in each half of the sequence; the target is the sum of
  the two marked values. Predicting the constant 1 scores a mean squared error of exactly
  ``Var(u_1 + u_2) = 2 / 12 = 1/6`` (:data:`ADDING_BASELINE_MSE`), the bar a network must beat.
- :func:`delayed_recall`: one of ``n_symbols`` symbols is shown ``lag`` steps before the end of an
  otherwise blank sequence and must be named at the end; chance accuracy is ``1 / n_symbols``.
- :func:`load_digits`: scikit-learn's bundled digits (no network), scaled to ``[0, 1]``.

Generators take a PRNG key, so every batch is reproducible.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import check_float_dtype, check_positive, check_positive_int

Array = jax.Array

#: MSE of the best constant predictor (the target mean 1) on the adding problem: Var(U1 + U2) = 1/6.
ADDING_BASELINE_MSE: float = 1.0 / 6.0


class Task(NamedTuple):
    """A batch of a sequence task: ``inputs`` ``(B, T, d)`` and ``targets`` ``(B,)``."""

    inputs: Array
    targets: Array


def _check_key(key: Any) -> Array:
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if isinstance(key, (jax.Array, np.ndarray)) and key.dtype == np.uint32 and key.shape == (2,):
        return key
    raise TypeError("key must be a single PRNG key from jax.random.key(seed) or jax.random.PRNGKey(seed); "
                    f"got {type(key).__name__} {getattr(key, 'shape', '')}")


def adding_baseline_mse() -> float:
    """Closed form of the constant predictor's mean squared error on :func:`adding_problem`.

    The target ``y = u_1 + u_2`` with ``u_1, u_2`` iid ``U[0, 1]`` has mean 1 and variance
    ``2 * 1/12 = 1/6``; the best constant is the mean, with MSE ``E[(y - 1)^2] = Var(y) = 1/6``.
    """
    return ADDING_BASELINE_MSE


def adding_problem(key: Any, seq_len: int, batch_size: int, dtype=jnp.float32) -> Task:
    """A batch of the adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015).

    ``inputs[b, t] = (u_t, m_t)`` with ``u_t ~ U[0, 1]`` iid and ``m_t`` a marker that is 1 at exactly
    two steps: one drawn uniformly from the first half ``t < T // 2`` and one from the second half
    ``t >= T // 2`` (0-based), 0 elsewhere. ``targets[b] = sum_t u_t m_t``. Needs ``seq_len >= 2``.
    Returns :class:`Task` with ``inputs`` ``(batch_size, seq_len, 2)`` and ``targets`` ``(batch_size,)``.
    Predicting 1 gives MSE 1/6 (:func:`adding_baseline_mse`). Traceable: works under ``jax.jit``
    (with ``seq_len``, ``batch_size`` static) and ``jax.vmap`` over keys, so a training loop can draw
    its batches inside the compiled function.
    """
    key = _check_key(key)
    T = check_positive_int("seq_len", seq_len, minimum=2)
    B = check_positive_int("batch_size", batch_size)
    check_float_dtype(dtype)
    half = T // 2
    # One draw of B x (T + 2) uniforms: the T values, then two that place the markers. A single
    # random-bits call (instead of one per quantity and randint's two) keeps the function cheap to
    # compile inside a jitted training loop; floor(r * n) is uniform on {0, .., n - 1} (clipped,
    # since r * n can round up to n in float32).
    r = jax.random.uniform(key, (B, T + 2), jnp.promote_types(dtype, jnp.float32))
    u = r[:, :T].astype(dtype)
    first = jnp.minimum(jnp.floor(r[:, T] * half), half - 1).astype(jnp.int32)
    second = half + jnp.minimum(jnp.floor(r[:, T + 1] * (T - half)), T - half - 1).astype(jnp.int32)
    t = jnp.arange(T)
    marker = ((t == first[:, None]) | (t == second[:, None])).astype(dtype)
    targets = jnp.sum(u * marker, axis=1)
    return Task(jnp.stack([u, marker], axis=-1), targets)


def delayed_recall(key: Any, lag: int, batch_size: int, n_symbols: int = 4, seq_len: int | None = None,
                   dtype=jnp.float32) -> Task:
    """A batch of delayed recall: name the symbol shown ``lag`` steps before the end.

    ``inputs`` ``(batch_size, T, n_symbols)`` is zero except for a one-hot symbol at step
    ``T - 1 - lag`` (0-based); ``targets`` ``(batch_size,)`` are the symbol indices (int32), to be
    read out from the last state ``h_{T}`` after the cue has been carried through ``lag`` blank
    steps. ``seq_len = T`` defaults to ``lag + 1`` (the cue first); a longer ``seq_len`` puts
    blank steps before the cue. ``lag = 0`` asks for the symbol at the last step. Chance accuracy
    is ``1 / n_symbols`` and the chance cross-entropy ``log(n_symbols)``.
    """
    key = _check_key(key)
    if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)):
        raise TypeError(f"lag must be an integer >= 0; got {lag!r}")
    if lag < 0:
        raise ValueError(f"lag must be an integer >= 0; got {lag}")
    B = check_positive_int("batch_size", batch_size)
    K = check_positive_int("n_symbols", n_symbols, minimum=2)
    T = int(lag) + 1 if seq_len is None else check_positive_int("seq_len", seq_len)
    if T < lag + 1:
        raise ValueError(f"seq_len must be at least lag + 1 = {lag + 1}; got {T}")
    check_float_dtype(dtype)
    targets = jax.random.randint(key, (B,), 0, K, dtype=jnp.int32)
    inputs = jnp.zeros((B, T, K), dtype).at[:, T - 1 - int(lag), :].set(jax.nn.one_hot(targets, K, dtype=dtype))
    return Task(inputs, targets)


class Digits(NamedTuple):
    """Train/test split of the 8x8 digits: ``x`` float32 ``(N, 64)`` in ``[0, 1]``, ``y`` int32 ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Digits:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; no download).

    Pixels (integers 0..16) are divided by 16, so ``x`` lies in ``[0, 1]``, as float32; labels are
    int32. The split is STRATIFIED by class (``sklearn.model_selection.train_test_split`` with
    ``stratify=y`` and ``random_state=seed``), so both parts keep the class proportions and the
    split is the same on every machine for a given ``seed``. Returns :class:`Digits` of NumPy arrays.
    """
    test_fraction = check_positive("test_fraction", test_fraction)
    if not test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1; got {test_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be an integer >= 0; got {seed!r}")
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    data = _sk_load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=int(seed))
    return Digits(x_tr, y_tr, x_te, y_te)
