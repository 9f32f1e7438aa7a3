"""Fixtures for the real-browser tests: one ``streamlit run app.py`` server and one headless Chromium per
test session, and a fresh page per test.

Other browser tests reuse them by asking for the ``app`` fixture (a :class:`StreamlitApp` on a new page
of the shared server) or for ``app_url``, ``browser`` and ``artifacts_dir`` directly. Tests here are
marked ``browser``; without Chromium (``/usr/bin/chromium`` or ``chromium`` on PATH) or the playwright
package they are skipped with the reason, except under ``CI=true`` or ``CNFVIZ_REQUIRE_BROWSER=1``, where
that is a failure (see :func:`browser_required`). Screenshots go to ``$CNFVIZ_ARTIFACTS`` (default
``test-artifacts/`` at the repository root), along with the server's log and a screenshot of any
failing test.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from benchmarks import harness
from benchmarks.harness import (
    ServerDied,
    chromium_executable,
    free_port,
    launch_options,
    stop_server,
    wait_healthy,
)

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
SERVER_START_SECONDS = 90


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # lets the page fixture screenshot failures
    return report


def browser_required() -> bool:
    """In CI a browser test that cannot run must fail: a skip there would hide exactly what it checks."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("CNFVIZ_REQUIRE_BROWSER") == "1"


