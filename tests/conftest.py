"""Shared pytest fixtures: databases, a real browser, live servers, a screenshot folder.

Fixtures (all generic; this module does not import ``cryocurate``):

``database_url``
    Parametrized with ids ``sqlite`` and ``postgresql``, so ``def test_x(database_url)`` runs
    twice: once against ``sqlite:///<tmp>/catalog.sqlite`` and once against a fresh, uniquely
    named PostgreSQL database (dropped afterwards) on the server named by
    ``CRYOCURATE_TEST_POSTGRES_URL`` (an admin URL such as
    ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; ``.ci/run`` starts one).
``postgres_admin_url``
    That admin URL (session scope), for tests that need the server itself.
``chromium_path`` / ``browser`` / ``page``
    Debian's Chromium (``CRYOCURATE_TEST_CHROMIUM`` or ``chromium`` on PATH), a Playwright sync
    ``Browser`` on it (session scope), and a fresh context + page at 1280x900 for each test.
    Tests that use them should be marked ``@pytest.mark.browser``.

    Every context made from ``browser`` (the ``page`` fixture's, and any a test makes with
    ``browser.new_context()`` or ``browser.new_page()``) is guarded: a request to anything
    but the loopback interface is refused (the portal must work with no network, and load
    nothing from outside), and so is a Content-Security-Policy violation (a page that
    breaks under the portal's CSP: an inline script or style, a handler attribute). Either
    fails the test that was running, after it ran, naming the URL or the violation.
    The refusal is Chromium's (``--proxy-server`` to a closed loopback port; loopback itself
    is never proxied), the record a ``request`` listener: a Playwright ``route`` would do
    both, but it makes every request of every test, loopback too, wait for the driver, which
    changed the timing the viewer's latency test measures.
``browser_problems``
    What the guard saw during the current test (``.outside``: URLs refused, ``.csp``: CSP
    messages). A test that provokes violations on purpose (the attack tests of
    tests/security) sets ``browser_problems.expect_csp = True`` and asserts on ``.csp``
    itself; outside requests always fail.
``live_server`` / ``live_server_module``
    Factories that start a server in a subprocess on a free loopback port and return its base
    URL; they stop it (SIGTERM, then SIGKILL) at the end of the test / module. Give them an
    ASGI import string (``"pkg.mod:app"``, run with uvicorn), an argv list in which ``{port}``
    and ``{host}`` are filled in, or a callable ``port -> argv``::

        url = live_server(lambda port: ["cryocurate", "serve", str(root), "--port", str(port)])
        url = live_server("myapp.web:app")
        url = live_server([sys.executable, "-m", "http.server", "{port}", "-b", "{host}"])

    The returned URL is a ``str`` (``"http://127.0.0.1:PORT"``) with extras: ``.port``,
    ``.process``, ``.output()``, ``.stop()`` and ``.restart()`` (same port), for tests that take
    the server down and bring it back.
``screenshot_dir``
    ``<repo>/screenshots`` (created), where browser tests save page screenshots for people to
    look at.

A missing PostgreSQL server or Chromium skips the tests that need it, with the reason, when
run locally; when the ``CI`` environment variable is set it is an error instead, so CI can never
silently skip them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    # The network is closed here: stop Chromium from calling Google's hosts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # No page may load anything from outside the portal: every request that is not to the
    # loopback interface (which Chromium never sends through a proxy) goes to a proxy that is
    # not there and fails at once. The browser guard below records each attempt.
    "--proxy-server=http://127.0.0.1:9",
]
VIEWPORT = {"width": 1280, "height": 900}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where every test must really run."""
    if _in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------
# Databases


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """SQLAlchemy URL of a PostgreSQL server's admin database (from the environment)."""
    url = os.environ.get("CRYOCURATE_TEST_POSTGRES_URL", "").strip()
    if not url:
        _unavailable(
            "CRYOCURATE_TEST_POSTGRES_URL is not set (an admin URL like "
            "postgresql+psycopg://postgres@127.0.0.1:5432/postgres; `bash .ci/run` starts a "
            "throwaway server and sets it)"
        )
    return url


def _libpq_url(sqlalchemy_url: Any) -> str:
    return sqlalchemy_url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/catalog.sqlite"
        return

    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    admin = make_url(request.getfixturevalue("postgres_admin_url"))
    name = f"cryocurate_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq_url(admin), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq_url(admin), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ----------------------------------------------------------------------------------------------
# Browser


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's Chromium binary."""
    path = os.environ.get("CRYOCURATE_TEST_CHROMIUM", "").strip() or shutil.which("chromium")
    if not path or not os.access(path, os.X_OK):
        _unavailable(
            f"Chromium not found (CRYOCURATE_TEST_CHROMIUM={path or 'unset'}; "
            "install Debian's `chromium` package, as `bash .ci/run` does)"
        )
    return str(path)


# Any URL with a scheme and a host that is not the loopback interface.
OUTSIDE_URL = re.compile(
    r"^(?!(?:https?|wss?)://(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?(?:[/?#]|$))"
    r"[A-Za-z][A-Za-z0-9+.-]*://"
)
# Reports every violation as a console error, also those Chromium itself does not log.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`[csp-violation] ${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || document.location.href}:${e.lineNumber}`);
});
"""
CSP_MARKERS = ("[csp-violation]", "Content Security Policy", "Content-Security-Policy", "sandboxed")


class BrowserProblems:
    """What the browser guard saw while one test ran."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.csp: list[str] = []
        self.expect_csp = False
        self.contexts: list[Any] = []

    def settle(self) -> None:
        """Let each open context deliver the events still on their way (the sync API hands
        them over only during a call)."""
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.cookies()

    def failure(self) -> str | None:
        lines = [f"requested from outside the loopback interface: {u}" for u in self.outside]
        if not self.expect_csp:
            lines += [f"Content-Security-Policy: {m}" for m in self.csp]
        return "\n".join(lines) or None


