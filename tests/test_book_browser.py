"""The built HTML book in a real browser (headless Debian Chromium via Playwright).

Every page of ``_build/html`` is loaded twice, from a local HTTP server bound to 127.0.0.1 and from
``file://``, and must

* log no console error and raise no page error (except an exact allowlist, empty today),
* make no request that leaves the machine (every request is intercepted; anything that is not
  127.0.0.1, ``file:``, ``data:`` or ``blob:`` is aborted and fails the test),
* typeset its mathematics with the bundled MathJax (every ``.math`` element holds an
  ``mjx-container``; no raw ``\\(``, ``\\[`` or ``$$`` left in the text),
* show every image (``naturalWidth > 0``), each with a non-empty ``alt`` that is not a file name
  (myst-nb's default alt is the image's path; only the images matched by :data:`IMG_ALT_ALLOWLIST`
  are exempt), and every image a code cell outputs inside a ``<figure>`` with a caption,
* draw every figure's text at least ``MIN_TEXT_PX`` (10) CSS pixels high as shown: a scrubber's
  frame ``<img>`` carries ``data-min-font-pt`` and ``data-dpi`` (written by ``vgplib.widgets.scrubber``),
  a static figure's PNG the same in a text chunk (``vgplib.plots.notebook_png``), and the shown
  height of the smallest text is ``min_font_pt * dpi / 72 * shown / natural width``,
* link only to local files that exist (and to anchors that exist in them),
* and every jshtml scrubber (a range input in ``.animation``) must change the shown frame when
  its value moves from the first to the last frame (pages without a scrubber skip that part).

The book must be built first (``make test`` runs ``make book``); without it the tests fail and say so.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import BOOK_HTML, route_local_only

from vgplib.plots import png_text_size

pytestmark = pytest.mark.browser

# Exact console messages that are tolerated. Empty: the two errors every Jupyter Book 1 page used
# to log (the duplicated THEBE_JS_URL script and the favicon.ico 404) have their causes removed
# by book/_ext/offline_book.py and html.favicon in _config.yml.
CONSOLE_ALLOWLIST: frozenset[str] = frozenset()

PAGE_TIMEOUT_MS = 60_000

# CSS selectors of images that need no alt text (decoration of the theme, never a figure). Empty:
# the book has no logo (``logo: ""``); a theme logo would be ``img.logo__image``.
IMG_ALT_ALLOWLIST: tuple[str, ...] = ()

#: The smallest text of a figure, in CSS pixels as shown (vgplib.plots.MIN_TEXT_PX).
MIN_TEXT_PX = 10.0


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
  const allow = ALLOWLIST;
  const imageFacts = imgs.filter(img => !allow.some(sel => img.matches(sel))).map((img, i) => ({
    i, src: (img.getAttribute('src') || '').slice(0, 80), alt: img.getAttribute('alt'), url: img.src,
    natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
    scrubber: img.closest('.animation') !== null,
    output: img.closest('.cell_output, .output') !== null,
    caption: (() => { const f = img.closest('figure'); const c = f && f.querySelector('figcaption');
                      return c ? c.textContent.trim() : null; })(),
    dpi: img.getAttribute('data-dpi'), minFontPt: img.getAttribute('data-min-font-pt'),
  }));
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
    badImages, imageFacts, untypeset, rawTex, links,
    mjx: document.querySelectorAll('mjx-container').length,
    nMath: mathEls.length,
  };
}
"""


def _looks_like_a_file_name(alt: str, src: str) -> bool:
    alt = alt.strip()
    return alt == src or re.fullmatch(r"\S+\.(png|jpe?g|gif|svg|webp)", alt, re.IGNORECASE) is not None


def image_problems(images: list[dict]) -> list[str]:
    """Alt text and text size of the page's images (``imageFacts`` from the page), as messages."""
    problems = []
    for im in images:
        where = f"image {im['i']} ({'scrubber frame' if im['scrubber'] else im['src']})"
        alt = im.get("alt")
        if alt is None or not alt.strip():
            problems.append(f"{where} has no alt text: give the figure cell "
                            '{"mystnb": {"image": {"alt": "..."}}} metadata (a scrubber: alt=...)')
        elif _looks_like_a_file_name(alt, im["src"]):
            problems.append(f"{where} has a file name as alt text ({alt[:60]!r}): add image.alt metadata")
        if im.get("output") and not im.get("caption"):
            problems.append(f"{where} is a cell output without a figure caption: give the cell "
                            '{"mystnb": {"figure": {"caption": "...", "name": "fig-chNN-..."}}} metadata')
        if not (im["scrubber"] or im.get("output")):
            continue  # not a figure from a code cell
        if im.get("dpi") is None or im.get("minFontPt") is None:
            problems.append(f"{where} carries no text size (scrubber: data-dpi/data-min-font-pt; "
                            "static figure: the vgplib.plots PNG text chunk): re-execute the notebook")
            continue
        if im["minFontPt"] == "none" or not im["natural"]:
            continue  # a figure without text
        px = float(im["minFontPt"]) * float(im["dpi"]) / 72 * im["shown"] / im["natural"]
        if px < MIN_TEXT_PX - 1e-6:
            problems.append(
                f"{where}: smallest text {px:.1f} px < {MIN_TEXT_PX:g} px as shown "
                f"({im['minFontPt']} pt at {im['dpi']} dpi, {im['natural']} px wide shown at "
                f"{im['shown']:.0f} px): use fonts >= "
                f"{MIN_TEXT_PX * 72 / float(im['dpi']) * im['natural'] / im['shown']:.1f} pt or a narrower figure")
    return problems


def test_image_problems_catches_missing_alt_and_small_text():
    """The checks above are not vacuous (no browser needed)."""
    ok = {"i": 0, "src": "data:", "alt": "A line.", "natural": 576, "shown": 576, "scrubber": True,
          "dpi": "96", "minFontPt": "7.5", "output": True, "caption": "Fig. 1 A line."}
    assert image_problems([ok]) == []
    assert image_problems([{**ok, "scrubber": False, "output": False, "dpi": None, "minFontPt": None}]) == []
    bad = [
        {**ok, "alt": None}, {**ok, "alt": " "},
        {**ok, "scrubber": False, "src": "../_images/ab.png", "alt": "../_images/ab.png"},
        {**ok, "minFontPt": "7"},  # 9.3 px
        {**ok, "natural": 730, "shown": 688, "minFontPt": "7.5"},  # scaled down: 9.4 px
        {**ok, "dpi": None},
        {**ok, "caption": None}, {**ok, "caption": ""},
        {**ok, "scrubber": False, "src": "../_images/ab.png", "dpi": None, "minFontPt": None},
        {**ok, "scrubber": False, "src": "../_images/ab.png", "minFontPt": "7"},
    ]
    for im in bad:
        assert len(image_problems([im])) == 1, im


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
        facts = page.evaluate(_PAGE_FACTS.replace("ALLOWLIST", json.dumps(list(IMG_ALT_ALLOWLIST))))
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
        for im in facts["imageFacts"]:  # a static figure records its text size in the PNG file
            target = None if im["scrubber"] or not im["output"] else _local_target(im["url"], base)
            if target is not None and target[0].is_file():
                size = png_text_size(target[0].read_bytes())
                if size is not None:
                    im["minFontPt"], im["dpi"] = f"{size[0]:g}", f"{size[1]:g}"
        problems += image_problems(facts["imageFacts"])
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
