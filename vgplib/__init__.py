"""vgplib: exact per-layer Jacobians and gradient products, for the book *Vanishing Gradients, Exactly*.

Parameters are plain pytrees (a list of ``{"W": (n_out, n_in), "b": (n_out,)}`` dicts for an
MLP); every function takes parameters and inputs and returns arrays. Matmuls run at
``jax.lax.Precision.HIGHEST`` so that results on a GPU match the CPU (no TF32 rounding).
"""

from vgplib.activations import ACTIVATION_NAMES, ACTIVATIONS, Activation, get_activation
from vgplib.gradients import (
    backprop_deltas,
    deltas_to_param_grads,
    layer_gradient_norms,
    layer_norms,
    tree_norm,
)
from vgplib.init import INIT_NAMES, init_layer, init_mlp
from vgplib.jacobians import (
    LogNorms,
    backward_products,
    backward_singular_values,
    backward_vector_products,
    layer_jacobians,
    log_norms,
    log_singular_values,
    lyapunov_spectrum,
)
from vgplib.networks import Trace, dense, mlp_forward, stack_params, unstack_params
from vgplib.theory import (
    chi1,
    critical_sigma_w,
    depth_scale,
    gaussian_expectation,
    length_map,
    q_star,
)

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_NAMES",
    "Activation",
    "INIT_NAMES",
    "LogNorms",
    "Trace",
    "backprop_deltas",
    "backward_products",
    "backward_singular_values",
    "backward_vector_products",
    "chi1",
    "critical_sigma_w",
    "deltas_to_param_grads",
    "dense",
    "depth_scale",
    "gaussian_expectation",
    "get_activation",
    "init_layer",
    "init_mlp",
    "layer_gradient_norms",
    "layer_jacobians",
    "layer_norms",
    "length_map",
    "log_norms",
    "log_singular_values",
    "lyapunov_spectrum",
    "mlp_forward",
    "q_star",
    "stack_params",
    "tree_norm",
    "unstack_params",
]