_PROBLEMS = BrowserProblems()


def guard_context(context: Any) -> Any:
    """Record the outside requests (Chromium refuses them) and the CSP violations of
    ``context``."""

    def request(req: Any) -> None:
        if OUTSIDE_URL.match(req.url):
            _PROBLEMS.outside.append(req.url)

    def console(message: Any) -> None:
        text = message.text
        if message.type == "error" and any(m in text for m in CSP_MARKERS):
            _PROBLEMS.csp.append(text)

    context.on("request", request)
    context.add_init_script(CSP_REPORTER)
    context.on("console", console)
    _PROBLEMS.contexts.append(context)
    return context


class GuardedBrowser:
    """A Playwright ``Browser`` whose every new context is guarded (:func:`guard_context`)."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)

    def new_context(self, **kwargs: Any) -> Any:
        return guard_context(self._browser.new_context(**kwargs))

    def new_page(self, **kwargs: Any) -> Any:
        page = self._browser.new_page(**kwargs)
        guard_context(page.context)
        return page


@pytest.fixture(autouse=True)
def browser_problems() -> Iterator[BrowserProblems]:
    """A fresh record for each test (see the module docstring)."""
    global _PROBLEMS
    _PROBLEMS = BrowserProblems()
    yield _PROBLEMS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Fail a test whose browser went outside or broke the CSP, once it has run."""
    result = yield
    _PROBLEMS.settle()
    problem = _PROBLEMS.failure()
    if problem:
        pytest.fail(f"the browser guard of tests/conftest.py refused:\n{problem}", pytrace=False)
    return result


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    """A headless Playwright (sync API) ``Browser`` running Debian's Chromium, guarded."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield GuardedBrowser(browser)
        finally:
            browser.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page (viewport 1280x900), closed after the test."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """``<repo>/screenshots``: page screenshots for people to look at."""
    path = REPO_ROOT / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------------
# Live servers

ServerSpec = str | Sequence[str] | Callable[[int], Sequence[str]]


def _argv_for(spec: ServerSpec, host: str, port: int) -> list[str]:
    if isinstance(spec, str):  # an ASGI app import string, "package.module:app"
        return [
            sys.executable, "-m", "uvicorn", spec,
            "--host", host, "--port", str(port), "--no-access-log",
        ]  # fmt: skip
    if callable(spec):
        return [str(a) for a in spec(port)]
    return [str(a).format(port=port, host=host) for a in spec]


class LiveServer(str):
    """The base URL of a server running in a subprocess, plus control over that subprocess."""

    process: subprocess.Popen[bytes] | None
    port: int
    host: str

    def __new__(
        cls, host: str, port: int, argv: list[str], env: dict[str, str], cwd: Path | None,
        log_path: Path, timeout: float,
    ) -> LiveServer:  # fmt: skip
        self = super().__new__(cls, f"http://{host}:{port}")
        self.host, self.port, self.argv, self.env, self.cwd = host, port, argv, env, cwd
        self.log_path, self.timeout = log_path, timeout
        self.process = None
        return self

    @property
    def url(self) -> str:
        return str(self)

    def output(self) -> str:
        """Everything the server printed (stdout and stderr) so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise ServerExited(self.process.returncode, self.output())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"server {self.argv} did not accept connections on {self} within "
                    f"{self.timeout:.0f} s; its output:\n{self.output()}",
                    pytrace=False,
                )
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the server's process group, then SIGKILL it after ``grace`` seconds."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
                break
        # Children that ignored SIGTERM may outlive the leader; make sure none is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self) -> None:
        """Stop the server and start it again with the same command on the same port."""
        self.stop()
        self.start()


class ServerExited(RuntimeError):
    def __init__(self, returncode: int, output: str) -> None:
        super().__init__(f"exit code {returncode}")
        self.returncode, self.output = returncode, output


class LiveServerFactory:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: list[LiveServer] = []

    def __call__(
        self,
        spec: ServerSpec,
        *,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        host: str = "127.0.0.1",
        timeout: float = 20.0,
    ) -> LiveServer:
        """Start a server; return its base URL once its port accepts connections."""
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for attempt in range(3):
            port = free_port(host)
            argv = _argv_for(spec, host, port)
            log_path = self.log_dir / f"server-{len(self.servers)}-{port}.log"
            server = LiveServer(
                host, port, argv, full_env, Path(cwd) if cwd else None, log_path, timeout
            )
            self.servers.append(server)
            try:
                server.start()
                return server
            except ServerExited as exc:
                # Another process may have taken the port between our check and the bind.
                if "address already in use" in exc.output.lower() and attempt < 2:
                    continue
                pytest.fail(
                    f"server {argv} exited with code {exc.returncode} before accepting "
                    f"connections on {server}; its output:\n{exc.output}",
                    pytrace=False,
                )
        raise AssertionError("unreachable")

    def close(self) -> None:
        for server in reversed(self.servers):
            server.stop()


@pytest.fixture
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServerFactory]:
    """Start servers for one test: ``url = live_server(spec)``; stopped after the test."""
    factory = LiveServerFactory(tmp_path_factory.mktemp("live_server"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def live_server_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServerFactory]:
    """Like ``live_server``, but its servers live until the end of the test module."""
    factory = LiveServerFactory(tmp_path_factory.mktemp("live_server"))
    try:
        yield factory
    finally:
        factory.close()
