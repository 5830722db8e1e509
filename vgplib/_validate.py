"""Argument checks shared by every public function: clear errors that name the argument.

Checks run on concrete values only; under ``jax.jit`` tracing the value checks are skipped
(shapes are still checked), so validation never forces a device-to-host copy inside a trace.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
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


@jax.jit
def _leaf_all_finite(x: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(x))


def _first_bad_leaf(arg: str, tree: Any) -> str:
    """Where the first NaN or inf of ``tree`` sits, as ``arg[path] at index (i, j)`` (failure path only)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if _is_tracer(leaf):
            continue
        arr = np.asarray(leaf)
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            where = f"{arg}{jax.tree_util.keystr(path)}"
            if arr.ndim:
                index = tuple(int(i) for i in np.unravel_index(int(np.argmax(~np.isfinite(arr))), arr.shape))
                where += f" at index {index}"
            return where
    return arg


def _on_cpu(x: jax.Array) -> bool:
    return all(d.platform == "cpu" for d in x.devices())


def check_finite_many(*named: tuple[str, Any]) -> None:
    """Raise ``ValueError`` naming the argument (and the first bad entry) if any pytree holds NaN or inf.

    ``named`` are ``(argument name, pytree)`` pairs, checked together with at most ONE host sync:
    a floating JAX leaf on an accelerator is reduced on its device by a small jitted
    ``all(isfinite(leaf))`` dispatched asynchronously (compiled once per shape), and the flags of all
    leaves come back in one ``jax.device_get``; a leaf on the CPU is already in host memory and is
    read in place (``np.asarray`` of a CPU array is a view, no copy and no dispatch); NumPy and Python
    leaves are checked on the host. Tracers are skipped (inside ``jax.jit`` there is no value to
    check); a concrete array closed over inside a trace is evaluated now, not traced. Only when a
    check fails is the first bad leaf located, for the message.
    """
    device: list[tuple[int, jax.Array]] = []
    bad = None
    with jax.ensure_compile_time_eval():
        for k, (_, tree) in enumerate(named):
            for leaf in jax.tree_util.tree_leaves(tree):
                if _is_tracer(leaf):
                    continue
                if isinstance(leaf, jax.Array):
                    if not jnp.issubdtype(leaf.dtype, jnp.inexact):
                        continue
                    if not _on_cpu(leaf):
                        device.append((k, _leaf_all_finite(leaf)))
                        continue
                arr = np.asarray(leaf)
                if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                    bad = k
                    break
            if bad is not None:
                break
    if bad is None and device:
        flags = jax.device_get([flag for _, flag in device])
        bad = next((k for (k, _), ok in zip(device, flags) if not ok), None)
    if bad is not None:
        arg, tree = named[bad]
        raise ValueError(f"{arg} must be finite; it contains NaN or inf ({_first_bad_leaf(arg, tree)})")


def check_finite(arg: str, x: Any) -> None:
    """Raise ``ValueError`` if a concrete array (or pytree of arrays) holds NaN or inf.

    One host sync for the whole pytree (see :func:`check_finite_many`); the message names ``arg``
    and the first bad leaf and index, e.g. ``params[17]['W'] at index (2, 0)``.
    """
    check_finite_many((arg, x))


def as_array(arg: str, x: Any, ndims: tuple[int, ...]) -> jax.Array:
    """Convert ``x`` to a floating JAX array with one of the allowed numbers of dimensions."""
    if isinstance(x, (str, bytes, Mapping)) or x is None:
        raise TypeError(f"{arg} must be an array; got {type(x).__name__}")
    try:
        arr = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"{arg} must be an array of numbers; got {type(x).__name__}") from err
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if arr.ndim not in ndims:
        raise ValueError(f"{arg} must have {' or '.join(map(str, ndims))} dimensions; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{arg} must not be empty; got shape {arr.shape}")
    return arr


def _shape(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return tuple(shape) if isinstance(shape, tuple) else np.shape(x)


def check_mlp_params(params: Any, finite: bool = True) -> list[tuple[int, int]]:
    """Check MLP parameters ``[{"W": (n_out, n_in), "b": (n_out,)}, ...]``; return the shapes.

    Shapes come from array metadata (no device sync). ``finite=False`` skips the NaN/inf check, for a
    caller that checks the parameters together with its other arguments in one sync.
    """
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError("params must be a non-empty list of {'W': (n_out, n_in), 'b': (n_out,)} dicts")
    shapes = []
    prev_out = None
    for i, layer in enumerate(params):
        if not (type(layer) is dict or isinstance(layer, Mapping)) or "W" not in layer or "b" not in layer:
            raise TypeError(f"params[{i}] must be a dict with keys 'W' and 'b'")
        W, b = layer["W"], layer["b"]
        shape_W, shape_b = _shape(W), _shape(b)  # metadata only: no device sync
        if len(shape_W) != 2 or len(shape_b) != 1:
            raise ValueError(f"params[{i}]: W must be 2-D and b 1-D; got shapes {shape_W}, {shape_b}")
        n_out, n_in = shape_W
        if shape_b[0] != n_out:
            raise ValueError(f"params[{i}]: b has {shape_b[0]} entries but W has {n_out} rows")
        if prev_out is not None and n_in != prev_out:
            raise ValueError(f"params[{i}]: W expects inputs of width {n_in} but layer {i - 1} outputs {prev_out}")
        prev_out = n_out
        shapes.append((n_out, n_in))
    if finite:
        check_finite("params", params)
    return shapes


def check_float_dtype(dtype: Any) -> None:
    """Raise ``TypeError`` unless ``dtype`` is a floating dtype (float16/32/64, bfloat16)."""
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype; got {dtype}")

