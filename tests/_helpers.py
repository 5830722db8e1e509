"""Test code that several test files share (imported as ``from _helpers import ...``: pytest puts
``tests/`` on ``sys.path``). Fixtures and test-time infrastructure stay in ``conftest.py``."""

from __future__ import annotations

import math

import numpy as np

import vgplib
from vgplib.widgets import count_compiles


def layerwise_theory(activation: str, sigma_w: float, sigma_b: float, q1: float, depth: int):
    """The mean-field line of the gradient panels, computed by ``vgplib.chi1`` and ``vgplib.length_map``.

    ``q_1 = q1``, ``q_{k+1} = length_map(q_k)``; returns ``(expected, qs, log_chi)`` where
    ``expected[l] = 0.5 * sum_{k > l} log chi_1(q_k) / ln 10`` for ``l = 0..depth`` (``expected[depth] = 0``)
    is the predicted ``log10 ||g_l|| / ||g_L||``, ``qs`` the ``depth`` values ``q_k`` and ``log_chi``
    their ``log chi_1(q_k)``.
    """
    q, qs, log_chi = q1, [], []
    for _ in range(depth):
        qs.append(q)
        log_chi.append(math.log(vgplib.chi1(activation, sigma_w, sigma_b, q=q)))
        q = vgplib.length_map(activation, sigma_w, sigma_b, q)
    expected = 0.5 * np.concatenate([np.cumsum(log_chi[::-1])[::-1], [0.0]]) / math.log(10)
    return expected, np.array(qs), np.array(log_chi)


def statuses_without_compiling(panel, *settings: dict) -> list[str]:
    """Move the live ``panel`` to each of ``settings`` in turn (``panel.set(**s)``); assert that no move
    compiled anything (the panels' bar: one compiled function for every slider value); return the statuses."""
    with count_compiles() as c:
        statuses = [panel.set(**s) for s in settings]
    assert c.count == 0, c.names
    return statuses


def run_worked_solutions(notebook: str, namespace: dict) -> list[tuple[str, str]]:
    """Run the code of every exercise solution of ``notebooks/<notebook>`` as the book prints it.

    The code is the solution dropdown's indented block(s) (``{solution}`` cells); each block runs in a
    fresh copy of ``namespace`` (the chapter's panel module, ``math``, ``np``, ...). Returns one
    ``(label, printed text)`` per solution that has code, in the notebook's order.
    """
    import contextlib
    import io
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / notebook).read_text())
    runs = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for block in "".join(cell["source"]).split("```{solution}")[1:]:
            label = block.splitlines()[0].strip()
            body = block.split("\n```", 1)[0]
            code = "\n".join(line[4:] for line in body.splitlines() if line.startswith("    "))
            if code:
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(code, dict(namespace))  # noqa: S102
                runs.append((label, out.getvalue()))
    return runs
