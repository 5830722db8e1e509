"""The benchmarks' one timing loop: a first (compiling) call, then the median of ``repeats`` timed calls;
and their one way of writing results (``--json PATH``).

Used by the ``bench_*.py`` scripts (``from _timing import timed``: they run as scripts, with this
folder first on ``sys.path``). Every call's result is waited for with :func:`jax.block_until_ready`,
so asynchronous dispatch does not hide the work.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax


class Timing(NamedTuple):
    """Seconds: ``first`` call (compilation included); medians of the later calls' ``wall`` and ``cpu``.

    ``cpu`` is this process's CPU time (every thread, so with XLA's threads it can exceed ``wall``);
    on a loaded machine the wall time includes other processes' contention, the CPU time does not.
    """

    first: float
    wall: float
    cpu: float

    @property
    def compile_s(self) -> float:
        """The first call's extra time over a warm call: about the compilation."""
        return self.first - self.wall


def timed(fn: Callable[..., Any], *args: Any, repeats: int) -> Timing:
    """Call ``fn(*args)`` once (compile, warm up), then ``repeats`` more times, timing each."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(first, statistics.median(walls), statistics.median(cpus))


def write_results(path: Path, results: list[dict]) -> None:
    """Write ``{"backend": ..., "results": results}`` as JSON to ``path`` (a benchmark's ``--json``)."""
    path.write_text(json.dumps({"backend": jax.default_backend(), "results": results}, indent=1))
