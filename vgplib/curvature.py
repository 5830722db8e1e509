"""Curvature of a loss at a point: the exact Hessian of a small model and its eigenvalues.

A training run that stalls has a small gradient. Whether the stall is a *vanishing gradient*, a
*saddle point* or a *minimum* is a question about the second-order expansion of the loss
``E`` around the parameters ``theta`` (flattened into one vector of ``N`` numbers):

    E(theta + v) = E(theta) + g^T v + (1/2) v^T H v + O(|v|^3),   H_ij = d^2 E / d theta_i d theta_j.

At a saddle ``H`` has negative eigenvalues (directions along which the loss falls: gradient descent
leaves along them, slowly at first); at a minimum every eigenvalue is ``>= 0``; a vanishing gradient
makes the rows and columns of ``H`` that belong to the early layers nearly zero (flat, not negative).
Dauphin et al. (2014, "Identifying and attacking the saddle point problem in high-dimensional
non-convex optimization") argue that in high dimension most critical points with high loss are
saddles, not poor local minima.

The Hessian here is exact (``jax.hessian``: forward-over-reverse autodiff of the flattened loss),
so it is meant for SMALL models (a few thousand parameters: ``N^2`` entries, ``O(N^3)`` eigen-
decomposition). :func:`hessian_vector_product` gives ``H v`` for any size without forming ``H``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from vgplib._validate import check_finite, check_positive, check_positive_int

Array = jax.Array

#: Default largest parameter count for which :func:`hessian_eigenvalues` forms the full Hessian.
MAX_HESSIAN_PARAMS = 4096


class HessianIndex(NamedTuple):
    """Counts of negative, flat and positive Hessian eigenvalues (see :func:`hessian_index`)."""

    negative: int
    flat: int
    positive: int


def _check_params(params: Any) -> list[Any]:
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise TypeError("params must be a pytree of floating arrays; it has no leaves")
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = getattr(leaf, "dtype", None)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"params{jax.tree_util.keystr(path)} must be a floating array; got {type(leaf).__name__}")
    return leaves


@partial(jax.jit, static_argnums=0)
def _flat_hessian(loss_fn: Callable[..., Array], params: Any, *batch: Any) -> Array:
    """``jax.hessian`` of the loss on the flattened parameters; one compilation per loss_fn and shapes."""
    theta, unravel = ravel_pytree(params)
    return jax.hessian(lambda t: loss_fn(unravel(t), *batch))(theta)


@partial(jax.jit, static_argnums=0)
def _flat_hvp(loss_fn: Callable[..., Array], params: Any, vec: Array, *batch: Any) -> Array:
    theta, unravel = ravel_pytree(params)
    grad = jax.grad(lambda t: loss_fn(unravel(t), *batch))
    return jax.jvp(grad, (theta,), (vec.astype(theta.dtype),))[1]


def _flat_loss(loss_fn: Any, params: Any, batch: tuple[Any, ...]) -> Array:
    """Validate ``loss_fn(params, *batch)`` (callable, finite params, finite scalar loss); return flat params."""
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(params, *batch); got {type(loss_fn).__name__}")
    _check_params(params)
    check_finite("params", params)
    theta = ravel_pytree(params)[0]
    loss = loss_fn(params, *batch)
    if jnp.ndim(loss) != 0:
        raise ValueError(f"loss_fn must return a scalar; got shape {jnp.shape(loss)}")
    if not bool(jnp.isfinite(loss)):
        raise ValueError(f"loss_fn returned a non-finite loss ({float(loss)}) at params")
    return theta


def hessian_matrix(loss_fn: Callable[..., Array], params: Any, *batch: Any,
                   max_params: int = MAX_HESSIAN_PARAMS) -> np.ndarray:
    """The exact Hessian ``H_ij = d^2 E / d theta_i d theta_j`` of ``E = loss_fn(params, *batch)``.

    ``params`` is any pytree of floating arrays (a list of ``{"W", "b"}`` dicts, nested dicts, ...);
    ``theta`` is its flattening by ``jax.flatten_util.ravel_pytree`` (leaves in pytree order, each
    row-major), so entry ``i`` of an eigenvector belongs to the same parameter as entry ``i`` of
    ``ravel_pytree(params)[0]``. Computed by ``jax.hessian`` (forward-over-reverse autodiff) in the
    parameters' dtype (compiled once per ``loss_fn`` object and shapes: reuse the same function
    object), returned as a float64 NumPy array symmetrized as ``(H + H^T)/2`` (the two
    halves differ only by rounding). Raises ``ValueError`` when ``params`` holds more than
    ``max_params`` numbers (the matrix has ``N^2`` entries), when the loss is not a scalar or not
    finite, or when the Hessian holds NaN/inf.
    """
    max_params = check_positive_int("max_params", max_params)
    theta = _flat_loss(loss_fn, params, batch)
    if theta.size > max_params:
        raise ValueError(f"params has {theta.size} numbers, more than max_params={max_params}: the exact "
                         "Hessian would need N^2 entries; use hessian_vector_product (Lanczos) instead")
    h = np.asarray(_flat_hessian(loss_fn, params, *batch), dtype=np.float64)
    if not np.isfinite(h).all():
        raise ValueError("the Hessian holds NaN or inf (the loss is not twice differentiable here or overflows)")
    return 0.5 * (h + h.T)


def hessian_eigenvalues(loss_fn: Callable[..., Array], params: Any, *batch: Any,
                        max_params: int = MAX_HESSIAN_PARAMS) -> np.ndarray:
    """All ``N`` eigenvalues of the exact Hessian of ``loss_fn(params, *batch)``, ascending (float64).

    ``H`` from :func:`hessian_matrix` (``jax.hessian`` of the loss on the flattened pytree), its
    eigenvalues by ``numpy.linalg.eigvalsh`` in float64. Their signs classify a point where the
    gradient is small: some ``lambda < 0`` (clearly below rounding) is a saddle, with the loss falling
    along the eigenvector as ``(1/2) lambda |v|^2`` (Dauphin et al. 2014); all ``lambda >= 0`` is a
    minimum (or a flat region); see :func:`hessian_index`. Meant for small models (``N <=
    max_params``).
    """
    return np.linalg.eigvalsh(hessian_matrix(loss_fn, params, *batch, max_params=max_params))


def hessian_vector_product(loss_fn: Callable[..., Array], params: Any, v: Any, *batch: Any) -> Any:
    """``H v`` without forming ``H``: ``jax.jvp`` of ``jax.grad(loss_fn)`` at ``params`` in direction ``v``.

    ``v`` is a pytree with the structure and shapes of ``params``; the result has the same structure.
    Forward-over-reverse (Pearlmutter 1994): costs a few gradient evaluations, for any model size.
    """
    _flat_loss(loss_fn, params, batch)
    _check_params(v)
    if jax.tree_util.tree_structure(v) != jax.tree_util.tree_structure(params):
        raise ValueError("v must have the same pytree structure as params")
    for a, b in zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(params)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"v must have the shapes of params; got {jnp.shape(a)} for a leaf of shape {jnp.shape(b)}")
    check_finite("v", v)
    unravel = ravel_pytree(params)[1]
    return unravel(_flat_hvp(loss_fn, params, ravel_pytree(v)[0], *batch))


def hessian_index(eigenvalues: Any, rel_tol: float = 1e-4) -> HessianIndex:
    """Count eigenvalues below ``-tol``, within ``[-tol, tol]`` and above ``tol``, ``tol = rel_tol max|lambda|``.

    The number of negative eigenvalues is the *index* of a critical point (0 at a minimum, > 0 at a
    saddle). ``rel_tol`` separates genuine curvature from rounding: the Hessian of a float32 loss
    carries errors of about ``1e-7 max|lambda|``, so its exact zeros show up as tiny eigenvalues of
    either sign.
    """
    rel_tol = check_positive("rel_tol", rel_tol)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0:
        raise ValueError(f"eigenvalues must be a non-empty 1-D array; got shape {lam.shape}")
    if not np.isfinite(lam).all():
        raise ValueError("eigenvalues must be finite; they contain NaN or inf")
    tol = rel_tol * float(np.max(np.abs(lam)))
    neg = int(np.sum(lam < -tol))
    pos = int(np.sum(lam > tol))
    return HessianIndex(neg, lam.size - neg - pos, pos)