def _cannot_run(reason: str) -> None:
    if browser_required():
        pytest.fail(f"browser tests are required here (CI=true or CNFVIZ_REQUIRE_BROWSER=1), but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = chromium_executable()
    if path is None:
        _cannot_run("no Chromium: install Debian's `chromium` (./dev test does it with apt) to run browser tests")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _cannot_run("the playwright package is missing: pip install -e '.[test]'")
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("CNFVIZ_ARTIFACTS") or ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class ServerURL(str):
    """A server's base URL that also knows the server's process id (``url.pid``), to look at its threads."""

    pid: int


def job_threads(pid: int) -> int:
    """How many training threads (named ``cnfviz-job`` by the OS) the process ``pid`` has now."""
    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            count += (task / "comm").read_text().strip() == "cnfviz-job"
        except OSError:  # the thread ended while we looked
            pass
    return count


@contextlib.contextmanager
def streamlit_server(log_path: Path, env: dict[str, str] | None = None) -> Iterator[ServerURL]:
    """Run ``streamlit run app.py`` on a free port (with extra environment ``env``); yields its URL.

    Waits for ``/_stcore/health`` (failing the test with the server's log if it does not answer) and
    stops the server afterwards.
    """
    port = free_port()
    proc = harness.start_server(port, env, log_path)
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.pid = proc.pid
    try:
        try:
            wait_healthy(proc, url, log_path, timeout=SERVER_START_SECONDS)
        except ServerDied as err:
            pytest.fail(str(err))
        yield url
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def app_url(chromium_path: str, artifacts_dir: Path) -> Iterator[str]:
    """The URL of the session's shared server."""
    with streamlit_server(artifacts_dir / "streamlit-server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(**launch_options(chromium_path))
        try:
            yield browser
        finally:
            browser.close()


class StreamlitApp:
    """A browser page on the test server, with the waits a Streamlit app needs.

    Arguments:
        page: a Playwright ``Page``.
        url: the server's base URL.
        artifacts: where screenshots go.
    """

    def __init__(self, page: object, url: str, artifacts: Path) -> None:
        self.page = page
        self.url = url
        self.artifacts = artifacts

    def goto(self, path: str = "") -> StreamlitApp:
        """Open ``url/path`` (a page's url_path, e.g. ``train``) and wait until the script has run."""
        self.page.goto(f"{self.url}/{path}".rstrip("/"))
        self.page.wait_for_selector('[data-testid="stApp"]', timeout=30_000)
        self.page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=30_000)
        return self.wait_idle()

    def wait_idle(self, timeout: float = 30.0, settle: float = 0.3) -> StreamlitApp:
        """Wait until no script run is in progress, and none started for ``settle`` seconds.

        A run triggered by the last action may not have started yet when this is called, hence the
        settling time. While a training run polls, the page is rarely idle for long: this returns at
        the first quiet moment.
        """
        app = self.page.locator('[data-testid="stApp"]')
        deadline = time.monotonic() + timeout
        quiet_since = None
        while True:
            running = app.get_attribute("data-test-script-state") == "running"
            now = time.monotonic()
            if running:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle:
                return self
            if now > deadline:
                raise TimeoutError("the app kept running")
            self.page.wait_for_timeout(50)

    def key(self, key: str) -> object:
        """The element a widget or chart with ``key`` renders into (Streamlit adds ``st-key-<key>``)."""
        return self.page.locator(f".st-key-{key}")

    def button(self, key: str) -> object:
        """The visible button with ``key`` (a button with a tooltip also renders a hidden copy)."""
        return self.key(key).locator("button").filter(visible=True)

    def click_button(self, key: str) -> None:
        self.button(key).click()

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def errors(self) -> list[str]:
        """Texts of exception boxes and error alerts on the page."""
        sel = '[data-testid="stException"], [data-testid="stAlertContentError"]'
        return [e.inner_text() for e in self.page.locator(sel).all()]

    def pick(self, key: str, typed: str, option: str) -> None:
        """Choose ``option`` in the selectbox with ``key``, typing ``typed`` to filter its list."""
        box = self.key(key).locator("input").first
        box.click()
        box.fill(typed)
        self.page.get_by_role("option", name=option).click()
        self.wait_idle()

    def progress(self) -> str:
        """The text of the first progress bar ("Iteration 12 / 2,000 · Adam ..."), or ""."""
        bar = self.page.locator('[data-testid="stProgress"]')
        return bar.first.inner_text() if bar.count() else ""

    def iteration(self) -> int:
        """The iteration the progress bar shows, or -1 without one."""
        m = re.search(r"Iteration ([\d,]+)", self.progress())
        return int(m.group(1).replace(",", "")) if m else -1

    def until(self, probe: Callable[[], T], ok: Callable[[T], bool], timeout: float, what: str) -> T:
        """Poll ``probe`` until ``ok`` accepts its value; fail with ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if ok(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what} (last value: {value!r})")
            self.page.wait_for_timeout(50)


@pytest.fixture(scope="session")
def start_server(artifacts_dir: Path) -> Iterator[Callable[[str, dict[str, str]], str]]:
    """A factory for extra servers with their own environment, e.g. ``start_server("capped",
    {"CNFVIZ_MAX_JOBS": "1"})``; each is logged to the artifacts and stopped at the session's end."""
    with contextlib.ExitStack() as stack:

        def start(name: str, env: dict[str, str]) -> str:
            return stack.enter_context(streamlit_server(artifacts_dir / f"streamlit-{name}.log", env))

        yield start


@pytest.fixture
def new_app(
    browser: object, artifacts_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], StreamlitApp]]:
    """A factory of :class:`StreamlitApp` tabs, each in its own browser context (its own Streamlit session).

    A failing test leaves a screenshot of every tab still open; the contexts close at the end.
    """
    apps: list[StreamlitApp] = []

    def open_app(url: str) -> StreamlitApp:
        # Tall, so that full-page screenshots show the plots below the loss chart too.
        context = browser.new_context(viewport={"width": 1440, "height": 2000})
        page = context.new_page()
        page.set_default_timeout(20_000)
        apps.append(StreamlitApp(page, url, artifacts_dir))
        return apps[-1]

    try:
        yield open_app
    finally:
        rep = getattr(request.node, "rep_call", None)
        for i, app in enumerate(apps):
            if app.page.is_closed():
                continue
            if rep is not None and rep.failed:
                try:
                    app.screenshot(f"{request.node.name}-failure-{i}")
                except Exception:  # a failed screenshot must not hide the failure itself
                    pass
            app.page.context.close()


@pytest.fixture
def app(new_app: Callable[[str], StreamlitApp], app_url: str) -> StreamlitApp:
    """A :class:`StreamlitApp` in a fresh browser context (a new Streamlit session) of the shared server."""
    return new_app(app_url)
