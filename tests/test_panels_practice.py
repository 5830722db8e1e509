"""The practice questions' self-checks (vgplib.panels.practice, notebooks/practice.ipynb).

Every check accepts the right answer (here computed by a path independent of the module's own:
closed forms, NumPy, SciPy), rejects a wrong one, prints a neutral line for ``None``, and rejects
input that is not a number with an error naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from vgplib.panels import practice

# check name -> (right answer(s), wrong answer(s)); right answers from closed forms.
CASES = {
    "check_sigmoid_jacobian_norm": ((0.25 * 2,), (2.0,)),
    "check_sigmoid_bound": ((0.25**20,), (0.25**19,)),
    "check_relu_chi1": ((1.2**2 / 2,), (1.44,)),
    "check_float64_horizon": ((512,), (511,)),
    "check_lyapunov_top": ((0.5 * (math.log(2 / 4) + special.digamma(2.0)),), (0.0,)),
    "check_transient_peak": ((6,), (7,)),
    "check_uniform_log_decades": ((100 * (math.log(2) - 1) / math.log(10),), (0.0,)),
    "check_standard_init_factor": ((3.0,), (1 / 3,)),
    "check_half_ulp": ((2.0**-25,), (2.0**-24,)),
    "check_uniform_loss": ((math.log(10),), (1.0,)),
    "check_pascanu_bound": ((0.9**50,), (0.9**49,)),
    "check_fold": ((6.25, math.log(4) - 5.0), (6.25, 0.0)),
    "check_one_unit_steps": ((20,), (19,)),
    "check_tanh_chi1": ((1.3627,), (4.0,)),
    "check_overflow_depth": ((2 * math.log(np.finfo(np.float32).max) / math.log(1.3627),), (287.0,)),
    "check_naive_norm_overflow": ((math.sqrt(np.finfo(np.float32).max),), (3.4e38,)),
    "check_silu_max_slope": ((1.09984,), (1.0,)),
    "check_dead_probability": ((stats.norm.cdf(3.0) ** 100,), (stats.norm.cdf(3.0),)),
    "check_tanh_critical_sigma_w": ((1.3956,), (1.0,)),
    "check_he_variance": ((2 / 256,), (2 / 384,)),
    "check_glorot_halfwidth": ((math.sqrt(6 / 1040),), (math.sqrt(2 / 1040),)),
    "check_tanh_depth_scale": ((4.27,), (-1 / math.log(0.81),)),
    "check_bn_relu_growth": ((math.pi / (math.pi - 1) * 14 / 13,), (math.pi / (math.pi - 1),)),
    "check_ln_sigmoid_factor": ((0.1528,), (1.0,)),
    "check_residual_decades": ((1000 * math.log10(1.001),), (1000 * math.log10(2),)),
    "check_highway_decades": ((100 * math.log10(special.expit(2.0)),), (100 * math.log10(special.expit(-2.0)),)),
    "check_gru_bias": ((math.log(99),), (-math.log(99),)),
    "check_truncation_share": (((0.95**20 - 0.95**100) / (1 - 0.95**100),), (0.95**20,)),
    "check_norm_clip_component": ((3.0,), (5.0,)),
    "check_value_clip_angle": ((math.degrees(math.atan(10)) - 45,), (0.0,)),
    "check_adam_tiny_step": ((1e-3 * 1e-10 / (1e-10 + 1e-8),), (1e-3,)),
    "check_es_pairs": ((math.ceil(0.09 * 9999 / 0.91),), (1978,)),
    # two logits: ||diag(p) - p p^T||_F = 2 p (1 - p) with p = sigmoid(gap)
    "check_softmax_gap_ratio": ((special.expit(1.0) * special.expit(-1.0) / (special.expit(8.0) * special.expit(-8.0)),), (8.0,)),
    "check_selective_memory": ((math.exp(-(999 * 1e-4 + 3.0)),), (math.exp(-999 * 1e-4),)),
    "check_vanishing_layers": ((5,), (4,)),
    "check_largest_scale": ((2**13,), (2**14,)),
    "check_dynamic_scale": ((2**16,), (2**19,)),
    "check_saddle_lambda": ((-2.0,), (2.0,)),
    "check_escape_steps": ((math.ceil(math.log(1000) / math.log(1.2)),), (37,)),
    "check_power_law_beta": ((math.log(0.28 / 0.08) / math.log(8),), (math.log(8) / math.log(0.28 / 0.08),)),
}


def test_every_question_has_a_case_and_a_check():
    checks = {n for n in dir(practice) if n.startswith("check_")}
    assert checks == set(CASES)
    for name in practice.QUESTIONS:
        assert f"check_{name}" in checks or name in ("fold_w", "fold_b")
    assert len(practice.QUESTIONS) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_accepts_right_rejects_wrong_and_waits_for_none(name, capsys):
    check = getattr(practice, name)
    right, wrong = CASES[name]
    assert check(*right) is True
    assert capsys.readouterr().out.startswith("Correct: ")
    assert check(*wrong) is False
    assert capsys.readouterr().out.startswith("Not yet: ")
    assert check(*([None] * len(right))) is False
    assert capsys.readouterr().out.startswith("No answer yet: ")


def test_known_mistakes_get_their_hint(capsys):
    assert not practice.check_relu_chi1(1.44)
    assert "forgot E[phi'(a)^2] = 1/2" in capsys.readouterr().out
    assert not practice.check_float64_horizon(538)
    assert "subnormals" in capsys.readouterr().out
    assert not practice.check_fold(6.25, 1.0)
    assert "w is right" in capsys.readouterr().out
    assert not practice.check_softmax_gap_ratio(8)
    assert "1/c law" in capsys.readouterr().out
    assert not practice.check_dynamic_scale(2**19)
    assert "ignores the two overflows" in capsys.readouterr().out
    assert not practice.check_saddle_lambda(0.0)
    assert "GRADIENT is zero" in capsys.readouterr().out


def test_answers_as_arrays_and_integers_are_accepted():
    import jax.numpy as jnp

    assert practice.check_sigmoid_jacobian_norm(jnp.float32(0.5))
    assert practice.check_sigmoid_jacobian_norm(np.array(0.5))
    assert practice.check_one_unit_steps(20.0)
    assert practice.check_one_unit_steps(np.int64(20))


@pytest.mark.parametrize(
    ("call", "error", "arg"),
    [
        (lambda: practice.check_he_variance("0.0078"), TypeError, "var"),
        (lambda: practice.check_he_variance(True), TypeError, "var"),
        (lambda: practice.check_he_variance([0.0078]), TypeError, "var"),
        (lambda: practice.check_he_variance(np.ones(2)), TypeError, "var"),
        (lambda: practice.check_he_variance(float("nan")), ValueError, "var"),
        (lambda: practice.check_relu_chi1(math.inf), ValueError, "chi"),
        (lambda: practice.check_es_pairs(988.5), ValueError, "pairs"),
        (lambda: practice.check_fold(6.25, "b"), TypeError, "b"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, arg):
    with pytest.raises(error, match=rf"^{arg} must"):
        call()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_check_rejects_text_and_nan(name):
    check = getattr(practice, name)
    n = len(CASES[name][0])
    with pytest.raises(TypeError, match="must be a number; got str"):
        check(*(["1.0"] * n))
    with pytest.raises(ValueError, match="must be finite"):
        check(*([float("nan")] * n))


def test_computed_answers_match_independent_oracles():
    q = {name: question.expected() for name, question in practice.QUESTIONS.items()}
    # Monte Carlo of E[ln a], a ~ U[0, 2], for the "mean factor one" question
    a = np.random.default_rng(0).uniform(0, 2, 100_000)
    assert q["uniform_log_decades"] == pytest.approx(100 * np.log(a).mean() / np.log(10), rel=1e-2)
    # the transient peak by NumPy powers
    A = np.array([[0.85, 5.0], [0.0, 0.85]])
    norms = [np.linalg.norm(np.linalg.matrix_power(A, k), 2) for k in range(1, 60)]
    assert q["transient_peak"] == int(np.argmax(norms)) + 1
    # the float64 horizon: 2^-1022 is normal, 2^-1024 is not
    assert 0.25**511 == np.finfo(np.float64).tiny and q["float64_horizon"] == 512
    t = np.linspace(2, 3, 100001)
    assert q["silu_max_slope"] == pytest.approx(np.max(special.expit(t) * (1 + t * (1 - special.expit(t)))), rel=1e-6)
    # chapter 13: the two-logit closed form against vgplib.softmax_jacobian in float64
    import jax
    import jax.numpy as jnp

    import vgplib

    with jax.enable_x64(True):
        J = vgplib.softmax_jacobian(jnp.array([[1.0, 0.0], [8.0, 0.0]], jnp.float64))
        norms = np.sqrt(np.sum(np.asarray(J) ** 2, axis=(1, 2)))
    assert q["softmax_gap_ratio"] == pytest.approx(norms[0] / norms[1], rel=1e-9)
    # chapter 14: gradient_report itself on a loss whose layer l has ||G_l|| = 0.5 * 4^-(10 - l)
    coef = [0.5 * 4.0 ** -(10 - l) for l in range(1, 11)]
    report = vgplib.gradient_report(lambda p: sum(c * layer["w"] for c, layer in zip(coef, p)),
                                    [{"w": jnp.ones(())} for _ in coef])
    assert q["vanishing_layers"] == report.layer_verdict.count("vanishing") == 5
    assert report.faulty_layers() == [f"[{i}]" for i in range(5)]
    # float16: 4 * 2^13 is finite, 4 * 2^14 overflows
    with np.errstate(over="ignore"):
        assert np.isfinite(np.float16(4 * q["largest_scale"])) and np.isinf(np.float16(8 * q["largest_scale"]))
    # the dynamic rule simulated in plain Python
    scale, good = 2.0**15, 0
    for step in range(1, 201):
        if step in (60, 61):
            scale, good = max(scale / 2, 1.0), 0
        else:
            good += 1
            if good == 50:
                scale, good = scale * 2, 0
    assert q["dynamic_scale"] == scale
    # chapter 15: the Hessian of (1/2)(y - w2 w1 x)^2 at 0 is [[0, -xy], [-xy, 0]]; gradient descent on its
    # linearisation multiplies the escape component by 1 - eta lambda_min per step
    H = np.array([[0.0, -2.0], [-2.0, 0.0]])
    assert q["saddle_lambda"] == pytest.approx(np.linalg.eigvalsh(H)[0], rel=1e-6)
    v, k = np.array([1e-3, 1e-3]), 0
    while np.linalg.norm(v) < 1000 * np.linalg.norm([1e-3, 1e-3]):
        v, k = v - 0.1 * H @ v, k + 1
    assert q["escape_steps"] == k
    # the power law through (100, 0.28) and (800, 0.08) by a log-log fit
    assert q["power_law_beta"] == pytest.approx(-np.polyfit(np.log([100, 800]), np.log([0.28, 0.08]), 1)[0], rel=1e-9)


def test_answer_key_lists_every_question_in_chapter_order():
    rows = practice.answer_key()
    assert len(rows) == len(practice.QUESTIONS)
    chapters = [r[0] for r in rows]
    assert chapters == sorted(chapters) and set(chapters) == set(range(1, 16))
    assert all(math.isfinite(r[2]) for r in rows)


def test_the_notebooks_worked_solutions_pass_their_checks(capsys):
    """Each solution's code, run as the book prints it, gets ``Correct`` from its check."""
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "practice.ipynb").read_text())
    snippets = []
    for cell in nb["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and text.startswith("```{solution}"):
            code = "\n".join(line[4:] for line in text.splitlines() if line.startswith("    "))
            if code:
                snippets.append((text.splitlines()[0], code))
    assert len(snippets) == len(CASES)
    setup = "import math\nimport jax\nimport jax.numpy as jnp\nimport numpy as np\nimport optax\nimport vgplib\n"
    for label, code in snippets:
        exec(setup + code, {"practice": practice})  # noqa: S102
        assert capsys.readouterr().out.startswith("Correct: "), label
