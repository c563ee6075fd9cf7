"""A case manager walks one step-down through the tracker's pages alone, in headless Chromium,
against the live HAPI server: sign in, open the referral, accept, schedule the intake, record
the first session. After each step the outbox is delivered and the Task is read back from HAPI.
Screenshots of every step go to tests/artifacts/screenshots/walk-*.png."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from fhir_profiles.canonical import TASK_ID_SYSTEM as AFTERCARE_TASKS
from integration.db import repositories as repo
from integration.db.store import create_db_engine, session_scope
from integration.discharges.handoff_bundle import AFTERCARE_SUFFIX
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_organization
from integration.inbound import engine as inbound
from integration.settings import Settings
from tests.browser.conftest import SECRET, case_manager_token, serve, sign_in
from tests.browser.test_tracker_browser import _drain
from tests.conftest import live_base_url
from tests.live.directory import register_next_provider

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
from residential_ehr import ResidentialEhr

pytestmark = [pytest.mark.browser, pytest.mark.live]
T = TypeVar("T")
TODAY = datetime.now(UTC).date().isoformat()  # the intake and first session: this morning
Shot = Callable[[Page, str], Path]


def test_walk__a_whole_step_down_from_the_pages_alone(
    browser_context: BrowserContext, tmp_path: Path, unique: str, screenshot: Shot
) -> None:
    settings = walk_settings(tmp_path / "walk.db", unique)
    # asyncio work (the EHR, the outbox) runs in another thread: Playwright owns this one's loop
    with ThreadPoolExecutor(1) as pool:

        def run(work: Coroutine[Any, Any, T]) -> T:
            return pool.submit(asyncio.run, work).result()

        next_provider = register_next_provider(settings, unique)
        identifier, client_name = run(_referred(settings, unique, next_provider))

        def server_task() -> dict[str, Any]:
            return run(_task(settings, unique, identifier))

        page = browser_context.new_page()
        with serve(settings) as base:
            sign_in(page, base, case_manager_token(settings.organization_id, subject="cm-walk"))
            page.click(f'tr[data-referral="{identifier}"] a')
            assert page.text_content("#client-name") == client_name  # as the EHR wrote it
            assert page.text_content("#client-language") == "es"
            screenshot(page, "walk-1-received")

            page.click("#accept-form button")
            _delivered(page, run, settings)
            task = server_task()
            assert (task["status"], _business(task)) == ("accepted", "3.0")
            screenshot(page, "walk-2-accepted")

            page.fill("#schedule-date", TODAY)
            page.fill("#schedule-time", "09:00")
            page.select_option("#schedule-delivery", "virtual")
            page.click("#schedule-form button")
            _delivered(page, run, settings)
            assert page.text_content("#intake") == f"{TODAY} 09:00 · telehealth"
            assert _business(server_task()) == "5.1.1"
            screenshot(page, "walk-3-scheduled")

            page.fill("#session-date", "1999-12-31")  # a slip first: the error names the field
            page.fill("#session-time", "09:00")
            page.click("#session-form button")
            assert "date: must be between" in (page.text_content("#session-date-error") or "")
            assert page.input_value("#session-time") == "09:00"  # what was typed stays
            screenshot(page, "walk-4-session-error")
            page.fill("#session-date", TODAY)
            page.fill("#session-minutes", "180")
            page.select_option("#session-attendance", "attended")
            page.click("#session-form button")
            _delivered(page, run, settings)
            task = server_task()
            assert (task["status"], _business(task)) == ("completed", "7.0")
            assert task["output"][0]["valueReference"]["reference"].startswith("Encounter/")
            screenshot(page, "walk-5-first-session")

            # reconcile: the first line's dose changes, the second stops, one is new
            page.select_option("#reconcile-line-0", "change-dose")
            page.fill("#reconcile-dose-0", "100 mg")
            page.select_option("#reconcile-line-1", "stop")
            page.fill("#reconcile-new-1-medication", "Naltrexone 50 MG Oral Tablet")
            page.fill("#reconcile-new-1-dose", "50 mg")
            page.click("#reconcile-form button")
            _delivered(page, run, settings)
            changes = page.locator("tr.reconciliation-row").evaluate_all(
                "rows => rows.map(r => r.dataset.change)"
            )
            assert {"dose-changed", "stopped", "new", "continued"} <= set(changes), changes
            screenshot(page, "walk-6-reconciled")

            page.fill("#discharge-next_provider", f"AFTER-{unique}")
            page.fill("#discharge-next_provider_name", "Harbor Street Outpatient Counseling")
            page.fill("#discharge-relapse_prevention", "Call sponsor; leave within 5 minutes")
            page.fill("#discharge-medication_follow_up", "Prescriber visit within 14 days")
            page.fill("#discharge-support_groups", "SMART Recovery, Tuesday evenings")
            page.click("#discharge-form button")
            _delivered(page, run, settings)
            assert page.locator("#discharge-form").count() == 0  # discharged: not offered again
            aftercare = run(_aftercare_task(settings, identifier))
            assert (aftercare["status"], aftercare["owner"]["reference"]) == (
                "requested", next_provider,
            )  # fmt: skip
            screenshot(page, "walk-7-discharged")


def walk_settings(database: Path, unique: str) -> Settings:
    """The app's settings for a walk: the live HAPI, its own SQLite store and IOP."""
    return Settings(
        fhir_base_url=live_base_url(),  # type: ignore[arg-type]
        database_url=f"sqlite:///{database}",
        organization_id=f"IOP-{unique}",  # apart from every other test's Tasks on the server
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        retry_initial_wait_seconds=0.05,
        retry_max_wait_seconds=1.0,
        program_timezone="America/New_York",
    )


