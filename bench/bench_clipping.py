"""Benchmark: what gradient clipping costs in training speed (chapter 11).

Trains the chapter's networks with and without clipping in front of the same optimizer and reports
optimizer steps per second (median of REPEATS timed calls after one compiling call):

* the tanh RNN of chapters 4 and 11 on the adding problem (16 units, T = 40, batch 64, 4 seeds in one
  :func:`vgplib.train_adding` call): Adam, ``optax.chain(optax.clip_by_global_norm(1), adam)``,
  ``optax.chain(optax.clip(0.1), adam)`` and ``optax.chain(vgplib.fan_in_adaptive_clip(0.01), adam)``;
* the tanh MLP 64 -> 32 x 6 -> 10 on digits (batch 64, 4 seeds in one :func:`vgplib.train_many`
  call) with the same four optimizers;
* the cliff of chapter 5 (:func:`vgplib.cliff_descents`, 72 starts, float64) with and without norm
  clipping.

Clipping is a few reductions and one multiplication per step, against a forward and backward pass:
the overhead should be small. Run: ``python bench/bench_clipping.py`` (about a minute on 2 quiet
CPU cores); ``--json PATH`` writes the numbers. No pass/fail bar (exit 0 unless the run fails).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _timing import timed, write_results

import vgplib

REPEATS, SEEDS, STEPS = 5, 4, 200


def optimizers() -> dict[str, optax.GradientTransformation]:
    adam = optax.adam(1e-2)
    return {
        "adam": adam,
        "norm clip + adam": optax.chain(optax.clip_by_global_norm(1.0), adam),
        "value clip + adam": optax.chain(optax.clip(0.1), adam),
        "AGC + adam": optax.chain(vgplib.fan_in_adaptive_clip(0.01), adam),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    args = parser.parse_args()
    results = []
    print(f"backend: {jax.default_backend()}; {SEEDS} seeds per call, {STEPS} steps, median of {REPEATS} calls")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'model':>12} {'optimizer':>18} {'compile s':>10} {'steps/s':>9} {'steps/cpu-s':>12} {'vs plain (cpu)':>15}")

    nets = []
    for s in range(SEEDS):
        p = vgplib.init_rnn(jax.random.key(s), 2, 16)
        nets.append(dict(p, v=jnp.zeros(16), c=jnp.ones(())))
    rnn_params = jax.tree.map(lambda *a: jnp.stack(a), *nets)
    keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in range(SEEDS)])

    digits = vgplib.load_digits()
    x, y = jnp.asarray(digits.x_train), jnp.asarray(digits.y_train)
    widths = [64] + [32] * 6 + [10]
    mlp_params = jax.tree.map(lambda *a: jnp.stack(a), *[vgplib.init_mlp(jax.random.key(s), widths)
                                                         for s in range(SEEDS)])
    loss = vgplib.mlp_loss_fn("tanh")

    for model in ("rnn T=40", "mlp digits"):
        base = None
        for name, opt in optimizers().items():
            if model.startswith("rnn"):
                def run(opt=opt):
                    out = vgplib.train_adding(rnn_params, keys, 40, opt, steps=STEPS, batch_size=64,
                                              record_every=STEPS)
                    return jax.block_until_ready(out.losses)
            else:
                def run(opt=opt):
                    out = vgplib.train_many(loss, mlp_params, x, y, opt, steps=STEPS, batch_size=64,
                                            key=jax.random.key(0), record_every=STEPS)
                    return jax.block_until_ready(out[0])
            tm = timed(run, repeats=REPEATS)
            compile_s, t, cpu = tm.compile_s, tm.wall, tm.cpu
            rate, cpu_rate = STEPS / t, STEPS / cpu
            base = base or cpu_rate
            results.append({"model": model, "optimizer": name, "compile_s": compile_s, "steps_per_s": rate,
                            "steps_per_cpu_s": cpu_rate, "relative_to_plain_cpu": cpu_rate / base})
            print(f"{model:>12} {name:>18} {compile_s:>10.2f} {rate:>9.1f} {cpu_rate:>12.1f} {cpu_rate / base:>15.2f}")

    W0, B0 = np.meshgrid(np.linspace(4.6, 7.4, 8), np.linspace(-4.5, -0.5, 9))
    with jax.enable_x64(True):
        w0, b0 = jnp.asarray(W0.ravel()), jnp.asarray(B0.ravel())
        base = None
        for name, c in (("plain GD", None), ("norm clip GD", 1.0)):
            def run(c=c):
                return jax.block_until_ready(vgplib.cliff_descents(w0, b0, lr=0.5, steps=STEPS, clip_norm=c).params)
            tm = timed(run, repeats=REPEATS)
            compile_s, t, cpu = tm.compile_s, tm.wall, tm.cpu
            rate, cpu_rate = STEPS / t, STEPS / cpu
            base = base or cpu_rate
            results.append({"model": "cliff x72", "optimizer": name, "compile_s": compile_s, "steps_per_s": rate,
                            "steps_per_cpu_s": cpu_rate, "relative_to_plain_cpu": cpu_rate / base})
            print(f"{'cliff x72':>12} {name:>18} {compile_s:>10.2f} {rate:>9.1f} {cpu_rate:>12.1f} "
                  f"{cpu_rate / base:>15.2f}")
    if args.json:
        write_results(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
