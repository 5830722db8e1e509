"""Shared pytest configuration: nbval paths, the built book, a local HTTP server, headless Chromium.

Browser tests (marker ``browser``) drive Debian's Chromium through Playwright's sync API. Without
Chromium (or Playwright) they skip with a loud reason; under ``CI=true`` they fail instead, so a
CI run can never go green without having run them.
"""

from __future__ import annotations

import functools
import http.server
import os
import resource
import shutil
import socket
import sys
import threading
import time
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


@pytest.fixture(autouse=True)
def _xla_flags_unchanged():
    """Fail a test that leaves ``XLA_FLAGS`` changed in this process's environment.

    nbval starts each notebook's kernel with the environment of the pytest process (an xdist worker)
    that runs it, so a leaked ``XLA_FLAGS`` changes the rounding of every later notebook on that worker,
    and which notebooks those are depends on the scheduling (it happened: vgplib.widgets.fast_xla_compile's
    flags, set by a test, made ch03 print 0.01 instead of 0.00 in one CI run only).
    """
    before = os.environ.get("XLA_FLAGS")
    yield
    after = os.environ.get("XLA_FLAGS")
    if after != before:
        if before is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = before
        pytest.fail(f"the test left XLA_FLAGS changed: {before!r} -> {after!r} (restored)", pytrace=False)


# --------------------------------------------------------------------------- the time budget

#: Seconds of wall, of this process's CPU and of its finished children's CPU (kernels, browsers,
#: subprocesses) per test file: setup + call + teardown of its tests; a notebook under nbval is one
#: file. CPU time is what a loaded machine inflates least.
_FILE_TIMES: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

#: The budget of `make test` (README): 30 minutes on 2 quiet cores for the whole book of 15 chapters.
#: Per chapter, on a quiet machine: its notebook under nbval <= 60 s, its panel and library tests <= 40 s.
TIME_REPORT_FILES = 25


_CPU_KEY = "vgp_cpu"


def _timed_phase(item: pytest.Item, when: str):
    """Wrap one test phase: its own CPU and its finished children's CPU go into the phase's report
    (``user_properties``), so the controller of a ``pytest -n 2`` run sees the workers' times."""
    cpu, child = time.process_time(), _children_cpu()
    yield
    item.user_properties.append((_CPU_KEY, when, time.process_time() - cpu, _children_cpu() - child))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    yield from _timed_phase(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    yield from _timed_phase(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem):
    yield from _timed_phase(item, "teardown")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the process that prints (the controller under xdist): wall from the report's
    # duration, CPU from the property its own phase recorded.
    entry = _FILE_TIMES.setdefault(report.location[0], [0.0, 0.0, 0.0, 0])
    entry[0] += report.duration
    for prop in report.user_properties:
        if len(prop) == 4 and prop[0] == _CPU_KEY and prop[1] == report.when:
            entry[1] += prop[2]
            entry[2] += prop[3]
    if report.when == "setup":
        entry[3] += 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The time per test file, slowest first, and the total: the budget stays visible in every run."""
    if not _FILE_TIMES:
        return
    rows = sorted(_FILE_TIMES.items(), key=lambda kv: -kv[1][0])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    terminalreporter.write_sep("=", f"time per test file (load average {load:.1f} on {os.cpu_count()} cores)")
    terminalreporter.write_line(f"{'wall s':>8} {'cpu s':>8} {'child s':>8} {'tests':>6}  file")

    def line(values, label):
        wall, cpu, child, n = values
        terminalreporter.write_line(f"{wall:8.1f} {cpu:8.1f} {child:8.1f} {int(n):6d}  {label}")

    for path, values in rows[:TIME_REPORT_FILES]:
        line(values, path)
    rest = [v for _, v in rows[TIME_REPORT_FILES:]]
    if rest:
        line([sum(v[i] for v in rest) for i in range(4)], f"({len(rest)} more files)")
    line([sum(v[i] for v in _FILE_TIMES.values()) for i in range(4)], "total (summed over files)")


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

