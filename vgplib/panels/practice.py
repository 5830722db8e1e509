"""Self-checks of the practice questions (back matter, ``notebooks/practice.ipynb``).

Every ``check_<name>(answer)`` prints a verdict and returns ``True``/``False``; with ``None`` (the
state of the committed notebook) it prints a neutral "No answer yet" line and returns ``False``.
The expected value is never typed in: each question has an ``expected_<name>()`` function that
computes it with ``vgplib`` (or JAX/optax/NumPy for floating-point facts), and the check compares
the reader's number with it at the tolerance its docstring states. A non-number (a string, a
bool, an array with more than one entry) raises a ``TypeError``, a NaN or infinity a
``ValueError``, each naming the argument.

Instructors: :func:`answer_key` lists every computed answer with its chapter and tolerance.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgplib.activations import get_activation
from vgplib.clipping import tree_angle
from vgplib.curvature import hessian_eigenvalues
from vgplib.init import init_variance
from vgplib.monitor import MonitorThresholds
from vgplib.normalization import normalized_gradient_growth
from vgplib.precision import loss_scale_init, loss_scale_update
from vgplib.theory import (
    chi1,
    critical_sigma_w,
    depth_scale,
    gaussian_lyapunov_exponents,
)
from vgplib.training import cross_entropy
from vgplib.widgets import answer_number, report_answer, unanswered

__all__ = ["QUESTIONS", "Question", "answer_key"]


@dataclass(frozen=True)
class Question:
    """One numerical practice question: its chapter, the computed answer and the tolerance."""

    name: str
    chapter: int
    expected: Callable[[], float]
    rtol: float
    integer: bool = False


#: Every numerical question, by name (``check_<name>`` is its self-check).
QUESTIONS: dict[str, Question] = {}


def _question(chapter: int, rtol: float = 1e-2, integer: bool = False):
    def register(fn: Callable[[], float]) -> Callable[[], float]:
        fn = functools.cache(fn)   # deterministic: compute each answer once per session
        name = fn.__name__.removeprefix("expected_")
        QUESTIONS[name] = Question(name, chapter, fn, rtol, integer)
        return fn

    return register


def answer_key() -> list[tuple[int, str, float, str]]:
    """``(chapter, name, answer, tolerance)`` for every numerical question, in chapter order.

    For instructors: the answers are computed now, by the same functions the checks call.
    """
    rows = []
    for q in sorted(QUESTIONS.values(), key=lambda q: q.chapter):
        tol = "exact integer" if q.integer else f"rtol {q.rtol:g}"
        rows.append((q.chapter, q.name, float(q.expected()), tol))
    return rows


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# --------------------------------------------------------------------------- answer handling


def _number(arg: str, value: Any) -> float:
    """``value`` as a finite float; ``TypeError``/``ValueError`` naming ``arg`` otherwise.

    A 0-d array (what a JAX or NumPy computation returns) counts as a number.
    """
    if isinstance(value, (np.ndarray, jax.Array)):
        if np.ndim(value) != 0:
            raise TypeError(f"{arg} must be a single number; got an array of shape {np.shape(value)}")
        value = np.asarray(value).item()
    value = answer_number(arg, value)
    if not math.isfinite(value):
        raise ValueError(f"{arg} must be finite; got {value}")
    return value


def _integer(arg: str, value: Any) -> int:
    number = _number(arg, value)
    if number != round(number):
        raise ValueError(f"{arg} must be a whole number; got {number}")
    return round(number)


def _unanswered(*answers: Any) -> bool:
    return unanswered("replace None with your answer and run the cell again.", *answers)


def _check(name: str, arg: str, answer: Any, what: str, hint: str,
           mistakes: tuple[tuple[float, str], ...] = ()) -> bool:
    """Compare ``answer`` with question ``name``'s computed value; ``what`` may use ``{ref}``."""
    if _unanswered(answer):
        return False
    q = QUESTIONS[name]
    ref = q.expected()
    if q.integer:
        value = _integer(arg, answer)
        ok = value == ref
        close = lambda v, m: v == m
    else:
        value = _number(arg, answer)
        ok = math.isclose(value, ref, rel_tol=q.rtol, abs_tol=1e-12)
        close = lambda v, m: math.isclose(v, m, rel_tol=q.rtol)
    if ok:
        return report_answer(True, what.format(ref=ref), "")
    for wrong, why in mistakes:
        if close(value, wrong):
            return report_answer(False, "", why)
    return report_answer(False, "", hint)


# --------------------------------------------------------------------------- chapter 1


@_question(chapter=1, rtol=1e-3)
def expected_sigmoid_jacobian_norm() -> float:
    """``||J_1||_2`` of one sigmoid layer with ``W = 2 I_3``, ``b = 0`` at the input ``x = 0``."""
    W, a = 2.0 * np.eye(3), np.zeros(3)          # a_1 = W_1 x + b_1 = 0
    J = np.diag(np.asarray(get_activation("sigmoid").grad(a))) @ W
    return float(np.linalg.norm(J, ord=2))


def check_sigmoid_jacobian_norm(norm) -> bool:
    """Self-check: ``||J_1||_2`` for ``W = 2 I``, ``b = 0``, ``x = 0``, sigmoid (rtol 1e-3)."""
    return _check("sigmoid_jacobian_norm", "norm", norm,
                  "J_1 = diag(sigmoid'(0)) W = 0.25 * 2 I, so ||J_1||_2 = {ref:.3g}",
                  "J_1 = diag(phi'(a_1)) W_1 with a_1 = W_1 x + b_1 = 0; sigmoid'(0) = 1/4.",
                  ((2.0, "that is ||W_1||_2 alone: multiply by the slopes phi'(a_1)."),))


