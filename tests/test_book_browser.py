"""The built HTML book in a real browser (headless Debian Chromium via Playwright).

Every page of ``_build/html`` is loaded twice, from a local HTTP server bound to 127.0.0.1 and from
``file://``, and must

* log no console error and raise no page error (except an exact allowlist, empty today),
* make no request that leaves the machine (every request is intercepted; anything that is not
  127.0.0.1, ``file:``, ``data:`` or ``blob:`` is aborted and fails the test),
* typeset its mathematics with the bundled MathJax (every ``.math`` element holds an
  ``mjx-container``; no raw ``\\(``, ``\\[`` or ``$$`` left in the text),
* show every image (``naturalWidth > 0``),
* link only to local files that exist (and to anchors that exist in them),
* and every jshtml scrubber (a range input in ``.animation``) must change the shown frame when
  its value moves from the first to the last frame (pages without a scrubber skip that part).

The book must be built first (``make test`` runs ``make book``); without it the tests fail and say so.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import BOOK_HTML, route_local_only

pytestmark = pytest.mark.browser

# Exact console messages that are tolerated. Empty: the two errors every Jupyter Book 1 page used
# to log (the duplicated THEBE_JS_URL script and the favicon.ico 404) have their causes removed
# by book/_ext/offline_book.py and html.favicon in _config.yml.
CONSOLE_ALLOWLIST: frozenset[str] = frozenset()

PAGE_TIMEOUT_MS = 60_000


def _pages() -> list[str]:
    if not (BOOK_HTML / "index.html").is_file():
        return ["<book not built>"]
    return sorted(p.relative_to(BOOK_HTML).as_posix() for p in BOOK_HTML.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts)


PAGES = _pages()


@cache
def _ids_in(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf8", errors="replace")
    return frozenset(re.findall(r"""\bid=["']([^"']+)["']""", text))


_WAIT_FOR_MATHJAX = """
async () => {
  const hasMath = document.querySelector('.math, .mathjax_process') !== null;
  if (!hasMath) return {hasMath: false};
  const t0 = performance.now();
  while (!(window.MathJax && window.MathJax.startup && window.MathJax.startup.promise)) {
    if (performance.now() - t0 > 30000) return {hasMath: true, loaded: false};
    await new Promise(r => setTimeout(r, 50));
  }
  await window.MathJax.startup.promise;
  return {hasMath: true, loaded: true};
}
"""

_PAGE_FACTS = """
async () => {
  // images: force eager loading, then wait for every one to finish
  const imgs = Array.from(document.images);
  imgs.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r); })));
  const badImages = imgs.filter(img => !(img.complete && img.naturalWidth > 0))
                        .map(img => (img.getAttribute('src') || '').slice(0, 120));
  // math: every .math element typeset; no raw TeX delimiters left in the visible text
  const mathEls = Array.from(document.querySelectorAll('.math'));
  const untypeset = mathEls.filter(el => !el.querySelector('mjx-container'))
                           .map(el => el.textContent.slice(0, 80));
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, .highlight')
       .forEach(el => el.remove());
  const text = clone.textContent;
  const rawTex = [];
  for (const delim of ['\\\\(', '\\\\[', '$$']) {
    const i = text.indexOf(delim);
    if (i >= 0) rawTex.push(text.slice(Math.max(0, i - 30), i + 50));
  }
  const links = Array.from(document.querySelectorAll('a[href]'))
                     .map(a => ({href: a.href, raw: a.getAttribute('href')}));
  return {
    badImages, untypeset, rawTex, links,
    mjx: document.querySelectorAll('mjx-container').length,
    nMath: mathEls.length,
  };
}
"""


def _is_local(url: str, base: str | None) -> bool:
    scheme = urlsplit(url).scheme
    if scheme in {"file", "data", "blob", "about"}:
        return True
    if base is not None and url.startswith(base):
        return True
    host = urlsplit(url).hostname
    return scheme in {"http", "https", "ws"} and host == "127.0.0.1"


def _local_target(href: str, base: str | None) -> tuple[Path, str] | None:
    """The file in ``_build/html`` (and fragment) an internal link points to, or None if external."""
    parts = urlsplit(href)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif base is not None and href.startswith(base):
        path = BOOK_HTML / unquote(parts.path).lstrip("/")
    else:
        return None
    if path.is_dir() or href.endswith("/"):
        path = path / "index.html"
    return path, unquote(parts.fragment)


def _open(chromium, url: str, base: str | None):
    """Open ``url`` in a fresh context; returns (page, context, console errors, external requests)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    external = route_local_only(context, lambda url: _is_local(url, base))
    page = context.new_page()
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"requestfailed: {r.url} ({r.failure})")
            if _is_local(r.url, base) else None)
    local = _local_target(url, base)
    source = local[0].read_text(encoding="utf8", errors="replace") if local and local[0].is_file() else ""
    refresh = re.search(r"""http-equiv=["']refresh["'][^>]*url=([^"'>\s]+)""", source, re.IGNORECASE)
    if refresh:  # index.html only redirects to the first page: follow it, then check that page
        target = refresh.group(1)
        with page.expect_navigation(url=lambda u: u.split("#")[0].endswith(target), timeout=PAGE_TIMEOUT_MS):
            page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_load_state("load")
    else:
        page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
    return page, context, errors, external


