"""Benchmark: all L backward products in one sweep against the same count of bare matmuls.

Bars (DESIGN.md section 6): ``backward_products`` at most 1.1x the time of the same number of bare
(N x N) @ (N x N) matmuls, and linear in depth (t(L=128) / t(L=64) near 2); log-space spectra at
depth 10,000, width 64, in seconds.

The baseline is one batched ``jnp.matmul`` of ``B * L`` independent pairs: the same floating-point
work with no dependency between products, which is the fastest way to spend that many matmuls.
Run: ``python bench/bench_jacobians.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from _timing import timed

import vgplib

N, BATCH, DEPTHS, REPEATS = 256, 8, (32, 64, 128), 7


@jax.jit
def bare_matmuls(A: jax.Array, B: jax.Array) -> jax.Array:
    return jnp.matmul(A, B, precision=jax.lax.Precision.HIGHEST)


def main() -> None:
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}")
    print(f"backward_products: N={N}, batch={BATCH}; median of {REPEATS} runs")
    print(f"{'L':>5} {'sweep (ms)':>11} {'bare (ms)':>10} {'ratio':>6}")
    sweep_times = {}
    for L in DEPTHS:
        J = jax.random.normal(jax.random.PRNGKey(L), (BATCH, L, N, N)) / jnp.sqrt(N)
        t_sweep = timed(vgplib.backward_products, J, repeats=REPEATS).wall
        A = J.reshape(BATCH * L, N, N)
        t_bare = timed(bare_matmuls, A, A, repeats=REPEATS).wall
        sweep_times[L] = t_sweep
        print(f"{L:>5} {1e3 * t_sweep:>11.1f} {1e3 * t_bare:>10.1f} {t_sweep / t_bare:>6.2f}")
    print(f"linearity t(128)/t(64) = {sweep_times[128] / sweep_times[64]:.2f} (bar: near 2)")

    for L in (1000, 10000):
        J = jax.random.normal(jax.random.PRNGKey(1), (L, 64, 64)) / 8.0
        t_norms = timed(vgplib.log_norms, J, repeats=REPEATS).wall
        t_lyap = timed(vgplib.lyapunov_spectrum, J, repeats=REPEATS).wall
        print(f"log-space, width 64, depth {L:>5}: log_norms {t_norms:.2f} s, lyapunov_spectrum {t_lyap:.2f} s")


if __name__ == "__main__":
    main()