@_question(chapter=1, rtol=1e-2)
def expected_sigmoid_bound() -> float:
    """The bound ``(sup sigmoid' * ||W||_2)^L`` for ``||W_l||_2 <= 1`` and ``L = 20`` factors."""
    return float(get_activation("sigmoid").sup_grad) ** 20


def check_sigmoid_bound(bound) -> bool:
    """Self-check: the bound on ``||g_0|| / ||g_20||`` of a 20-layer sigmoid net (rtol 1e-2)."""
    return _check("sigmoid_bound", "bound", bound,
                  "each factor ||J_l|| <= sup|sigmoid'| ||W_l|| <= 1/4, so the bound is 0.25^20 = {ref:.3g}",
                  "the gradient at the input passes through all 20 layer Jacobians; bound each norm.",
                  ((0.25**19, "that is 19 factors: g_0 = J_1^T ... J_20^T g_20 has 20."),))


@_question(chapter=1, rtol=1e-3)
def expected_relu_chi1() -> float:
    """``chi_1`` of ReLU at ``sigma_w = 1.2``, ``sigma_b = 0`` (:func:`vgplib.chi1`)."""
    return chi1("relu", 1.2)


def check_relu_chi1(chi) -> bool:
    """Self-check: ``chi_1 = sigma_w^2 E[phi'(a)^2]`` of ReLU at ``sigma_w = 1.2`` (rtol 1e-3)."""
    return _check("relu_chi1", "chi", chi,
                  "E[relu'(a)^2] = P(a > 0) = 1/2, so chi_1 = 1.44 / 2 = {ref:.3g}: gradients vanish",
                  "chi_1 = sigma_w^2 E[phi'(a)^2]; ReLU's slope is 1 on half of the inputs.",
                  ((1.44, "you forgot E[phi'(a)^2] = 1/2."), (1.2, "chi_1 uses sigma_w SQUARED.")))


# --------------------------------------------------------------------------- chapter 2


@_question(chapter=2, integer=True)
def expected_float64_horizon() -> int:
    """Smallest ``L`` with ``0.25^L`` below float64's smallest normal (JAX on CPU flushes it to 0)."""
    tiny = float(jnp.finfo(np.float64).tiny)
    L = 1
    while 0.25**L >= tiny:
        L += 1
    return L


def check_float64_horizon(L) -> bool:
    """Self-check: the first depth at which ``0.25^L`` is 0 in float64, subnormals flushed (exact)."""
    return _check("float64_horizon", "L", L,
                  "0.25^L = 2^(-2L) falls below 2^(-1022) at L = {ref}, and CPU JAX flushes subnormals",
                  "0.25^L = 2^(-2L); float64's smallest normal is 2^(-1022).",
                  ((511.0, "at L = 511, 2^(-1022) is still the smallest NORMAL number: not zero."),
                   (538.0, "that counts subnormals, which JAX on CPU flushes to zero.")))


@_question(chapter=2, rtol=1e-2)
def expected_lyapunov_top() -> float:
    """The largest Lyapunov exponent of Gaussian ``4 x 4`` factors ``W_ij ~ N(0, 1/4)``."""
    return float(gaussian_lyapunov_exponents(4, sigma_w=1.0)[0])


def check_lyapunov_top(lam) -> bool:
    """Self-check: ``lambda_1`` for ``n = 4``, ``sigma_w = 1`` (rtol 1e-2)."""
    return _check("lyapunov_top", "lam", lam,
                  "lambda_1 = {ref:.3f} < 0: although E||W v||^2 = ||v||^2, the TYPICAL product shrinks",
                  "lambda_i = (log(2 sigma_w^2 / n) + psi((n - i + 1) / 2)) / 2 with the digamma psi.",
                  ((0.0, "0 is the rate of the MEAN square; a typical product grows at E log, not log E."),))


_TRANSIENT = np.array([[0.85, 5.0], [0.0, 0.85]])


@_question(chapter=2, integer=True)
def expected_transient_peak() -> int:
    """The power ``k`` at which ``||A^k||_2`` is largest for ``A = [[0.85, 5], [0, 0.85]]``."""
    norms = [np.linalg.norm(np.linalg.matrix_power(_TRANSIENT, k), ord=2) for k in range(1, 61)]
    return int(np.argmax(norms)) + 1


def check_transient_peak(k) -> bool:
    """Self-check: the power of the non-normal ``A`` with the largest spectral norm (exact)."""
    return _check("transient_peak", "k", k,
                  "||A^k||_2 peaks at k = {ref} although rho(A) = 0.85: a non-normal matrix grows before it decays",
                  "A^k = [[0.85^k, 5 k 0.85^(k-1)], [0, 0.85^k]]; maximise k 0.85^(k-1) (the off-diagonal term).",
                  ((1.0, "rho(A) = 0.85 < 1 does not make ||A^k|| decrease from the start."),))


@_question(chapter=2, rtol=1e-2)
def expected_uniform_log_decades() -> float:
    """``log10`` of the typical product of 100 factors ``U[0, 2]``: ``100 E[ln a] / ln 10``."""
    # E[ln a] for a ~ U[0, 2] is (1/2) int_0^2 ln a da = ln 2 - 1.
    return 100 * (math.log(2.0) - 1.0) / math.log(10.0)


def check_uniform_log_decades(decades) -> bool:
    """Self-check: the decades of a typical product of 100 ``U[0, 2]`` factors (rtol 1e-2)."""
    return _check("uniform_log_decades", "decades", decades,
                  "E[ln a] = ln 2 - 1 = -0.307 per factor: about {ref:.1f} decades after 100, though E[a] = 1",
                  "the product's log is a SUM of 100 logs; use E[ln a] for a ~ U[0, 2].",
                  ((0.0, "E[a] = 1 is the mean factor; the typical product follows E[ln a]."),))


# --------------------------------------------------------------------------- chapter 3


