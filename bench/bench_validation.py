"""Benchmark: argument validation against the work it guards, for a deep list of layers.

``layer_jacobians`` on a Python list of 3,000 layers of width 4 (issue 9, section 4). Validation is
what the call spends before its sweep: the shape checks of the list (``check_mlp_shapes``, array
metadata only) and the NaN/inf check of the stacked parameters and the input
(``check_finite_many``: one reduction per stacked array, at most one host sync). Timed the way
``layer_jacobians`` runs them, then the whole call, both warm (median of ``REPEATS``).

Bar (DESIGN.md section 6, issue 9): validation at most 10 % of the call. Exit status 1 if missed.
Run: ``python bench/bench_validation.py [--json bench/results/validation.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
from _timing import timed

import vgplib
from vgplib._validate import check_finite_many
from vgplib.networks import check_mlp_shapes, stack_layers

DEPTH, WIDTH, REPEATS = 3000, 4, 7
BAR = 0.10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    params = vgplib.init_mlp(jax.random.PRNGKey(0), [WIDTH] * (DEPTH + 1))
    x = jnp.ones(WIDTH)
    stacked = stack_layers(params)

    def validate():
        x_checked, _ = check_mlp_shapes(params, x)
        check_finite_many(("params", stacked), ("x", x_checked))

    t_call = timed(lambda: vgplib.layer_jacobians(params, x), repeats=REPEATS).wall
    t_shapes = timed(lambda: check_mlp_shapes(params, x), repeats=REPEATS).wall
    t_valid = timed(validate, repeats=REPEATS).wall
    t_stack = timed(lambda: stack_layers(params), repeats=REPEATS).wall
    frac = t_valid / t_call
    print(f"backend: {jax.default_backend()}; layer_jacobians on a list of {DEPTH} layers of width {WIDTH}, "
          f"median of {REPEATS} warm runs")
    print(f"  whole call            {1e3 * t_call:8.1f} ms")
    print(f"  validation            {1e3 * t_valid:8.1f} ms  ({100 * frac:.1f} % of the call; bar {100 * BAR:.0f} %)")
    print(f"    of which shapes     {1e3 * t_shapes:8.1f} ms")
    print(f"  stacking the layers   {1e3 * t_stack:8.1f} ms  (work, not validation)")
    ok = frac <= BAR
    print(f"bar: validation <= {100 * BAR:.0f} % of the call: {'PASS' if ok else 'NOT MET'}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"call_s": t_call, "validation_s": t_valid, "shapes_s": t_shapes, "stack_s": t_stack,
                       "fraction": frac, "load_average": os.getloadavg()[0]}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
