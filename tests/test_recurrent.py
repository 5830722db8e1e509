"""Recurrent cells, step Jacobians and BPTT contributions, each against an independent path.

Oracles: the cell equations re-written in NumPy float64 from the papers; ``jax.jacrev`` of a plain
Python loop over the public cell functions (no ``lax.scan``); ``jax.grad`` of the tied-weight loss;
the closed form ``J_t = diag(phi'(a_t)) W`` and ``dE/dW_t = delta_t h_{t-1}^T`` for the RNN.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vgplib

KEY = jax.random.PRNGKey(0)
INITS = {"rnn": vgplib.init_rnn, "lstm": vgplib.init_lstm, "gru": vgplib.init_gru}
N, D, T = 5, 3, 12


def _setup(cell, n=N, d=D, T=T, seed=0, dtype=jnp.float32, batch=None, **kw):
    k_p, k_x, k_h = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = INITS[cell](k_p, d, n, sigma_b=0.3, dtype=dtype, **kw)
    shape = (T, d) if batch is None else (batch, T, d)
    xs = jax.random.normal(k_x, shape, dtype)
    m = 2 * n if cell == "lstm" else n
    s0 = 0.5 * jax.random.normal(k_h, shape[:-2] + (m,), dtype)
    return params, xs, s0


def _loop_states(params, xs, s0, cell):
    """Unroll with a Python loop over the PUBLIC cell functions (independent of lax.scan)."""
    n = params["W"].shape[1]
    s, out = s0, []
    for t in range(xs.shape[0]):
        if cell == "rnn":
            s = vgplib.rnn_cell(params, s, xs[t])
        elif cell == "gru":
            s = vgplib.gru_cell(params, s, xs[t])
        else:
            h, c = vgplib.lstm_cell(params, s[:n], s[n:], xs[t])
            s = jnp.concatenate([h, c])
        out.append(s)
    return jnp.stack(out)


def _np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _np_step(params, s, x, cell):
    """The cell equations from the papers, in NumPy float64, with explicit gate blocks."""
    W, U, b = (np.asarray(params[k], np.float64) for k in ("W", "U", "b"))
    n = W.shape[1]
    if cell == "rnn":  # Elman 1990
        return np.tanh(W @ s + U @ x + b)
    if cell == "lstm":  # Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000
        h, c = s[:n], s[n:]
        blk = [slice(j * n, (j + 1) * n) for j in range(4)]
        i, f, g, o = (W[k] @ h + U[k] @ x + b[k] for k in blk)
        c_new = _np_sigmoid(f) * c + _np_sigmoid(i) * np.tanh(g)
        return np.concatenate([_np_sigmoid(o) * np.tanh(c_new), c_new])
    # GRU, Cho et al. 2014 eqs. 5-8: z update, r reset, h = z h_prev + (1 - z) h~
    blk = [slice(j * n, (j + 1) * n) for j in range(3)]
    z = _np_sigmoid(W[blk[0]] @ s + U[blk[0]] @ x + b[blk[0]])
    r = _np_sigmoid(W[blk[1]] @ s + U[blk[1]] @ x + b[blk[1]])
    cand = np.tanh(W[blk[2]] @ (r * s) + U[blk[2]] @ x + b[blk[2]])
    return z * s + (1 - z) * cand


# --------------------------------------------------------------------------- cells and unrolling


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
def test_unroll_matches_paper_equations_in_numpy(cell):
    params, xs, s0 = _setup(cell)
    states = np.asarray(vgplib.unroll(params, xs, s0, cell=cell), np.float64)
    s = np.asarray(s0, np.float64)
    for t in range(T):
        s = _np_step(params, s, np.asarray(xs[t], np.float64), cell)
        np.testing.assert_allclose(states[t], s, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
def test_unroll_batched_equals_per_sequence(cell):
    params, xs, s0 = _setup(cell, batch=3)
    batched = vgplib.unroll(params, xs, s0, cell=cell)
    assert batched.shape == (3, T, vgplib.state_size(params, cell))
    for i in range(3):
        np.testing.assert_allclose(batched[i], _loop_states(params, xs[i], s0[i], cell), rtol=1e-5, atol=1e-6)
    # An unbatched h0 is shared by every sequence; h0=None means zeros.
    shared = vgplib.unroll(params, xs, s0[0], cell=cell)
    # Batched and unbatched matmuls round differently in float32 (eps 1.2e-7, amplified over T steps).
    np.testing.assert_allclose(shared[1], vgplib.unroll(params, xs[1], s0[0], cell=cell), rtol=1e-5, atol=1e-6)
    zero = vgplib.unroll(params, xs, cell=cell)
    np.testing.assert_allclose(zero[0], _loop_states(params, xs[0], jnp.zeros_like(s0[0]), cell), rtol=1e-5,
                               atol=1e-6)


def test_lstm_h0_alone_means_zero_cell_state():
    params, xs, s0 = _setup("lstm")
    h0 = s0[:N]
    a = vgplib.unroll(params, xs, h0, cell="lstm")
    b = vgplib.unroll(params, xs, jnp.concatenate([h0, jnp.zeros(N)]), cell="lstm")
    np.testing.assert_array_equal(a, b)
    h, c = vgplib.lstm_split(a)
    assert h.shape == c.shape == (T, N)


def test_public_functions_work_inside_jit():
    # A jitted training step passes params and data as (traced) arguments.
    params, xs, s0 = _setup("gru")

    @jax.jit
    def final_state(p, x, s):
        return vgplib.unroll(p, x, s, cell="gru")[-1]

    np.testing.assert_allclose(final_state(params, xs, s0), vgplib.unroll(params, xs, s0, cell="gru")[-1],
                               rtol=1e-6, atol=1e-7)
    J = jax.jit(lambda p, x: vgplib.step_jacobians(p, x, cell="gru"))(params, xs)
    np.testing.assert_allclose(J, vgplib.step_jacobians(params, xs, cell="gru"), rtol=1e-6, atol=1e-7)


def test_rnn_activation_choice():
    params, xs, s0 = _setup("rnn")
    relu = vgplib.unroll(params, xs, s0, cell="rnn", activation="relu")
    s = np.asarray(s0, np.float64)
    W, U, b = (np.asarray(params[k], np.float64) for k in ("W", "U", "b"))
    for t in range(T):
        s = np.maximum(W @ s + U @ np.asarray(xs[t], np.float64) + b, 0.0)
    np.testing.assert_allclose(relu[-1], s, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- step Jacobians


def _jacrev_product(params, xs, s0, cell, k):
    """d s_T / d s_k by jax.jacrev of the loop from step k+1 to T (the oracle)."""
    def tail(s_k):
        return _loop_states(params, xs[k:], s_k, cell)[-1]

    s_k = s0 if k == 0 else _loop_states(params, xs[:k], s0, cell)[-1]
    return jax.jacrev(tail)(s_k)


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
def test_step_jacobian_products_match_jacrev_float32(cell):
    params, xs, s0 = _setup(cell)
    J = vgplib.step_jacobians(params, xs, s0, cell=cell)
    m = vgplib.state_size(params, cell)
    assert J.shape == (T, m, m) and J.dtype == jnp.float32
    P = vgplib.backward_products(J)
    for k in (0, 4, T - 1):
        ref = _jacrev_product(params, xs, s0, cell, k)
        scale = float(jnp.max(jnp.abs(ref)))
        assert scale > 1e-6  # a non-zero product: the relative comparison is not vacuous
        np.testing.assert_allclose(P[k], ref, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
def test_step_jacobian_products_match_jacrev_float64(cell):
    with jax.enable_x64(True):
        params, xs, s0 = _setup(cell, dtype=jnp.float64)
        J = vgplib.step_jacobians(params, xs, s0, cell=cell)
        assert J.dtype == jnp.float64
        P = vgplib.backward_products(J)
        for k in (0, 5):
            ref = _jacrev_product(params, xs, s0, cell, k)
            np.testing.assert_allclose(P[k], ref, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(ref))))


def test_rnn_step_jacobian_closed_form():
    params, xs, s0 = _setup("rnn")
    states = vgplib.unroll(params, xs, s0, cell="rnn")
    prev = jnp.concatenate([s0[None], states[:-1]])
    J = vgplib.step_jacobians(params, xs, s0, cell="rnn")
    for t in range(T):  # J_t = diag(1 - h_t^2) W for tanh
        np.testing.assert_allclose(J[t], (1 - states[t] ** 2)[:, None] * params["W"], rtol=1e-5, atol=1e-6)
    assert prev.shape == states.shape


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
def test_step_jacobians_batched(cell):
    params, xs, s0 = _setup(cell, batch=2, T=6)
    J = vgplib.step_jacobians(params, xs, s0, cell=cell)
    m = vgplib.state_size(params, cell)
    assert J.shape == (2, 6, m, m)
    for i in range(2):
        np.testing.assert_allclose(J[i], vgplib.step_jacobians(params, xs[i], s0[i], cell=cell), rtol=1e-5,
                                   atol=1e-6)
    P = vgplib.backward_products(J)
    assert P.shape == (2, 7, m, m)


def test_lstm_cell_block_is_diag_forget_gate():
    params, xs, s0 = _setup("lstm", forget_bias=1.0)
    states = vgplib.unroll(params, xs, s0, cell="lstm")
    prev = jnp.concatenate([s0[None], states[:-1]])
    h_prev, c_prev = vgplib.lstm_split(prev)
    _, c_now = vgplib.lstm_split(states)
    blocks = vgplib.lstm_blocks(vgplib.step_jacobians(params, xs, s0, cell="lstm"))
    for t in range(T):
        gates = vgplib.lstm_gates(params, h_prev[t], xs[t])
        # The exact partial derivative d c_t / d c_{t-1} at fixed h_{t-1}, by jacrev of the public cell.
        dc_dc = jax.jacrev(lambda c, t=t: vgplib.lstm_cell(params, h_prev[t], c, xs[t])[1])(c_prev[t])
        np.testing.assert_allclose(dc_dc, jnp.diag(gates.f), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(blocks.c_c[t], jnp.diag(gates.f), rtol=1e-6, atol=1e-7)
        # d h_t / d c_{t-1} = diag(o_t tanh'(c_t) f_t): the carousel leaks into h through the output gate.
        expected = jnp.diag(gates.o * (1 - jnp.tanh(c_now[t]) ** 2) * gates.f)
        np.testing.assert_allclose(blocks.h_c[t], expected, rtol=1e-5, atol=1e-6)
    # The forget gates are not all 1: the test compares against non-trivial values.
    assert 0.3 < float(jnp.mean(vgplib.lstm_gates(params, h_prev, xs).f)) < 0.95


def test_lstm_carousel_product_with_the_h_path_cut():
    # With W = 0 the gates see only x_t, so h_{t-1} cannot feed back and the whole product's c-to-c
    # block is the product of the forget gates: d c_T / d c_k = diag(f_T * ... * f_{k+1}).
    params, xs, s0 = _setup("lstm", forget_bias=2.0)
    params = {**params, "W": jnp.zeros_like(params["W"])}
    P = vgplib.backward_products(vgplib.step_jacobians(params, xs, s0, cell="lstm"))
    f = vgplib.lstm_gates(params, jnp.zeros((T, N)), xs).f  # (T, N); W = 0, so h does not matter
    for k in range(T + 1):
        expected = np.prod(np.asarray(f[k:], np.float64), axis=0)
        np.testing.assert_allclose(vgplib.lstm_blocks(P[k]).c_c, np.diag(expected), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(vgplib.lstm_blocks(P[k]).c_h, 0.0, atol=0)
    assert 1e-3 < float(np.prod(np.asarray(f), axis=0).min()) < 0.5  # a non-trivial decay


def test_lstm_blocks_slicing_and_errors():
    J = jnp.arange(36.0).reshape(6, 6)
    bl = vgplib.lstm_blocks(J)
    np.testing.assert_array_equal(bl.h_h, J[:3, :3])
    np.testing.assert_array_equal(bl.h_c, J[:3, 3:])
    np.testing.assert_array_equal(bl.c_h, J[3:, :3])
    np.testing.assert_array_equal(bl.c_c, J[3:, 3:])
    with pytest.raises(ValueError, match="jacobians"):
        vgplib.lstm_blocks(jnp.ones((5, 5)))
    with pytest.raises(ValueError, match="jacobians"):
        vgplib.lstm_blocks(jnp.ones((4, 6)))


def test_log_norms_match_direct_product_and_survive_underflow():
    # Orthogonal W scaled to 0.5 and tanh: ||d h_T / d h_k|| <= 0.5^(T-k), so T = 300 underflows float32.
    Tlong = 300
    with jax.enable_x64(True):
        params = vgplib.init_rnn(KEY, D, 8, w_init="orthogonal", scale=0.5, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.PRNGKey(3), (Tlong, D), jnp.float64)
        J64 = vgplib.step_jacobians(params, xs, cell="rnn")
        P64 = vgplib.backward_products(J64)
        direct = np.log(np.linalg.norm(np.asarray(P64), axis=(1, 2)))
        spectral = np.log(np.linalg.norm(np.asarray(P64), ord=2, axis=(1, 2)))
        ln64 = vgplib.log_norms(J64)
        np.testing.assert_allclose(ln64.frobenius, direct, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(ln64.spectral, spectral, rtol=1e-9, atol=1e-9)
    assert direct[0] < math.log(1e-40)  # below float32's smallest normal number
    J32 = J64.astype(jnp.float32)
    assert float(jnp.linalg.norm(vgplib.backward_products(J32)[0])) == 0.0  # underflow in float32
    ln32 = vgplib.log_norms(J32)
    assert np.all(np.isfinite(ln32.frobenius))
    # float32 log-space against float64 direct: rounding of about 1e-7 per factor over 300 factors.
    np.testing.assert_allclose(ln32.frobenius, direct, rtol=1e-4, atol=1e-3)
    # The Pascanu et al. (2013) bound (gamma ||W||)^(T-k) with gamma = 1 for tanh, ||W|| = 0.5.
    k = np.arange(Tlong + 1)
    assert np.all(spectral <= (Tlong - k) * math.log(0.5) + 1e-9)


def test_pairwise_log_norms_match_direct_products():
    with jax.enable_x64(True):
        params, xs, s0 = _setup("lstm", n=3, T=9, dtype=jnp.float64)
        J = vgplib.step_jacobians(params, xs, s0, cell="lstm")
        fro = np.asarray(vgplib.pairwise_log_norms(J))
        spec = np.asarray(vgplib.pairwise_log_norms(J, ord=2))
        assert fro.shape == spec.shape == (10, 10)
        for t in range(10):
            # Oracle: d s_t / d s_k = J_t ... J_{k+1} for k = 0..t, formed directly in NumPy float64.
            P = [np.eye(6)]
            for k in range(t, 0, -1):
                P.append(P[-1] @ np.asarray(J[k - 1]))
            P = np.stack(P[::-1])
            np.testing.assert_allclose(fro[t, : t + 1], np.log(np.linalg.norm(P, axis=(1, 2))), rtol=1e-11,
                                       atol=1e-11)
            np.testing.assert_allclose(spec[t, : t + 1], np.log(np.linalg.norm(P, ord=2, axis=(1, 2))),
                                       rtol=1e-10, atol=1e-10)
            assert np.all(np.isnan(fro[t, t + 1:])) and np.all(np.isnan(spec[t, t + 1:]))
    # Batched, float32, and far below float32's range: T = 300 with ||W|| = 0.5 stays finite.
    p32 = vgplib.init_rnn(KEY, D, 4, w_init="orthogonal", scale=0.5)
    J32 = vgplib.step_jacobians(p32, jax.random.normal(jax.random.PRNGKey(2), (300, D)), cell="rnn")
    Jb = jnp.stack([J32[::-1], J32])
    Lb = vgplib.pairwise_log_norms(Jb, ord=2)
    assert Lb.shape == (2, 301, 301)
    np.testing.assert_allclose(Lb[1, -1, :], vgplib.log_norms(Jb[1]).spectral, rtol=1e-5, atol=1e-3)
    assert float(Lb[0, -1, 0]) < math.log(1e-40) and np.isfinite(float(Lb[0, -1, 0]))
    with pytest.raises(ValueError, match="ord"):
        vgplib.pairwise_log_norms(J, ord=1)
    with pytest.raises(ValueError, match="jacobians"):
        vgplib.pairwise_log_norms(jnp.ones((3, 4)))


# --------------------------------------------------------------------------- BPTT contributions


def _half_sq(h):
    return 0.5 * jnp.sum(h**2)


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
@pytest.mark.parametrize("batch", [None, 3])
def test_bptt_contributions_sum_to_grad(cell, batch):
    params, xs, s0 = _setup(cell, batch=batch, T=8)
    n = params["W"].shape[1]
    contrib = vgplib.bptt_contributions(params, xs, s0, loss_fn=_half_sq, cell=cell)

    def loss(p):
        return _half_sq(vgplib.unroll(p, xs, s0, cell=cell)[..., -1, :n])

    grad = jax.grad(loss)(params)
    assert set(contrib) == {"W", "U", "b"}
    for key in ("W", "U", "b"):
        assert contrib[key].shape == (8,) + params[key].shape
        np.testing.assert_allclose(contrib[key].sum(axis=0), grad[key], rtol=1e-5,
                                   atol=1e-5 * float(jnp.max(jnp.abs(grad[key]))))


def test_bptt_contributions_rnn_closed_form_float64():
    with jax.enable_x64(True):
        params, xs, s0 = _setup("rnn", dtype=jnp.float64)
        g = jnp.linspace(-1.0, 1.0, N)
        contrib = vgplib.bptt_contributions(params, xs, s0, grad_output=g, cell="rnn")
        states = vgplib.unroll(params, xs, s0, cell="rnn")
        prev = jnp.concatenate([s0[None], states[:-1]])
        # dE/dh_t = (d h_T / d h_t)^T g from the delta recursion, delta_t = phi'(a_t) * dE/dh_t.
        v = vgplib.backward_vector_products(vgplib.step_jacobians(params, xs, s0, cell="rnn"), g)[1:]
        delta = (1 - states**2) * v
        np.testing.assert_allclose(contrib["W"], delta[:, :, None] * prev[:, None, :], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(contrib["U"], delta[:, :, None] * xs[:, None, :], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(contrib["b"], delta, rtol=1e-12, atol=1e-14)
        # grad_output g is the same as the loss sum(g * h_T).
        via_fn = vgplib.bptt_contributions(params, xs, s0, loss_fn=lambda h: jnp.sum(g * h), cell="rnn")
        np.testing.assert_allclose(via_fn["W"], contrib["W"], rtol=1e-12, atol=1e-14)


def test_bptt_long_range_terms_obey_the_contraction_bound():
    # ||W|| = 0.5, tanh' <= 1: ||dE/dW_t||_F <= 0.5^(T-t) ||g|| ||h_{t-1}||; the early terms vanish.
    Tl = 40
    params = vgplib.init_rnn(KEY, D, 8, w_init="orthogonal", scale=0.5, sigma_b=0.1)
    xs = jax.random.normal(jax.random.PRNGKey(5), (Tl, D))
    g = jnp.ones(8)
    c = vgplib.bptt_contributions(params, xs, grad_output=g, cell="rnn")["W"]
    states = vgplib.unroll(params, xs, cell="rnn")
    prev_norm = np.linalg.norm(np.concatenate([np.zeros((1, 8)), np.asarray(states[:-1])]), axis=1)
    norms = np.linalg.norm(np.asarray(c), axis=(1, 2))
    bound = 0.5 ** (Tl - np.arange(1, Tl + 1)) * float(jnp.linalg.norm(g)) * prev_norm
    assert np.all(norms <= bound * (1 + 1e-5) + 1e-30)
    assert norms[-1] > 1e-2 and norms[: Tl // 2].max() < 1e-5 * norms[-1]


# --------------------------------------------------------------------------- initializers


def test_init_spectral_radius_orthogonal_identity():
    W = vgplib.init_rnn(KEY, 2, 40, w_init="spectral_radius", scale=1.3)["W"]
    assert np.max(np.abs(np.linalg.eigvals(np.asarray(W, np.float64)))) == pytest.approx(1.3, rel=1e-5)
    W = vgplib.init_rnn(KEY, 2, 40, w_init="orthogonal", scale=0.9)["W"]
    np.testing.assert_allclose(W.T @ W, 0.81 * np.eye(40), atol=1e-5)
    W = vgplib.init_rnn(KEY, 2, 40, w_init="identity")["W"]
    np.testing.assert_array_equal(W, np.eye(40))
    W = np.asarray(vgplib.init_rnn(KEY, 2, 400, w_init="gaussian", scale=1.5)["W"], np.float64)
    # 160,000 Gaussian entries: relative standard error of the variance sqrt(2 / 160000) = 0.0035; 5 SE.
    assert W.var() == pytest.approx(1.5**2 / 400, rel=0.018)


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
@pytest.mark.parametrize("w_init", vgplib.RECURRENT_INIT_NAMES)
def test_init_shapes_blocks_and_reproducibility(cell, w_init):
    k = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    p = INITS[cell](KEY, 3, 6, w_init=w_init, scale=0.7)
    assert p["W"].shape == (6 * k, 6) and p["U"].shape == (6 * k, 3) and p["b"].shape == (6 * k,)
    assert vgplib.state_size(p, cell) == (12 if cell == "lstm" else 6)
    q = INITS[cell](KEY, 3, 6, w_init=w_init, scale=0.7)
    for key in p:
        np.testing.assert_array_equal(p[key], q[key])
    if w_init == "orthogonal":  # every gate block is scale * orthogonal
        for j in range(k):
            blk = np.asarray(p["W"][6 * j: 6 * (j + 1)])
            np.testing.assert_allclose(blk @ blk.T, 0.49 * np.eye(6), atol=1e-5)


def test_init_lstm_forget_bias():
    p = vgplib.init_lstm(KEY, 3, 6, forget_bias=2.0)
    np.testing.assert_array_equal(p["b"][6:12], 2.0)
    np.testing.assert_array_equal(np.delete(np.asarray(p["b"]), np.s_[6:12]), 0.0)
    p0 = vgplib.init_lstm(KEY, 3, 6, forget_bias=0.0)
    gates = vgplib.lstm_gates(p0, jnp.zeros(6), jnp.zeros(3))
    np.testing.assert_allclose(gates.f, 0.5)


# --------------------------------------------------------------------------- bad input


def test_bad_input_rejected():
    params, xs, s0 = _setup("rnn")
    with pytest.raises(ValueError, match="unknown cell"):
        vgplib.unroll(params, xs, cell="transformer")
    with pytest.raises(TypeError, match="cell"):
        vgplib.step_jacobians(params, xs, cell=None)
    with pytest.raises(ValueError, match="look like a 'rnn'"):
        vgplib.step_jacobians(params, xs, cell="lstm")
    with pytest.raises(TypeError, match="params"):
        vgplib.unroll([params], xs)
    with pytest.raises(ValueError, match="params\\['U'\\]"):
        vgplib.unroll({**params, "U": params["U"][:2]}, xs)
    with pytest.raises(ValueError, match="params\\['b'\\]"):
        vgplib.unroll({**params, "b": params["b"][:2]}, xs)
    with pytest.raises(ValueError, match="T >= 1"):
        vgplib.step_jacobians(params, jnp.zeros((0, D)))
    with pytest.raises(ValueError, match="B >= 1"):
        vgplib.step_jacobians(params, jnp.zeros((0, 4, D)))
    with pytest.raises(ValueError, match="xs must have shape"):
        vgplib.step_jacobians(params, xs[0])
    with pytest.raises(ValueError, match="input channels"):
        vgplib.step_jacobians(params, jnp.ones((T, D + 1)))
    with pytest.raises(ValueError, match="h0 must have shape"):
        vgplib.step_jacobians(params, xs, jnp.zeros(N + 1))
    with pytest.raises(ValueError, match="h0 has a batch axis"):
        vgplib.unroll(params, xs, jnp.zeros((2, N)))
    with pytest.raises(ValueError, match="h0 has a batch axis"):
        vgplib.unroll(params, jnp.stack([xs] * 3), jnp.zeros((2, N)))
    with pytest.raises(ValueError, match="xs must be finite"):
        vgplib.step_jacobians(params, xs.at[3, 1].set(jnp.nan))
    with pytest.raises(ValueError, match="h0 must be finite"):
        vgplib.unroll(params, xs, s0.at[0].set(jnp.inf))
    with pytest.raises(ValueError, match="params must be finite"):
        vgplib.bptt_contributions({**params, "W": params["W"].at[0, 0].set(jnp.nan)}, xs, loss_fn=_half_sq)
    with pytest.raises(TypeError, match="xs"):
        vgplib.unroll(params, "abc")
    with pytest.raises(ValueError, match="unknown activation"):
        vgplib.unroll(params, xs, activation="softsign")


def test_bptt_bad_input_rejected():
    params, xs, _ = _setup("rnn")
    with pytest.raises(ValueError, match="exactly one"):
        vgplib.bptt_contributions(params, xs)
    with pytest.raises(ValueError, match="exactly one"):
        vgplib.bptt_contributions(params, xs, loss_fn=_half_sq, grad_output=jnp.ones(N))
    with pytest.raises(ValueError, match="grad_output must have the shape"):
        vgplib.bptt_contributions(params, xs, grad_output=jnp.ones(N + 1))
    with pytest.raises(ValueError, match="grad_output must be finite"):
        vgplib.bptt_contributions(params, xs, grad_output=jnp.full(N, jnp.nan))
    with pytest.raises(ValueError, match="real scalar"):
        vgplib.bptt_contributions(params, xs, loss_fn=lambda h: h)
    with pytest.raises(TypeError, match="loss_fn"):
        vgplib.bptt_contributions(params, xs, loss_fn="mse")
    with pytest.raises(TypeError, match="loss_fn must map"):
        vgplib.bptt_contributions(params, xs, loss_fn=lambda h: h @ jnp.ones(N + 2))


def test_cell_and_init_bad_input_rejected():
    params, xs, s0 = _setup("lstm")
    with pytest.raises(ValueError, match="c must have the shape"):
        vgplib.lstm_cell(params, s0[:N], s0[:N - 1], xs[0])
    with pytest.raises(ValueError, match="h must have shape"):
        vgplib.lstm_gates(params, s0, xs[0])
    with pytest.raises(ValueError, match="x must have shape"):
        vgplib.lstm_gates(params, s0[:N], xs[None])
    with pytest.raises(ValueError, match="batch"):
        vgplib.gru_cell(vgplib.init_gru(KEY, D, N), jnp.zeros((2, N)), xs)
    with pytest.raises(ValueError, match="h must be finite"):
        vgplib.lstm_gates(params, s0[:N].at[0].set(jnp.nan), xs[0])
    with pytest.raises(ValueError, match="n_hidden"):
        vgplib.init_rnn(KEY, 2, 0)
    with pytest.raises(TypeError, match="n_in"):
        vgplib.init_gru(KEY, 2.5, 3)
    with pytest.raises(ValueError, match="unknown w_init"):
        vgplib.init_rnn(KEY, 2, 3, w_init="xavier")
    with pytest.raises(ValueError, match="scale"):
        vgplib.init_rnn(KEY, 2, 3, scale=-1.0)
    with pytest.raises(ValueError, match="sigma_u"):
        vgplib.init_lstm(KEY, 2, 3, sigma_u=float("nan"))
    with pytest.raises(ValueError, match="forget_bias"):
        vgplib.init_lstm(KEY, 2, 3, forget_bias=float("inf"))
    with pytest.raises(TypeError, match="forget_bias"):
        vgplib.init_lstm(KEY, 2, 3, forget_bias="1")
    with pytest.raises(TypeError, match="dtype"):
        vgplib.init_rnn(KEY, 2, 3, dtype=jnp.int32)
    with pytest.raises(ValueError, match="states"):
        vgplib.lstm_split(jnp.ones((4, 5)))


# --------------------------------------------------------------------------- properties


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell=st.sampled_from(vgplib.CELL_NAMES),
    n=st.integers(1, 4),
    d=st.integers(1, 3),
    T=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_property_product_equals_jacrev_and_contributions_sum_to_grad(cell, n, d, T, seed):
    # Each new (cell, n, d, T) compiles anew, so the number of examples is kept small.
    with jax.enable_x64(True):
        params, xs, s0 = _setup(cell, n=n, d=d, T=T, seed=seed, dtype=jnp.float64)
        J = vgplib.step_jacobians(params, xs, s0, cell=cell)
        m = 2 * n if cell == "lstm" else n
        assert J.shape == (T, m, m)
        oracle = jax.jit(jax.jacrev(lambda p, x, s: _loop_states(p, x, s, cell)[-1], argnums=2))
        ref = oracle(params, xs, s0)
        np.testing.assert_allclose(vgplib.backward_products(J)[0], ref, rtol=1e-12, atol=1e-13)
        contrib = vgplib.bptt_contributions(params, xs, s0, loss_fn=_half_sq, cell=cell)
        grad = jax.grad(lambda p: _half_sq(vgplib.unroll(p, xs, s0, cell=cell)[-1, :n]))(params)
        for key in grad:
            np.testing.assert_allclose(contrib[key].sum(axis=0), grad[key], rtol=1e-11, atol=1e-13)


# --------------------------------------------------------------------------- the one-neuron fold curve


def _count_fixed_points(w, b, n=200_001):
    """Sign changes of sigmoid(w h + b) - h on a fine float64 grid of (0, 1) (independent of the closed form)."""
    h = np.linspace(1e-9, 1 - 1e-9, n)
    g = 1.0 / (1.0 + np.exp(-(w * h + b))) - h
    return int(np.sum(np.sign(g[:-1]) != np.sign(g[1:])))


@pytest.mark.parametrize("h", [0.05, 0.2113248654051871, 0.35, 0.65, 0.8, 0.95])
def test_sigmoid_neuron_fold_is_a_fixed_point_with_factor_one(h):
    w, b = vgplib.recurrent.sigmoid_neuron_fold(h)
    s = 1.0 / (1.0 + math.exp(-(float(w) * h + float(b))))
    assert abs(s - h) < 1e-12                      # h is a fixed point
    assert abs(float(w) * s * (1 - s) - 1) < 1e-12  # with per-step factor w sigma' = 1
    # Crossing the fold changes the number of fixed points from 1 to 3: the bistable side is
    # below the branch h < 1/2 and above the branch h > 1/2.
    inside, outside = (b - 0.02, b + 0.02) if h < 0.5 else (b + 0.02, b - 0.02)
    assert _count_fixed_points(float(w), inside) == 3
    assert _count_fixed_points(float(w), outside) == 1


def test_sigmoid_neuron_fold_cusp_and_known_point():
    w, b = vgplib.recurrent.sigmoid_neuron_fold(np.array([0.5, (1 - math.sqrt(1 / 3)) / 2]))
    np.testing.assert_allclose(w, [4.0, 6.0], rtol=1e-12)
    np.testing.assert_allclose(b, [-2.0, -2.5849070893559394], rtol=1e-12)
    # b = -2 touches the bistable region only at the cusp: one fixed point for every w > 0.
    assert all(_count_fixed_points(wi, -2.0) == 1 for wi in (1.0, 3.9, 4.1, 6.0, 12.0, 20.0))


def test_sigmoid_neuron_fold_bad_input():
    fold = vgplib.recurrent.sigmoid_neuron_fold
    for bad in (0.0, 1.0, -0.1, [0.2, 1.5], np.array([])):
        with pytest.raises(ValueError, match="h must lie"):
            fold(bad)
    for bad in ("0.5", None, True, {"h": 0.5}, np.array([1 + 1j])):
        with pytest.raises(TypeError, match="h must"):
            fold(bad)


# --------------------------------------------------------------------------- the adding-problem trainer


def _adding_params(cell, key, n=3, forget_bias=1.0):
    kw = {"forget_bias": forget_bias} if cell == "lstm" else {}
    p = INITS[cell](key, 2, n, sigma_b=0.2, **kw)
    return dict(p, v=jnp.linspace(-0.5, 0.5, n), c=jnp.asarray(0.8))


@pytest.mark.parametrize("cell", vgplib.CELL_NAMES)
def test_adding_predict_is_the_unpadded_recurrence(cell):
    params = _adding_params(cell, jax.random.key(1))
    task = vgplib.adding_problem(jax.random.key(2), 5, 4)
    xs = jnp.pad(task.inputs, ((0, 0), (3, 0), (0, 0)))  # front-padded to T_max = 8
    pred = vgplib.adding_predict(params, xs, 3, cell=cell)
    core = {k: params[k] for k in ("W", "U", "b")}
    h_T = vgplib.unroll(core, task.inputs, cell=cell)[:, -1, :3]
    np.testing.assert_allclose(pred, h_T @ params["v"] + params["c"], rtol=1e-5, atol=1e-6)
    mse = vgplib.adding_mse(params, xs, task.targets, 3, cell=cell)
    np.testing.assert_allclose(mse, np.mean((np.asarray(pred) - np.asarray(task.targets)) ** 2), rtol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_adding_eps_gradient_sums_to_the_bias_contributions(cell):
    """d(loss)/d(eps_t) is dE/da_t per sequence; summed over the batch it is the step-t term of dE/db."""
    params = _adding_params(cell, jax.random.key(3))
    task = vgplib.adding_problem(jax.random.key(4), 6, 3)
    xs, y = task.inputs, task.targets
    k_n = params["W"].shape[0]
    d = jax.grad(lambda e: vgplib.adding_mse(params, xs, y, 0, e, cell=cell))(jnp.zeros((3, 6, k_n)))
    pred = vgplib.adding_predict(params, xs, cell=cell)
    g = 2.0 * (pred - y)[:, None] * params["v"][None, :] / 3  # dE/dh_T of the batch MSE
    core = {k: params[k] for k in ("W", "U", "b")}
    terms = vgplib.bptt_contributions(core, xs, grad_output=g, cell=cell)
    np.testing.assert_allclose(d.sum(0), terms["b"], rtol=1e-4, atol=1e-7)


def _loop_train(params, key, lengths, optimizer, steps, batch):
    """Independent path: a Python loop of optax steps on one network per length, batches drawn eagerly."""
    T_max = max(lengths)
    grad_fn = jax.jit(jax.value_and_grad(lambda q, xs, y, start: vgplib.adding_mse(q, xs, y, start, cell=CELL)))
    update = jax.jit(optimizer.update)
    out = []
    for i, T in enumerate(lengths):
        p = {k: v[i] for k, v in params.items()}
        state = optimizer.init(p)
        losses = []
        for k in jax.random.split(key, steps):
            task = vgplib.adding_problem(k, T, batch)
            xs = jnp.pad(task.inputs, ((0, 0), (T_max - T, 0), (0, 0)))
            loss, grads = grad_fn(p, xs, task.targets, T_max - T)
            updates, state = update(grads, state, p)
            p = optax.apply_updates(p, updates)
            norm = math.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in grads.values()))
            losses.append((float(loss), norm))
        out.append((p, np.array(losses)))
    return out


CELL = "lstm"  # the trainer test runs the LSTM: its two-part state is the one most easily mishandled


def test_train_adding_equals_a_python_loop_of_optax_steps():
    lengths = (4, 7)
    keys = jax.random.split(jax.random.key(5), 2)
    stacked = [[_adding_params(CELL, jax.random.fold_in(k, i)) for k in keys] for i in range(2)]
    params = jax.tree_util.tree_map(lambda *a: jnp.stack(a).reshape((2, 2) + a[0].shape), *[p for row in stacked for p in row])
    opt = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(0.05))
    data_keys = jax.random.split(jax.random.key(6), 2)
    run = vgplib.train_adding(params, data_keys, lengths, opt, steps=4, batch_size=5, cell=CELL, record_every=2)
    assert run.params["W"].shape == (2, 2, 2, 12, 3) and run.losses.shape == (4, 2, 2)
    for s in range(2):
        one = jax.tree_util.tree_map(lambda a, s=s: a[:, s], params)
        for i, (p, hist) in enumerate(_loop_train(one, data_keys[s], lengths, opt, 4, 5)):
            for k in p:
                np.testing.assert_allclose(run.params[k][-1, i, s], p[k], rtol=2e-4, atol=2e-6)
            np.testing.assert_allclose(run.losses[:, i, s], hist[:, 0], rtol=2e-4)
            np.testing.assert_allclose(run.grad_norms[:, i, s], hist[:, 1], rtol=2e-4)


def test_train_adding_learns_at_a_short_length():
    """A small GRU trained 300 Adam steps at T = 6 beats the constant predictor by far (fails if it cannot learn)."""
    params = jax.tree_util.tree_map(lambda a: a[None], _adding_params("gru", jax.random.key(7), n=8))
    params["v"], params["c"] = jnp.zeros((1, 8)), jnp.ones((1,))
    run = vgplib.train_adding(params, jax.random.key(8)[None], 6, optax.adam(1e-2), steps=300,
                              batch_size=32, cell="gru", record_every=100)
    assert run.params["W"].shape == (3, 1, 24, 8) and run.losses.shape == (300, 1)  # int length: no K axis
    late = float(np.mean(run.losses[-50:]))
    assert late < 0.25 * vgplib.ADDING_BASELINE_MSE, late


def test_adding_trainer_bad_input():
    p = jax.tree_util.tree_map(lambda a: a[None], _adding_params("rnn", jax.random.key(0)))
    keys = jax.random.key(1)[None]
    adam = optax.adam(1e-2)
    train = vgplib.train_adding
    with pytest.raises(ValueError, match="cell"):
        train(p, keys, 5, adam, steps=2, cell="elman")
    with pytest.raises(TypeError, match="optimizer"):
        train(p, keys, 5, "adam", steps=2)
    with pytest.raises(ValueError, match="record_every"):
        train(p, keys, 5, adam, steps=3, record_every=2)
    with pytest.raises(ValueError, match="lengths"):
        train(p, keys, 1, adam, steps=2, record_every=1)
    with pytest.raises(TypeError, match="keys"):
        train(p, np.zeros(1), 5, adam, steps=2, record_every=1)
    with pytest.raises(ValueError, match="leading axes"):
        train(p, jax.random.split(keys[0], 2), 5, adam, steps=2, record_every=1)
    with pytest.raises(ValueError, match="W"):
        train(p, keys, 5, adam, steps=2, record_every=1, cell="lstm")
    with pytest.raises(TypeError, match="'v'"):
        train({k: p[k] for k in ("W", "U", "b")}, keys, 5, adam, steps=2, record_every=1)
    with pytest.raises(ValueError, match="finite"):
        train(dict(p, c=jnp.full((1,), jnp.nan)), keys, 5, adam, steps=2, record_every=1)
    one = {k: v[0] for k, v in p.items()}
    xs = jnp.zeros((2, 5, 2))
    with pytest.raises(ValueError, match="start"):
        vgplib.adding_predict(one, xs, 5)
    with pytest.raises(TypeError, match="start"):
        vgplib.adding_predict(one, xs, 1.5)
    with pytest.raises(ValueError, match="xs"):
        vgplib.adding_predict(one, jnp.zeros((5, 2)))
    with pytest.raises(ValueError, match="eps"):
        vgplib.adding_predict(one, xs, 0, jnp.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="y"):
        vgplib.adding_mse(one, xs, jnp.zeros(3))


# --------------------------------------------------------------------------- gated Jacobians: formulas and block norms


def test_lstm_step_blocks_closed_form_equals_autodiff():
    params, xs, s0 = _setup("lstm", forget_bias=1.0)
    states = vgplib.unroll(params, xs, s0, cell="lstm")
    prev = jnp.concatenate([s0[None], states[:-1]])
    h_prev, c_prev = vgplib.lstm_split(prev)
    auto = vgplib.lstm_blocks(vgplib.step_jacobians(params, xs, s0, cell="lstm"))
    for t in (0, 5, T - 1):
        closed = vgplib.lstm_step_blocks(params, h_prev[t], c_prev[t], xs[t])
        for name in vgplib.LSTMBlocks._fields:
            np.testing.assert_allclose(getattr(closed, name), getattr(auto, name)[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(np.diag(closed.c_c), vgplib.lstm_gates(params, h_prev[t], xs[t]).f)
        assert float(jnp.abs(closed.c_h).max()) > 1e-3  # the h-path into c is not trivially 0


def test_gru_step_jacobian_closed_form_equals_autodiff():
    params, xs, s0 = _setup("gru")
    states = vgplib.unroll(params, xs, s0, cell="gru")
    prev = jnp.concatenate([s0[None], states[:-1]])
    auto = vgplib.step_jacobians(params, xs, s0, cell="gru")
    for t in (0, 5, T - 1):
        np.testing.assert_allclose(vgplib.gru_step_jacobian(params, prev[t], xs[t]), auto[t], rtol=1e-5, atol=1e-6)
    # With W = 0 only the carousel is left: d h_t / d h_{t-1} = diag(z_t) exactly.
    p0 = {**params, "W": jnp.zeros_like(params["W"])}
    z = jax.nn.sigmoid(xs[3] @ params["U"][:N].T + params["b"][:N])
    np.testing.assert_allclose(vgplib.gru_step_jacobian(p0, prev[3], xs[3]), jnp.diag(z), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="single"):
        vgplib.gru_step_jacobian(params, prev[:2], xs[:2])
    with pytest.raises(ValueError, match="single"):
        vgplib.lstm_step_blocks(*_setup("lstm")[:1], jnp.zeros((2, N)), jnp.zeros((2, N)), jnp.zeros((2, D)))


def test_lstm_log_norms_and_block_pairwise_match_direct_products():
    with jax.enable_x64(True):
        params, xs, s0 = _setup("lstm", n=3, T=9, dtype=jnp.float64)
        J = vgplib.step_jacobians(params, xs, s0, cell="lstm")
        P = np.asarray(vgplib.backward_products(J))  # (T+1, 6, 6): d s_T / d s_k
        rows = vgplib.lstm_log_norms(J)
        heat = {b: np.asarray(vgplib.pairwise_log_norms(J, block=b)) for b in ("c_c", "h_h", "c_h")}
        with np.errstate(divide="ignore"):
            for name, (r, c) in {"h_h": (0, 0), "h_c": (0, 3), "c_h": (3, 0), "c_c": (3, 3)}.items():
                direct = np.log(np.linalg.norm(P[:, r:r + 3, c:c + 3], axis=(1, 2)))
                np.testing.assert_allclose(getattr(rows, name), direct, rtol=1e-11, atol=1e-11)
                if name in heat:
                    np.testing.assert_allclose(heat[name][-1], direct, rtol=1e-11, atol=1e-11)
        # One inner entry of the heat map: d c_6 / d c_2 = (J_6 J_5 J_4 J_3)[c, c].
        Q = np.asarray(J[5] @ J[4] @ J[3] @ J[2])
        assert heat["c_c"][6, 2] == pytest.approx(np.log(np.linalg.norm(Q[3:, 3:])), rel=1e-11)
        assert np.isnan(heat["c_c"][2, 6]) and rows.h_c[-1] == -np.inf
    # float32, T = 600 with the forget gates near 1/2: far below float32's range, still finite.
    p32, x32, _ = _setup("lstm", n=4, T=600, forget_bias=0.0)
    J32 = vgplib.step_jacobians(p32, x32, cell="lstm")
    r32 = vgplib.lstm_log_norms(J32)
    assert float(r32.c_c[0]) < math.log(1e-60) and np.all(np.isfinite(np.asarray(r32.c_c)))
    with pytest.raises(ValueError, match="block"):
        vgplib.pairwise_log_norms(J32[:5], block="c_x")
    with pytest.raises(ValueError, match="block"):
        vgplib.pairwise_log_norms(jnp.ones((4, 3, 3)), block="c_c")
    with pytest.raises(ValueError, match="LSTM"):
        vgplib.lstm_log_norms(jnp.ones((4, 3, 3)))


# --------------------------------------------------------------------------- the diagonal (state-space) cell


def _np_softplus(z):
    return np.log1p(np.exp(z))


@pytest.fixture(scope="module")
def diag_setup():
    with jax.enable_x64(True):
        params = vgplib.init_diagonal(jax.random.PRNGKey(3), D, N, sigma_d=1.0, dtype=jnp.float64)
        params = dict(params, b=0.2 * jnp.ones(N, jnp.float64))
        xs = jax.random.normal(jax.random.PRNGKey(4), (2, T, D), jnp.float64)
        s0 = 0.5 * jax.random.normal(jax.random.PRNGKey(5), (N,), jnp.float64)
        yield params, xs, s0


def test_diagonal_cell_matches_its_equations_and_jacobian_is_diag_a(diag_setup):
    params, xs, s0 = diag_setup
    with jax.enable_x64(True):
        states = np.asarray(vgplib.unroll(params, xs, s0, cell="diagonal"))
        J = vgplib.step_jacobians(params, xs, s0, cell="diagonal")
        a = np.asarray(vgplib.diagonal_decays(params, xs))
        nu, U, b, Wd, bd = (np.asarray(params[k]) for k in vgplib.recurrent.DIAGONAL_KEYS)
        for i in range(2):
            s = np.asarray(s0)
            for t in range(T):
                x = np.asarray(xs[i, t])
                delta = _np_softplus(Wd @ x + bd)
                a_t = np.exp(-delta * np.exp(nu))
                s = a_t * s + delta * (U @ x + b)
                np.testing.assert_allclose(states[i, t], s, rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(a[i, t], a_t, rtol=1e-12)
        assert np.all((a > 0) & (a < 1))
        np.testing.assert_array_equal(J, jax.vmap(jax.vmap(jnp.diag))(jnp.asarray(a)))
        # the product against jax.jacrev of the unrolled map from s_k
        k = 4
        tail = jax.jacrev(lambda s: vgplib.unroll(params, xs[0, k:], s, cell="diagonal")[-1])(jnp.asarray(states[0, k - 1]))
        np.testing.assert_allclose(vgplib.backward_products(J[0])[k], tail, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.diag(tail), np.prod(a[0, k:], axis=0), rtol=1e-12)


def test_init_diagonal_ring_and_fixed_delta():
    p = vgplib.init_diagonal(jax.random.PRNGKey(0), 2, 64, r_min=0.9, r_max=0.99, delta=0.5)
    xs = jax.random.normal(jax.random.PRNGKey(1), (7, 2))
    a = np.asarray(vgplib.diagonal_decays(p, xs))
    assert np.all(a >= 0.9 - 1e-5) and np.all(a <= 0.99 + 1e-5)
    np.testing.assert_allclose(a, np.broadcast_to(a[0], a.shape), rtol=1e-6)  # sigma_d = 0: time-invariant
    sel = vgplib.init_diagonal(jax.random.PRNGKey(0), 2, 64, sigma_d=1.0)
    assert float(np.std(np.asarray(vgplib.diagonal_decays(sel, xs)), axis=0).max()) > 1e-3  # selective


def test_diagonal_adding_predict_and_training():
    n = 4
    p = dict(vgplib.init_diagonal(jax.random.PRNGKey(0), 2, n, sigma_d=1.0), v=jnp.arange(n, dtype=jnp.float32),
             c=jnp.ones(()))
    task = vgplib.adding_problem(jax.random.PRNGKey(1), 6, 3)
    xs = jnp.pad(task.inputs, ((0, 0), (2, 0), (0, 0)))
    pred = vgplib.adding_predict(p, xs, start=2, cell="diagonal")
    core = {k: p[k] for k in vgplib.recurrent.DIAGONAL_KEYS}
    ref = vgplib.unroll(core, task.inputs, cell="diagonal")[:, -1] @ p["v"] + 1.0
    np.testing.assert_allclose(pred, ref, rtol=1e-5, atol=1e-6)
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), p)
    run = vgplib.train_adding(batch, jax.random.split(jax.random.key(0), 2), 6, optax.adam(1e-2), steps=20,
                              batch_size=8, cell="diagonal", record_every=10)
    assert run.losses.shape == (20, 2) and bool(jnp.all(jnp.isfinite(run.losses)))
    assert run.params["nu"].shape == (2, 2, n)
    with pytest.raises(TypeError, match="cell='rnn'"):
        vgplib.train_adding(batch, jax.random.split(jax.random.key(0), 2), 6, optax.adam(1e-2), steps=20,
                            batch_size=8, cell="rnn", record_every=10)


def test_diagonal_bad_input():
    p = vgplib.init_diagonal(jax.random.PRNGKey(0), 2, 3)
    xs = jnp.ones((4, 2))
    with pytest.raises(TypeError, match="diagonal"):
        vgplib.unroll({"U": p["U"]}, xs, cell="diagonal")
    with pytest.raises(ValueError, match="Wd"):
        vgplib.unroll(dict(p, Wd=jnp.ones((3, 3))), xs, cell="diagonal")
    with pytest.raises(ValueError, match="params must be finite"):
        vgplib.unroll(dict(p, nu=p["nu"].at[0].set(jnp.inf)), xs, cell="diagonal")
    with pytest.raises(ValueError, match="input channels"):
        vgplib.step_jacobians(p, jnp.ones((4, 3)), cell="diagonal")
    with pytest.raises(ValueError, match="unknown cell"):
        vgplib.unroll(p, xs, cell="ssm")
    with pytest.raises(ValueError, match="r_max"):
        vgplib.init_diagonal(jax.random.PRNGKey(0), 2, 3, r_min=0.9, r_max=1.0)
    with pytest.raises(ValueError, match="delta"):
        vgplib.init_diagonal(jax.random.PRNGKey(0), 2, 3, delta=0.0)


def test_diagonal_bptt_contributions_closed_form_and_sum(diag_setup):
    """For h_t = a_t * h_{t-1} + Delta_t * (U x_t + b), the b-term of step t is
    g * prod_{s > t} a_s * Delta_t (elementwise): computed here in NumPy from the cell's equations."""
    params, xs, s0 = diag_setup
    with jax.enable_x64(True):
        x = np.asarray(xs[0])
        g = np.linspace(-1.0, 1.0, N)
        contrib = vgplib.bptt_contributions(params, xs[0], s0, grad_output=jnp.asarray(g), cell="diagonal")
        p = {k: np.asarray(v) for k, v in params.items()}
        delta = _np_softplus(x @ p["Wd"].T + p["bd"])                  # (T, N)
        a = np.exp(-delta * np.exp(p["nu"]))
        later = np.concatenate([np.cumprod(a[::-1], axis=0)[::-1][1:], np.ones((1, N))])  # prod_{s > t} a_s
        np.testing.assert_allclose(np.asarray(contrib["b"]), g * later * delta, rtol=1e-12, atol=1e-15)
        assert set(contrib) == set(params) and contrib["U"].shape == (T,) + params["U"].shape
        full = jax.grad(lambda q: jnp.sum(jnp.asarray(g) * vgplib.unroll(q, xs[0], s0, cell="diagonal")[-1]))(params)
        for key in params:
            np.testing.assert_allclose(np.asarray(contrib[key]).sum(0), np.asarray(full[key]), rtol=1e-10, atol=1e-13)
