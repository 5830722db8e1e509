"""Named activation functions, their derivatives and the supremum of |phi'|.

The supremum bounds each layer's contribution to a backward product: with
``J_l = diag(phi'(a_l)) W_l`` (``a_l`` the pre-activation) we have ``||J_l|| <= sup|phi'| * ||W_l||``, so a sigmoid network
loses at least a factor 4 per layer unless its weights make up for it (Hochreiter 1991;
Bengio, Simard & Frasconi 1994).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vgplib._validate import check_name

Array = jax.Array

LEAKY_RELU_SLOPE = 0.01


class Activation(NamedTuple):
    """An activation ``fn``, its derivative ``grad`` and ``sup_grad = sup_x |phi'(x)|``."""

    name: str
    fn: Callable[[Array], Array]
    grad: Callable[[Array], Array]
    sup_grad: float


def _sigmoid_grad(x: Array) -> Array:
    s = jax.nn.sigmoid(x)
    return s * (1.0 - s)


def _tanh_grad(x: Array) -> Array:
    return 1.0 - jnp.tanh(x) ** 2


def _relu_grad(x: Array) -> Array:
    # The subgradient at 0 is taken as 0, as jax.grad(jax.nn.relu)(0.0) does.
    return jnp.where(x > 0, 1.0, 0.0).astype(jnp.result_type(x, float))


def _leaky_relu(x: Array) -> Array:
    return jnp.where(x > 0, x, LEAKY_RELU_SLOPE * x)


def _leaky_relu_grad(x: Array) -> Array:
    return jnp.where(x > 0, 1.0, LEAKY_RELU_SLOPE).astype(jnp.result_type(x, float))


def _elu(x: Array) -> Array:
    # expm1 on the clipped argument keeps the unused branch finite (no inf * 0 in the gradient).
    return jnp.where(x > 0, x, jnp.expm1(jnp.minimum(x, 0.0)))


def _elu_grad(x: Array) -> Array:
    return jnp.where(x > 0, 1.0, jnp.exp(jnp.minimum(x, 0.0)))


def _swish(x: Array) -> Array:
    return x * jax.nn.sigmoid(x)


def _swish_grad(x: Array) -> Array:
    s = jax.nn.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu(x: Array) -> Array:
    # The exact GELU x * Phi(x) (Hendrycks & Gimpel 2016), not the tanh approximation.
    return 0.5 * x * (1.0 + jax.lax.erf(x / _SQRT2))


def _gelu_grad(x: Array) -> Array:
    return 0.5 * (1.0 + jax.lax.erf(x / _SQRT2)) + x * _INV_SQRT_2PI * jnp.exp(-0.5 * x**2)


def _erf_grad(x: Array) -> Array:
    return (2.0 / math.sqrt(math.pi)) * jnp.exp(-(x**2))


def _linear(x: Array) -> Array:
    return x


def _linear_grad(x: Array) -> Array:
    return jnp.ones_like(x)


# sup |swish'| is attained at x ~ 2.3994 where swish'(x) ~ 1.0998 (root of swish''(x) = 0).
_SWISH_SUP = 1.0998393194572
# sup |gelu'| = gelu'(sqrt(2)) = Phi(sqrt 2) + sqrt(2) phi(sqrt 2) ~ 1.1289 (gelu'' = phi (2 - x^2)).
_GELU_SUP = 0.5 * (1.0 + math.erf(1.0)) + _SQRT2 * _INV_SQRT_2PI * math.exp(-1.0)

ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", jax.nn.sigmoid, _sigmoid_grad, 0.25),
    "tanh": Activation("tanh", jnp.tanh, _tanh_grad, 1.0),
    "relu": Activation("relu", jax.nn.relu, _relu_grad, 1.0),
    "leaky_relu": Activation("leaky_relu", _leaky_relu, _leaky_relu_grad, 1.0),
    "elu": Activation("elu", _elu, _elu_grad, 1.0),
    "swish": Activation("swish", _swish, _swish_grad, _SWISH_SUP),
    "gelu": Activation("gelu", _gelu, _gelu_grad, _GELU_SUP),
    "erf": Activation("erf", jax.lax.erf, _erf_grad, 2.0 / math.sqrt(math.pi)),
    "linear": Activation("linear", _linear, _linear_grad, 1.0),
}
ACTIVATIONS["silu"] = ACTIVATIONS["swish"]._replace(name="silu")

ACTIVATION_NAMES: tuple[str, ...] = tuple(ACTIVATIONS)


def get_activation(activation: str | Activation) -> Activation:
    """Return the :class:`Activation` named ``activation`` (one of :data:`ACTIVATION_NAMES`).

    An :class:`Activation` passes through unchanged, so every function that takes an activation
    name also takes a custom ``Activation(name, fn, grad, sup_grad)``.
    """
    if isinstance(activation, Activation):
        return activation
    check_name("activation", activation, ACTIVATIONS)
    return ACTIVATIONS[activation]


def _check_names(names) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names) or len(names) == 0:
        raise TypeError(f"names must be a non-empty tuple of activation names; got {names!r}")
    for n in names:
        check_name("activation", n, ACTIVATIONS)
    return tuple(names)


def _check_index(index, names: tuple[str, ...]) -> None:
    if not isinstance(index, jax.core.Tracer):
        if isinstance(index, bool) or not jnp.issubdtype(jnp.asarray(index).dtype, jnp.integer) or jnp.ndim(index):
            raise TypeError(f"index must be an integer scalar; got {index!r}")
        if not 0 <= int(index) < len(names):
            raise ValueError(f"index must be in 0..{len(names) - 1} for names {names}; got {int(index)}")


def activation_by_index(index, x, names: tuple[str, ...] = ACTIVATION_NAMES) -> tuple[Array, Array]:
    """``(phi(x), phi'(x))`` for the activation ``names[index]``, with ``index`` a traced integer.

    The jit-friendly form of :func:`get_activation`: ``jax.lax.switch`` over the same ``fn``/``grad``
    of ``ACTIVATIONS``, so a slider or dropdown that changes the activation changes an argument of a
    jitted function, not its trace (no recompilation). ``names`` (static) fixes the order and limits
    the branches compiled. A concrete ``index`` outside ``0..len(names)-1`` raises ``ValueError``
    (a traced one is clamped, as ``lax.switch`` does).
    """
    names = _check_names(names)
    _check_index(index, names)
    return _switch(index, x, names, lambda a: (lambda v: (a.fn(v), a.grad(v))))


def _switch(index, x, names: tuple[str, ...], branch):
    """``lax.switch`` over ``branch(ACTIVATIONS[name])`` for the (checked) ``names``."""
    fns = [branch(ACTIVATIONS[n]) for n in names]
    return fns[0](x) if len(fns) == 1 else jax.lax.switch(index, fns, x)


def function_by_index(index, x, names: tuple[str, ...] = ACTIVATION_NAMES, derivative: bool = False) -> Array:
    """``phi(x)`` (or ``phi'(x)`` with ``derivative=True``) alone, for :func:`activation_by_index`'s
    arguments: half the work where only one of the two is needed (for example a Gauss quadrature)."""
    names = _check_names(names)
    _check_index(index, names)
    return _switch(index, x, names, (lambda a: a.grad) if derivative else (lambda a: a.fn))