@_question(chapter=3, rtol=1e-3)
def expected_standard_init_factor() -> float:
    """``1 / (n Var(W))`` for the standard init ``U[-1/sqrt(n), 1/sqrt(n)]`` (``n = 100``)."""
    return 1.0 / (100 * init_variance("standard", 100, 100))


def check_standard_init_factor(factor) -> bool:
    """Self-check: the factor by which the error-signal variance falls per layer (rtol 1e-3)."""
    return _check("standard_init_factor", "factor", factor,
                  "n Var(W) = n (1/n) / 3 = 1/3, so the variance falls by {ref:.3g} per layer",
                  "Var(U[-a, a]) = a^2 / 3 with a = 1/sqrt(n); the backward factor is n Var(W).",
                  ((1 / 3, "that is the factor itself (1/3); the question asks by how much it FALLS."),))


@_question(chapter=3, rtol=1e-2)
def expected_half_ulp() -> float:
    """Half the float32 spacing above 0.5: a smaller positive update leaves ``w = 0.5`` unchanged."""
    return float(np.spacing(np.float32(0.5))) / 2


def check_half_ulp(delta) -> bool:
    """Self-check: the update below which ``float32(0.5) + delta == 0.5`` (rtol 1e-2)."""
    return _check("half_ulp", "delta", delta,
                  "the next float32 above 0.5 is 0.5 + 2^-24; round-to-nearest keeps 0.5 up to half that, {ref:.3g}",
                  "float32 has 24 significant bits: the spacing above 0.5 = 2^-1 is 2^-24.",
                  ((2.0**-24, "that is the full spacing; rounding to nearest needs only half of it."),
                   (2.0**-23, "that is float32's epsilon at 1, not at 0.5.")))


@_question(chapter=3, rtol=1e-3)
def expected_uniform_loss() -> float:
    """The cross-entropy of a 10-class classifier whose logits are all 0 (``vgplib.cross_entropy``)."""
    params = [{"W": jnp.zeros((10, 4)), "b": jnp.zeros(10)}]
    x = jnp.ones((5, 4))
    y = jnp.arange(5)
    return float(cross_entropy(params, x, y))


def check_uniform_loss(loss) -> bool:
    """Self-check: the loss at which chapter 3's deep sigmoid network stalls (rtol 1e-3)."""
    return _check("uniform_loss", "loss", loss,
                  "uniform probabilities 1/10 give -ln(1/10) = ln 10 = {ref:.4g}: the network predicts nothing",
                  "softmax of equal logits is 1/10 for every class; the loss is -log of the true class's probability.",
                  ((math.log10(10.0), "the cross-entropy uses the NATURAL log."), (0.1, "that is the probability, not its -log.")))


# --------------------------------------------------------------------------- chapter 4


@_question(chapter=4, rtol=1e-2)
def expected_pascanu_bound() -> float:
    """``(sup tanh' ||W||_2)^(t-k)`` for ``||W||_2 = 0.9`` and a lag of 50."""
    return (float(get_activation("tanh").sup_grad) * 0.9) ** 50


def check_pascanu_bound(bound) -> bool:
    """Self-check: Pascanu's bound on ``||dh_t/dh_k||_2`` for a tanh RNN, ``||W||_2 = 0.9``, lag 50 (rtol 1e-2)."""
    return _check("pascanu_bound", "bound", bound,
                  "(gamma ||W||_2)^(t-k) = 0.9^50 = {ref:.3g}: guaranteed vanishing",
                  "the bound is (gamma ||W||_2)^(t-k) with gamma = sup|tanh'| = 1.",
                  ((0.9**49, "a lag of 50 has 50 step Jacobians."),))


def _fold_point(h: float = 0.8) -> tuple[float, float]:
    a = math.log(h / (1.0 - h))                                 # sigmoid(a) = h
    w = 1.0 / float(get_activation("sigmoid").grad(a))          # w sigmoid'(a) = 1
    return w, a - w * h                                         # a = w h + b


@_question(chapter=4, rtol=1e-3)
def expected_fold_w() -> float:
    """``w`` on the fold curve for the fixed point ``h* = 0.8`` of ``h <- sigmoid(w h + b)``."""
    return _fold_point()[0]


@_question(chapter=4, rtol=1e-3)
def expected_fold_b() -> float:
    """``b`` on the fold curve for the fixed point ``h* = 0.8``."""
    return _fold_point()[1]


def check_fold(w, b) -> bool:
    """Self-check: ``(w, b)`` that make ``h* = 0.8`` a fixed point with per-step factor 1 (rtol 1e-3 each)."""
    if _unanswered(w, b):
        return False
    w, b = _number("w", w), _number("b", b)
    ref_w, ref_b = _fold_point()
    if math.isclose(w, ref_w, rel_tol=1e-3) and math.isclose(b, ref_b, rel_tol=1e-3):
        return report_answer(True, f"w = 1/(h(1-h)) = {ref_w:.4g} and b = log(h/(1-h)) - w h = {ref_b:.4g}", "")
    if math.isclose(w, ref_w, rel_tol=1e-3):
        return report_answer(False, "", "w is right; b follows from sigmoid(w h + b) = h, i.e. w h + b = log(h/(1-h)).")
    return report_answer(False, "", "the factor is w sigmoid'(a) = w h (1 - h); set it to 1, then solve h = sigmoid(w h + b) for b.")


@_question(chapter=4, integer=True)
def expected_one_unit_steps() -> int:
    """Steps until ``(w tanh'(0))^k < 1e-6`` for ``w = 0.5`` (the factor from ``jax.grad``)."""
    factor = 0.5 * float(get_activation("tanh").grad(0.0))
    k = 1
    while factor**k >= 1e-6:
        k += 1
    return k


