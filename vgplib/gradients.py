"""Per-layer gradients of a scalar loss: norms for any list-of-layers pytree, and the delta recursion.

Backpropagation (Rumelhart, Hinton & Williams 1986) computes, for ``a_l = W_l h_{l-1} + b_l``,
``h_l = phi(a_l)``, ``h_0 = x`` and a loss ``E``, the error signals ``delta_l = dE/da_l`` from the
back-propagated gradients ``g_l = dE/dh_l``:

    delta_L = phi'(a_L) * g_L,        delta_l = phi'(a_l) * g_l,   g_l = W_{l+1}^T delta_{l+1},
    dE/dW_l = delta_l h_{l-1}^T,      dE/db_l = delta_l,

so the size of ``dE/dW_l`` is the size of a product of ``L - l`` Jacobian factors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from vgplib.activations import Activation, get_activation
from vgplib.networks import check_mlp_input, mlp_forward

Array = jax.Array


def _check_layers(params: Any) -> None:
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError("params must be a non-empty list (or tuple) of per-layer parameter pytrees")


def tree_norm(tree: Any) -> Array:
    """Euclidean (Frobenius) norm of all leaves of a pytree taken together."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.asarray(0.0)
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def layer_norms(tree: Any) -> Array:
    """``[||tree[0]||, ..., ||tree[L-1]||]``: the norm of every layer of a list-of-layers pytree."""
    _check_layers(tree)
    return jnp.stack([tree_norm(layer) for layer in tree])


def layer_gradient_norms(loss_fn: Callable[..., Array], params: Any, *args: Any) -> Array:
    """``||dE/dtheta_l||`` for every layer ``l`` of a list-of-layers ``params`` pytree.

    ``loss_fn(params, *args)`` must return a scalar. Works for any per-layer structure (dicts of
    ``W`` and ``b``, LSTM gates, ...): each layer's leaves are joined into one norm. Returns
    ``(L,)``. Computed with one ``jax.grad``.
    """
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(params, *args); got {type(loss_fn).__name__}")
    _check_layers(params)
    loss = loss_fn(params, *args)
    if jnp.ndim(loss) != 0:
        raise ValueError(f"loss_fn must return a scalar; got shape {jnp.shape(loss)}")
    grads = jax.grad(loss_fn)(params, *args)
    norms = layer_norms(grads)
    if not bool(jnp.all(jnp.isfinite(norms))):
        raise FloatingPointError("the gradient holds NaN or inf (exploding gradient or a NaN loss)")
    return norms


def backprop_deltas(params, x, grad_output, activation: str | Activation = "tanh") -> list[Array]:
    """The delta recursion written out: ``delta_l = dE/da_l`` for ``l = 1..L``.

    ``delta_L = phi'(a_L) * grad_output`` and ``delta_l = phi'(a_l) * (W_{l+1}^T delta_{l+1})``,
    for one input ``x`` (``(n_0,)``) or a batch (``(B, n_0)``), with ``grad_output = g_L = dE/dh_L``.
    Then ``dE/dW_l = delta_l h_{l-1}^T`` (summed over a batch) and ``dE/db_l = delta_l``.
    An independent path to ``jax.grad``, for teaching and for tests.
    """
    act = get_activation(activation)
    x = check_mlp_input(params, x)
    g = jnp.asarray(grad_output, dtype=x.dtype)
    n_L = params[-1]["W"].shape[0]
    if g.shape != x.shape[:-1] + (n_L,):
        raise ValueError(f"grad_output must have shape {x.shape[:-1] + (n_L,)}; got {g.shape}")
    trace = mlp_forward(params, x, act, return_all=True)
    deltas = [act.grad(trace.pre[-1]) * g]
    for l in range(len(params) - 1, 0, -1):
        back = jnp.matmul(deltas[0], params[l]["W"], precision=jax.lax.Precision.HIGHEST)
        deltas.insert(0, act.grad(trace.pre[l - 1]) * back)
    return deltas


def deltas_to_param_grads(deltas: list[Array], params, x, activation: str | Activation = "tanh") -> list[dict[str, Array]]:
    """``dE/dW_l = delta_l h_{l-1}^T`` and ``dE/db_l = delta_l`` (summed over a batch axis)."""
    act = get_activation(activation)
    trace = mlp_forward(params, x, act, return_all=True)
    grads = []
    for d, x_prev in zip(deltas, trace.post[:-1]):
        if d.ndim == 1:
            grads.append({"W": jnp.outer(d, x_prev), "b": d})
        else:
            grads.append({"W": jnp.einsum("bi,bj->ij", d, x_prev), "b": d.sum(0)})
    return grads
