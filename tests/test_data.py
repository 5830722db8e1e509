"""Sequence tasks and the digits loader: structure, targets, statistics, reproducibility, errors."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vgplib

KEY = jax.random.PRNGKey(0)


# --------------------------------------------------------------------------- adding problem


@pytest.mark.parametrize("T", [2, 3, 10, 51])
def test_adding_problem_structure(T):
    task = vgplib.adding_problem(KEY, T, 500)
    x, y = np.asarray(task.inputs, np.float64), np.asarray(task.targets, np.float64)
    assert task.inputs.shape == (500, T, 2) and task.targets.shape == (500,)
    assert task.inputs.dtype == jnp.float32 and task.targets.dtype == jnp.float32
    values, marker = x[..., 0], x[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(marker)) <= {0.0, 1.0}  # T = 2: both steps are marked
    half = T // 2
    # Exactly two markers: one in the first half, one in the second half.
    assert np.all(marker.sum(axis=1) == 2)
    assert np.all(marker[:, :half].sum(axis=1) == 1) and np.all(marker[:, half:].sum(axis=1) == 1)
    # The target is the sum of the two marked values (recomputed independently by index).
    first, second = marker[:, :half].argmax(axis=1), half + marker[:, half:].argmax(axis=1)
    rows = np.arange(500)
    np.testing.assert_allclose(y, values[rows, first] + values[rows, second], rtol=1e-6)


def test_adding_problem_marker_positions_cover_each_half():
    T = 20
    marker = np.asarray(vgplib.adding_problem(KEY, T, 4000).inputs[..., 1])
    first, second = marker[:, :10].argmax(axis=1), 10 + marker[:, 10:].argmax(axis=1)
    # Uniform over 10 positions each: 400 expected per position, binomial SD about 19; all well above 300.
    assert np.bincount(first, minlength=10).min() > 300
    assert np.bincount(second - 10, minlength=10).min() > 300


def test_adding_baseline_mse_closed_form():
    # Var(U) = 1/12 for U ~ U[0, 1], so Var(U1 + U2) = 1/6; the constant 1 (the mean) attains it.
    assert vgplib.ADDING_BASELINE_MSE == vgplib.adding_baseline_mse() == float(Fraction(2, 12))
    # Independent deterministic check: midpoint rule on a K x K grid of (u1, u2). For a quadratic
    # integrand the midpoint-rule error is known: each Var becomes (1 - 1/K^2)/12.
    K = 1000
    u = (np.arange(K) + 0.5) / K
    mse = np.mean((u[:, None] + u[None, :] - 1.0) ** 2)
    assert mse == pytest.approx((1 - 1 / K**2) / 6, rel=1e-12)
    assert abs(mse - vgplib.ADDING_BASELINE_MSE) < 1e-6


def test_adding_constant_predictor_mse_is_one_sixth_on_a_large_sample():
    N = 200_000
    y = np.asarray(vgplib.adding_problem(jax.random.PRNGKey(7), 4, N).targets, np.float64)
    # Z = y - 1 has the triangular density 1 - |z| on [-1, 1]: E[Z^2] = 1/6, E[Z^4] = 1/15, so
    # SD(Z^2) = sqrt(1/15 - 1/36) = sqrt(7/180) and the standard error of the sample MSE is
    # sqrt(7/180/N) = 4.4e-4. Five standard errors: a false alarm has probability below 1e-6.
    se = math.sqrt(7 / 180 / N)
    assert abs(np.mean((y - 1.0) ** 2) - 1 / 6) < 5 * se
    # The mean of y is 1 (so 1 is the best constant): SE sqrt(1/6/N).
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(1 / 6 / N)


def test_adding_problem_reproducible_and_key_dependent():
    a = vgplib.adding_problem(KEY, 8, 16)
    b = vgplib.adding_problem(KEY, 8, 16)
    c = vgplib.adding_problem(jax.random.PRNGKey(1), 8, 16)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    typed = vgplib.adding_problem(jax.random.key(0), 8, 16)  # new-style typed keys work too
    assert typed.inputs.shape == (16, 8, 2)
    with jax.enable_x64(True):
        assert vgplib.adding_problem(KEY, 8, 4, dtype=jnp.float64).inputs.dtype == jnp.float64


def test_adding_problem_under_jit_and_vmap_equals_eager():
    # A training loop draws its batches inside jax.jit and vmaps over keys (chapter 4).
    keys = jax.random.split(jax.random.key(3), 4)
    batched = jax.jit(jax.vmap(lambda k: vgplib.adding_problem(k, 9, 32)))(keys)
    assert batched.inputs.shape == (4, 32, 9, 2) and batched.targets.shape == (4, 32)
    for i in range(4):
        eager = vgplib.adding_problem(keys[i], 9, 32)
        np.testing.assert_array_equal(batched.inputs[i], eager.inputs)
        np.testing.assert_array_equal(batched.targets[i], eager.targets)
    assert not np.array_equal(batched.inputs[0], batched.inputs[1])


def test_adding_problem_bad_input():
    with pytest.raises(ValueError, match="seq_len"):
        vgplib.adding_problem(KEY, 1, 4)
    with pytest.raises(ValueError, match="seq_len"):
        vgplib.adding_problem(KEY, 0, 4)
    with pytest.raises(TypeError, match="seq_len"):
        vgplib.adding_problem(KEY, 2.5, 4)
    with pytest.raises(TypeError, match="seq_len"):
        vgplib.adding_problem(KEY, True, 4)
    with pytest.raises(ValueError, match="batch_size"):
        vgplib.adding_problem(KEY, 10, 0)
    with pytest.raises(TypeError, match="key"):
        vgplib.adding_problem(0, 10, 4)
    with pytest.raises(TypeError, match="key"):
        vgplib.adding_problem(jnp.zeros(2), 10, 4)
    with pytest.raises(TypeError, match="dtype"):
        vgplib.adding_problem(KEY, 10, 4, dtype=jnp.int32)


# --------------------------------------------------------------------------- delayed recall


@pytest.mark.parametrize("lag,seq_len", [(0, None), (5, None), (5, 9), (0, 3)])
def test_delayed_recall_structure(lag, seq_len):
    task = vgplib.delayed_recall(KEY, lag, 300, n_symbols=5, seq_len=seq_len)
    T = lag + 1 if seq_len is None else seq_len
    x, y = np.asarray(task.inputs), np.asarray(task.targets)
    assert x.shape == (300, T, 5) and y.shape == (300,) and y.dtype == np.int32
    cue = T - 1 - lag
    np.testing.assert_array_equal(x[:, cue].argmax(axis=1), y)
    np.testing.assert_array_equal(x[:, cue].sum(axis=1), 1.0)
    # Everything but the cue is blank.
    assert np.all(np.delete(x, cue, axis=1) == 0)
    # Every symbol occurs (300 draws of 5 symbols: 60 expected each).
    assert np.bincount(y, minlength=5).min() > 30


def test_delayed_recall_bad_input():
    with pytest.raises(ValueError, match="lag"):
        vgplib.delayed_recall(KEY, -1, 4)
    with pytest.raises(TypeError, match="lag"):
        vgplib.delayed_recall(KEY, 1.5, 4)
    with pytest.raises(ValueError, match="seq_len must be at least"):
        vgplib.delayed_recall(KEY, 5, 4, seq_len=5)
    with pytest.raises(ValueError, match="n_symbols"):
        vgplib.delayed_recall(KEY, 5, 4, n_symbols=1)
    with pytest.raises(ValueError, match="batch_size"):
        vgplib.delayed_recall(KEY, 5, -2)
    with pytest.raises(TypeError, match="key"):
        vgplib.delayed_recall("key", 5, 4)


# --------------------------------------------------------------------------- digits


def test_load_digits_split():
    from sklearn.datasets import load_digits

    d = vgplib.load_digits()
    full = load_digits()
    n = len(full.target)
    assert n == 1797
    assert d.x_train.dtype == np.float32 and d.x_test.dtype == np.float32 and d.y_train.dtype == np.int32
    assert d.x_train.shape[1] == d.x_test.shape[1] == 64
    assert len(d.x_train) + len(d.x_test) == n and len(d.x_test) == math.ceil(0.25 * n)
    assert d.x_train.min() >= 0 and max(d.x_train.max(), d.x_test.max()) == 1.0
    # The two parts are a partition of the whole data set (compared as sorted multisets of rows).
    rows = np.concatenate([np.c_[d.x_train, d.y_train], np.c_[d.x_test, d.y_test]])
    ref = np.c_[full.data / 16.0, full.target].astype(np.float32)
    np.testing.assert_array_equal(rows[np.lexsort(rows.T)], ref[np.lexsort(ref.T)])
    # Stratified: each class's test count is within one of a quarter of its total.
    for c in range(10):
        total = int(np.sum(full.target == c))
        assert abs(int(np.sum(d.y_test == c)) - 0.25 * total) <= 1
    # Fixed by the seed; a different seed gives a different split.
    again = vgplib.load_digits()
    np.testing.assert_array_equal(again.x_test, d.x_test)
    assert not np.array_equal(vgplib.load_digits(seed=1).y_test, d.y_test)


def test_load_digits_bad_input():
    for bad in (0.0, 1.0, -0.2, float("nan")):
        with pytest.raises(ValueError, match="test_fraction"):
            vgplib.load_digits(test_fraction=bad)
    with pytest.raises(TypeError, match="test_fraction"):
        vgplib.load_digits(test_fraction="0.2")
    with pytest.raises(TypeError, match="seed"):
        vgplib.load_digits(seed=-1)
    with pytest.raises(TypeError, match="seed"):
        vgplib.load_digits(seed=1.5)
