"""Local Sphinx extension: the ``vgplib-api`` directive writes the API reference from the package.

It walks every public module of ``vgplib`` (names without a leading underscore, subpackages
included) and emits, per module, a section with ``.. automodule:: vgplib.<module>`` and
``:members:`` (the functions and classes defined there, and constants with a ``#:`` doc
comment), plus a ``py:data`` entry with its value for each other upper-case module constant that is
exported in ``vgplib.__all__`` or named by a ``:data:`` role in the module's docstrings. A new
module or function therefore appears on the API page without editing ``book/api.md``;
``tests/test_book_build.py`` checks that every name in ``vgplib.__all__`` is documented.

Docstrings may name the public functions by their top-level names (``:func:`vgplib.log_norms```)
or bare (``:data:`ACTIVATION_NAMES```): a ``missing-reference`` handler resolves such a name to
the one ``vgplib`` object of that name documented on the page.

The docstrings are plain text with light reST (``literals``, ``:func:`` roles), and write absolute
values as ``|phi'|``; reST would read that as an undefined substitution and fail the build, so an
``autodoc-process-docstring`` handler escapes ``|`` outside inline literals (the docstrings
define no substitutions and use no tables).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode, nested_parse_with_titles

# Modules in the order of the book's design; any other public module follows alphabetically.
ORDER = [
    "activations", "init", "networks", "jacobians", "gradients", "theory", "recurrent",
    "data", "training", "monitor", "plots", "widgets", "panels",
]
_DATA_ROLE = re.compile(r":data:`~?(?:[\w.]+\.)?([A-Z][A-Z0-9_]*)`")


def public_modules(package: str = "vgplib") -> list[str]:
    """Dotted names of the public modules of ``package``, in book order."""
    pkg = importlib.import_module(package)
    names = []
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        names.append(info.name)

    def key(name: str):
        parts = name.split(".")[1:]
        head = parts[0]
        return (ORDER.index(head) if head in ORDER else len(ORDER), head, len(parts), name)

    return sorted(names, key=key)


def module_constants(modname: str, exported: set[str]) -> list[str]:
    """Upper-case module-level constants of ``modname`` that are exported or named by ``:data:``,
    and have no ``#:`` doc comment (autodoc documents those itself)."""
    mod = importlib.import_module(modname)
    source = Path(mod.__file__).read_text(encoding="utf8")
    referenced = set(_DATA_ROLE.findall(source))
    documented = {name for (scope, name) in ModuleAnalyzer.for_module(modname).find_attr_docs() if scope == ""}
    out = []
    for node in ast.parse(source).body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        for name in targets:
            wanted = name in exported or name in referenced
            if wanted and name.isupper() and not name.startswith("_") and name not in out and name not in documented:
                out.append(name)
    return out


def _short_repr(value, limit: int = 100) -> str:
    if isinstance(value, dict):
        text = "{" + ", ".join(repr(k) for k in value) + "} (keys)"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class VgplibApi(SphinxDirective):
    has_content = False
    required_arguments = 0

    def run(self) -> list[nodes.Node]:
        pkg = importlib.import_module("vgplib")
        exported = set(getattr(pkg, "__all__", []))
        lines: list[str] = []
        for modname in public_modules("vgplib"):
            mod = importlib.import_module(modname)
            self.env.note_dependency(mod.__file__)
            title = f"``{modname}``"
            lines += [title, "-" * len(title), ""]
            lines += [f".. automodule:: {modname}", "   :members:", "   :ignore-module-all:", ""]
            for const in module_constants(modname, exported):
                value = _short_repr(getattr(mod, const))
                lines += [f".. py:data:: {modname}.{const}", f"   :value: {value}", ""]
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="vgplib-api"), container)
        return container.children


_LITERAL = re.compile(r"(``.+?``)")


def _escape_bars(app, what, name, obj, options, lines) -> None:
    for i, line in enumerate(lines):
        if "|" not in line:
            continue
        parts = _LITERAL.split(line)
        lines[i] = "".join(p if p.startswith("``") else re.sub(r"(?<!\\)\|", r"\\|", p) for p in parts)


#: Python-domain object types a cross-reference role may point to.
_ROLE_KINDS = {
    "func": {"function", "method", "classmethod", "staticmethod"},
    "meth": {"method", "classmethod", "staticmethod", "function"},
    "class": {"class", "exception"},
    "exc": {"exception", "class"},
    "data": {"data", "attribute"},
    "attr": {"attribute", "property", "data"},
    "mod": {"module"},
}


def _resolve_vgplib_name(app, env, node, contnode):
    """Resolve ``vgplib.NAME`` or a bare ``NAME`` to the unique documented ``vgplib.*.NAME``."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if target.startswith("vgplib."):
        name = target[len("vgplib."):]
    elif "." not in target:
        name = target
    else:
        return None
    if "." in name or not name:
        return None
    objects = env.get_domain("py").objects
    matches = [full for full in objects if full.startswith("vgplib.") and full.rsplit(".", 1)[-1] == name]
    if len(matches) > 1:
        # A NamedTuple field or a method may share the name of a module-level function
        # (``TypicalGrowth.chi1`` and ``theory.chi1``): keep the objects of the role's kind, then
        # the module-level ones (``vgplib.<module>.<name>``).
        kinds = _ROLE_KINDS.get(node.get("reftype", ""))
        if kinds:
            matches = [full for full in matches if objects[full].objtype in kinds] or matches
        top = [full for full in matches if full.count(".") == 2]
        matches = top if len(top) == 1 else matches
    if len(matches) != 1:
        return None
    entry = objects[matches[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0])


def setup(app):
    app.add_directive("vgplib-api", VgplibApi)
    app.connect("missing-reference", _resolve_vgplib_name)
    app.connect("autodoc-process-docstring", _escape_bars)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
