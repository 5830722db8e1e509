"""Benchmark: exact step Jacobians of a vanilla RNN and every backward product, T = 1,000 and 10,000.

Bar (issue 6, DESIGN.md section 6): time linear in T, so t(10,000) / t(1,000) near 10 for
``step_jacobians``, ``backward_products`` and ``log_norms`` (hidden size 64, tanh, one sequence).
A quadratic method (one product per k) would give a ratio near 100; the script fails (exit 1) on a
ratio above 15. For scale it also times T bare (64 x 64) @ (64 x 64) matmuls, batched.
Times are medians of REPEATS calls after one compiling call. Run: ``python bench/bench_recurrent.py``
(about 30-60 s on 2 CPU cores); ``--json PATH`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import jax.numpy as jnp
from _timing import timed

import vgplib

N, D, LENGTHS, REPEATS, MAX_RATIO = 64, 2, (1000, 10000), 3, 15.0


@jax.jit
def _bare(A: jax.Array) -> jax.Array:
    return jnp.matmul(A, A, precision=jax.lax.Precision.HIGHEST)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    args = parser.parse_args()
    print(f"backend: {jax.default_backend()}; RNN tanh, hidden {N}, input {D}, W orthogonal x 0.9; "
          f"median of {REPEATS} runs (first call incl. compile in brackets)")
    params = vgplib.init_rnn(jax.random.PRNGKey(0), D, N, w_init="orthogonal", scale=0.9, sigma_b=0.1)
    results: dict[str, dict[int, float]] = {"step_jacobians": {}, "backward_products": {}, "log_norms": {},
                                            "bare_matmuls": {}}
    print(f"{'T':>6} {'step_jacobians':>20} {'backward_products':>20} {'log_norms':>20} {'T bare mm':>10}")
    for T in LENGTHS:
        xs = jax.random.normal(jax.random.PRNGKey(T), (T, D))
        f_j, t_j = timed(lambda x: vgplib.step_jacobians(params, x, cell="rnn"), xs, repeats=REPEATS)[:2]
        J = vgplib.step_jacobians(params, xs, cell="rnn")
        f_p, t_p = timed(vgplib.backward_products, J, repeats=REPEATS)[:2]
        f_l, t_l = timed(vgplib.log_norms, J, repeats=REPEATS)[:2]
        _, t_b = timed(_bare, J, repeats=REPEATS)[:2]
        ln = vgplib.log_norms(J)
        for name, t in (("step_jacobians", t_j), ("backward_products", t_p), ("log_norms", t_l), ("bare_matmuls", t_b)):
            results[name][T] = t
        print(f"{T:>6} {t_j:>9.3f} s [{f_j:5.2f}] {t_p:>9.3f} s [{f_p:5.2f}] {t_l:>9.3f} s [{f_l:5.2f}] {t_b:>8.3f} s")
        finite = bool(jnp.isfinite(ln.spectral[0]))
        print(f"       log ||d h_T / d h_0||_2 = {float(ln.spectral[0]):.1f} (finite: {finite})")
        del J
    lo, hi = LENGTHS
    ratios = {name: results[name][hi] / results[name][lo] for name in results}
    print("ratio t(10,000) / t(1,000) (linear: about 10): "
          + ", ".join(f"{name} {r:.1f}" for name, r in ratios.items()))
    ok = all(ratios[name] <= MAX_RATIO for name in ("step_jacobians", "backward_products", "log_norms"))
    print("within the bar (every ratio <= 15)" if ok else "MISSED the bar: a ratio above 15 (superlinear)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"hidden": N, "times_s": results, "ratios": ratios, "ok": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