def check_one_unit_steps(steps) -> bool:
    """Self-check: the first lag at which ``dh_t/dh_{t-k}`` of ``h_t = tanh(0.5 h_{t-1})`` at 0 is below 1e-6 (exact)."""
    return _check("one_unit_steps", "steps", steps,
                  "the factor per step is 0.5 tanh'(0) = 0.5, and 0.5^k < 1e-6 from k = {ref} on",
                  "solve 0.5^k < 1e-6 for the smallest whole k.",
                  ((19.0, "0.5^19 = 1.9e-6 is still above 1e-6."),))


# --------------------------------------------------------------------------- chapter 5


@_question(chapter=5, rtol=1e-2)
def expected_tanh_chi1() -> float:
    """``chi_1`` of tanh at ``sigma_w = 2``, ``sigma_b = 0`` at its fixed point ``q*``."""
    return chi1("tanh", 2.0)


def check_tanh_chi1(chi) -> bool:
    """Self-check: ``chi_1`` of tanh at ``sigma_w = 2`` (rtol 1e-2; ``vgplib.chi1``)."""
    return _check("tanh_chi1", "chi", chi,
                  "at q* the units saturate, E[tanh'(a)^2] is about 0.34, and chi_1 = {ref:.3g} > 1: exploding",
                  "chi_1 = sigma_w^2 E[tanh'(sqrt(q*) z)^2] at the fixed point q* of the length map; use vgplib.chi1.",
                  ((4.0, "that assumes tanh'(a) = 1: at q* the units saturate."),))


@_question(chapter=5, integer=False, rtol=1e-2)
def expected_overflow_depth() -> float:
    """Layers until ``||g||`` grown by ``chi_1^(1/2)`` per layer from 1 passes float32's maximum (tanh, ``sigma_w = 2``)."""
    return 2.0 * math.log(float(np.finfo(np.float32).max)) / math.log(chi1("tanh", 2.0))


def check_overflow_depth(depth) -> bool:
    """Self-check: mean field's depth of overflow for tanh at ``sigma_w = 2`` (rtol 1e-2)."""
    return _check("overflow_depth", "depth", depth,
                  "||g|| grows like chi_1^(L/2): 2 ln(3.4e38) / ln chi_1 = {ref:.0f} layers",
                  "||g_0||^2 / ||g_L||^2 = chi_1^L; solve chi_1^(L/2) = 3.4e38.",
                  ((math.log(float(np.finfo(np.float32).max)) / math.log(chi1("tanh", 2.0)),
                    "chi_1 multiplies the SQUARED norm: the norm grows by sqrt(chi_1) per layer."),))


@_question(chapter=5, rtol=1e-2)
def expected_naive_norm_overflow() -> float:
    """``sqrt`` of float32's largest number: a norm computed as ``sqrt(sum g^2)`` overflows beyond it."""
    return math.sqrt(float(np.finfo(np.float32).max))


def check_naive_norm_overflow(norm) -> bool:
    """Self-check: the ``||g||`` above which ``sqrt(sum(g**2))`` in float32 is ``inf`` (rtol 1e-2)."""
    return _check("naive_norm_overflow", "norm", norm,
                  "the sum of squares passes 3.4e38 once ||g|| passes sqrt(3.4e38) = {ref:.3g}",
                  "the intermediate sum of squares overflows first; float32's largest number is 3.4e38.",
                  ((float(np.finfo(np.float32).max), "the norm itself is small; its SQUARE overflows first."),))


# --------------------------------------------------------------------------- chapter 6


@_question(chapter=6, rtol=1e-3)
def expected_silu_max_slope() -> float:
    """The largest slope of SiLU ``a sigmoid(a)``: its derivative's maximum on a fine grid of ``[0, 5]``."""
    a = jnp.linspace(0.0, 5.0, 50001)
    return float(jnp.max(get_activation("silu").grad(a)))


def check_silu_max_slope(slope) -> bool:
    """Self-check: ``sup phi'`` of SiLU (swish) (rtol 1e-3)."""
    return _check("silu_max_slope", "slope", slope,
                  "SiLU's slope peaks at about {ref:.4f} near a = 2.4: above 1, unlike ReLU's",
                  "differentiate a sigmoid(a) and find where the second derivative is zero (a is about 2.4).",
                  ((1.0, "1 is the slope far to the right; SiLU's slope overshoots it."),
                   (0.25, "that is the sigmoid's largest slope.")))


@_question(chapter=6, rtol=1e-2)
def expected_dead_probability() -> float:
    """``P(a < 0)^100`` for ``a ~ N(-3, 1)``: the chance a ReLU unit is dead on 100 independent inputs."""
    return _normal_cdf(3.0) ** 100


def check_dead_probability(p) -> bool:
    """Self-check: the probability that a ReLU unit with ``a ~ N(-3, 1)`` is dead on 100 inputs (rtol 1e-2)."""
    return _check("dead_probability", "p", p,
                  "P(a < 0) = Phi(3) = 0.99865 per input, and 0.99865^100 = {ref:.3f}",
                  "the unit is dead when relu'(a) = 0 on EVERY input: multiply P(a < 0) over the 100 inputs.",
                  ((_normal_cdf(3.0), "that is one input; the unit must be silent on all 100."),))


@_question(chapter=6, rtol=1e-2)
def expected_tanh_critical_sigma_w() -> float:
    """``sigma_w`` on tanh's critical line at ``sigma_b = 0.3`` (:func:`vgplib.critical_sigma_w`)."""
    return critical_sigma_w("tanh", 0.3)


