"""Local Sphinx extension: keep every built page self-contained and free of console errors.

* sphinx-thebe is always loaded by Jupyter Book 1 and puts an inline ``const THEBE_JS_URL = ...``
  script (which appears twice and raises "Identifier 'THEBE_JS_URL' has already been declared")
  and ``sphinx-thebe.js`` on every page. The book does not use Thebe (no Binder, offline), so
  both are removed from the page's scripts.
* matplotlib's jshtml animations link font-awesome from a CDN for their buttons; the link is
  dropped from the rendered HTML (the buttons keep their text/tooltips and work without it) so
  that no page asks the network for anything.
"""

from __future__ import annotations

import re

from docutils import nodes

_CDN_LINK = re.compile(r"<link[^>]+href=\"https?://[^\"]*font-awesome[^\"]*\"[^>]*>\s*", re.IGNORECASE)


def _is_thebe(script) -> bool:
    filename = str(getattr(script, "filename", script) or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return "thebe" in filename.lower() or "THEBE_JS_URL" in body


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        context["script_files"] = [s for s in scripts if not _is_thebe(s)]
    css = context.get("css_files")
    if css:
        context["css_files"] = [c for c in css if "thebe" not in str(getattr(c, "filename", c)).lower()]


def _drop_cdn_links(app, doctree, docname) -> None:
    for node in doctree.findall(nodes.raw):
        if "html" not in node.get("format", "") or "font-awesome" not in node.astext():
            continue
        text = _CDN_LINK.sub("", node.astext())
        node.children = [nodes.Text(text)]
        node.rawsource = text


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    app.connect("doctree-resolved", _drop_cdn_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