_SCRUBBERS = """
() => Array.from(document.querySelectorAll('.animation')).map((anim, k) => {
  const slider = anim.querySelector('input[type=range]');
  const img = anim.querySelector('img');
  return slider && img ? {k, min: +slider.min, max: +slider.max, value: +slider.value} : null;
}).filter(x => x !== null)
"""

_SET_FRAME = """
([k, v]) => {
  const anim = document.querySelectorAll('.animation')[k];
  const slider = anim.querySelector('input[type=range]');
  slider.value = String(v);
  slider.dispatchEvent(new Event('input', {bubbles: true}));
  slider.dispatchEvent(new Event('change', {bubbles: true}));
  return anim.querySelector('img').src;
}
"""


def _scrubber_problems(page) -> list[str]:
    """Move every jshtml scrubber to its first and last frame; the shown image must change."""
    problems = []
    scrubbers = page.evaluate(_SCRUBBERS)
    if not scrubbers and page.locator(".animation").count():
        problems.append("an .animation without a range input and an <img>: not a working scrubber")
    for s in scrubbers:
        if s["max"] <= s["min"]:
            problems.append(f"scrubber {s['k']} has a single frame: {s}")
            continue
        first = page.evaluate(_SET_FRAME, [s["k"], s["min"]])
        last = page.evaluate(_SET_FRAME, [s["k"], s["max"]])
        if first == last:
            problems.append(f"scrubber {s['k']}: the frame did not change from {s['min']} to {s['max']}")
        natural = page.evaluate(
            "k => document.querySelectorAll('.animation')[k].querySelector('img').naturalWidth", s["k"])
        if not natural > 0:
            problems.append(f"scrubber {s['k']}: the frame shown at {s['max']} is not an image")
    return problems


def _check_page(chromium, url: str, base: str | None, check_links: bool) -> None:
    page, context, errors, external = _open(chromium, url, base)
    try:
        mj = page.evaluate(_WAIT_FOR_MATHJAX)
        facts = page.evaluate(_PAGE_FACTS)
        page.wait_for_timeout(200)  # late console messages (fonts, deferred scripts)
        problems: list[str] = []
        unexpected = [e for e in errors if e not in CONSOLE_ALLOWLIST]
        if unexpected:
            problems.append(f"console errors: {unexpected}")
        if external:
            problems.append(f"requests leaving the machine: {sorted(set(external))}")
        if mj["hasMath"] and not mj.get("loaded"):
            problems.append("MathJax did not load (window.MathJax.startup missing after 30 s)")
        if facts["nMath"] and facts["mjx"] == 0:
            problems.append(f"{facts['nMath']} math elements but no mjx-container: MathJax did not typeset")
        if facts["untypeset"]:
            problems.append(f"math elements without mjx-container: {facts['untypeset'][:5]}")
        if facts["rawTex"]:
            problems.append(f"raw TeX left in the text: {facts['rawTex']}")
        if facts["badImages"]:
            problems.append(f"images not loaded (naturalWidth 0): {facts['badImages']}")
        if check_links:
            for link in facts["links"]:
                raw = link["raw"]
                if raw.startswith(("mailto:", "javascript:")) or raw == "#":
                    continue
                target = _local_target(link["href"], base)
                if target is None:
                    continue  # external link: allowed as a link, never fetched by the page
                path, fragment = target
                if not path.is_file():
                    problems.append(f"broken link {raw!r}: {path} does not exist")
                elif fragment and path.suffix == ".html" and fragment not in _ids_in(path):
                    problems.append(f"broken anchor {raw!r}: no id {fragment!r} in {path.name}")
        problems += _scrubber_problems(page)  # pages without a scrubber have nothing to check
        assert not problems, f"{url}:\n  " + "\n  ".join(problems)
    finally:
        context.close()


@pytest.mark.parametrize("page_path", PAGES)
def test_page_over_http(chromium, book_html, book_server, page_path):
    """Load over http://127.0.0.1: console, network, math, images and internal links."""
    _check_page(chromium, book_server + page_path, base=book_server, check_links=True)


@pytest.mark.parametrize("page_path", PAGES)
def test_page_from_file(chromium, book_html, page_path):
    """Load from file:// (a reader opening _build/html/index.html): console, network, math, images."""
    url = (book_html / page_path).resolve().as_uri()
    _check_page(chromium, url, base=None, check_links=True)