def check_tanh_critical_sigma_w(sigma_w) -> bool:
    """Self-check: the critical ``sigma_w`` of tanh at ``sigma_b = 0.3`` (rtol 1e-2)."""
    return _check("tanh_critical_sigma_w", "sigma_w", sigma_w,
                  "chi_1 = 1 at sigma_w = {ref:.3f}: a bias variance moves the critical weight scale above 1",
                  "find sigma_w with sigma_w^2 E[tanh'(sqrt(q*) z)^2] = 1, where q* itself depends on sigma_w and sigma_b.",
                  ((1.0, "sigma_w = 1 is critical only at sigma_b = 0."),))


# --------------------------------------------------------------------------- chapter 7


@_question(chapter=7, rtol=1e-3)
def expected_he_variance() -> float:
    """He's ``Var(W) = 2 / fan_in`` for ``fan_in = 256``, ``fan_out = 128`` (:func:`vgplib.init_variance`)."""
    return init_variance("he", 256, 128)


def check_he_variance(var) -> bool:
    """Self-check: He's weight variance for a 256 -> 128 ReLU layer (rtol 1e-3)."""
    return _check("he_variance", "var", var,
                  "Var(W) = 2 / fan_in = 2 / 256 = {ref:.4g}",
                  "He pays ReLU's factor 1/2 on the forward pass: Var(W) = 2 / n_{l-1}.",
                  ((2 / 384, "that is Glorot's 2/(fan_in + fan_out)."), (1 / 256, "that is LeCun's 1/fan_in: ReLU halves it.")))


@_question(chapter=7, rtol=1e-3)
def expected_glorot_halfwidth() -> float:
    """Half-width ``a`` of Glorot's uniform ``U[-a, a]`` for a 784 -> 256 layer: ``Var = a^2 / 3``."""
    return math.sqrt(3.0 * init_variance("glorot_uniform", 784, 256))


def check_glorot_halfwidth(a) -> bool:
    """Self-check: ``a = sqrt(6 / (fan_in + fan_out))`` for 784 -> 256 (rtol 1e-3)."""
    return _check("glorot_halfwidth", "a", a,
                  "Var(W) = 2/(784 + 256) and Var(U[-a, a]) = a^2/3, so a = sqrt(6/1040) = {ref:.4f}",
                  "set a^2 / 3 equal to 2 / (fan_in + fan_out).",
                  ((math.sqrt(2 / 1040), "that is the standard deviation; the half-width of a uniform is sqrt(3) times it."),))


@_question(chapter=7, rtol=1e-2)
def expected_tanh_depth_scale() -> float:
    """The gradient depth scale ``xi = -1 / ln chi_1`` of tanh at ``sigma_w = 0.9``, ``sigma_b = 0.05``."""
    return depth_scale(chi1("tanh", 0.9, 0.05))


def check_tanh_depth_scale(xi) -> bool:
    """Self-check: ``xi`` in layers for tanh at ``(0.9, 0.05)`` (rtol 1e-2)."""
    return _check("tanh_depth_scale", "xi", xi,
                  f"chi_1 = {chi1('tanh', 0.9, 0.05):.3f}, so xi = -1/ln chi_1 = {{ref:.2f}} layers: "
                  "deep ordered nets forget fast",
                  "compute chi_1 at the fixed point q* (vgplib.chi1), then xi = -1 / ln chi_1.",
                  ((-1 / math.log(0.81), "0.81 = sigma_w^2 assumes q* = 0; with sigma_b = 0.05, q* > 0."),))


# --------------------------------------------------------------------------- chapter 8


@_question(chapter=8, rtol=1e-2)
def expected_bn_relu_growth() -> float:
    """Mean-field growth of ``E||g_l||^2`` per BatchNorm-ReLU layer at batch size 16."""
    return normalized_gradient_growth("relu", "batch", 16)


def check_bn_relu_growth(factor) -> bool:
    """Self-check: the per-layer growth factor of a BatchNorm-ReLU layer at ``B = 16`` (rtol 1e-2)."""
    return _check("bn_relu_growth", "factor", factor,
                  "E[relu'^2]/Var(relu(z)) (B-2)/(B-3) = {ref:.3f}: BatchNorm's gradient GROWS with depth",
                  "lambda = E[phi'(z)^2] / Var(phi(z)) * (B - 2)/(B - 3) with z standard normal.",
                  ((math.pi / (math.pi - 1), "that is the large-batch limit; at B = 16 multiply by (B-2)/(B-3)."),))


@_question(chapter=8, rtol=1e-2)
def expected_ln_sigmoid_factor() -> float:
    """LayerNorm's per-layer factor ``E[phi'^2] / E[phi^2]`` for the sigmoid."""
    return normalized_gradient_growth("sigmoid", "layer")


def check_ln_sigmoid_factor(factor) -> bool:
    """Self-check: the LayerNorm-sigmoid factor per layer in ``E||g||^2`` (rtol 1e-2)."""
    return _check("ln_sigmoid_factor", "factor", factor,
                  "E[sigmoid'^2]/E[sigmoid^2] = {ref:.3f}: the mean 1/2 dominates the second moment, and gradients still vanish",
                  "LayerNorm divides by the second moment of phi(z), not by its variance: the factor is E[phi'(z)^2] / E[phi(z)^2].",
                  ((normalized_gradient_growth("sigmoid", "batch"), "that is BatchNorm's factor (variance, not second moment)."),))


# --------------------------------------------------------------------------- chapter 9


@_question(chapter=9, rtol=1e-2)
def expected_residual_decades() -> float:
    """``log10 prod_l (1 + alpha^2 chi)`` for ``alpha = 1/sqrt(L)``, ``chi = 1``, ``L = 1000``."""
    L = 1000
    return L * math.log10(1.0 + (1.0 / math.sqrt(L)) ** 2 * 1.0)


