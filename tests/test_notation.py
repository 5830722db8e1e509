"""One notation in the whole book (DESIGN.md 2b, book/notation.md).

``a`` is a pre-activation and ``h`` an activation or hidden state: ``a_l = W_l h_{l-1} + b_l``,
``h_l = phi(a_l)``, ``J_l = diag(phi'(a_l)) W_l``, ``P_l = dh_L/dh_l``. Before the revision the
chapters wrote ``h`` for the pre-activation and ``x`` for the activation; these tests fail on the
old forms wherever a reader can meet them: chapter text and code, the book's pages, the README
and the library's docstrings and comments.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Each pattern is an old-notation formula, in LaTeX or in plain text, and why it is wrong now.
OLD_FORMS = {
    r"\\phi'\s*\(\s*h_": r"phi' of h: the derivative is taken at the pre-activation a_l (\phi'(a_l))",
    r"\bphi'\s*\(\s*h_?[lLkt0-9{]": "phi'(h_l): the derivative is taken at the pre-activation, phi'(a_l)",
    r"\\sigma'\s*\(\s*h_": r"\sigma'(h_l): the derivative is taken at the pre-activation, \sigma'(a_l)",
    # x is the input: x_l (a layer's activation) is old; x_k is an input token or step, so only a
    # derivative OF x (x_T / x_k: a state called x) is old, while dy_t / dx_k (attention) is right.
    r"\\partial\s*x_\{?[lL]": r"\partial x_l: activations are h_l (\partial h_L / \partial h_l)",
    r"\\partial\s*x_\{?[TtLlk]\}?\s*\}?\s*/?\s*\{?\s*\\partial\s*x_": r"\partial x_T / \partial x_k: states are h_t (\partial h_T / \partial h_k)",
    r"\bd\s*x_[lLk]\s*/\s*d\s*x_": "d x_L / d x_l: activations are h_l (d h_L / d h_l)",
    r"\bx_\{?l\}?\s*=\s*\\?phi": "x_l = phi(...): the activation is h_l = phi(a_l)",
    r"\bh_\{?l\}?\s*=\s*W_\{?l\}?\s*x": "h_l = W_l x_{l-1}: the pre-activation is a_l = W_l h_{l-1} + b_l",
}


def _notebook_texts() -> list[tuple[str, str]]:
    texts = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            texts.append((f"{path.name} cell {i}", "".join(cell["source"])))
    return texts


def _file_texts() -> list[tuple[str, str]]:
    # The notation page names the old forms on purpose (to say they are gone).
    paths = [p for p in sorted((ROOT / "book").glob("*.md")) if p.name != "notation.md"]
    paths += [ROOT / "README.md"]
    paths += sorted((ROOT / "vgplib").rglob("*.py"))
    return [(str(p.relative_to(ROOT)), p.read_text()) for p in paths]


def _hits(texts: list[tuple[str, str]]) -> list[str]:
    found = []
    for where, text in texts:
        for pattern, why in OLD_FORMS.items():
            for m in re.finditer(pattern, text):
                line = text[: m.start()].count("\n") + 1
                found.append(f"{where}, line {line}: {m.group(0)!r} ({why})")
    return found


@pytest.mark.parametrize(
    ("sample", "is_old"),
    [
        (r"$J_l = \operatorname{diag}(\phi'(h_l)) W_l$", True),
        (r"$J_l = \operatorname{diag}(\phi'(a_l)) W_l$", False),
        ("P[l] = d x_L / d x_l", True),
        ("P[l] = d h_L / d h_l", False),
        (r"$h_l = W_l x_{l-1} + b_l$", True),
        (r"$a_l = W_l h_{l-1} + b_l$", False),
        (r"$\partial x_L / \partial x_l$", True),
        (r"$\partial x_T / \partial x_k$", True),
        (r"$\frac{\partial x_T}{\partial x_k}$", True),
        (r"$\partial y_t / \partial x_k$", False),
        (r"$\frac{\partial y_t}{\partial x_k}$", False),
        ("delta_l = phi'(h_l) * (W^T delta)", True),
        ("the hidden state h_t = tanh(a_t)", False),
    ],
)
def test_patterns_tell_old_from_new(sample: str, is_old: bool) -> None:
    assert bool(_hits([("sample", sample)])) is is_old


def test_chapters_use_the_book_notation() -> None:
    hits = _hits(_notebook_texts())
    assert not hits, "old notation in the chapters:\n" + "\n".join(hits)


def test_pages_readme_and_docstrings_use_the_book_notation() -> None:
    hits = _hits(_file_texts())
    assert not hits, "old notation in book/, README.md or vgplib/:\n" + "\n".join(hits)


def test_notation_page_is_in_the_book() -> None:
    toc = (ROOT / "_toc.yml").read_text()
    assert "file: book/notation" in toc
    page = (ROOT / "book" / "notation.md").read_text()
    for formula in (r"a_l = W_l h_{l-1} + b_l", r"h_l = \phi(a_l)", r"\operatorname{diag}(\phi'(a_l))"):
        assert formula in page
