"""Benchmark: training speed of :func:`vgplib.train_adding` (adding problem), RNN, LSTM and GRU.

The setting of chapters 4 and 10: the RNN with 16 hidden units, the LSTM with 8 and the GRU with 9
(about 330 parameters each, chapter 10), batch 64, Adam, one network per (length, seed)
trained side by side in one compiled function (``vmap`` over networks, ``lax.scan`` over steps).
Reports, per cell and sequence length ``T``, the compile time (first call minus a timed call) and
the training speed in optimizer steps per second of the whole batch of networks, and in
network-steps per second (steps/s times the number of networks). Times are medians of REPEATS
calls after one compiling call. Run: ``python bench/bench_recurrent_training.py`` (about 1-2 min
on 2 quiet CPU cores); ``--quick`` times one length; ``--json PATH`` writes the numbers. There is
no pass/fail bar (exit 0 unless the run fails): the figures size the notebooks' training budgets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from _timing import timed, write_results

import vgplib

HIDDEN = {"rnn": 16, "lstm": 8, "gru": 9}
BATCH, STEPS, SEEDS, REPEATS = 64, 100, 4, 3
INITS = {"rnn": vgplib.init_rnn, "lstm": vgplib.init_lstm, "gru": vgplib.init_gru}


def _params(cell: str, lengths: tuple[int, ...]) -> dict:
    nets = []
    for T in lengths:
        for s in range(SEEDS):
            p = INITS[cell](jax.random.fold_in(jax.random.key(s), T), 2, HIDDEN[cell])
            nets.append(dict(p, v=jnp.zeros(HIDDEN[cell]), c=jnp.ones(())))
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a).reshape((len(lengths), SEEDS) + a[0].shape), *nets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="one length (T = 100) only")
    args = parser.parse_args()
    length_sets = [(100,)] if args.quick else [(40,), (100,), (10, 20, 25, 30, 40)]
    optimizer = optax.adam(1e-2)
    keys = jax.random.split(jax.random.key(0), SEEDS)
    print(f"backend: {jax.default_backend()}; hidden sizes {HIDDEN}, batch {BATCH}, {SEEDS} seeds, Adam; "
          f"{STEPS} steps per call, median of {REPEATS} calls")
    print(f"{'cell':>5} {'lengths':>20} {'nets':>5} {'compile s':>10} {'steps/s':>9} {'net-steps/s':>12}")
    results = []
    for cell in ("rnn", "lstm", "gru"):
        for lengths in length_sets:
            params = _params(cell, lengths)

            def run(params=params, lengths=lengths, cell=cell):
                out = vgplib.train_adding(params, keys, lengths, optimizer, steps=STEPS, batch_size=BATCH,
                                          cell=cell, record_every=STEPS)
                return jax.block_until_ready(out.losses)

            tm = timed(run, repeats=REPEATS)
            t = tm.wall
            nets = len(lengths) * SEEDS
            row = {"cell": cell, "lengths": list(lengths), "networks": nets, "compile_s": tm.compile_s,
                   "steps_per_s": STEPS / t, "network_steps_per_s": nets * STEPS / t}
            results.append(row)
            print(f"{cell:>5} {lengths!s:>20} {nets:>5} {row['compile_s']:>10.2f} {row['steps_per_s']:>9.1f} "
                  f"{row['network_steps_per_s']:>12.0f}")
    if args.json:
        write_results(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
