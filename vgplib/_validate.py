"""Argument checks shared by every public function: clear errors that name the argument.

Checks run on concrete values only; under ``jax.jit`` tracing the value checks are skipped
(shapes are still checked), so validation never forces a device-to-host copy inside a trace.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_name(arg: str, value: Any, valid: Iterable[str]) -> None:
    """Raise unless ``value`` is one of the names in ``valid`` (listed in the message)."""
    names = sorted(valid)
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a string, one of {names}; got {type(value).__name__}")
    if value not in names:
        raise ValueError(f"unknown {arg} {value!r}; expected one of {names}")


def check_positive_int(arg: str, value: Any, minimum: int = 1) -> int:
    """Raise unless ``value`` is an int >= ``minimum``; return it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{arg} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{arg} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_positive(arg: str, value: Any, allow_zero: bool = False) -> float:
    """Raise unless ``value`` is a finite real number > 0 (or >= 0); return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{arg} must be a real number; got {type(value).__name__}")
    bound_ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not bound_ok:
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{arg} must be a finite number {rel}; got {value}")
    return float(value)


def check_finite(arg: str, x: Any) -> None:
    """Raise ``ValueError`` if a concrete array (or pytree of arrays) holds NaN or inf."""
    for leaf in jax.tree_util.tree_leaves(x):
        if _is_tracer(leaf):
            continue
        if isinstance(leaf, jax.Array):  # reduce on the device: no host copy of a large stack
            if not jax.numpy.issubdtype(leaf.dtype, jax.numpy.inexact):
                continue
            # A concrete array closed over inside jax.jit: evaluate now, do not trace.
            with jax.ensure_compile_time_eval():
                finite = bool(jax.numpy.isfinite(leaf).all())
        else:
            arr = np.asarray(leaf)
            finite = bool(np.isfinite(arr).all()) if arr.dtype.kind in "fc" else True
        if not finite:
            raise ValueError(f"{arg} must be finite; it contains NaN or inf")


def as_array(arg: str, x: Any, ndims: tuple[int, ...]) -> jax.Array:
    """Convert ``x`` to a floating JAX array with one of the allowed numbers of dimensions."""
    if isinstance(x, (str, bytes, Mapping)) or x is None:
        raise TypeError(f"{arg} must be an array; got {type(x).__name__}")
    try:
        arr = jax.numpy.asarray(x)
    except TypeError as err:
        raise TypeError(f"{arg} must be an array of numbers; got {type(x).__name__}") from err
    if not jax.numpy.issubdtype(arr.dtype, jax.numpy.floating):
        arr = arr.astype(jax.numpy.result_type(float))
    if arr.ndim not in ndims:
        raise ValueError(f"{arg} must have {' or '.join(map(str, ndims))} dimensions; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{arg} must not be empty; got shape {arr.shape}")
    return arr


def check_mlp_params(params: Any) -> list[tuple[int, int]]:
    """Check MLP parameters ``[{"W": (n_out, n_in), "b": (n_out,)}, ...]``; return the shapes."""
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError("params must be a non-empty list of {'W': (n_out, n_in), 'b': (n_out,)} dicts")
    shapes = []
    prev_out = None
    for i, layer in enumerate(params):
        if not isinstance(layer, Mapping) or "W" not in layer or "b" not in layer:
            raise TypeError(f"params[{i}] must be a dict with keys 'W' and 'b'")
        W, b = layer["W"], layer["b"]
        if np.ndim(W) != 2 or np.ndim(b) != 1:
            raise ValueError(f"params[{i}]: W must be 2-D and b 1-D; got shapes {np.shape(W)}, {np.shape(b)}")
        n_out, n_in = np.shape(W)
        if np.shape(b)[0] != n_out:
            raise ValueError(f"params[{i}]: b has {np.shape(b)[0]} entries but W has {n_out} rows")
        if prev_out is not None and n_in != prev_out:
            raise ValueError(f"params[{i}]: W expects inputs of width {n_in} but layer {i - 1} outputs {prev_out}")
        prev_out = n_out
        shapes.append((n_out, n_in))
    check_finite("params", params)
    return shapes


def check_float_dtype(dtype: Any) -> None:
    """Raise ``TypeError`` unless ``dtype`` is a floating dtype (float16/32/64, bfloat16)."""
    import jax.numpy as jnp

    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype; got {dtype}")

