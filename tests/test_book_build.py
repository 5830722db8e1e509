"""The book's configuration and build output (no browser; the build itself is `make book`).

* every chapter notebook in notebooks/ is listed in _toc.yml (``only_build_toc_files`` would
  otherwise drop it silently), and every file _toc.yml lists exists;
* every reference in book/references.bib has a DOI or a URL, and every citation key used in a
  chapter or book page is defined there;
* the built API page documents every name in ``vgplib.__all__``;
* no built page loads a script, stylesheet or image from another machine (the static counterpart
  of the browser tests' request interception);
* every committed chapter notebook is executed top to bottom (the book renders the committed outputs,
  ``execute_notebooks: "off"``): execution counts 1..N over the non-empty code cells, no error
  output, no stream that prints a traceback;
* every figure a chapter stores (an image/png output or a jshtml scrubber) has alt text and a
  caption (cell metadata ``mystnb.image.alt`` / ``scrubber(alt=...)`` and ``mystnb.figure.caption``),
  and a scrubber's smallest text is at least ``vgplib.plots.MIN_TEXT_PX`` high at the width the book
  shows it (the browser test measures the same on the built pages);
* the book builds with ``-W`` in a copy of the tree into which the tool caches a test run leaves
  behind (``.pytest_cache/README.md`` and friends) have been put: every dot-folder and cache is
  excluded.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

import vgplib

TOC = ROOT / "_toc.yml"
BIB = ROOT / "book" / "references.bib"


def _toc_files() -> list[str]:
    toc = yaml.safe_load(TOC.read_text(encoding="utf8"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def _resolve(entry: str) -> Path | None:
    for suffix in ("", ".ipynb", ".md"):
        path = ROOT / f"{entry}{suffix}"
        if path.is_file():
            return path
    return None


def test_toc_lists_existing_files_only():
    missing = [f for f in _toc_files() if _resolve(f) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_chapter_notebook_is_in_the_toc():
    listed = {_resolve(f) for f in _toc_files()}
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    unlisted = [p.relative_to(ROOT).as_posix() for p in notebooks if p not in listed]
    assert not unlisted, (
        f"notebooks not in _toc.yml (the book would silently leave them out): {unlisted}; "
        "add each as one line `- file: notebooks/<name>` (no extension) under its part"
    )


def _bib_entries() -> dict[str, str]:
    text = BIB.read_text(encoding="utf8")
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,", text)]
    entries = {}
    for i, (start, key) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        entries[key] = text[start:end]
    return entries


def test_every_reference_has_doi_or_url():
    entries = _bib_entries()
    assert len(entries) >= 15, f"only {len(entries)} references in {BIB}"
    has_link = re.compile(r"^\s*(doi|url)\s*=", re.MULTILINE | re.IGNORECASE)
    lacking = [k for k, body in entries.items() if not has_link.search(body)]
    assert not lacking, f"references without a DOI or URL: {lacking}"
    doi = re.compile(r"doi\s*=\s*\{([^}]*)\}", re.IGNORECASE)
    dois = {k: m.group(1) for k, body in entries.items() if (m := doi.search(body))}
    bad = {k: d for k, d in dois.items() if not re.fullmatch(r"10\.\d{4,9}/\S+", d)}
    assert not bad, f"malformed DOIs: {bad}"


def test_cited_keys_are_defined():
    entries = _bib_entries()
    sources = [*sorted((ROOT / "notebooks").glob("*.ipynb")), *sorted((ROOT / "book").glob("*.md"))]
    undefined = {}
    for src in sources:
        text = src.read_text(encoding="utf8")
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in (k.strip() for k in group.split(",")):
                if key and key not in entries:
                    undefined.setdefault(src.name, []).append(key)
    assert not undefined, f"citation keys missing from {BIB.name}: {undefined}"


def test_api_page_documents_every_public_name(book_html):
    api = book_html / "book" / "api.html"
    assert api.is_file(), f"{api} is missing: the API page was not built"
    ids = set(re.findall(r'\bid="(vgplib\.[\w.]+)"', api.read_text(encoding="utf8")))
    documented = {i.rsplit(".", 1)[-1] for i in ids}
    missing = sorted(set(vgplib.__all__) - documented)
    assert not missing, f"vgplib.__all__ names without an entry on the API page: {missing}"


_EXTERNAL_ASSET = re.compile(
    r"""<(?:script|img|iframe|source|video|audio)\b[^>]*\bsrc=["'](?:https?:)?//|"""
    r"""<link\b[^>]*\bhref=["'](?:https?:)?//[^"']*["'][^>]*>""",
    re.IGNORECASE,
)


