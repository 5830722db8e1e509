"""The library/book-layer arrow at import time: ``import vgplib`` loads JAX and NumPy, not the book layer.

``vgplib.plots``, ``vgplib.widgets`` and ``vgplib.panels`` (matplotlib, ipywidgets) are imported on first
use through the package's ``__getattr__``; no core module imports them, nor matplotlib/ipywidgets/IPython.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_LAYER = ("plots", "widgets", "panels")
FORBIDDEN = ("matplotlib", "ipywidgets", "IPython", "ipykernel", "sklearn")
#: third-party packages ``import vgplib`` may add to ``import jax, numpy`` (optax: vgplib.training's optimizers)
ALLOWED_EXTRA = {"vgplib", "optax", "absl"}


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_vgplib_loads_no_book_layer():
    code = (
        "import sys; import jax, jax.numpy, numpy\n"
        "before = {m.split('.')[0] for m in sys.modules}\n"
        "import vgplib\n"
        "new = {m.split('.')[0] for m in sys.modules} - before\n"
        "print(' '.join(sorted(m for m in new if m not in sys.stdlib_module_names)))\n"
        f"print(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
        f"print(' '.join(m for m in {BOOK_LAYER!r} if 'vgplib.' + m in sys.modules))\n"
    )
    extra, forbidden, book = (_run(code).split("\n") + ["", "", ""])[:3]
    assert forbidden == "", f"import vgplib imported {forbidden}"
    assert book == "", f"import vgplib imported vgplib.{book}"
    assert set(extra.split()) <= ALLOWED_EXTRA, f"import vgplib imported third-party {extra}"


def test_book_layer_loads_on_first_use():
    out = _run(
        "import sys, vgplib\n"
        "assert 'matplotlib' not in sys.modules\n"
        "f = vgplib.plots.new_figure\n"
        "from vgplib.panels import ch01\n"
        "import vgplib.widgets as w\n"
        "assert vgplib.widgets is w and 'matplotlib' in sys.modules\n"
        "print('plots' in dir(vgplib), callable(f), ch01.__name__)\n"
    )
    assert out == "True True vgplib.panels.ch01"
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, "-c", "import vgplib; vgplib.no_such_module"], cwd=ROOT, check=True,
                       capture_output=True, timeout=600)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (top level or inside a function)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_core_module_imports_the_book_layer():
    core = [p for p in sorted((ROOT / "vgplib").glob("*.py")) if p.stem not in BOOK_LAYER]
    assert len(core) >= 10
    bad = {}
    for path in core:
        hits = sorted(n for n in _imports(path)
                      if n.split(".")[0] in FORBIDDEN[:4]
                      or any(n == f"vgplib.{m}" or n.startswith(f"vgplib.{m}.") for m in BOOK_LAYER))
        if hits:
            bad[path.name] = hits
    assert not bad, f"core modules import the book layer: {bad}"
