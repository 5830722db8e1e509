"""A chapter driven live in JupyterLab in a real browser (headless Debian Chromium via Playwright).

For each (notebook, slider index) in ``LIVE_NOTEBOOKS``: copy the notebook into a temporary folder
(JupyterLab autosaves and would rewrite the committed file), start ``jupyter lab`` on 127.0.0.1 with
a random token on a free port and isolated settings, open the copy, run all cells, wait until every
code cell has an execution count (and none raised), move the chosen slider with the keyboard
(focus its handle, press ArrowRight), and assert that the slider's readout and the live image in
the same output area (an ``ipywidgets.Image``, as ``vgplib.widgets.LivePanel`` shows) change.
Every markdown cell must be rendered by the MyST renderer (``jupyterlab-myst``) and its visible text
must hold no raw MyST (a role such as ``{doc}``, a directive fence, a directive option, an equation
label): :func:`raw_myst` is the check, tested on its own below. The live image must not be
stretched: its PNG has at least as many pixels as it covers on screen. Screenshots of the chapter's
top and of the moved panel are left in the test's temporary folder.
No request may leave the machine. Teardown, whatever happened: shut the kernels and the server down
through the REST API, kill the server's process group, then kill any process still holding this
run's private runtime folder (the kernels run in their own sessions), and check none is left. If
pytest itself is killed, the server gets SIGTERM from Linux (PR_SET_PDEATHSIG) and the kernels
follow their dead parent.

Point it at another notebook or slider with ``VGP_LAB_NOTEBOOK=path/to/nb.ipynb:slider_index``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import ROOT, free_port, route_local_only

pytestmark = pytest.mark.browser

# (notebook relative to the repository root, index of the slider to move among the notebook's sliders)
LIVE_NOTEBOOKS = [("notebooks/ch01_backprop.ipynb", 0)]
if os.environ.get("VGP_LAB_NOTEBOOK"):
    _path, _, _index = os.environ["VGP_LAB_NOTEBOOK"].rpartition(":")
    LIVE_NOTEBOOKS = [(_path, int(_index))] if _path else [(_index, 0)]

# Exact URLs a live notebook may try to fetch (they fail: the machine is offline, the test aborts
# them). matplotlib's jshtml scrubber links font-awesome 4 for its button icons; remove this entry
# once vgplib.widgets.scrubber drops the link (the book already drops it: book/_ext/offline_book.py).
LAB_EXTERNAL_ALLOWLIST = frozenset({
    "https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css",
})

SERVER_START_TIMEOUT_S = 90
RUN_ALL_TIMEOUT_S = 240
IMAGE_SETTLE_S = 2.0  # the execution indicator does not track widget callbacks: wait for a quiet image
ARROW_PRESSES = 5

# ----------------------------------------------------------------- raw MyST in the rendered text

#: MyST that shows as text when JupyterLab's Markdown renderer does not understand it. Rendered by
#: jupyterlab-myst, roles become links or numbers, fences become boxes, options and labels vanish;
#: rendered by plain Markdown they stay visible, as matched here (in the cells' innerText, where
#: inline-code backticks are gone: "{doc}`preface <...>`" shows as "{doc}preface <...>").
RAW_MYST_PATTERNS = {
    "role": re.compile(r"\{(?:doc|ref|numref|eq|cite(?::[a-z]+)?|term|math|download|abbr|prf:ref)\}"),
    "directive fence": re.compile(r"^\s*(?:`{3,}|~{3,}|:{3,})\s*\{[a-z][\w:-]*\}", re.MULTILINE),
    "directive option": re.compile(r"^\s*:(?:label|class|filter|name|alt|caption|width|align|open|"
                                   r"dropdown|numbered|nonumber|tags):(?:\s|$)", re.MULTILINE),
    "target": re.compile(r"^\s*\([\w:.-]+\)=\s*$", re.MULTILINE),
    # "$$ ... $$ (ch1-forward)": plain Markdown leaves the label after the displayed equation.
    "equation label": re.compile(r"(?:\$\$\s*|^\s*)\([A-Za-z][\w:.-]*\)\s*$", re.MULTILINE),
}


def raw_myst(text: str) -> list[str]:
    """The raw MyST constructs visible in ``text`` (a rendered cell's innerText), as ``kind: line``."""
    found = []
    for kind, pattern in RAW_MYST_PATTERNS.items():
        for match in pattern.finditer(text):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            found.append(f"{kind}: {text[start:end if end >= 0 else None].strip()[:120]}")
    return found


# Rendered markdown cells: jupyterlab-myst renders into a ``.myst`` widget, JupyterLab's own renderer
# into ``.jp-RenderedMarkdown``. Typeset math is hidden while the text is read (KaTeX puts "(a)" of
# "phi'(a)" on a line of its own). Also report code blocks whose language is a directive.
_MARKDOWN_STATE = """
() => {
  const cells = Array.from(document.querySelectorAll('.jp-Notebook .jp-MarkdownCell'));
  return cells.map((cell, i) => {
    const myst = cell.querySelector('.myst');
    const plain = cell.querySelector('.jp-RenderedMarkdown');
    const shown = myst || plain;
    let text = '';
    if (shown) {
      const math = Array.from(shown.querySelectorAll('.katex, .katex-display, mjx-container, .MathJax'));
      const saved = math.map(m => m.style.display);
      math.forEach(m => { m.style.display = 'none'; });
      text = shown.innerText;
      math.forEach((m, k) => { m.style.display = saved[k]; });
    }
    const fences = Array.from(cell.querySelectorAll('code[class*="language-{"]')).map(c => c.className);
    return {index: i, myst: !!myst, rendered: !!shown, text, fences};
  });
}
"""


# --------------------------------------------------------------------------- the server


def _api(base: str, token: str, path: str, method: str = "GET", timeout: float = 5.0):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    if method == "POST":
        req.data = b""
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
        return json.loads(body) if body else None


def _pids_using(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (this run's private temporary folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


@contextmanager
def jupyter_lab(jupyter: str, root_dir: Path):
    """Run ``jupyter lab`` on 127.0.0.1 over ``root_dir``; yields (base_url, token). Always torn down."""
    token = secrets.token_hex(24)
    port = free_port()
    private = root_dir.parent / "jupyter-private"
    runtime = private / "runtime"
    settings = private / "settings"
    for d in (runtime, settings, private / "workspaces", private / "config", private / "data"):
        d.mkdir(parents=True, exist_ok=True)
    # Render every cell (no virtual scrolling), so the slider of any cell is in the DOM; never ask
    # about or fetch the Jupyter news feed or update checks (the page must stay on this machine).
    for plugin, values in {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ)
    env.update(
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTER_CONFIG_DIR=str(private / "config"),
        JUPYTER_DATA_DIR=str(private / "data"),
        JUPYTER_PLATFORM_DIRS="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    cmd = [
        jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True", "--allow-root",
        f"--ServerApp.root_dir={root_dir}", f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={private / 'workspaces'}", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = (private / "server.log").open("wb")
    # If pytest itself is killed (a CI timeout, SIGTERM, SIGKILL) this teardown never runs: setpriv
    # (util-linux) asks Linux to SIGTERM the server when pytest dies (PR_SET_PDEATHSIG), the server
    # then shuts its kernels down, and each kernel also exits when its parent is gone (JPY_PARENT_PID).
    setpriv = shutil.which("setpriv")
    if setpriv:
        cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
    proc = subprocess.Popen(cmd, cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{_tail(private / 'server.log')}")
            try:
                _api(base, token, "/api/status", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jupyter lab did not answer in {SERVER_START_TIMEOUT_S} s:\n"
                                       f"{_tail(private / 'server.log')}") from None
                time.sleep(0.25)
        yield base, token
    finally:
        _shutdown(proc, base, token, str(runtime))
        log.close()
        leftover = _pids_using(str(runtime))
        assert proc.poll() is not None, f"the jupyter lab server (pid {proc.pid}) is still running"
        assert not leftover, f"kernel processes still running after teardown: {leftover}"


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _shutdown(proc: subprocess.Popen, base: str, token: str, runtime_marker: str) -> None:
    if proc.poll() is None:
        try:
            for kernel in _api(base, token, "/api/kernels") or []:
                _api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE", timeout=10)
        except OSError:
            pass
        try:
            _api(base, token, "/api/shutdown", method="POST", timeout=10)
        except OSError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    # Kernels run in sessions of their own: kill any still holding this run's runtime folder.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_using(runtime_marker)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline and _pids_using(runtime_marker):
            time.sleep(0.1)


# --------------------------------------------------------------------------- the page

_CELL_STATE = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const cells = panel.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    const errors = [];
    for (let k = 0; k < c.outputs.length; k++) {
      const o = c.outputs.get(k).toJSON();
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
    out.push({index: i, count: c.executionCount, errors});
  }
  return out;
}
"""

_IMAGE_STATE = """
async (img) => {
  if (!img.complete || img.naturalWidth === 0) return {src: img.src, hash: null, width: 0};
  const buf = await (await fetch(img.src)).arrayBuffer();
  const bytes = new Uint8Array(buf);
  let h = 2166136261;
  for (let i = 0; i < bytes.length; i++) { h ^= bytes[i]; h = Math.imul(h, 16777619) >>> 0; }
  return {src: img.src, hash: h + ':' + bytes.length, width: img.naturalWidth};
}
"""


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"data", "blob", "about"} or (parts.hostname == "127.0.0.1")


def _settled_image(page, img, previous=None, timeout_s: float = 60.0) -> dict:
    """The image state once it has stopped changing for IMAGE_SETTLE_S (and differs from ``previous``
    if given, unless the timeout passes first)."""
    deadline = time.monotonic() + timeout_s
    state = img.evaluate(_IMAGE_STATE)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = img.evaluate(_IMAGE_STATE)
        if now != state:
            state, stable_since = now, time.monotonic()
            continue
        changed = previous is None or state["hash"] != previous["hash"]
        if changed and state["hash"] is not None and time.monotonic() - stable_since >= IMAGE_SETTLE_S:
            return state
    return state


@pytest.mark.parametrize(("notebook", "slider_index"), LIVE_NOTEBOOKS)
def test_live_notebook_in_jupyterlab(chromium, jupyter_bin, tmp_path, notebook, slider_index):
    source = (ROOT / notebook) if not Path(notebook).is_absolute() else Path(notebook)
    if not source.is_file():
        pytest.fail(f"{source} does not exist (LIVE_NOTEBOOKS in {Path(__file__).name} names it)", pytrace=False)
    workdir = tmp_path / "lab"
    workdir.mkdir()
    copy = workdir / source.name
    shutil.copy2(source, copy)
    committed = source.read_bytes()

    with jupyter_lab(jupyter_bin, workdir) as (base, token):
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        external = route_local_only(context, _is_local)
        errors: list[str] = []
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(f"{base}/lab/tree/{copy.name}?token={token}&reset", wait_until="load", timeout=90_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
            # The indicator says idle before the kernel is connected; run-all before that does nothing.
            page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                                   " return !!(w && w.content && w.content.model && w.sessionContext"
                                   " && w.sessionContext.session && w.sessionContext.session.kernel"
                                   " && w.sessionContext.kernelDisplayStatus === 'idle'); }", timeout=120_000)
            # Commands act on the focused notebook: without this click run-all silently does nothing.
            page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
            # Do not await the command's promise (it settles only when every cell has run).
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

            deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
            while True:
                cells = page.evaluate(_CELL_STATE)
                failed = [c for c in cells if c["errors"]]
                assert not failed, f"cells raised: {failed}"
                if cells and all(isinstance(c["count"], int) and c["count"] > 0 for c in cells):
                    break
                assert time.monotonic() < deadline, f"run-all did not finish in {RUN_ALL_TIMEOUT_S} s: {cells}"
                time.sleep(0.5)
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
            assert prompts and all(any(ch.isdigit() for ch in p) for p in prompts), prompts

            # MyST: every markdown cell rendered by jupyterlab-myst, no raw role or directive visible.
            markdown = page.evaluate(_MARKDOWN_STATE)
            assert markdown, "no markdown cells in the notebook view"
            unrendered = [m["index"] for m in markdown if not m["rendered"]]
            assert not unrendered, f"markdown cells left unrendered (still in edit mode): {unrendered}"
            not_myst = [m["index"] for m in markdown if not m["myst"]]
            assert not not_myst, (f"markdown cells {not_myst} were not rendered by jupyterlab-myst "
                                  "(is the extension installed and enabled? `jupyter labextension list`)")
            raw = {m["index"]: raw_myst(m["text"]) + [f"code fence {c}" for c in m["fences"]] for m in markdown}
            raw = {i: found for i, found in raw.items() if found}
            assert not raw, f"raw MyST visible in rendered markdown cells (cell index: what): {raw}"
            page.locator(".jp-Notebook .jp-Cell").first.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "jupyterlab-top.png"))

            sliders = page.locator(".jp-Notebook .widget-slider")
            page.wait_for_function(f"() => document.querySelectorAll('.jp-Notebook .widget-slider').length > "
                                   f"{slider_index}", timeout=60_000)
            slider = sliders.nth(slider_index)
            slider.scroll_into_view_if_needed()
            output_area = slider.locator("xpath=ancestor::div[contains(@class, 'jp-OutputArea')][1]")
            img = output_area.locator("img").first
            img.wait_for(state="attached", timeout=60_000)
            readout = slider.locator(".widget-readout")
            before_readout = readout.inner_text() if readout.count() else None
            before = _settled_image(page, img)
            assert before["hash"] is not None and before["width"] > 0, f"the live image never loaded: {before}"

            handle = slider.locator(".noUi-handle").first
            handle.focus()
            for _ in range(ARROW_PRESSES):
                handle.press("ArrowRight")
            after = _settled_image(page, img, previous=before)

            if before_readout is not None:
                assert readout.inner_text() != before_readout, "the slider's readout did not move"
            assert after["hash"] != before["hash"], "the live image did not change after the slider moved"
            assert after["width"] > 0
            # Sharp: the PNG has at least as many pixels as it is shown with (not stretched).
            shown = img.evaluate("(img) => ({css: img.getBoundingClientRect().width, natural: img.naturalWidth,"
                                 " dpr: window.devicePixelRatio})")
            assert 0 < shown["css"] * shown["dpr"] <= shown["natural"] + 1, f"the live image is stretched: {shown}"
            unexpected = sorted(set(external) - LAB_EXTERNAL_ALLOWLIST)
            assert not unexpected, f"requests leaving the machine: {unexpected}"
            assert not errors, f"page errors: {errors}"
            page.screenshot(path=str(tmp_path / "jupyterlab.png"))
        finally:
            if sys.exc_info()[0] is not None:  # keep evidence of a failure next to the server log
                try:
                    page.screenshot(path=str(tmp_path / "jupyterlab-failure.png"))
                    print(f"screenshot: {tmp_path / 'jupyterlab-failure.png'}; "
                          f"server log: {tmp_path / 'jupyter-private' / 'server.log'}")
                except Exception as exc:  # noqa: BLE001 - best effort while failing
                    print(f"no failure screenshot: {exc}")
            context.close()
    assert source.read_bytes() == committed, "the committed notebook was modified"


# --------------------------------------------------------------------------- the raw-MyST check itself

# innerText of cells as JupyterLab's own Markdown renderer shows chapter 1 (measured, without
# jupyterlab-myst), and as jupyterlab-myst shows them.
_PLAIN_RENDER = [
    "(ch01)=\nBackpropagation as a product of Jacobians",
    "No earlier chapter is needed; the {doc}preface <../book/preface> explains how to run the notebooks.",
    "initialization common before 2010 {cite}glorot2010understanding.",
    "ReLU units and the initialization of {cite:t}he2015delving, W ~ N(0, 2/n).",
    "check the bound {eq}ch1-bound on every layer.",
    "J_l = diag(phi'(a_l)) W_l\n(ch1-layer-jacobian)",
    "$$ J_l = W_l $$ (ch1-layer-jacobian)",
    ":label: ch1-ex-jacobian\n\nThe layer below maps x_0 to x_1.",
    ":class: dropdown\n\nFirst the pre-activation.",
    "```{exercise} The Jacobian of one layer\n:label: ch1-ex-jacobian",
    ":::{note}\nA note.\n:::",
    ":filter: docname in docnames",
]
_MYST_RENDER = [
    "Backpropagation as a product of Jacobians",
    "No earlier chapter is needed; the preface explains how to run the notebooks.",
    "initialization common before 2010 glorot2010understanding.",
    "check the bound (4) on every layer, a dict {\"W\": W, \"b\": b} and a set {1, 2}.",
    "J_l = diag(phi'(a_l)) W_l\n(1)",
    "Exercise 1 (The Jacobian of one layer, by hand)\nThe layer below maps x_0 to x_1.",
    "Solution to Exercise 1",
    "(see the figure above)\nwhere (a) holds: a ratio (q/q*) of one.",
]


@pytest.mark.parametrize("text", _PLAIN_RENDER)
def test_raw_myst_is_found(text):
    assert raw_myst(text), text


@pytest.mark.parametrize("text", _MYST_RENDER)
def test_rendered_myst_passes(text):
    assert raw_myst(text) == [], text
