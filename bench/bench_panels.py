"""Slider latency benchmark: every registered live panel, every slider, compute + redraw per move.

For each panel in ``vgplib.widgets.all_panels()`` (every ``vgplib.panels.chNN`` module):

1. create it (the first show: this is where its one JAX compilation belongs), then
2. inside ``count_compiles()``, move each control over ``sweep_values`` (every value, or 21 spread
   values for a long slider) with the other controls at their defaults, then visit every corner of
   the controls (``corner_values``); each move is ``panel.set(...)``: ``update`` + Agg draw + PNG;
3. time the naive ``interact``-style alternative on a few of the same moves: a NEW figure per move
   (``make_figure()`` + ``update`` + PNG), which is what ``ipywidgets.interact`` does.

Prints, per panel, the wall-clock median and p95 per move, the CPU time of this process per move
(less sensitive to other processes on a shared machine), the compile count after the first show and
the naive re-render median. Bars (DESIGN.md section 6): p95 <= 100 ms, zero compilations. Exit
status 1 if a bar is missed. ``--json PATH`` also writes the numbers.

Run: ``python bench/bench_panels.py [--json bench/results/panels.json] [--naive-moves 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np

from vgplib import widgets
from vgplib.plots import figure_png

P95_BAR_S = 0.100


def moves_for(panel: widgets.LivePanel) -> list[dict]:
    """Every slider over its sweep values (others at their defaults), then every corner."""
    defaults = panel.values()
    moves = []
    for name, control in panel.controls.items():
        for value in widgets.sweep_values(control, n=21):
            moves.append({**defaults, name: value})
    moves.extend(widgets.corner_values(panel.controls))
    return moves


def bench_panel(name: str, factory, naive_moves: int) -> dict:
    """Time one panel; returns a dict of the numbers printed in the table."""
    t0 = time.perf_counter()
    panel = factory()
    first_show = time.perf_counter() - t0
    moves = moves_for(panel)
    wall, cpu = [], []
    with widgets.count_compiles() as compiles:
        for move in moves:
            w0, c0 = time.perf_counter(), time.process_time()
            panel.set(**move)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    naive = []
    picks = np.linspace(0, len(moves) - 1, naive_moves).astype(int)
    for i in picks:
        w0 = time.perf_counter()
        fig, update = panel.make_figure()
        update(**moves[i])
        figure_png(fig)
        naive.append(time.perf_counter() - w0)
    return {
        "panel": name,
        "moves": len(moves),
        "first_show_s": first_show,
        "median_ms": 1e3 * float(np.median(wall)),
        "p95_ms": 1e3 * float(np.percentile(wall, 95)),
        "max_ms": 1e3 * float(np.max(wall)),
        "cpu_median_ms": 1e3 * float(np.median(cpu)),
        "cpu_p95_ms": 1e3 * float(np.percentile(cpu, 95)),
        "compiles": compiles.count,
        "compiled": sorted(set(compiles.names)),
        "naive_median_ms": 1e3 * float(np.median(naive)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--naive-moves", type=int, default=5, help="moves timed for the naive re-render")
    parser.add_argument("--only", help="run only panels whose name contains this string")
    args = parser.parse_args(argv)
    panels = widgets.all_panels()
    if args.only:
        panels = {k: v for k, v in panels.items() if args.only in k}
    print(f"slider latency, {len(panels)} panels, {os.cpu_count()} CPUs visible, load average "
          f"{os.getloadavg()[0]:.1f} (wall times include other processes' contention; CPU time does not)")
    header = (f"{'panel':26s} {'moves':>5s} {'first':>6s} {'median':>7s} {'p95':>7s} {'cpu med':>7s} "
              f"{'cpu p95':>7s} {'compiles':>8s} {'naive med':>9s}  bars")
    print(header)
    print("-" * len(header))
    results, ok = [], True
    for name, factory in panels.items():
        r = bench_panel(name, factory, args.naive_moves)
        passed = r["p95_ms"] <= 1e3 * P95_BAR_S and r["compiles"] == 0
        ok &= passed
        results.append(r)
        print(f"{name:26s} {r['moves']:5d} {r['first_show_s']:5.1f}s {r['median_ms']:5.0f}ms {r['p95_ms']:5.0f}ms "
              f"{r['cpu_median_ms']:5.0f}ms {r['cpu_p95_ms']:5.0f}ms {r['compiles']:8d} {r['naive_median_ms']:7.0f}ms"
              f"  {'PASS' if passed else 'FAIL'}" + (f" compiled: {r['compiled']}" if r["compiles"] else ""))
        sys.stdout.flush()
    print(f"bars: p95 <= {1e3 * P95_BAR_S:.0f} ms per move (wall), 0 compilations after the first show: "
          f"{'all panels pass' if ok else 'NOT MET'}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"load_average": os.getloadavg()[0], "results": results}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