def check_residual_decades(decades) -> bool:
    """Self-check: decades of growth of ``E||g||^2`` over 1000 residual layers with ``alpha = 1/sqrt(L)`` (rtol 1e-2)."""
    return _check("residual_decades", "decades", decades,
                  "(1 + 1/L)^L -> e, so the growth is log10 e = {ref:.3f} decades: bounded at any depth",
                  "each layer multiplies E||g||^2 by 1 + alpha^2 chi; take L log10(1 + 1/L).",
                  ((1000 * math.log10(2.0), "that is alpha = 1 (factor 2 per layer)."),))


@_question(chapter=9, rtol=1e-2)
def expected_highway_decades() -> float:
    """``100 log10(1 - sigmoid(-2))``: the carry path of 100 highway layers with gate bias -2."""
    carry = 1.0 - float(get_activation("sigmoid").fn(-2.0))
    return 100 * math.log10(carry)


def check_highway_decades(decades) -> bool:
    """Self-check: decades the carry path loses over 100 layers at transform-gate bias -2 (rtol 1e-2)."""
    return _check("highway_decades", "decades", decades,
                  "the carry gate is 1 - sigmoid(-2) = 0.881, and 100 log10(0.881) = {ref:.2f}",
                  "the identity part of J_l is diag(1 - T_l) with T_l = sigmoid(b_T) at zero input.",
                  ((100 * math.log10(float(get_activation("sigmoid").fn(-2.0))), "that uses the transform gate T; the carry gate is 1 - T."),))


# --------------------------------------------------------------------------- chapter 10


@_question(chapter=10, rtol=1e-3)
def expected_gru_bias() -> float:
    """The update-gate bias with ``z = sigmoid(b_z) = 0.99`` (``W = 0``, ``x = 0``)."""
    return math.log(0.99 / (1.0 - 0.99))   # the inverse of sigmoid


def check_gru_bias(b) -> bool:
    """Self-check: the GRU update-gate bias that makes the step Jacobian ``0.99 I`` (rtol 1e-3)."""
    return _check("gru_bias", "b", b,
                  "z = sigmoid(b) = 0.99 at b = log(0.99/0.01) = {ref:.3f}",
                  "with W = 0 and x = 0 the step Jacobian is z I with z = sigmoid(b_z): invert the sigmoid.",
                  ((-math.log(0.99 / 0.01), "that gives z = 0.01: the sign of the logit."),))


@_question(chapter=10, rtol=1e-2)
def expected_truncation_share() -> float:
    """Share of ``sum_{j=1}^{100} 0.95^j`` in lags ``j > 20``: what truncated BPTT at ``k = 20`` drops."""
    terms = 0.95 ** np.arange(1, 101, dtype=np.float64)
    return float(terms[20:].sum() / terms.sum())


def check_truncation_share(share) -> bool:
    """Self-check: the fraction of the BPTT sum lost at ``k = 20`` with per-lag factor 0.95 over 100 lags (rtol 1e-2)."""
    return _check("truncation_share", "share", share,
                  "(0.95^20 - 0.95^100) / (1 - 0.95^100) = {ref:.3f} of the gradient is in lags beyond 20",
                  "sum the geometric terms 0.95^j for j = 21..100 and divide by the sum over j = 1..100.",
                  ((0.95**20, "that ignores the finite horizon of 100 lags (and the j = 21 start)."),))


# --------------------------------------------------------------------------- chapter 11


def _norm_clipped(g: tuple[float, float], c: float) -> jax.Array:
    tx = optax.clip_by_global_norm(c)
    grads = jnp.asarray(g, dtype=jnp.float32)
    return tx.update(grads, tx.init(grads))[0]


@_question(chapter=11, rtol=1e-4)
def expected_norm_clip_component() -> float:
    """First entry of ``g = (30, 40)`` after ``optax.clip_by_global_norm(5)``."""
    return float(_norm_clipped((30.0, 40.0), 5.0)[0])


def check_norm_clip_component(g1) -> bool:
    """Self-check: the first entry of ``(30, 40)`` norm-clipped at ``c = 5`` (rtol 1e-4)."""
    return _check("norm_clip_component", "g1", g1,
                  "||g|| = 50 > 5, so g is scaled by 5/50: (3, 4), first entry {ref:g}",
                  "norm clipping multiplies the whole vector by min(1, c / ||g||).",
                  ((5.0, "that is value clipping (each entry capped at c); norm clipping keeps the direction."),))


@_question(chapter=11, rtol=1e-3)
def expected_value_clip_angle() -> float:
    """Degrees between ``g = (1, 10)`` and ``optax.clip(1)`` of it (:func:`vgplib.tree_angle`)."""
    g = jnp.asarray([1.0, 10.0])
    tx = optax.clip(1.0)
    clipped = tx.update(g, tx.init(g))[0]
    return float(tree_angle(g, clipped))


def check_value_clip_angle(degrees) -> bool:
    """Self-check: how far value clipping at 1 turns ``(1, 10)``, in degrees (rtol 1e-3)."""
    return _check("value_clip_angle", "degrees", degrees,
                  "(1, 10) becomes (1, 1): from 84.3 to 45 degrees, a turn of {ref:.1f} degrees",
                  "clip each entry to [-1, 1], then take the angle between the two vectors.",
                  ((0.0, "value clipping caps each entry separately: the direction changes."),))


# --------------------------------------------------------------------------- chapter 12


@_question(chapter=12, rtol=1e-2)
def expected_adam_tiny_step() -> float:
    """``|update|`` of ``optax.adam(1e-3)`` (``eps = 1e-8``) for a gradient of constant ``1e-10``.

    With bias correction the first step already has ``m_hat = g`` and ``v_hat = g^2`` exactly, as
    every later step with the same gradient does, so one step is the steady state.
    """
    tx = optax.adam(1e-3)
    g = jnp.asarray([1e-10], dtype=jnp.float32)
    update, _ = tx.update(g, tx.init(g))
    return float(jnp.abs(update[0]))


