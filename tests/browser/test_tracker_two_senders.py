"""Two senders, one referral id (issue 13), in headless Chromium against the live HAPI server: a
US Core-style EHR and the residential EHR both refer a client under the same Task identifier
value (each in its own identifier system). The tracker lists both; the case manager opens the
second, accepts, reconciles and discharges it from the pages; HAPI then holds that referral's
Task accepted, its reconciled List and its aftercare Task, while the first sender's Task is
still requested and nothing was written under the first referral's names. Screenshot:
tests/artifacts/screenshots/two-senders-*.png."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page
from sqlalchemy import select

from fhir_profiles.canonical import MEDICATION_LIST_ID_SYSTEM
from fhir_profiles.canonical import TASK_ID_SYSTEM as OUR_TASKS
from integration.db.models import Referral
from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_organization
from integration.inbound import engine as inbound
from integration.settings import Settings
from tests.browser.conftest import SECRET, case_manager_token, serve, sign_in
from tests.browser.test_tracker_walk import _delivered, _ehr
from tests.conftest import live_base_url
from tests.live.directory import register_next_provider

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox" / "senders"))
import us_core_ehr
from fhir_http import FhirHttp

pytestmark = [pytest.mark.browser, pytest.mark.live]
T = TypeVar("T")


def test_two_senders__the_tracker_acts_on_the_referral_it_shows(
    browser_context: BrowserContext, tmp_path: Path, unique: str, screenshot: Callable[..., Path]
) -> None:
    settings = Settings(
        fhir_base_url=live_base_url(),  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'two.db'}",
        organization_id=f"IOP-{unique}",
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        retry_initial_wait_seconds=0.05,
        retry_max_wait_seconds=1.0,
    )
    with ThreadPoolExecutor(1) as pool:

        def run(work: Coroutine[Any, Any, T]) -> T:
            return pool.submit(asyncio.run, work).result()

        next_provider = register_next_provider(settings, unique)
        shared, (first, second) = run(_both_referred(settings, unique, next_provider))
        page = browser_context.new_page()
        with serve(settings) as base:
            sign_in(page, base, case_manager_token(settings.organization_id, subject="cm-two"))
            assert page.locator(f'tr[data-referral="{shared}"]').count() == 2
            page.click(f'tr[data-referral="{shared}"] a[href="/tracker/referrals/{second}"]')
            page.click("#accept-form button")
            _delivered(page, run, settings)
            page.click("#reconcile-form button")
            _delivered(page, run, settings)
            _discharge(page, unique)
            _delivered(page, run, settings)
            assert page.locator("#discharge-form").count() == 0
            screenshot(page, "two-senders-1-second-discharged")
            page.goto(f"{base}/tracker/referrals/{first}")
            assert page.locator("#accept-form").count() == 1  # still requested
            assert page.locator("tr.delivery").count() == 0  # nothing sent about it
            screenshot(page, "two-senders-2-first-untouched")
        on_hapi = run(_on_hapi(settings, shared, second))
    assert on_hapi == {
        "our Task": "accepted",
        "their Task": "requested",
        "second's reconciled List": 1,
        "first's reconciled List": 0,
        "second's aftercare Task": [next_provider],
        "first's aftercare Task": [],
    }


async def _both_referred(
    settings: Settings, unique: str, next_provider: str
) -> tuple[str, tuple[int, int]]:
    """The US Core EHR refers first, then the residential EHR under the same value; iop-bridge
    polls after each. The shared value and the two referrals' row keys, in that order."""
    fhir = FhirClient.from_settings(settings)
    engine = create_db_engine(settings.database_url)
    ehr, vendor = _ehr(settings, unique), FhirHttp(live_base_url())
    iop = (settings.organization_id_system, settings.organization_id)
    n = int(unique, 16) % 10**5
    shared = f"SD-{n:06d}"  # the residential EHR's value for package n
    try:
        organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
        parties = await vendor.parties(us_core_ehr.ORGANIZATION, iop)
        practitioner = await vendor.ensure(us_core_ehr.PRACTITIONER)
        bundle = us_core_ehr.package(n, parties, practitioner, date.today())
        # the vendor happens to number its referral as the residential program does
        await vendor.transaction(json.loads(json.dumps(bundle).replace(f"CR-REF-{n:05d}", shared)))
        await inbound.poll_tasks(fhir, engine, settings, organization)
        referred = await ehr.refer(n, also_disclose_to=(next_provider,))
        assert referred.identifier == shared
        await inbound.poll_tasks(fhir, engine, settings, organization)
        with session_scope(engine) as session:
            query = select(Referral.id).where(Referral.business_id == shared)
            first, second = session.scalars(query.order_by(Referral.id)).all()
        return shared, (first, second)
    finally:
        await ehr.aclose()
        await vendor.aclose()
        await fhir.aclose()
        engine.dispose()


def _discharge(page: Page, unique: str) -> None:
    page.fill("#discharge-next_provider", f"AFTER-{unique}")
    page.fill("#discharge-next_provider_name", "Harbor Street Outpatient Counseling")
    page.fill("#discharge-relapse_prevention", "Call sponsor; leave within 5 minutes")
    page.fill("#discharge-medication_follow_up", "Prescriber visit within 14 days")
    page.click("#discharge-form button")


async def _on_hapi(settings: Settings, shared: str, second: int) -> dict[str, Any]:
    """What HAPI holds under each referral's names."""
    async with httpx.AsyncClient(base_url=settings.fhir_base, timeout=30) as client:

        async def found(kind: str, system: str, value: str) -> list[dict[str, Any]]:
            answer = await client.get(f"/{kind}", params={"identifier": f"{system}|{value}"})
            answer.raise_for_status()
            return [e["resource"] for e in answer.json().get("entry") or []]

        [ours] = await found("Task", OUR_TASKS, shared)
        [theirs] = await found("Task", us_core_ehr.TASK_SYSTEM, shared)
        own = f"{shared}@{second}"
        lists = [await found("List", MEDICATION_LIST_ID_SYSTEM, f"{stem}-RECONCILED")
                 for stem in (own, shared)]  # fmt: skip
        aftercare = [await found("Task", OUR_TASKS, f"{stem}-AFTERCARE") for stem in (own, shared)]
    return {
        "our Task": ours["status"],
        "their Task": theirs["status"],
        "second's reconciled List": len(lists[0]),
        "first's reconciled List": len(lists[1]),
        "second's aftercare Task": [t["owner"]["reference"] for t in aftercare[0]],
        "first's aftercare Task": [t["owner"]["reference"] for t in aftercare[1]],
    }
