"""How the units of a layer pass the gradient on: dead units and the distribution of slopes ``phi'(a)``.

A unit ``i`` of layer ``l`` passes the gradient on through its slope: ``delta_{l,i} = phi'(a_{l,i}) g_{l,i}``
(``a_l = W_l h_{l-1} + b_l`` the pre-activation, ``g_l = dE/dh_l``), so the layer Jacobian
``J_l = diag(phi'(a_l)) W_l`` has a zero row wherever ``phi'(a_{l,i}) = 0``. A unit whose slope is
exactly 0 for *every* input is **dead**: no gradient reaches its incoming weights ``W_{l,i:}`` and
``b_{l,i}`` from any example, so gradient descent can never revive it (for ReLU: its pre-activation
is negative on the whole data set). This is the "dying ReLU" problem; Maas, Hannun & Ng (2013)
proposed the leaky ReLU so that the slope is never exactly 0, and Lu et al. (2019) study the
probability that a whole deep, narrow ReLU network is dead at initialization.

:func:`dead_units` measures the fraction of dead units per layer on a data set.
:func:`slope_distribution` is the mean-field side: the distribution of ``phi'(a)`` for
``a ~ N(0, q)``, the pre-activation of a wide random layer (Poole et al. 2016), computed exactly with
the quadrature nodes of :func:`vgplib.gaussian_expectation`; :func:`slope_distribution_by_index` is
its traceable twin for jitted code (a traced ``q`` and an activation index).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from vgplib._validate import as_array, check_positive
from vgplib.activations import (
    ACTIVATION_NAMES,
    Activation,
    _check_index,
    _check_names,
    function_by_index,
    get_activation,
)
from vgplib.networks import check_mlp_input, mlp_forward

Array = jax.Array


@partial(jax.jit, static_argnames=("act", "n_layers", "residual"))
def _dead_fractions(params, x: Array, act: Activation, n_layers: int, residual: bool) -> Array:
    trace = mlp_forward(params, x, act, residual=residual, return_all=True)
    return jnp.stack([jnp.mean(jnp.all(act.grad(a) == 0, axis=0)) for a in trace.pre[:n_layers]])


def dead_units(
    params,
    X,
    activation: str | Activation = "relu",
    *,
    include_output: bool = False,
    residual: bool = False,
) -> Array:
    """Per layer, the fraction of units whose derivative ``phi'(a_{l,i})`` is exactly 0 on EVERY row of ``X``.

    The network is :func:`vgplib.mlp_forward` with ``params`` (``a_l = W_l h_{l-1} + b_l``,
    ``h_l = phi(a_l)``, ``h_0 = X``); the derivative is ``activation``'s own ``grad`` in the dtype of
    the computation, so "exactly 0" is a floating-point statement: ReLU's slope is 0 for ``a <= 0``
    (the subgradient at 0 is taken as 0, as ``jax.grad(jax.nn.relu)`` does); a leaky ReLU's never is;
    a sigmoid's is 0 in float32 once ``sigmoid(a)`` rounds to 1 (``a`` above about 17), and ELU's,
    GELU's or SiLU's once their exponential underflows. Such a unit passes no gradient to its
    incoming weights from any example of ``X``, and a gradient step on ``X`` cannot change that.

    The output layer is EXCLUDED by default: ``params[-1]`` is taken to be the linear read-out of a
    classifier (``linear_output=True`` in :func:`vgplib.mlp_forward`, as :func:`vgplib.train_mlp`
    uses), which has no ``phi``. The result then has shape ``(L - 1,)``, entry ``l - 1`` for hidden
    layer ``l``. ``include_output=True`` treats the last layer as a ``phi`` layer too and returns
    ``(L,)``. ``X`` is ``(B, n_0)`` (or one input ``(n_0,)``); ``residual`` as in
    :func:`vgplib.mlp_forward`.

    Raises ``ValueError`` for a network without a hidden layer when ``include_output=False``,
    mismatched shapes, empty or non-finite ``X``/``params``; ``TypeError`` for non-arrays, unknown
    activation types and non-bool flags.
    """
    act = get_activation(activation)
    for name, flag in (("include_output", include_output), ("residual", residual)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False; got {flag!r}")
    X = check_mlp_input(params, X, residual)
    X = X[None] if X.ndim == 1 else X  # one input: "every row" is that row
    n_layers = len(params) if include_output else len(params) - 1
    if n_layers == 0:
        raise ValueError("params has a single layer, the output layer, which include_output=False excludes: "
                         "pass include_output=True to count its units")
    return _dead_fractions(list(params), X, act, n_layers, residual)


def _check_edges(edges) -> Array:
    edges = as_array("edges", edges, (1,))
    e = np.asarray(edges) if not isinstance(edges, jax.core.Tracer) else None
    if edges.shape[0] < 2:
        raise ValueError(f"edges must hold at least 2 bin edges; got {edges.shape[0]}")
    if e is not None and (not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0)):
        raise ValueError("edges must be finite and strictly increasing")
    return edges


def slope_distribution_by_index(act_index, q, edges, names: tuple[str, ...] = ACTIVATION_NAMES) -> Array:
    """Traceable :func:`slope_distribution` for activation ``names[act_index]`` (``act_index`` and ``q`` may be traced).

    Returns ``(len(edges) - 1,)`` probabilities in the dtype of ``q`` (float64 under
    ``jax.enable_x64`` matches :func:`slope_distribution` to about 1e-12).
    """
    from vgplib.theory import _nodes

    names = _check_names(names)
    _check_index(act_index, names)
    if not isinstance(q, jax.core.Tracer) and jnp.ndim(q) == 0:
        check_positive("q", float(q), allow_zero=True)
    dtype = jnp.result_type(q, float)
    edges = jnp.asarray(_check_edges(edges), dtype)
    z, w = _nodes()
    z, w = jnp.asarray(z, dtype), jnp.asarray(w, dtype)
    slopes = function_by_index(act_index, jnp.sqrt(jnp.asarray(q, dtype)) * z, names, derivative=True)
    # bin i holds edges[i] <= s < edges[i+1]; the last bin also holds s == edges[-1] (as np.histogram)
    i = jnp.searchsorted(edges, slopes, side="right") - 1
    i = jnp.where(slopes == edges[-1], edges.shape[0] - 2, i)
    inside = (i >= 0) & (i < edges.shape[0] - 1)
    return jnp.zeros(edges.shape[0] - 1, dtype).at[jnp.clip(i, 0, edges.shape[0] - 2)].add(jnp.where(inside, w, 0))


def slope_distribution(activation: str | Activation, q: float, edges) -> np.ndarray:
    """``P(edges[i] <= phi'(a) < edges[i+1])`` for ``a ~ N(0, q)``: the slopes of a wide random layer.

    In the mean-field picture (Poole et al. 2016; Schoenholz et al. 2017) the pre-activations of a
    wide layer with ``W_ij ~ N(0, sigma_w^2/n)`` are Gaussian with variance ``q_l`` (``q*`` deep in the
    network), so this is the distribution of the diagonal of ``diag(phi'(a_l))`` in ``J_l``; its second
    moment times ``sigma_w^2`` is ``chi_1``. Computed in float64 by binning the weights of the composite
    Gauss-Legendre rule of :func:`vgplib.gaussian_expectation` (``|z| <= 10``) by the slope at each node,
    so an atom (ReLU: mass 1/2 at 0 and 1/2 at 1) is exact. The last bin includes its right edge, as
    :func:`numpy.histogram`; mass outside ``[edges[0], edges[-1]]`` is not counted, so the result sums
    to less than 1 when the edges do not cover the range of ``phi'``. Returns a float64 NumPy array.
    """
    act = get_activation(activation)
    q = check_positive("q", q, allow_zero=True)
    edges = _check_edges(edges)
    from vgplib.theory import _nodes

    z, w = _nodes()
    slopes = _grad64(act, np.sqrt(q) * z)
    counts, _ = np.histogram(slopes, bins=np.asarray(edges, np.float64), weights=w)
    return counts


def _grad64(act: Activation, a: np.ndarray) -> np.ndarray:
    with jax.enable_x64(True):
        return np.asarray(act.grad(jnp.asarray(a, jnp.float64)))
