"""Browser tier wiring: the app served by uvicorn in a background thread, Debian's chromium driven
headless by Playwright (no browser download: ``executable_path``), a fresh profile per test, a
signed-in page, and screenshots kept under ``tests/artifacts/screenshots/``.

Without /usr/bin/chromium (scripts/setup.sh installs it) these tests are skipped, or fail under
``--require-live`` like the live tier: the test command must run them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import jwt
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from api.app import create_app
from integration.settings import Settings
from tests.servers import serve_in_thread

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
SECRET = "browser-test-secret-of-sufficient-length"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
    "--disable-gpu",
    "--disable-background-networking",  # no calls home from a test browser
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    message = f"{CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)"
    if browser_items and config.getoption("--require-live"):
        raise pytest.UsageError(message + " (--require-live: browser tests must run)")
    for item in browser_items:
        item.add_marker(pytest.mark.skip(reason=message))


def case_manager_token(organization: str, *, subject: str = "cm-browser") -> str:
    """A case manager's bearer JWT for the test secret (10 minutes)."""
    claims = {
        "sub": subject,
        "role": "case-manager",
        "org": organization,
        "aud": "iop-bridge",
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The app on 127.0.0.1:<free port> in a background thread; yields its base URL."""
    with serve_in_thread(create_app(settings), name="tracker-uvicorn") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def unique() -> str:
    """A suffix that keeps this test's business identifiers apart on the shared HAPI server."""
    return uuid.uuid4().hex[:10].upper()


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    # Per test, not per session: the sync driver holds an event loop on this thread while it
    # runs, which would break the asyncio tests that pytest runs after this one.
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser_context(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """Chromium with a fresh user-data-dir, so no cookie or cache outlives the test."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
    )
    try:
        yield context
    finally:
        context.close()


def sign_in(page: Page, base_url: str, token: str) -> None:
    """Sign in through the login form, the way a case manager does."""
    page.goto(f"{base_url}/tracker")
    assert page.url == f"{base_url}/tracker/login"  # no session yet: sent to sign in
    page.select_option("#kind", "token")
    page.fill("#credential", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/tracker")


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    """Saves a full-page screenshot as tests/artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