def _ehr(settings: Settings, unique: str) -> ResidentialEhr:
    return ResidentialEhr.connect(
        settings.fhir_base, organization_id=f"RES-{unique}",
        iop_identifier=(settings.organization_id_system, settings.organization_id),
    )  # fmt: skip


async def _task(settings: Settings, unique: str, identifier: str) -> dict[str, Any]:
    """The referral's Task as the residential EHR reads it back from HAPI."""
    ehr = _ehr(settings, unique)
    try:
        return await ehr.task(identifier)
    finally:
        await ehr.aclose()


async def _aftercare_task(settings: Settings, identifier: str) -> dict[str, Any]:
    """The aftercare Task of the discharge, as HAPI holds it."""
    async with httpx.AsyncClient(timeout=30) as client:
        found = await client.get(
            f"{settings.fhir_base}/Task",
            params={"identifier": f"{AFTERCARE_TASKS}|{identifier}{AFTERCARE_SUFFIX}"},
        )
    [entry] = found.json()["entry"]
    return dict(entry["resource"])


async def _referred(
    settings: Settings, unique: str, next_provider: str, *, consented: bool = True
) -> tuple[str, str]:
    """The residential EHR refers a client (its Consent also names the next provider unless
    ``consented`` is False); iop-bridge takes the Task in by its poll. Returns the referral's
    identifier and the client's name as the EHR wrote it."""
    fhir = FhirClient.from_settings(settings)
    engine = create_db_engine(settings.database_url)
    ehr = _ehr(settings, unique)
    try:
        organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
        referred = await ehr.refer(
            int(unique, 16) % 10**6, language="es",
            also_disclose_to=(next_provider,) if consented else (),
        )
        await inbound.poll_tasks(fhir, engine, settings, organization)
        with session_scope(engine) as session:
            assert repo.get_referral(session, referred.identifier) is not None
        return referred.identifier, referred.package.client_name
    finally:
        await ehr.aclose()
        await fhir.aclose()
        engine.dispose()


def _delivered(
    page: Page, run: Callable[[Coroutine[Any, Any, None]], None], settings: Settings
) -> None:
    """After the redirect: the page says queued; deliver the outbox; the reloaded page says
    delivered."""
    assert page.locator("#done").count() == 1, page.text_content("#actions")
    assert page.locator('tr.delivery[data-state="queued"]').count() >= 1
    run(_deliver(settings))
    page.reload()
    assert page.locator('tr.delivery[data-state="queued"]').count() == 0
    assert page.locator('tr.delivery[data-state="delivered"]').count() >= 1


async def _deliver(settings: Settings) -> None:
    fhir = FhirClient.from_settings(settings)
    engine = create_db_engine(settings.database_url)
    try:
        await _drain(engine, fhir)
    finally:
        await fhir.aclose()
        engine.dispose()


def _business(task: dict[str, Any]) -> str:
    return str(task["businessStatus"]["coding"][0]["code"])
