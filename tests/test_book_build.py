"""The book's configuration and build output (no browser; the build itself is `make book`).

* every chapter notebook in notebooks/ is listed in _toc.yml (``only_build_toc_files`` would
  otherwise drop it silently), and every file _toc.yml lists exists;
* every reference in book/references.bib has a DOI or a URL, and every citation key used in a
  chapter or book page is defined there;
* the built API page documents every name in ``vgplib.__all__``;
* no built page loads a script, stylesheet or image from another machine (the static counterpart
  of the browser tests' request interception).
"""

from __future__ import annotations

import re
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
