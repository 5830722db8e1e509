"""vgplib: exact per-layer Jacobians and gradient products, for the book *Vanishing Gradients, Exactly*.

Parameters are plain pytrees (a list of ``{"W": (n_out, n_in), "b": (n_out,)}`` dicts for an
MLP); every function takes parameters and inputs and returns arrays. Matmuls run at
``jax.lax.Precision.HIGHEST`` so that results on a GPU match the CPU (no TF32 rounding).

``import vgplib`` imports JAX and NumPy only. The book layer (``vgplib.plots``, ``vgplib.widgets``,
``vgplib.panels``: matplotlib and ipywidgets) is imported on first use, so ``vgplib.plots.new_figure``
and ``from vgplib.panels import ch02`` work as before without costing a library user the import.
"""

import importlib as _importlib

from vgplib.activations import ACTIVATION_NAMES, ACTIVATIONS, Activation, get_activation
from vgplib.attention import (
    attention_jacobian,
    attention_layer,
    attention_weights,
    init_attention,
    init_transformer,
    softmax_jacobian,
    softmax_saturation,
    transformer_forward,
    transformer_gradient_norms,
)
from vgplib.clipping import fan_in_adaptive_clip, tree_angle
from vgplib.curvature import (
    HessianIndex,
    hessian_eigenvalues,
    hessian_index,
    hessian_matrix,
    hessian_vector_product,
)
from vgplib.data import (
    ADDING_BASELINE_MSE,
    Digits,
    Task,
    adding_baseline_mse,
    adding_problem,
    delayed_recall,
    load_digits,
)
from vgplib.finite_width import TypicalGrowth, typical_growth
from vgplib.gradients import (
    backprop_deltas,
    deltas_to_param_grads,
    layer_gradient_norms,
    layer_norms,
    tree_norm,
)
from vgplib.highway import (
    HighwayJacobianParts,
    HighwayTrace,
    highway_forward,
    highway_jacobians,
    init_highway,
)
from vgplib.init import (
    INIT_NAMES,
    NEGATIVE_MEAN_SCALE,
    NEGATIVE_MEAN_STD,
    init_layer,
    init_mlp,
    init_variance,
    negative_mean_value,
)
from vgplib.jacobians import (
    LogNorms,
    backward_products,
    backward_singular_values,
    backward_vector_products,
    first_layers_log_singular_values,
    layer_jacobians,
    log_norms,
    log_singular_values,
    lyapunov_spectrum,
)
from vgplib.landscapes import (
    CliffGrid,
    CliffPath,
    cliff_descent,
    cliff_descents,
    cliff_grad,
    cliff_grid,
    cliff_loss,
    cliff_map,
    cliff_wall,
)
from vgplib.monitor import (
    DEFAULT_THRESHOLDS,
    GradientRecord,
    GradientSummary,
    MonitorThresholds,
    monitor_step,
    stack_records,
    summarize,
)
from vgplib.networks import Trace, dense, mlp_forward, stack_params, unstack_params
from vgplib.normalization import (
    NORM_NAMES,
    batch_gradient_norms,
    batch_layer_jacobians,
    batch_norm_jacobian,
    normalize,
    normalized_gradient_growth,
)
from vgplib.precision import (
    FloatRange,
    LossScale,
    all_finite,
    cast_floats,
    float_range,
    flushed_fraction,
    loss_scale_init,
    loss_scale_update,
    precision_table,
    scaled_grad,
)
from vgplib.pretraining import autoencoder_loss_fn, pretrain_layerwise
from vgplib.recurrent import (
    CELL_NAMES,
    GRU_GATES,
    LSTM_GATES,
    RECURRENT_INIT_NAMES,
    AddingTraining,
    LSTMBlocks,
    LSTMGates,
    adding_mse,
    adding_predict,
    bptt_contributions,
    gru_cell,
    gru_step_jacobian,
    init_gru,
    init_lstm,
    init_rnn,
    lstm_blocks,
    lstm_cell,
    lstm_gates,
    lstm_log_norms,
    lstm_split,
    lstm_step_blocks,
    pairwise_log_norms,
    rnn_cell,
    state_size,
    step_jacobians,
    train_adding,
    unroll,
)
from vgplib.report import GradientReport, gradient_report
from vgplib.theory import (
    CorrelationScale,
    CriticalLine,
    chi1,
    correlation_depth_scale,
    critical_line,
    critical_sigma_w,
    depth_scale,
    gaussian_expectation,
    gaussian_lyapunov_exponents,
    length_map,
    q_star,
)
from vgplib.training import (
    TrainHistory,
    accuracy,
    cross_entropy,
    evaluate_many,
    mlp_accuracy_fn,
    mlp_loss_fn,
    relative_weight_change,
    train_many,
    train_mlp,
)
from vgplib.units import dead_units, slope_distribution

