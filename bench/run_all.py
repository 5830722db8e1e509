"""Run every benchmark script ``bench/bench_*.py`` in turn (``make bench``); exit 1 if any fails.

Each script runs in its own process (a fresh JAX, so one benchmark's compilations and caches do
not colour another's) with this directory's parent as the working directory, and writes its JSON
results under ``bench/results/`` (git-ignored) when it accepts ``--json``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in BENCH.glob("bench_*.py"))
    failed = []
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, str(script)]
        if "--json" in script.read_text():
            cmd += ["--json", str(BENCH / "results" / f"{script.stem}.json")]
        rc = subprocess.call(cmd, cwd=BENCH.parent)
        print(f"=== {script.name}: exit {rc} in {time.perf_counter() - start:.0f} s", flush=True)
        if rc:
            failed.append(script.name)
    print(f"{len(scripts)} benchmarks, {len(failed)} missed their bars or failed: {failed}" if failed
          else f"{len(scripts)} benchmarks, all within their bars")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
