"""Shared pytest configuration: nbval paths, the built book, a local HTTP server, headless Chromium.

Browser tests (marker ``browser``) drive Debian's Chromium through Playwright's sync API. Without
Chromium (or Playwright) they skip with a loud reason; under ``CI=true`` they fail instead, so a
CI run can never go green without having run them.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_HTML = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("VGP_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def in_ci() -> bool:
    """True when the CI environment variable is set to a true value (``CI=true`` on most runners)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def skip_or_fail(reason: str) -> None:
    """Skip with a loud reason locally; fail under CI, where the browser tests must run."""
    message = f"!!! {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: browser tests must run, not skip)", pytrace=False)
    pytest.skip(f"{message}; browser test NOT RUN (install it: apt-get install -y chromium)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- pytest hooks


def pytest_configure(config: pytest.Config) -> None:
    # The sanitize file is given relative to the repository root in pyproject.toml; make it work
    # from any working directory.
    path = getattr(config.option, "nbval_sanitize_with", None)
    if path and not Path(path).is_absolute() and not Path(path).exists():
        candidate = Path(config.rootpath) / path
        if candidate.exists():
            config.option.nbval_sanitize_with = str(candidate)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # pytest exits 5 when nothing was collected (for example a `-k` or `-m` selection that matches
    # nothing, or only an empty notebooks/ folder): that is not a test failure, so report it loudly
    # and exit 0 instead of failing `make test`/CI with a confusing status.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("!!! no tests were collected (exit status 5 mapped to 0)", yellow=True, bold=True)


# --------------------------------------------------------------------------- the built book


@pytest.fixture(scope="session")
def book_html() -> Path:
    """``_build/html`` of the built book; fails with a clear message when the book is not built."""
    index = BOOK_HTML / "index.html"
    if not index.is_file():
        pytest.fail(
            f"the book is not built: {index} is missing. Run `make book` first "
            "(`make test` builds the book before running the tests).",
            pytrace=False,
        )
    return BOOK_HTML


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="session")
def book_server(book_html: Path):
    """Serve ``_build/html`` on ``http://127.0.0.1:<free port>/``; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="book-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --------------------------------------------------------------------------- Chromium


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian Chromium launched through Playwright (sync API), shared by the session."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        skip_or_fail(f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - playwright is in requirements.txt
        skip_or_fail(f"Playwright is not importable ({exc})")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def jupyter_bin() -> str:
    """The ``jupyter`` executable of this environment."""
    here = Path(sys.executable).parent / "jupyter"
    found = str(here) if here.exists() else shutil.which("jupyter")
    if not found:
        pytest.fail("jupyter is not installed in this environment", pytrace=False)
    return found


def route_local_only(context, is_local) -> list[str]:
    """Let a Playwright ``context`` load only URLs for which ``is_local(url)`` holds; abort the rest.

    Returns the list that collects every aborted (external) URL, for the test to assert it is empty.
    """
    external: list[str] = []

    def route(r):
        if is_local(r.request.url):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return external

