"""Highway layers (Srivastava, Greff & Schmidhuber 2015) and their exact Jacobians.

A highway layer mixes a transform ``H`` of its input with the input itself through a sigmoid
*transform gate* ``T`` (the *carry gate* is ``C = 1 - T``):

    a_l = W_l h_{l-1} + b_l,   H_l = phi(a_l),
    T_l = sigmoid(W_T,l h_{l-1} + b_T,l),
    h_l = T_l * H_l + (1 - T_l) * h_{l-1}.

A negative gate bias ``b_T`` makes ``T`` small at initialization, so each layer starts close to
the identity ("carry" behaviour). The layer Jacobian has three parts,

    J_l = dh_l/dh_{l-1} = diag(1 - T_l) + diag(T_l * phi'(a_l)) W_l
                          + diag((H_l - h_{l-1}) * T_l * (1 - T_l)) W_T,l,

the first of which is the identity path scaled by the carry gate. :func:`highway_jacobians`
returns the stacked ``J_l`` by autodiff, ready for the one-sweep functions of
:mod:`vgplib.jacobians` (``backward_products``, ``log_norms``, ``log_singular_values``);
:func:`highway_jacobian_parts` returns the three parts separately (closed form).

Parameters are a list of ``{"W", "b", "W_T", "b_T"}`` dicts (all ``(n, n)`` / ``(n,)``: a highway
layer keeps its width).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vgplib._validate import (
    as_array,
    check_finite_many,
    check_float_dtype,
    check_positive,
    check_positive_int,
)
from vgplib.activations import Activation, get_activation
from vgplib.networks import dense

Array = jax.Array
HIGHEST = jax.lax.Precision.HIGHEST
_KEYS = ("W", "b", "W_T", "b_T")


class HighwayTrace(NamedTuple):
    """Every layer of a highway forward pass: ``post[l] = h_l`` (``post[0] = x``), ``pre[l-1] = a_l``,
    ``gate[l-1] = T_l`` (the transform gate; the carry gate is ``1 - T_l``)."""

    pre: list[Array]
    gate: list[Array]
    post: list[Array]


def init_highway(key: Array, width: int, depth: int, sigma_w: float = 1.0, gate_bias: float = -1.0,
                 sigma_t: float = 1.0, dtype=jnp.float32) -> list[dict[str, Array]]:
    """``depth`` highway layers of width ``width``: ``W, W_T ~ N(0, sigma^2 / width)``, ``b = 0``,
    ``b_T = gate_bias`` (every unit).

    A negative ``gate_bias`` closes the transform gate at the start, so every layer begins close to
    the identity (the carry behaviour Srivastava et al. 2015 bias their highway networks towards;
    chapter 9 measures what the bias does to the Jacobian over 100 layers).
    """
    width = check_positive_int("width", width)
    depth = check_positive_int("depth", depth)
    sigma_w = check_positive("sigma_w", sigma_w)
    sigma_t = check_positive("sigma_t", sigma_t)
    if isinstance(gate_bias, bool) or not isinstance(gate_bias, (int, float)) or not jnp.isfinite(gate_bias):
        raise ValueError(f"gate_bias must be a finite real number; got {gate_bias!r}")
    check_float_dtype(dtype)
    layers = []
    for k in jax.random.split(key, depth):
        kw, kt = jax.random.split(k)
        layers.append({
            "W": sigma_w * jax.random.normal(kw, (width, width), dtype) / jnp.sqrt(jnp.asarray(width, dtype)),
            "b": jnp.zeros(width, dtype),
            "W_T": sigma_t * jax.random.normal(kt, (width, width), dtype) / jnp.sqrt(jnp.asarray(width, dtype)),
            "b_T": jnp.full(width, gate_bias, dtype),
        })
    return layers


def _check_highway(params, x) -> tuple[Array, int]:
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError("params must be a non-empty list of {'W', 'b', 'W_T', 'b_T'} dicts")
    n = None
    for i, layer in enumerate(params):
        if not isinstance(layer, Mapping) or any(k not in layer for k in _KEYS):
            raise TypeError(f"params[{i}] must be a dict with keys {list(_KEYS)}")
        shapes = [tuple(jnp.shape(layer[k])) for k in _KEYS]
        n = shapes[0][0] if n is None else n
        if shapes != [(n, n), (n,), (n, n), (n,)]:
            raise ValueError(f"params[{i}]: a highway layer of width {n} needs W, W_T (n, n) and b, b_T (n,); "
                             f"got {dict(zip(_KEYS, shapes))}")
    x = as_array("x", x, (1, 2))
    if x.shape[-1] != n:
        raise ValueError(f"x has width {x.shape[-1]} but the highway layers have width {n}")
    check_finite_many(("params", params), ("x", x))
    return x, n


def _highway_layer(layer, h: Array, act: Activation) -> tuple[Array, Array, Array]:
    a = dense(layer, h)
    gate = jax.nn.sigmoid(jnp.matmul(h, layer["W_T"].T, precision=HIGHEST) + layer["b_T"])
    return gate * act.fn(a) + (1.0 - gate) * h, a, gate


def highway_forward(params, x, activation: str | Activation = "tanh", return_all: bool = False):
    """Run the highway network ``h_l = T_l * phi(a_l) + (1 - T_l) * h_{l-1}`` on ``x`` ``(n,)`` or ``(B, n)``.

    With ``return_all=True`` returns a :class:`HighwayTrace` (pre-activations, gates, activations).
    """
    act = get_activation(activation)
    x, _ = _check_highway(params, x)
    pre, gates, post = [], [], [x]
    for layer in params:
        x, a, gate = _highway_layer(layer, x, act)
        pre.append(a)
        gates.append(gate)
        post.append(x)
    return HighwayTrace(pre, gates, post) if return_all else x


def _stack(params) -> dict[str, Array]:
    return {k: jnp.stack([jnp.asarray(p[k]) for p in params]) for k in _KEYS}


def _highway_jacobians_1(stacked, x: Array, act: Activation) -> Array:
    def step(h, layer):
        J = jax.jacfwd(lambda v: _highway_layer(layer, v, act)[0])(h)
        return _highway_layer(layer, h, act)[0], J

    return jax.lax.scan(step, x, stacked)[1]


def highway_jacobians(params, x, activation: str | Activation = "tanh") -> Array:
    """Exact layer Jacobians ``J_l = dh_l/dh_{l-1}`` of a highway network, by autodiff: ``(L, n, n)``
    (``(B, L, n, n)`` for a batch ``x``), for :func:`vgplib.backward_products`, :func:`vgplib.log_norms`,
    :func:`vgplib.log_singular_values` and the other one-sweep functions.

    ``J_l = diag(1 - T_l) + diag(T_l phi'(a_l)) W_l + diag((H_l - h_{l-1}) T_l (1 - T_l)) W_T,l``
    (see :func:`highway_jacobian_parts`).
    """
    act = get_activation(activation)
    x, _ = _check_highway(params, x)
    stacked = _stack(params)
    fn = jax.jit(_highway_jacobians_1, static_argnums=2)
    return fn(stacked, x, act) if x.ndim == 1 else jax.vmap(fn, in_axes=(None, 0, None))(stacked, x, act)


class HighwayJacobianParts(NamedTuple):
    """The three parts of a highway layer's Jacobian, each ``(L, n, n)``: ``carry = diag(1 - T_l)``
    (the identity path), ``transform = diag(T_l phi'(a_l)) W_l``, ``gate = diag((H_l - h_{l-1}) T_l
    (1 - T_l)) W_T,l`` (the change of the gate itself); ``J_l`` is their sum."""

    carry: Array
    transform: Array
    gate: Array


def highway_jacobian_parts(params, x, activation: str | Activation = "tanh") -> HighwayJacobianParts:
    """The closed-form parts of every highway layer's Jacobian at the input ``x`` of shape ``(n,)``.

    Their sum equals :func:`highway_jacobians` (tested); the carry part is the identity path,
    ``1 - sigmoid(b_T)`` on the diagonal when the gate weights are 0.
    """
    act = get_activation(activation)
    x, _ = _check_highway(params, x)
    if x.ndim != 1:
        raise ValueError(f"x must be one input of shape (n,); got {x.shape}")
    tr = highway_forward(params, x, act, return_all=True)
    carry, transform, gate = [], [], []
    for l, layer in enumerate(params):
        T, a, h_prev = tr.gate[l], tr.pre[l], tr.post[l]
        carry.append(jnp.diag(1.0 - T))
        transform.append((T * act.grad(a))[:, None] * layer["W"])
        gate.append(((act.fn(a) - h_prev) * T * (1.0 - T))[:, None] * layer["W_T"])
    return HighwayJacobianParts(jnp.stack(carry), jnp.stack(transform), jnp.stack(gate))
