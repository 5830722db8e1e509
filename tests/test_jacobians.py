"""Per-layer Jacobians and backward products against jax.jacrev, closed forms and float64 finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vgplib

KEY = jax.random.PRNGKey(2)


def _net(widths, init="gaussian", sigma_w=1.2, sigma_b=0.1, dtype=jnp.float32, seed=0):
    return vgplib.init_mlp(jax.random.PRNGKey(seed), widths, init, sigma_w=sigma_w, sigma_b=sigma_b, dtype=dtype)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "gelu"])
def test_layer_jacobians_equal_closed_form(activation):
    params = _net([8] * 6)
    x = jax.random.normal(KEY, (8,))
    J = vgplib.layer_jacobians(params, x, activation)
    tr = vgplib.mlp_forward(params, x, activation, return_all=True)
    act = vgplib.get_activation(activation)
    for l, layer in enumerate(params):
        np.testing.assert_allclose(J[l], act.grad(tr.pre[l])[:, None] * layer["W"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("residual", [False, True])
def test_product_equals_jacrev_float32(residual):
    params = _net([16] * 9, sigma_w=1.0 if residual else 1.3)
    x = jax.random.normal(KEY, (16,))
    P = vgplib.backward_products(vgplib.layer_jacobians(params, x, "tanh", residual=residual))
    full = jax.jacrev(lambda v: vgplib.mlp_forward(params, v, "tanh", residual=residual))(x)
    np.testing.assert_allclose(P[0], full, rtol=1e-5, atol=1e-6 * float(jnp.abs(full).max()))
    np.testing.assert_array_equal(P[-1], jnp.eye(16))


def test_product_equals_jacrev_and_finite_differences_float64():
    with jax.enable_x64(True):
        params = _net([6] * 7, dtype=jnp.float64)
        x = jax.random.normal(KEY, (6,), dtype=jnp.float64)
        J = vgplib.layer_jacobians(params, x, "sigmoid")
        assert J.dtype == jnp.float64
        P = vgplib.backward_products(J)
        f = lambda v: vgplib.mlp_forward(params, v, "sigmoid")
        np.testing.assert_allclose(P[0], jax.jacrev(f)(x), rtol=1e-12, atol=1e-15)
        # Second oracle: central finite differences. Truncation error O(eps^2 f''') ~ 1e-12; rounding
        # error about u |f| / eps = 1.1e-16 * 1 / 1e-6 ~ 1e-10 absolute, so atol 1e-9 (10x margin).
        eps = 1e-6
        fd = jnp.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in jnp.eye(6)], axis=1)
        np.testing.assert_allclose(P[0], fd, rtol=0, atol=1e-9)
        # Every suffix product: d x_L / d x_l from the trace.
        tr = vgplib.mlp_forward(params, x, "sigmoid", return_all=True)
        for l in (2, 5):
            g = lambda v, l=l: vgplib.mlp_forward(params[l:], v, "sigmoid")
            np.testing.assert_allclose(P[l], jax.jacrev(g)(tr.post[l]), rtol=1e-12, atol=1e-15)


def test_batched_jacobians_and_products():
    params = _net([5] * 4)
    xb = jax.random.normal(KEY, (3, 5))
    J = vgplib.layer_jacobians(params, xb, "tanh")
    assert J.shape == (3, 3, 5, 5)
    P = vgplib.backward_products(J)
    assert P.shape == (3, 4, 5, 5)
    for b in range(3):
        single = vgplib.backward_products(vgplib.layer_jacobians(params, xb[b]))
        np.testing.assert_allclose(P[b], single, rtol=1e-5, atol=1e-6 * float(jnp.abs(single).max()))


def test_unequal_widths_give_lists():
    params = _net([5, 9, 4, 7])
    x = jnp.linspace(-1.0, 1.0, 5)
    Js = vgplib.layer_jacobians(params, x, "elu")
    assert [j.shape for j in Js] == [(9, 5), (4, 9), (7, 4)]
    Ps = vgplib.backward_products(Js)
    assert [p.shape for p in Ps] == [(7, 5), (7, 9), (7, 4), (7, 7)]
    full = jax.jacrev(lambda v: vgplib.mlp_forward(params, v, "elu"))(x)
    np.testing.assert_allclose(Ps[0], full, rtol=1e-5, atol=1e-7)
    Jb = vgplib.layer_jacobians(params, jnp.stack([x, -x]), "elu")
    assert [j.shape for j in Jb] == [(2, 9, 5), (2, 4, 9), (2, 7, 4)]
    np.testing.assert_allclose(vgplib.backward_products(Jb)[0][1], jax.jacrev(lambda v: vgplib.mlp_forward(params, v, "elu"))(-x), rtol=1e-5, atol=1e-7)


def test_stacked_params_accepted():
    params = _net([6] * 5)
    x = jnp.ones(6)
    np.testing.assert_allclose(
        vgplib.layer_jacobians(vgplib.stack_params(params), x), vgplib.layer_jacobians(params, x), rtol=1e-6
    )


def test_vector_products_are_the_gradients():
    params = _net([7] * 6)
    x = jax.random.normal(KEY, (7,))
    target = jnp.arange(7.0) / 7

    def loss_of_xl(xl, l):
        return 0.5 * jnp.sum((vgplib.mlp_forward(params[l:], xl, "tanh") - target) ** 2)

    tr = vgplib.mlp_forward(params, x, "tanh", return_all=True)
    g = tr.post[-1] - target  # dE/dx_L
    V = vgplib.backward_vector_products(vgplib.layer_jacobians(params, x), g)
    assert V.shape == (6, 7)  # L + 1 = 6 rows: dE/dx_0 .. dE/dx_5
    for l in (0, 2, 4):
        np.testing.assert_allclose(V[l], jax.grad(loss_of_xl)(tr.post[l], l), rtol=1e-5, atol=1e-7)


# Every new (depth, width) compiles init, the sweep and the jacrev oracle anew (5-7 s CPU per example):
# shapes come from a menu that keeps the extremes (1 and 30 layers, 1 and 64 units) so that examples
# share compilations (the test: 67 -> 44 s CPU at load 17); activation, init and seed vary as before.
@settings(max_examples=20, deadline=None)
@given(
    depth=st.sampled_from([1, 2, 3, 7, 30]),
    width=st.sampled_from([1, 2, 5, 16, 64]),
    activation=st.sampled_from(["sigmoid", "tanh", "relu", "leaky_relu", "elu", "swish", "gelu", "erf", "linear"]),
    init=st.sampled_from(list(vgplib.INIT_NAMES)),
    seed=st.integers(0, 2**16),
)
def test_property_product_equals_jacrev(depth, width, activation, init, seed):
    params = _net([width] * (depth + 1), init=init, sigma_w=1.0, seed=seed)
    x = jax.random.normal(jax.random.PRNGKey(seed + 1), (width,))
    P0 = vgplib.backward_products(vgplib.layer_jacobians(params, x, activation))[0]
    full = jax.jacrev(lambda v: vgplib.mlp_forward(params, v, activation))(x)
    scale = float(jnp.abs(full).max())
    np.testing.assert_allclose(P0, full, rtol=1e-4, atol=1e-5 * scale + 1e-30)


# ------------------------------------------------------------------ streaming and log space


def test_singular_values_and_log_space_match_direct():
    params = _net([12] * 11, sigma_w=1.1)
    J = vgplib.layer_jacobians(params, jax.random.normal(KEY, (12,)), "tanh")
    P = vgplib.backward_products(J)
    direct = jnp.stack([jnp.linalg.svd(p, compute_uv=False) for p in P])
    np.testing.assert_allclose(vgplib.backward_singular_values(J), direct, rtol=1e-5)
    ls = vgplib.log_singular_values(J)
    # The largest singular values are exact to rounding; the smallest are near the float floor.
    np.testing.assert_allclose(ls[:, :4], jnp.log(direct[:, :4]), atol=1e-4)
    ln = vgplib.log_norms(J)
    np.testing.assert_allclose(ln.frobenius, jnp.log(jnp.linalg.norm(P, axis=(1, 2))), atol=1e-5)
    np.testing.assert_allclose(ln.spectral, jnp.log(direct[:, 0]), atol=1e-5)


def test_log_space_float64_all_singular_values():
    with jax.enable_x64(True):
        params = _net([8] * 9, sigma_w=1.0, dtype=jnp.float64)
        J = vgplib.layer_jacobians(params, jax.random.normal(KEY, (8,), dtype=jnp.float64), "tanh")
        P = vgplib.backward_products(J)
        direct = jnp.log(jnp.stack([jnp.linalg.svd(p, compute_uv=False) for p in P]))
        np.testing.assert_allclose(vgplib.log_singular_values(J), direct, atol=1e-9)


def test_lyapunov_spectrum_properties():
    with jax.enable_x64(True):
        J = jax.random.normal(KEY, (20, 6, 6), dtype=jnp.float64) / math.sqrt(6)
        c = vgplib.lyapunov_spectrum(J)
        P = vgplib.backward_products(J)
        # The QR stretching factors multiply to |det P_l| = prod_{k>l} |det J_k| (the direct det of the
        # ill-conditioned product P_l would be the less accurate oracle).
        logdet_J = jnp.array([jnp.linalg.slogdet(j)[1] for j in J])
        logdet = jnp.concatenate([jnp.cumsum(logdet_J[::-1])[::-1], jnp.zeros(1)])
        np.testing.assert_allclose(c.sum(axis=1), logdet, atol=1e-9)
        assert P.shape == (21, 6, 6)
        # Diagonal factors: the stretching factors are exactly the log singular values.
        d = jnp.exp(jax.random.normal(KEY, (20, 6), dtype=jnp.float64))
        cd = vgplib.lyapunov_spectrum(jax.vmap(jnp.diag)(d))
        exact = jnp.cumsum(jnp.log(d)[::-1], axis=0)[::-1]
        np.testing.assert_allclose(cd[:-1], exact, atol=1e-10)


def test_deep_sigmoid_chain_underflows_directly_but_not_in_log_space():
    L, n = 2000, 4
    # A sigmoid chain held at its best case: W_l = diag(w) and b_l = -w/2 keep every pre-activation at 0
    # (x_{l-1} = sigmoid(0) = 1/2), so J_l = diag(sigmoid'(0) w) = diag(w / 4) exactly.
    w = jnp.array([1.0, 0.9, 1.1, 0.5], dtype=jnp.float32)
    params = [{"W": jnp.diag(w), "b": -0.5 * w} for _ in range(L)]
    J = vgplib.layer_jacobians(vgplib.stack_params(params), jnp.full(n, 0.5, jnp.float32), "sigmoid")
    np.testing.assert_allclose(J, jnp.broadcast_to(jnp.diag(w / 4), (L, n, n)), rtol=1e-7)
    P = vgplib.backward_products(J)
    assert float(jnp.abs(P[0]).max()) == 0.0  # 0.275^2000 is 0 in float32 (and in float64)
    exact = L * np.log(np.asarray(w, np.float64) / 4)  # log sigma_i(P_0): a sum of L logs, exactly
    ls = np.asarray(vgplib.log_singular_values(J)[0])
    assert np.isfinite(ls[0])
    np.testing.assert_allclose(ls[0], exact.max(), rtol=1e-5)
    ln = vgplib.log_norms(J)
    np.testing.assert_allclose(ln.spectral[0], exact.max(), rtol=1e-5)
    # The Frobenius norm is dominated by the largest factor: log sum_i exp(2 exact_i) / 2.
    np.testing.assert_allclose(ln.frobenius[0], 0.5 * np.logaddexp.reduce(2 * exact), rtol=1e-5)
    # Every direction, including those 10^-200 below the largest: the QR sweep.
    np.testing.assert_allclose(vgplib.lyapunov_spectrum(J)[0], exact, rtol=1e-5)


def test_log_norms_at_depth_10000_match_sum_of_logs():
    # Orthogonal factors times a scale: every singular value of the product is scale^L exactly.
    L, n = 10000, 8
    Q = vgplib.init_layer(KEY, n, n, "orthogonal")["W"]
    J = jnp.broadcast_to(0.9 * Q, (L, n, n))
    ln = vgplib.log_norms(J)
    expected = np.log(0.9) * np.arange(L, -1, -1)
    np.testing.assert_allclose(ln.spectral, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ln.frobenius, expected + 0.5 * np.log(n), rtol=1e-4, atol=1e-4)


def test_zero_jacobian_gives_minus_inf_not_nan():
    J = jnp.stack([jnp.eye(3), jnp.zeros((3, 3)), jnp.eye(3)])
    ln = vgplib.log_norms(J)
    assert np.isneginf(np.asarray(ln.frobenius[0])) and not np.any(np.isnan(np.asarray(ln.frobenius)))


# ------------------------------------------------------------------ bad input


def test_bad_input():
    params = _net([4] * 3)
    with pytest.raises(ValueError, match="x has width 5"):
        vgplib.layer_jacobians(params, jnp.ones(5))
    with pytest.raises(ValueError, match="unknown activation"):
        vgplib.layer_jacobians(params, jnp.ones(4), "tanhh")
    with pytest.raises(ValueError, match="x must be finite"):
        vgplib.layer_jacobians(params, jnp.array([0.0, jnp.inf, 0.0, 0.0]))
    with pytest.raises(ValueError, match="stacked params"):
        vgplib.layer_jacobians({"W": jnp.ones((2, 3, 4)), "b": jnp.ones((2, 3))}, jnp.ones(4))
    with pytest.raises(ValueError, match=r"jacobians must have shape \(L, n, n\)"):
        vgplib.backward_products(jnp.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="jacobians must hold at least one layer"):
        vgplib.backward_products(jnp.ones((0, 4, 4)))
    with pytest.raises(ValueError, match="jacobians must hold at least one layer"):
        vgplib.backward_products([])
    with pytest.raises(ValueError, match="jacobians must be finite"):
        vgplib.log_norms(jnp.full((2, 3, 3), jnp.nan))
    with pytest.raises(ValueError, match=r"jacobians\[1\]"):
        vgplib.backward_products([jnp.ones((3, 2)), jnp.ones((4, 4))])
    with pytest.raises(TypeError, match="stacked square"):
        vgplib.log_singular_values([jnp.ones((3, 3))])
    with pytest.raises(ValueError, match="grad_output must have shape"):
        vgplib.backward_vector_products(jnp.ones((2, 3, 3)), jnp.ones(4))


def test_nonfinite_params_name_the_bad_layer_and_entry():
    """One fused check on the way in; on failure the message names the argument, layer and index."""
    params = _net([4] * 9)
    params[6] = {"W": params[6]["W"].at[1, 2].set(jnp.nan), "b": params[6]["b"]}
    with pytest.raises(ValueError, match=r"params must be finite.*params\[6\]\['W'\] at index \(1, 2\)"):
        vgplib.layer_jacobians(params, jnp.ones(4))
    with pytest.raises(ValueError, match=r"params\[6\]\['W'\] at index \(1, 2\)"):
        vgplib.stack_params(params)
    stacked = {"W": jnp.stack([p["W"] for p in params]), "b": jnp.stack([p["b"] for p in params])}
    with pytest.raises(ValueError, match=r"params\['W'\] at index \(6, 1, 2\)"):
        vgplib.layer_jacobians(stacked, jnp.ones(4))
    uneven = _net([4, 5, 3])
    uneven[1] = {"W": uneven[1]["W"], "b": uneven[1]["b"].at[2].set(jnp.inf)}
    with pytest.raises(ValueError, match=r"params\[1\]\['b'\] at index \(2,\)"):
        vgplib.layer_jacobians(uneven, jnp.ones(4))
    with pytest.raises(ValueError, match=r"x must be finite.*x at index \(1, 3\)"):
        vgplib.mlp_forward(_net([4] * 3), jnp.ones((2, 4)).at[1, 3].set(jnp.nan))


def test_finite_check_of_numpy_leaves_and_inside_jit():
    params = [{"W": np.eye(3, dtype=np.float32), "b": np.zeros(3, np.float32)} for _ in range(4)]
    J = vgplib.layer_jacobians(params, np.ones(3, np.float32))
    np.testing.assert_allclose(J[0], np.eye(3) * (1 - np.tanh(1.0) ** 2), rtol=1e-6)
    params[3]["b"][0] = np.nan
    with pytest.raises(ValueError, match=r"params\[3\]\['b'\] at index \(0,\)"):
        vgplib.layer_jacobians(params, np.ones(3, np.float32))
    good = _net([3] * 4)
    # traced parameters are not checked (no value), and do not raise
    out = jax.jit(lambda p, x: vgplib.layer_jacobians(p, x))(good, jnp.ones(3))
    np.testing.assert_allclose(out, vgplib.layer_jacobians(good, jnp.ones(3)), rtol=1e-6)


def test_stable_norms_against_float64_and_at_the_float32_floor():
    from vgplib.jacobians import stable_log_norm, stable_norm

    x = np.random.default_rng(0).standard_normal((5, 7))
    np.testing.assert_allclose(stable_norm(jnp.asarray(x, jnp.float32)), np.linalg.norm(x, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(stable_log_norm(jnp.asarray(x, jnp.float32)), np.log(np.linalg.norm(x, axis=-1)),
                               atol=1e-6)
    tiny = jnp.asarray(x * 1e-25, jnp.float32)  # squares underflow in float32: jnp.linalg.norm gives 0
    assert float(jnp.linalg.norm(tiny[0])) == 0.0
    np.testing.assert_allclose(stable_norm(tiny), 1e-25 * np.linalg.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(stable_log_norm(tiny), np.log(1e-25 * np.linalg.norm(x, axis=-1)), atol=1e-5)
    big = jnp.asarray(x * 1e30, jnp.float32)  # the norm itself is finite; its squares overflow
    np.testing.assert_allclose(stable_log_norm(big), np.log(1e30 * np.linalg.norm(x, axis=-1)), atol=1e-5)
    zero = jnp.zeros((2, 3))
    assert np.all(np.asarray(stable_norm(zero)) == 0.0) and np.all(np.isneginf(np.asarray(stable_log_norm(zero))))
    assert np.isinf(float(stable_norm(jnp.array([1.0, jnp.inf]))))
    np.testing.assert_allclose(stable_norm(jnp.asarray(x), axis=0), np.linalg.norm(x, axis=0), rtol=1e-6)


def test_renormalized_step_sweep_matches_direct_products_and_masks_layers():
    # A sweep built from renormalized_step gives log ||g_l|| of the direct backprop g_{l-1} = J_l^T g_l
    # (float64, where nothing underflows), and an inactive layer leaves the carry unchanged.
    from vgplib.jacobians import renormalized_step

    with jax.enable_x64(True):
        J = jax.random.normal(jax.random.PRNGKey(3), (12, 5, 5), jnp.float64) * 0.4
        g = jax.random.normal(jax.random.PRNGKey(4), (5,), jnp.float64)
        direct = [g]
        for J_l in J[::-1]:
            direct.append(J_l.T @ direct[-1])
        expected = np.log([float(jnp.linalg.norm(v)) for v in direct[::-1]])
        u, s, logs = g / jnp.linalg.norm(g), jnp.log(jnp.linalg.norm(g)), []
        for J_l in J[::-1]:
            u, s = renormalized_step(u, s, u @ J_l)
            logs.append(float(s))
        np.testing.assert_allclose(np.array(logs[::-1] + [expected[-1]]), expected, rtol=1e-12)
        assert float(jnp.linalg.norm(u)) == pytest.approx(1.0)
        # masked: the carry passes through unchanged
        u2, s2 = renormalized_step(u, s, 7.0 * u, active=False)
        assert np.array_equal(np.asarray(u2), np.asarray(u)) and float(s2) == float(s)
        # a batch of rows, one of them mapped to zero: direction 0 and log-scale -inf, no NaN
        U = jnp.stack([u, u])
        image = jnp.stack([3.0 * u, jnp.zeros_like(u)])
        U3, S3 = renormalized_step(U, jnp.zeros(2), image)
        assert float(S3[0]) == pytest.approx(np.log(3.0)) and float(S3[1]) == -np.inf
        assert np.all(np.asarray(U3[1]) == 0) and not np.any(np.isnan(np.asarray(U3)))


# ------------------------------------------------------------------ residual branch scale (chapter 9)


@pytest.mark.parametrize("alpha", [1.0, 0.25, -0.5])
def test_residual_scale_jacobians_equal_closed_form_and_jacrev(alpha):
    params = _net([8] * 6, sigma_w=1.0)
    x = jax.random.normal(KEY, (8,))
    J = vgplib.layer_jacobians(params, x, "tanh", residual=True, residual_scale=alpha)
    tr = vgplib.mlp_forward(params, x, "tanh", residual=True, residual_scale=alpha, return_all=True)
    for l, layer in enumerate(params):  # J_l = I + alpha diag(phi'(a_l)) W_l
        closed = jnp.eye(8) + alpha * (1 - jnp.tanh(tr.pre[l]) ** 2)[:, None] * layer["W"]
        np.testing.assert_allclose(J[l], closed, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(tr.post[l + 1], tr.post[l] + alpha * jnp.tanh(tr.pre[l]), rtol=1e-6, atol=1e-6)
    full = jax.jacrev(lambda v: vgplib.mlp_forward(params, v, "tanh", residual=True, residual_scale=alpha))(x)
    np.testing.assert_allclose(vgplib.backward_products(J)[0], full, rtol=1e-5, atol=1e-5)


def test_residual_scale_one_is_the_plain_residual_and_traces_without_recompiling():
    params = _net([6] * 4, sigma_w=1.0)
    x = jnp.linspace(-1.0, 1.0, 6)
    np.testing.assert_array_equal(vgplib.layer_jacobians(params, x, residual=True, residual_scale=1.0),
                                  vgplib.layer_jacobians(params, x, residual=True))
    np.testing.assert_array_equal(vgplib.mlp_forward(params, x, residual=True, residual_scale=1),
                                  vgplib.mlp_forward(params, x, residual=True))
    fn = jax.jit(lambda a: vgplib.layer_jacobians(params, x, "tanh", residual=True, residual_scale=a))
    for a in (0.1, 0.7):
        np.testing.assert_allclose(fn(a), vgplib.layer_jacobians(params, x, residual=True, residual_scale=a),
                                   rtol=1e-6, atol=1e-7)
    assert fn._cache_size() == 1


def test_first_layers_log_singular_values_match_the_sweep_and_mask_layers():
    params = _net([7] * 13, sigma_w=1.2)
    J = vgplib.layer_jacobians(params, jax.random.normal(KEY, (7,)), "tanh")
    np.testing.assert_allclose(vgplib.first_layers_log_singular_values(J), vgplib.log_singular_values(J)[0],
                               rtol=1e-5, atol=1e-5)
    fn = jax.jit(vgplib.first_layers_log_singular_values)
    for depth in (1, 5, 12):
        direct = np.linalg.svd(np.asarray(vgplib.backward_products(J[:depth])[0], np.float64), compute_uv=False)
        ref = vgplib.first_layers_log_singular_values(J[:depth])
        np.testing.assert_allclose(vgplib.first_layers_log_singular_values(J, depth), ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fn(J, jnp.int32(depth)), ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.exp(ref[:3]), direct[:3], rtol=1e-4)
    assert fn._cache_size() == 1
    batched = vgplib.first_layers_log_singular_values(jnp.stack([J, J]), 4)
    assert batched.shape == (2, 7)
    with pytest.raises(ValueError, match="depth must be between 1"):
        vgplib.first_layers_log_singular_values(J, 13)
    with pytest.raises(TypeError, match="depth must be an integer"):
        vgplib.first_layers_log_singular_values(J, 2.5)


def test_residual_scale_bad_input():
    params = _net([4] * 3)
    x = jnp.ones(4)
    with pytest.raises(ValueError, match="residual_scale applies only with residual=True"):
        vgplib.layer_jacobians(params, x, residual_scale=0.5)
    with pytest.raises(ValueError, match="residual_scale must be finite"):
        vgplib.mlp_forward(params, x, residual=True, residual_scale=float("nan"))
    with pytest.raises(TypeError, match="residual_scale must be a real number"):
        vgplib.layer_jacobians(params, x, residual=True, residual_scale="1/L")
    with pytest.raises(ValueError, match="residual_scale must be a scalar"):
        vgplib.mlp_forward(params, x, residual=True, residual_scale=np.ones(2))
