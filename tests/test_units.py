"""vgplib.units: dead units against a direct NumPy computation on mlp_forward's trace, a hand-made network
with known dead units, the slope distribution against sampling, closed forms and its traceable twin, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vgplib
from vgplib.units import dead_units, slope_distribution, slope_distribution_by_index


def _direct(params, X, activation, n_layers):
    """The definition, in NumPy: for every unit, is phi'(a) == 0 on every row of X?"""
    trace = vgplib.mlp_forward(params, X, activation, return_all=True)
    grad = vgplib.get_activation(activation).grad
    return np.array([np.mean(np.all(np.asarray(grad(a)) == 0, axis=0)) for a in trace.pre[:n_layers]])


@settings(max_examples=6, deadline=None)
@given(
    widths=st.lists(st.sampled_from([1, 5]), min_size=2, max_size=3),
    activation=st.sampled_from(["relu", "leaky_relu", "elu", "gelu", "sigmoid"]),
    shift=st.floats(-3.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_dead_units_equals_the_direct_computation(widths, activation, shift, seed):
    params = vgplib.init_mlp(jax.random.PRNGKey(seed), [4, *widths], init="he", sigma_b=0.5)
    params = [{"W": p["W"], "b": p["b"] + shift} for p in params]  # a negative shift kills ReLU units
    X = jax.random.normal(jax.random.PRNGKey(seed + 1), (6, 4))
    got = dead_units(params, X, activation)
    # the same fractions (float32 mean vs float64: one rounding apart)
    np.testing.assert_allclose(np.asarray(got), _direct(params, X, activation, len(widths) - 1), rtol=1e-6)
    full = dead_units(params, X, activation, include_output=True)
    np.testing.assert_allclose(np.asarray(full), _direct(params, X, activation, len(widths)), rtol=1e-6)
    assert got.shape == (len(widths) - 1,) and full.shape == (len(widths),)


def test_hand_made_network_with_known_dead_units():
    # Inputs are nonnegative. Layer 1 (4 units): unit 0 has W = -1 (a <= 0 on every input: dead), unit 1
    # has b = -10 (dead), unit 2 is alive on some inputs, unit 3 has a == 0 exactly on every input
    # (W = 0, b = 0: dead, ReLU's slope at 0 is 0). Layer 2 (2 units) reads only units 0, 1 and 3 of
    # layer 1, whose outputs are all 0, so with b = 0 both have a == 0: dead. Output layer: 3 units.
    W1 = jnp.array([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [0.0, 0.0]])
    b1 = jnp.array([0.0, -10.0, 0.0, 0.0])
    W2 = jnp.array([[1.0, 1.0, 0.0, 1.0], [2.0, -1.0, 0.0, 3.0]])
    W3 = jnp.ones((3, 2))
    params = [{"W": W1, "b": b1}, {"W": W2, "b": jnp.zeros(2)}, {"W": W3, "b": jnp.array([1.0, -1.0, 0.0])}]
    X = jnp.array([[0.0, 0.0], [1.0, 0.5], [3.0, 1.0], [0.2, 2.0]])
    np.testing.assert_array_equal(np.asarray(dead_units(params, X, "relu")), [0.75, 1.0])
    # output layer: a = b there (its inputs are 0): units with b = -1 and b = 0 are dead, b = 1 is not
    np.testing.assert_allclose(np.asarray(dead_units(params, X, "relu", include_output=True)),
                               [0.75, 1.0, 2 / 3])
    # a leaky ReLU never has slope 0; one input row (1-D) is accepted
    np.testing.assert_array_equal(np.asarray(dead_units(params, X, "leaky_relu")), [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(dead_units(params, X[2], "relu")), [0.75, 1.0])
    # and a dead unit stops the gradient: jax.grad gives exactly zero on its incoming weights
    def loss(p):
        return jnp.sum(vgplib.mlp_forward(p, X, "relu", linear_output=True) ** 2)

    g = jax.grad(loss)(params)
    assert float(jnp.abs(g[0]["W"][jnp.array([0, 1, 3])]).max()) == 0.0
    assert float(jnp.abs(g[1]["W"]).max()) == 0.0


def test_sigmoid_saturates_to_an_exact_zero_slope_in_float32():
    params = [{"W": jnp.array([[1.0], [1.0]]), "b": jnp.array([20.0, 0.0])}, {"W": jnp.ones((1, 2)), "b": jnp.zeros(1)}]
    X = jnp.array([[0.0], [1.0]])
    np.testing.assert_array_equal(np.asarray(dead_units(params, X, "sigmoid")), [0.5])


def test_dead_units_bad_input():
    params = vgplib.init_mlp(jax.random.PRNGKey(0), [3, 4, 2])
    X = np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match="activation"):
        dead_units(params, X, "relux")
    with pytest.raises(TypeError, match="activation"):
        dead_units(params, X, 3)
    with pytest.raises(ValueError, match="width"):
        dead_units(params, np.ones((5, 4)), "relu")
    with pytest.raises(ValueError, match="x must be finite"):
        dead_units(params, np.full((5, 3), np.nan), "relu")
    with pytest.raises(ValueError, match="dimensions"):
        dead_units(params, np.ones((2, 5, 3)), "relu")
    with pytest.raises(TypeError, match="params"):
        dead_units({"W": 1}, X, "relu")
    with pytest.raises(TypeError, match="include_output"):
        dead_units(params, X, "relu", include_output=1)
    with pytest.raises(ValueError, match="single layer"):
        dead_units(params[:1], X, "relu")
    assert dead_units(params[:1], X, "relu", include_output=True).shape == (1,)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_slope_distribution_against_sampling_and_its_traceable_twin(activation):
    q = 1.7
    edges = np.linspace(-0.2, 1.2, 29)
    p = slope_distribution(activation, q, edges)
    assert p.shape == (28,) and p.sum() == pytest.approx(1.0, abs=1e-12)
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (200_000,)))
    sampled, _ = np.histogram(np.asarray(vgplib.get_activation(activation).grad(jnp.asarray(math.sqrt(q) * z))),
                              bins=edges)
    np.testing.assert_allclose(p, sampled / z.size, atol=5e-3)
    idx = vgplib.ACTIVATION_NAMES.index(activation)
    with jax.enable_x64(True):
        twin = jax.jit(slope_distribution_by_index)(idx, np.float64(q), jnp.asarray(edges))
        np.testing.assert_allclose(np.asarray(twin), p, atol=1e-12)
    # its second moment is chi_1 / sigma_w^2 (coarsely: the bins' midpoints)
    mid = 0.5 * (edges[1:] + edges[:-1])
    assert float(np.sum(p * mid**2)) == pytest.approx(vgplib.chi1(activation, 1.0, q=q), abs=0.03)


def test_slope_distribution_closed_forms_and_bad_input():
    edges = np.array([-0.5, 0.5, 1.5])
    np.testing.assert_allclose(slope_distribution("relu", 2.0, edges), [0.5, 0.5], atol=1e-14)
    # sigmoid's slope never exceeds 1/4: all mass below it
    assert slope_distribution("sigmoid", 3.0, [0.0, 0.25, 1.0])[1] == 0.0
    # edges that miss part of the range lose that mass
    assert slope_distribution("relu", 1.0, [0.5, 1.5]).sum() == pytest.approx(0.5, abs=1e-14)
    with pytest.raises(ValueError, match="edges"):
        slope_distribution("relu", 1.0, [1.0, 0.0])
    with pytest.raises(ValueError, match="edges"):
        slope_distribution("relu", 1.0, [1.0])
    with pytest.raises(ValueError, match="q"):
        slope_distribution("relu", -1.0, edges)
    with pytest.raises(ValueError, match="activation"):
        slope_distribution("nope", 1.0, edges)
    with pytest.raises(ValueError, match="index"):
        slope_distribution_by_index(99, 1.0, edges)