__version__ = "0.1.0"

#: Submodules of the book layer, imported on first attribute access (they import matplotlib/ipywidgets).
_LAZY_SUBMODULES = ("panels", "plots", "widgets")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        module = _importlib.import_module(f"vgplib.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'vgplib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_NAMES",
    "ADDING_BASELINE_MSE",
    "CELL_NAMES",
    "DEFAULT_THRESHOLDS",
    "GRU_GATES",
    "INIT_NAMES",
    "LSTM_GATES",
    "NEGATIVE_MEAN_SCALE",
    "NEGATIVE_MEAN_STD",
    "NORM_NAMES",
    "RECURRENT_INIT_NAMES",
    "Activation",
    "AddingTraining",
    "CliffGrid",
    "CliffPath",
    "CorrelationScale",
    "CriticalLine",
    "Digits",
    "FloatRange",
    "GradientRecord",
    "GradientReport",
    "GradientSummary",
    "HessianIndex",
    "HighwayJacobianParts",
    "HighwayTrace",
    "LSTMBlocks",
    "LSTMGates",
    "LogNorms",
    "LossScale",
    "MonitorThresholds",
    "Task",
    "Trace",
    "TrainHistory",
    "TypicalGrowth",
    "accuracy",
    "adding_baseline_mse",
    "adding_mse",
    "adding_predict",
    "adding_problem",
    "all_finite",
    "attention_jacobian",
    "attention_layer",
    "attention_weights",
    "autoencoder_loss_fn",
    "backprop_deltas",
    "backward_products",
    "backward_singular_values",
    "backward_vector_products",
    "batch_gradient_norms",
    "batch_layer_jacobians",
    "batch_norm_jacobian",
    "bptt_contributions",
    "cast_floats",
    "chi1",
    "cliff_descent",
    "cliff_descents",
    "cliff_grad",
    "cliff_grid",
    "cliff_loss",
    "cliff_map",
    "cliff_wall",
    "correlation_depth_scale",
    "critical_line",
    "critical_sigma_w",
    "cross_entropy",
    "dead_units",
    "delayed_recall",
    "deltas_to_param_grads",
    "dense",
    "depth_scale",
    "evaluate_many",
    "fan_in_adaptive_clip",
    "first_layers_log_singular_values",
    "float_range",
    "flushed_fraction",
    "gaussian_expectation",
    "gaussian_lyapunov_exponents",
    "get_activation",
    "gradient_report",
    "gru_cell",
    "gru_step_jacobian",
    "hessian_eigenvalues",
    "hessian_index",
    "hessian_matrix",
    "hessian_vector_product",
    "highway_forward",
    "highway_jacobians",
    "init_attention",
    "init_gru",
    "init_highway",
    "init_layer",
    "init_lstm",
    "init_mlp",
    "init_rnn",
    "init_transformer",
    "init_variance",
    "layer_gradient_norms",
    "layer_jacobians",
    "layer_norms",
    "length_map",
    "load_digits",
    "log_norms",
    "log_singular_values",
    "loss_scale_init",
    "loss_scale_update",
    "lstm_blocks",
    "lstm_cell",
    "lstm_gates",
    "lstm_log_norms",
    "lstm_split",
    "lstm_step_blocks",
    "lyapunov_spectrum",
    "mlp_accuracy_fn",
    "mlp_forward",
    "mlp_loss_fn",
    "monitor_step",
    "negative_mean_value",
    "normalize",
    "normalized_gradient_growth",
    "pairwise_log_norms",
    "precision_table",
    "pretrain_layerwise",
    "q_star",
    "relative_weight_change",
    "rnn_cell",
    "scaled_grad",
    "slope_distribution",
    "softmax_jacobian",
    "softmax_saturation",
    "stack_params",
    "stack_records",
    "state_size",
    "step_jacobians",
    "summarize",
    "train_adding",
    "train_many",
    "train_mlp",
    "transformer_forward",
    "transformer_gradient_norms",
    "tree_angle",
    "tree_norm",
    "typical_growth",
    "unroll",
    "unstack_params",
]