def check_adam_tiny_step(step) -> bool:
    """Self-check: Adam's step for a constant gradient of ``1e-10`` (lr 1e-3, eps 1e-8; rtol 1e-2)."""
    return _check("adam_tiny_step", "step", step,
                  "lr g / (|g| + eps) = 1e-3 * 1e-10 / (1.01e-8) = {ref:.3g}: Adam acts like SGD with lr/eps",
                  "in the steady state m = g and v = g^2: the step is lr |g| / (sqrt(v) + eps).",
                  ((1e-3, "that ignores eps: sqrt(v) = 1e-10 is far below eps = 1e-8."),))


@_question(chapter=12, integer=True)
def expected_es_pairs() -> int:
    """Smallest number ``M`` of antithetic pairs with ``sqrt(M / (M + d - 1)) >= 0.3`` at ``d = 10,000``."""
    d, target = 10_000, 0.3
    M = 1
    while math.sqrt(M / (M + d - 1)) < target:
        M += 1
    return M


def check_es_pairs(pairs) -> bool:
    """Self-check: the pairs an evolution strategy needs for a cosine of 0.3 at 10,000 parameters (exact)."""
    return _check("es_pairs", "pairs", pairs,
                  "M/(M + 9999) >= 0.09 from M = {ref} pairs: a population of about 2,000 per step",
                  "solve M / (M + d - 1) = cos^2 = 0.09 for M and round up.",
                  ((989.0 * 2, "that is the population (two evaluations per pair); the question asks for pairs."),))


# --------------------------------------------------------------------------- chapter 13


def _two_logit_jacobian_norm(gap: float) -> float:
    """``||diag(p) - p p^T||_F`` for two logits ``gap`` apart: its four entries are ``+-p_1 p_2``."""
    p1 = 1.0 / (1.0 + math.exp(-gap))
    return 2.0 * p1 * (1.0 - p1)


@_question(chapter=13, rtol=1e-2)
def expected_softmax_gap_ratio() -> float:
    """``||dp/ds||_F`` at the logits ``(1, 0)`` over that at ``(8, 0)``: scaled against unscaled at ``d = 64``.

    Closed form (the tests compare it with :func:`vgplib.softmax_jacobian` in float64).
    """
    return _two_logit_jacobian_norm(1.0) / _two_logit_jacobian_norm(8.0)


def check_softmax_gap_ratio(ratio) -> bool:
    """Self-check: how many times smaller the softmax Jacobian is at logits ``(8, 0)`` than at ``(1, 0)`` (rtol 1e-2)."""
    return _check("softmax_gap_ratio", "ratio", ratio,
                  "for two logits ||dp/ds||_F = 2 p_1 p_2: 0.393 at a gap of 1, 6.7e-4 at a gap of 8, "
                  "{ref:.0f} times smaller",
                  "with two logits p = (sigmoid(gap), sigmoid(-gap)), and diag(p) - p p^T has four entries +-p_1 p_2.",
                  ((8.0, ("that is the 1/c law of the MEAN over random logits; for one fixed gap p_1 p_2 "
                          "falls like e^(-gap).")),))


@_question(chapter=13, rtol=1e-2)
def expected_selective_memory() -> float:
    """``prod_t exp(-Delta_t lambda)`` over 1000 steps, ``lambda = 1``: 999 steps ``Delta = 1e-4``, one ``Delta = 3``."""
    deltas = np.full(1000, 1e-4)
    deltas[500] = 3.0                                  # the one marked step
    return float(np.prod(np.exp(-1.0 * deltas)))       # d h_T / d h_k = prod a_t, a_t = exp(-Delta_t lambda)


def check_selective_memory(gain) -> bool:
    """Self-check: ``dh_T/dh_k`` of a selective channel across 1000 steps, one of them a write step (rtol 1e-2)."""
    return _check("selective_memory", "gain", gain,
                  "prod a_t = exp(-lambda sum Delta_t) = exp(-(0.0999 + 3)) = {ref:.4f}: the one write step "
                  "costs more than the 999 others together",
                  "each step multiplies by a_t = exp(-Delta_t lambda), so the product is exp(-lambda sum_t Delta_t).",
                  ((math.exp(-999e-4), "that leaves out the marked step with Delta = 3."),
                   (math.exp(-3.0), "that leaves out the 999 small steps.")))


# --------------------------------------------------------------------------- chapter 14


@_question(chapter=14, integer=True)
def expected_vanishing_layers() -> int:
    """Layers that :func:`vgplib.gradient_report` calls vanishing when ``||G_l||`` falls 4x per layer from 0.5 at layer 10.

    The rule of :class:`vgplib.MonitorThresholds` (defaults) applied to ``||G_l|| = 0.5 * 4^-(10 - l)``
    and ``r_l = 4^-(10 - l)``; the tests run the report itself on a loss with these gradients.
    """
    th = MonitorThresholds()
    norms = [0.5 * 4.0 ** -(10 - l) for l in range(1, 11)]
    return sum(g < th.vanish_norm or g / norms[-1] < th.vanish_ratio for g in norms)


def check_vanishing_layers(count) -> bool:
    """Self-check: how many of 10 layers the report flags when each gradient is 4x below the next (exact)."""
    return _check("vanishing_layers", "count", count,
                  "r_l = 4^-(10 - l) is below 1e-3 from 10 - l = 5 on (4^5 = 1024): layers 1 to {ref}",
                  "r_l = ||G_l|| / ||G_10|| = 4^-(10 - l); the rule flags r_l < 1e-3 (and ||G_l|| < 1e-7).",
                  ((4.0, "4^-5 = 9.8e-4 is below 1e-3: layer 5 is flagged too."),
                   (9.0, "only r_l < 1e-3 or ||G_l|| < 1e-7 counts; a smaller gradient is not by itself vanishing.")))