def test_no_page_loads_remote_assets(book_html):
    offenders = {}
    for page in sorted(book_html.rglob("*.html")):
        if "_static" in page.parts:
            continue
        text = page.read_text(encoding="utf8", errors="replace")
        hits = [m.group(0)[:120] for m in _EXTERNAL_ASSET.finditer(text)
                if "rel=\"canonical\"" not in m.group(0)]
        if hits:
            offenders[page.relative_to(book_html).as_posix()] = hits[:3]
    assert not offenders, f"pages that load assets from another machine: {offenders}"


@pytest.mark.parametrize("name", ["THEBE_JS_URL", "sphinx-thebe.js"])
def test_thebe_scripts_are_gone(book_html, name):
    """The duplicated inline THEBE_JS_URL script raised a console error on every page."""
    pages = [p for p in book_html.rglob("*.html") if "_static" not in p.parts]
    assert pages
    with_name = [p.name for p in pages if name in p.read_text(encoding="utf8", errors="replace")]
    assert not with_name, f"{name} still appears in {with_name[:5]}"


def test_every_page_has_a_favicon(book_html):
    """Without <link rel="icon"> the browser asks for /favicon.ico and logs a 404."""
    lacking = []
    for page in book_html.rglob("*.html"):
        text = page.read_text(encoding="utf8", errors="replace")
        if "_static" in page.parts or 'http-equiv="Refresh"' in text:
            continue
        match = re.search(r'<link rel="icon" href="([^"]+)"', text)
        if not match or not (page.parent / match.group(1)).is_file():
            lacking.append(page.relative_to(book_html).as_posix())
    assert not lacking, f"pages without a working favicon link: {lacking}"


