"""Shared fixtures: deterministic torch settings for the engine tests, and the browser-tests guard."""

from __future__ import annotations

import os

import pytest
import torch

_browser_outcomes: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0}

# The app's runs train in this process during tests (fast AppTests, no worker processes to start); the tests
# of the process backend, and one AppTest on it (tests/runtime/test_process.py), build theirs explicitly.
os.environ.setdefault("CNFVIZ_BACKEND", "local")


@pytest.fixture(autouse=True)
def _single_thread():
    # Tiny tensors: one thread is fastest and keeps timings from other tests out of the way.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _browser_required() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("CNFVIZ_REQUIRE_BROWSER") == "1"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "browser" not in report.keywords:
        return
    if report.skipped:
        _browser_outcomes["skipped"] += 1
    elif report.when == "call":
        _browser_outcomes["passed" if report.passed else "failed"] += 1
    elif report.failed:
        _browser_outcomes["failed"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    counts = _browser_outcomes
    if not any(counts.values()):
        return
    terminalreporter.write_line(
        f"browser tests: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI a skipped browser test is a failure: it hides exactly what it exists to catch.
    if _browser_required() and _browser_outcomes["skipped"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