@_question(chapter=14, integer=True)
def expected_largest_scale() -> int:
    """The largest power of two ``S`` with ``S * 4`` finite when cast to float16 (NumPy's IEEE float16)."""
    with np.errstate(over="ignore"):
        finite = [k for k in range(64) if np.isfinite(np.float16(4.0 * 2.0**k))]
    return 2 ** max(finite)


def check_largest_scale(scale) -> bool:
    """Self-check: the largest power-of-two loss scale for which a gradient entry of 4 stays finite in float16 (exact)."""
    return _check("largest_scale", "scale", scale,
                  "4 x {ref} = 32768 is below float16's largest number 65504; 4 x 2^14 = 65536 is inf",
                  "float16's largest finite number is 65504; find the largest power of two S with 4 S below it.",
                  ((2.0**14, "4 x 2^14 = 65536 is above 65504: it overflows to inf."),))


@functools.partial(jax.jit, static_argnames="period")
def _final_loss_scale(finite: jax.Array, period: int) -> jax.Array:
    """``S`` after one :func:`vgplib.loss_scale_update` per entry of ``finite``, from ``S = 2^15`` (one compilation)."""
    def step(state, ok):
        return loss_scale_update(state, ok, period=period), None
    return jax.lax.scan(step, loss_scale_init(2.0**15), finite)[0].scale


@_question(chapter=14, integer=True)
def expected_dynamic_scale() -> int:
    """``S`` after 200 steps of :func:`vgplib.loss_scale_update` from ``2^15``, period 50, overflows at steps 60 and 61."""
    finite = np.ones(200, bool)
    finite[[59, 60]] = False                 # steps 60 and 61 (counted from 1)
    return int(_final_loss_scale(jnp.asarray(finite), 50))


def check_dynamic_scale(scale) -> bool:
    """Self-check: the dynamic loss scale after the 200-step run of the question (exact)."""
    return _check("dynamic_scale", "scale", scale,
                  "2^16 after step 50, 2^14 after the overflows at 60 and 61, then doubled at steps 111 and 161: "
                  "S = {ref}",
                  "double after 50 finite steps IN A ROW; an overflow halves S and starts the count again.",
                  ((2.0**19, "that ignores the two overflows: each halves S and restarts the count of finite steps."),
                   (2.0**14, "that is S right after the overflows; 139 finite steps follow.")))


# --------------------------------------------------------------------------- chapter 15


def _two_weight_loss(params: dict[str, jax.Array], x: float, y: float) -> jax.Array:
    """``E = (1/2) (y - w_2 w_1 x)^2``: the smallest network with a saddle at ``w = 0``."""
    return 0.5 * (y - params["w2"] * params["w1"] * x) ** 2


@_question(chapter=15, rtol=1e-3)
def expected_saddle_lambda() -> float:
    """The most negative Hessian eigenvalue of ``(1/2)(y - w_2 w_1 x)^2`` at ``w = 0``, ``x = 1``, ``y = 2``."""
    origin = {"w1": jnp.zeros(()), "w2": jnp.zeros(())}
    return float(hessian_eigenvalues(_two_weight_loss, origin, 1.0, 2.0)[0])


def check_saddle_lambda(lam) -> bool:
    """Self-check: ``lambda_min`` of the two-weight network's Hessian at the origin (rtol 1e-3)."""
    return _check("saddle_lambda", "lam", lam,
                  "H = [[0, -x y], [-x y, 0]] at w = 0, with eigenvalues +-2: lambda_min = {ref:g}, a saddle",
                  "the gradient is 0 at w = 0, the Hessian is not: the mixed derivative d^2E/dw_1 dw_2 is -x y there.",
                  ((0.0, "the GRADIENT is zero at the origin; the mixed second derivative is not."),
                   (2.0, "that is the largest eigenvalue; the question asks for the most negative one."),
                   (-4.0, "the loss carries a factor 1/2.")))


@_question(chapter=15, integer=True)
def expected_escape_steps() -> int:
    """Smallest ``k`` with ``(1 - eta lambda_min)^k >= 1000`` for ``eta = 0.1`` and the two-weight saddle."""
    factor = 1.0 - 0.1 * expected_saddle_lambda()
    k = 1
    while factor**k < 1000:
        k += 1
    return k


def check_escape_steps(steps) -> bool:
    """Self-check: steps of gradient descent (``eta = 0.1``) for the escape component to grow 1000-fold (exact)."""
    return _check("escape_steps", "steps", steps,
                  "each step multiplies it by 1 - eta lambda_min = 1.2, and 1.2^k >= 1000 from k = {ref}",
                  "near the saddle the gradient is H v, so one step multiplies the component along u by 1 - eta lambda.",
                  ((35.0, "that uses e^(eta |lambda| k); a discrete step multiplies by 1 + eta |lambda|."),
                   (37.0, "1.2^37 = 851 is still below 1000.")))


@_question(chapter=15, rtol=1e-2)
def expected_power_law_beta() -> float:
    """``beta`` of ``e(n) = c n^-beta`` through ``e(100) = 0.28`` and ``e(800) = 0.08``."""
    return math.log(0.28 / 0.08) / math.log(800 / 100)


def check_power_law_beta(beta) -> bool:
    """Self-check: the exponent of the power law through the question's two points (rtol 1e-2)."""
    return _check("power_law_beta", "beta", beta,
                  "e(800)/e(100) = 8^(-beta), so beta = ln 3.5 / ln 8 = {ref:.2f}",
                  "divide the two errors: e(800) / e(100) = (800 / 100)^(-beta); take logs.",
                  ((1 / (math.log(0.28 / 0.08) / math.log(8.0)), "that is 1/beta."),
                   ((0.28 - 0.08) / 700, "that is the slope on linear axes; the power law is a line on log-log axes.")))