# --------------------------------------------------------------------------- committed outputs

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execution_problems(nb: dict) -> list[str]:
    """Why a notebook's stored outputs are not those of one clean top-to-bottom run ([] if none)."""
    problems = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"
            and "".join(c.get("source", "")).strip()]
    counts = [c.get("execution_count") for c in code]
    if counts != list(range(1, len(code) + 1)):
        first = next(i for i, c in enumerate(counts, start=1) if c != i)
        problems.append(f"execution counts are not 1..{len(code)}: code cell {first} has "
                        f"{counts[first - 1]!r}; execute the notebook top to bottom "
                        "(jupyter nbconvert --execute --inplace) and commit it")
    for i, cell in enumerate(code, start=1):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"code cell {i} stores an error: {out.get('ename')}: {out.get('evalue')}"[:200])
            elif out.get("output_type") == "stream" and "Traceback (most recent call last)" in "".join(
                    out.get("text", "")):
                problems.append(f"code cell {i} prints a traceback on {out.get('name')}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_executed_without_errors(path):
    problems = execution_problems(json.loads(path.read_text(encoding="utf8")))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_execution_check_catches_unexecuted_and_failed_notebooks():
    """The check above fails on the three ways a committed notebook can be wrong."""
    def cell(src, count, outputs=()):
        return {"cell_type": "code", "source": src, "execution_count": count, "outputs": list(outputs)}

    good = {"cells": [cell("x = 1", 1), {"cell_type": "markdown", "source": "text"}, cell("", None),
                      cell("print(x)", 2, [{"output_type": "stream", "name": "stdout", "text": "1"}])]}
    assert execution_problems(good) == []
    unexecuted = {"cells": [cell("x = 1", None), cell("print(x)", None)]}
    out_of_order = {"cells": [cell("x = 1", 2), cell("print(x)", 1)]}
    error = {"cells": [cell("1/0", 1, [{"output_type": "error", "ename": "ZeroDivisionError",
                                        "evalue": "division by zero", "traceback": []}])]}
    printed = {"cells": [cell("f()", 1, [{"output_type": "stream", "name": "stderr",
                                         "text": "Traceback (most recent call last):\n..."}])]}
    for bad in (unexecuted, out_of_order, error, printed):
        assert execution_problems(bad), bad


def test_book_renders_committed_outputs():
    """DESIGN.md 5: nbval executes the notebooks; the book must not execute them a second time."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))
    assert config["execute"]["execute_notebooks"] == "off", config["execute"]


# --------------------------------------------------------------------------- figures: alt, caption, text size

_SCRUBBER_IMG = re.compile(r'<img [^>]*id="_anim_img[^>]*>')
_FIRST_FRAME = re.compile(r'frames\[0\] = "data:image/png;base64,([A-Za-z0-9+/=\\\n]+)"')


def _png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big")


def _attr(tag: str, name: str) -> str | None:
    m = re.search(rf'\b{name}="([^"]*)"', tag)
    return None if m is None else html.unescape(m.group(1))


def figure_problems(nb: dict) -> list[str]:
    """Stored figures without alt text or caption, and scrubbers whose text is under the bar."""
    from vgplib.plots import COLUMN_PX, MIN_TEXT_PX, png_text_size

    problems = []
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for k, cell in enumerate(code, start=1):
        meta = cell.get("metadata", {}).get("mystnb", {}) or {}
        caption = str((meta.get("figure") or {}).get("caption", "")).strip()
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            page = "".join(data.get("text/html", "")) if isinstance(data.get("text/html"), list) \
                else data.get("text/html", "")
            tags = _SCRUBBER_IMG.findall(page)
            if "image/png" in data and not tags:
                if not str((meta.get("image") or {}).get("alt", "")).strip():
                    problems.append(f"code cell {k}: image without mystnb.image.alt metadata")
                if not caption:
                    problems.append(f"code cell {k}: image without mystnb.figure.caption metadata")
                png = base64.b64decode("".join(data["image/png"]))
                size = png_text_size(png)
                if size is None:
                    problems.append(f"code cell {k}: image without its text size (a figure shown before "
                                    "vgplib.plots was imported, or an old output: re-execute)")
                    continue
                natural = _png_width(png)
                px = size[0] * size[1] / 72 * min(natural, COLUMN_PX) / natural
                if px < MIN_TEXT_PX - 1e-6:
                    problems.append(
                        f"code cell {k}: figure text {px:.1f} px < {MIN_TEXT_PX:g} px in the book "
                        f"({size[0]:g} pt at {size[1]:g} dpi, {natural} px wide, shown at "
                        f"{min(natural, COLUMN_PX)} px)")
            for tag in tags:
                if not (_attr(tag, "alt") or "").strip():
                    problems.append(f"code cell {k}: scrubber without alt (pass alt= to the scrubber)")
                if not caption:
                    problems.append(f"code cell {k}: scrubber without mystnb.figure.caption metadata")
                dpi, font = _attr(tag, "data-dpi"), _attr(tag, "data-min-font-pt")
                frame = _FIRST_FRAME.search(page)
                if dpi is None or font is None or frame is None:
                    problems.append(f"code cell {k}: scrubber without data-dpi/data-min-font-pt "
                                    "(made by an older vgplib.widgets.scrubber: re-execute)")
                    continue
                if font == "none":
                    continue
                natural = _png_width(base64.b64decode(frame.group(1).replace("\\\n", "")))
                px = float(font) * float(dpi) / 72 * min(natural, COLUMN_PX) / natural
                if px < MIN_TEXT_PX - 1e-6:
                    problems.append(
                        f"code cell {k}: scrubber text {px:.1f} px < {MIN_TEXT_PX:g} px in the book "
                        f"({font} pt at {dpi} dpi, {natural} px wide, shown at {min(natural, COLUMN_PX)} px)")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_stored_figure_has_alt_caption_and_readable_text(path):
    problems = figure_problems(json.loads(path.read_text(encoding="utf8")))
    assert not problems, f"{path.name}:\n  " + "\n  ".join(problems)


def test_figure_check_catches_missing_alt_caption_and_small_text():
    import matplotlib

    matplotlib.use("Agg")
    from vgplib.plots import figure_png, new_figure
    from vgplib.widgets import scrubber

    def make(fontsize):
        def make_figure():
            fig, ax = new_figure()
            (line,) = ax.plot([0, 1], [0, 1], label="a")
            ax.legend(fontsize=fontsize)
            return fig, lambda k: line.set_ydata([0, k])
        return make_figure

    def cell(outputs, mystnb):
        return {"cell_type": "code", "metadata": {"mystnb": mystnb}, "outputs": outputs}

    from vgplib.plots import notebook_png

    def static(fontsize, figsize=(6.0, 3.0)):
        fig, ax = new_figure(figsize=figsize)
        ax.plot([0, 1], [0, 1])
        ax.set_title("t", fontsize=fontsize)
        return {"output_type": "display_data", "data": {"image/png": notebook_png(fig), "text/plain": "<Figure>"}}

    png = static(8)
    plain = {"output_type": "display_data",
             "data": {"image/png": base64.b64encode(figure_png(new_figure()[0])).decode()}}
    good_meta = {"image": {"alt": "A line."}, "figure": {"caption": "A line.", "name": "fig-x"}}
    readable = scrubber(make(8), "k", [1, 2], alt="A line.").data
    small = scrubber(make(7), "k", [1, 2], alt="A line.").data  # 7 pt at 96 dpi: 9.3 px
    as_output = lambda page: {"output_type": "execute_result", "data": {"text/html": page}}
    assert figure_problems({"cells": [cell([png], good_meta), cell([as_output(readable)], good_meta)]}) == []
    for bad in ([cell([png], {"figure": good_meta["figure"]})],
                [cell([png], {"image": good_meta["image"]})],
                [cell([as_output(readable)], {})],
                [cell([as_output(readable.replace('alt="A line."', 'alt=""'))], good_meta)],
                [cell([as_output(re.sub(r' data-min-font-pt="[^"]*"', "", readable))], good_meta)],
                [cell([as_output(small)], good_meta)],
                [cell([static(7)], good_meta)],  # 9.3 px
                [cell([static(8, figsize=(9.0, 3.0))], good_meta)],  # 864 px shown at 672: 8.3 px
                [cell([plain], good_meta)]):  # no text-size chunk
        assert len(figure_problems({"cells": bad})) == 1, figure_problems({"cells": bad})


# --------------------------------------------------------------------------- build after the tests

#: Files a test run (pytest, hypothesis, ruff, Jupyter, pip) leaves in the tree: each one is a page
#: Sphinx would try to read if a pattern did not exclude it ("document isn't included in any toctree").
STRAY_FILES = {
    ".pytest_cache/README.md": "# pytest cache directory #\n",
    ".hypothesis/examples/README.md": "# stray\n",
    ".ruff_cache/README.md": "# stray\n",
    ".ipynb_checkpoints/README-checkpoint.md": "# stray\n",
    "notebooks/.ipynb_checkpoints/ch01_backprop-checkpoint.ipynb": None,  # a copy of a chapter
    "notebooks/__pycache__/README.md": "# stray\n",
    "__pycache__/README.md": "# stray\n",
    ".venv/lib/README.md": "# stray\n",
    ".jupyter_cache/README.md": "# stray\n",
    "book/.hidden.md": "# stray\n",
    ".stray.md": "# stray\n",
}


def _tree_files() -> list[Path]:
    """The project's source files (tracked plus untracked-not-ignored), without build output."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        files = [Path(p) for p in out.decode().split("\0") if p]
    except (OSError, subprocess.SubprocessError):  # not a git checkout: the book's own folders
        files = [p.relative_to(ROOT) for d in ("book", "notebooks", "vgplib") for p in (ROOT / d).rglob("*")
                 if p.is_file() and not any(part.startswith((".", "_")) for part in p.parts)]
        files += [Path("_config.yml"), Path("_toc.yml")]
    return [f for f in files if (ROOT / f).is_file() and f.parts[0] not in {"_build", ".git"}]


@pytest.mark.slow
def test_book_builds_after_the_test_suite_left_its_caches(tmp_path):
    """A reader's `make test` then `rm -rf _build && make book`: the build (-W) must not see the caches."""
    tree = tmp_path / "tree"
    for rel in _tree_files():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tree / rel)
    chapter = tree / "notebooks" / "ch01_backprop.ipynb"
    for rel, text in STRAY_FILES.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        if text is None and chapter.is_file():
            shutil.copy2(chapter, tree / rel)
        else:
            (tree / rel).write_text(text or "# stray\n", encoding="utf8")
    jb = Path(sys.executable).parent / "jupyter-book"
    command = [str(jb) if jb.exists() else "jupyter-book", "build", str(tree), "-W", "-n", "--keep-going"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, check=False, cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert done.returncode == 0 and (tree / "_build" / "html" / "index.html").is_file(), (
        f"the book build failed (exit {done.returncode}) with the caches present:\n" + "\n".join(warnings[:20])
        + "\n" + log[-2000:])
    built = {p.relative_to(tree / "_build" / "html").as_posix() for p in (tree / "_build" / "html").rglob("*.html")}
    leaked = sorted(b for b in built if any(part.startswith(".") or part in {"__pycache__"}
                                            for part in Path(b).parts))
    assert not leaked, f"pages built from tool caches or hidden folders: {leaked}"
