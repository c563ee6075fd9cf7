"""Shared pytest wiring: the live tier's guard, and the anyio backend for async tests.

``--require-live`` (set by the project's test command and CI) turns "HAPI is not up" into a hard
failure instead of a skip, and fails the run if no live test actually passed.
"""

from __future__ import annotations

import os

import httpx
import pytest
from hypothesis import settings as hypothesis_settings

# No per-example deadline for property tests: timing targets are benchmarks (sandbox/bench), and
# Hypothesis's default 200 ms deadline failed a round-trip property on a busy 2-core machine.
hypothesis_settings.register_profile("iop-bridge", deadline=None)
hypothesis_settings.load_profile("iop-bridge")

LIVE_BASE_ENV = "IOP_BRIDGE_FHIR_BASE_URL"
DEFAULT_LIVE_BASE = "http://127.0.0.1:8090/fhir"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-live",
        action="store_true",
        help="fail (never skip) when the HAPI server is down or when no live test passed",
    )


def live_base_url() -> str:
    """The FHIR base the live tests talk to (the test command starts HAPI there)."""
    return os.environ.get(LIVE_BASE_ENV, DEFAULT_LIVE_BASE).rstrip("/")


def _server_answers(base: str) -> str | None:
    try:
        response = httpx.get(f"{base}/metadata", timeout=10)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    live_items = [i for i in items if i.get_closest_marker("live")]
    if not live_items:
        return
    problem = _server_answers(live_base_url())
    if problem is None:
        return
    message = f"HAPI FHIR server at {live_base_url()} is not answering: {problem}"
    if config.getoption("--require-live"):
        raise pytest.UsageError(message + " (--require-live: live tests must run)")
    for item in live_items:
        item.add_marker(pytest.mark.skip(reason=message + "; start it with sandbox/hapi/start.sh"))


class _LiveTally:
    def __init__(self) -> None:
        self.passed = 0
        self.not_passed: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "live" not in report.keywords:
            return
        if report.when == "call" and report.passed:
            self.passed += 1
        elif report.skipped or report.failed:
            self.not_passed.append(f"{report.nodeid} ({report.outcome} in {report.when})")


_tally = _LiveTally()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_tally, "iop-live-tally")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    terminalreporter.write_sep("=", "live tier")
    terminalreporter.write_line(
        f"live tests passed against HAPI at {live_base_url()}: {_tally.passed}"
    )
    for line in _tally.not_passed:
        terminalreporter.write_line(f"live test not passed: {line}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not session.config.getoption("--require-live"):
        return
    if _tally.passed == 0 or _tally.not_passed:
        # A green run with the live tier skipped or missing would hide a broken pipeline.
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
