"""A case manager in headless Chromium, against the live HAPI server, discharges a client whose
referral's Consent names only the IOP: the discharge is refused with the Part 2 message and a
link to the consent form; the case manager records the client's consent for the next provider
there; the same discharge then goes through and its aftercare Task reaches the provider.
Screenshots go to tests/artifacts/screenshots/consent-*.png."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.browser.conftest import case_manager_token, serve, sign_in
from tests.browser.test_tracker_walk import (
    TODAY,
    _aftercare_task,
    _deliver,
    _referred,
    walk_settings,
)
from tests.live.directory import register_next_provider

pytestmark = [pytest.mark.browser, pytest.mark.live]
T = TypeVar("T")
Shot = Callable[[Page, str], Path]


def test_consent__refused_discharge_then_recorded_consent_then_discharged(
    browser_context: BrowserContext, tmp_path: Path, unique: str, screenshot: Shot
) -> None:
    settings = walk_settings(tmp_path / "consent.db", unique)
    with ThreadPoolExecutor(1) as pool:

        def run(work: Coroutine[Any, Any, T]) -> T:
            return pool.submit(asyncio.run, work).result()

        next_provider = register_next_provider(settings, unique)
        identifier, _ = run(_referred(settings, unique, next_provider, consented=False))
        page = browser_context.new_page()
        with serve(settings) as base:
            sign_in(page, base, case_manager_token(settings.organization_id, subject="cm-part2"))
            page.click(f'tr[data-referral="{identifier}"] a')
            _treated_and_reconciled(page)
            run(_deliver(settings))

            _fill_discharge(page, f"AFTER-{unique}")
            page.click("#discharge-form button")
            title = page.text_content("#action-error-title") or ""
            assert "42 CFR Part 2" in title and next_provider in title, title
            problems = page.text_content("#action-error-problems") or ""
            assert f"recipient {next_provider} is not named" in problems, problems
            screenshot(page, "consent-1-discharge-refused")

            page.click("#record-consent-hint a")  # to the consent form
            assert page.url.endswith("#consent-form")
            assert page.input_value("#consent-recipient") == f"AFTER-{unique}"
            page.fill("#consent-end", (date.fromisoformat(TODAY) + timedelta(days=365)).isoformat())
            page.fill("#consent-disclosed", "all SUD treatment records")
            page.click("#consent-form button")
            assert page.locator("#done").count() == 1, page.text_content("#actions")
            assert page.locator(f'li.recorded-consent[data-recipient="AFTER-{unique}"]').count()
            queued = page.locator('tr.delivery[data-state="queued"]').all_text_contents()
            assert any("Consent" in row for row in queued), queued  # its delivery is listed
            screenshot(page, "consent-2-recorded")

            _fill_discharge(page, f"AFTER-{unique}")
            page.click("#discharge-form button")
            assert page.locator("#done").count() == 1, page.text_content("#actions")
            assert page.locator("#discharge-form").count() == 0  # discharged
            run(_deliver(settings))
            aftercare = run(_aftercare_task(settings, identifier))
            assert aftercare["owner"]["reference"] == next_provider
            screenshot(page, "consent-3-discharged")


def _treated_and_reconciled(page: Page) -> None:
    """Accept, the intake, the first session and the reconciled list, through the forms."""
    page.click("#accept-form button")
    page.fill("#schedule-date", TODAY)
    page.fill("#schedule-time", "09:00")
    page.click("#schedule-form button")
    page.fill("#session-date", TODAY)
    page.fill("#session-time", "09:00")
    page.fill("#session-minutes", "180")
    page.click("#session-form button")
    page.click("#reconcile-form button")  # every line continues
    assert page.locator("#discharge-form").count() == 1, page.text_content("#actions")


def _fill_discharge(page: Page, next_provider: str) -> None:
    page.fill("#discharge-next_provider", next_provider)
    page.fill("#discharge-next_provider_name", "Harbor Street Outpatient Counseling")
    page.fill("#discharge-relapse_prevention", "Call sponsor; leave within 5 minutes")
    page.fill("#discharge-medication_follow_up", "Prescriber visit within 14 days")
