"""Gradient clipping, measured: the angle a clipping turns a gradient, and adaptive clipping in vgplib's layout.

The clippings themselves are optax's (one implementation each):

* norm clipping, ``optax.clip_by_global_norm(c)``: ``g <- c g / ||g||`` when ``||g|| >= c``, where
  ``||g||`` is the norm of ALL parameters' gradients together (Pascanu, Mikolov & Bengio 2013,
  section 3.2, algorithm 1). It multiplies the whole gradient by one positive number, so it never
  changes its direction;
* value clipping, ``optax.clip(c)``: every entry to ``[-c, c]`` separately. (Pascanu et al.'s section
  3.1 describes Mikolov's element-wise variant, which clips the gradient's *temporal components*;
  ``optax.clip`` clips the summed gradient.) It shortens large entries and leaves small ones, so it
  turns the gradient;
* adaptive clipping, ``optax.adaptive_grad_clip(lam)`` (Brock, De, Smith & Simonyan 2021, section 4):
  each unit's gradient ``G_i`` is rescaled to ``lam max(||W_i||, eps) G_i / ||G_i||`` when
  ``||G_i|| / max(||W_i||, eps) > lam``, a unit being the weights INTO one output (its fan-in).

:func:`tree_angle` measures the angle between a gradient and its clipped version for any pytree.
:func:`fan_in_adaptive_clip` is ``optax.adaptive_grad_clip`` applied with vgplib's layout: vgplib
stores ``W`` as ``(n_out, n_in)`` (``a = W h + b``), so a unit's fan-in is a ROW, while optax's
default reduces a matrix over axis 0, the fan-in of the ``(n_in, n_out)`` layout of Haiku/Flax;
called as is on vgplib parameters it would clip columns (a unit's outgoing weights).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgplib._validate import check_finite_many, check_positive

Array = jax.Array

__all__ = ["fan_in_adaptive_clip", "tree_angle"]


def _leaves(arg: str, tree: Any) -> list[Array]:
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise TypeError(f"{arg} must be a pytree of arrays; it has no leaves")
    out = []
    for leaf in leaves:
        if isinstance(leaf, (bool, str, bytes)) or leaf is None:
            raise TypeError(f"{arg} must hold real arrays; got {type(leaf).__name__}")
        arr = jnp.asarray(leaf)
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            raise TypeError(f"{arg} must hold floating arrays; got dtype {arr.dtype}")
        out.append(arr)
    return out


def tree_angle(g: Any, h: Any) -> Array:
    """The angle in degrees between two gradients ``g`` and ``h`` (pytrees of one structure), as vectors.

    ``angle = 2 atan2(||u - v||, ||u + v||)`` with ``u = g/||g||``, ``v = h/||h||`` (Kahan's formula):
    accurate at every angle, where ``arccos(<g, h> / (||g|| ||h||))`` loses half the digits near 0
    (float32 ``arccos`` of a cosine rounded to 1 reads about 0.02 degrees). For norm clipping
    ``h = s g`` with ``s > 0`` and the angle is 0 up to rounding; for value clipping it is not.
    Raises ``ValueError`` if either gradient is zero, non-finite, or the structures differ.
    """
    g_leaves, h_leaves = _leaves("g", g), _leaves("h", h)
    if jax.tree_util.tree_structure(g) != jax.tree_util.tree_structure(h):
        raise ValueError("g and h must be pytrees of the same structure")
    for i, (a, b) in enumerate(zip(g_leaves, h_leaves)):
        if a.shape != b.shape:
            raise ValueError(f"g and h leaf {i} have different shapes: {a.shape} and {b.shape}")
    check_finite_many(("g", g_leaves), ("h", h_leaves))
    dtype = jnp.result_type(*g_leaves, *h_leaves)
    u = jnp.concatenate([a.astype(dtype).ravel() for a in g_leaves])
    v = jnp.concatenate([b.astype(dtype).ravel() for b in h_leaves])
    nu, nv = optax.tree.norm(u), optax.tree.norm(v)
    if not isinstance(nu, jax.core.Tracer) and (float(nu) == 0.0 or float(nv) == 0.0):
        raise ValueError("g and h must be non-zero: the angle to a zero vector is undefined")
    u, v = u / nu, v / nv
    return jnp.degrees(2.0 * jnp.arctan2(jnp.linalg.norm(u - v), jnp.linalg.norm(u + v)))


def _has_key(path, names: frozenset[str]) -> bool:
    return any(isinstance(k, jax.tree_util.DictKey) and k.key in names for k in path)


def fan_in_adaptive_clip(clipping: float, eps: float = 1e-3, skip: Iterable[str] = ()) -> optax.GradientTransformation:
    """Adaptive gradient clipping (Brock et al. 2021, section 4) for vgplib's ``(n_out, n_in)`` layout.

    For a matrix ``W`` (2-D leaf) each ROW ``i`` (the weights into unit ``i``) is a unit:
    ``G_i <- lam max(||W_i||, eps) G_i / ||G_i||`` where ``||G_i|| / max(||W_i||, eps) > lam``
    (``lam = clipping``); a vector or scalar leaf (a bias) is one unit. Built from optax only:
    ``optax.adaptive_grad_clip(clipping, eps, axis=1)`` masked to the matrices and
    ``optax.adaptive_grad_clip(clipping, eps)`` masked to the rest. Leaves under a dict key in
    ``skip`` (e.g. ``("v", "c")``, a readout: Brock et al. found it "always better to not clip the
    final linear layer") pass unclipped. Leaves with more than 2 axes raise ``ValueError``.
    Chain it before an optimizer: ``optax.chain(fan_in_adaptive_clip(0.01), optax.adam(lr))``.
    """
    clipping = check_positive("clipping", clipping)
    eps = check_positive("eps", eps)
    if isinstance(skip, (str, bytes)) or not all(isinstance(s, str) for s in skip):
        raise TypeError(f"skip must be an iterable of dict keys (strings); got {skip!r}")
    names = frozenset(skip)

    def mask(params, matrices: bool):
        def one(path, leaf):
            ndim = np.ndim(leaf)
            if ndim > 2:
                raise ValueError(f"params{jax.tree_util.keystr(path)} has {ndim} axes; "
                                 "fan_in_adaptive_clip handles matrices (n_out, n_in), vectors and scalars")
            return (not _has_key(path, names)) and ((ndim == 2) if matrices else (ndim < 2))

        return jax.tree_util.tree_map_with_path(one, params)

    return optax.chain(
        optax.masked(optax.adaptive_grad_clip(clipping, eps, axis=1), lambda p: mask(p, True)),
        optax.masked(optax.adaptive_grad_clip(clipping, eps), lambda p: mask(p, False)),
    )
