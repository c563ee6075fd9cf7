"""The handoff tracker in headless Chromium: what a case manager sees on the page (flag counts,
the overdue flag on the right row, the timeline, the reconciliation, the charts drawn), over a
seeded store and over a live step-down flow through HAPI. Screenshots go to
tests/artifacts/screenshots/ (kept by CI as artifacts; look at them)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from integration.db import repositories as repo
from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_organization
from integration.inbound import engine as inbound
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from integration.outbox.queue import count_by_status
from integration.outbox.worker import run_worker
from integration.referrals import step_down
from integration.settings import Settings
from mappers import registry
from mappers.encounter import Attendance, Delivery, Session, SessionKind
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from mappers.registry import MappingContext
from tests.browser.conftest import SECRET, case_manager_token, serve, sign_in
from tests.browser.seed import seed_tracker
from tests.conftest import live_base_url
from tests.residential import ReadBack, read_back
from tests.servers import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
from residential_ehr import ResidentialEhr

pytestmark = pytest.mark.browser
ORG = "IOP-DEMO-ORG"
Shot = Callable[[Page, str], Path]


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens: no FHIR lookup succeeds


@pytest.fixture
def seeded_settings(tmp_path: Path) -> Settings:
    settings = Settings(
        fhir_base_url=_closed_port_url(),  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'tracker.db'}",
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        retry_max_attempts=1,
    )
    engine = create_db_engine(settings.database_url)
    seed_tracker(engine, organization=ORG, today=datetime.now(UTC).date())
    engine.dispose()
    return settings


def _text(page: Page, selector: str) -> str:
    return (page.locator(selector).first.text_content() or "").strip()


def test_tracker_list__counts_flags_and_rows(
    browser_context: BrowserContext, seeded_settings: Settings, screenshot: Shot
) -> None:
    page = browser_context.new_page()
    with serve(seeded_settings) as base:
        sign_in(page, base, case_manager_token(ORG))
        counts = {
            f: _text(page, f"#count-{f} .n")
            for f in ("total", "overdue-7", "overdue-30", "open-7", "met-7", "met-30")
        }
        assert counts == {
            "total": "5",
            "overdue-7": "2",
            "overdue-30": "1",
            "open-7": "1",
            "met-7": "1",
            "met-30": "2",
        }
        late = page.locator('tr[data-referral="SD-LATE"]')
        assert late.get_attribute("class") == "overdue"
        assert _text(page, 'tr[data-referral="SD-LATE"] .fui-7 .flag') == "Overdue"
        assert _text(page, 'tr[data-referral="SD-LATE"] .fui-30 .flag') == "Met"
        assert _text(page, 'tr[data-referral="SD-ONTIME"] .fui-7 .flag') == "Met"
        assert page.locator('tr[data-referral="SD-ELSEWHERE"]').count() == 0
        assert page.locator('tr[data-referral="SD-DECLINED"]').count() == 0
        screenshot(page, "tracker-list")

        page.click("#count-overdue-7")
        page.wait_for_url("**flag=overdue-7**")
        shown = page.locator("#handoffs tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.referral)"
        )
        assert sorted(shown) == ["SD-LATE", "SD-NOSHOW"]
        screenshot(page, "tracker-list-overdue-7")


def test_tracker_referral__timeline_reconciliation_and_charts(
    browser_context: BrowserContext, seeded_settings: Settings, screenshot: Shot
) -> None:
    page = browser_context.new_page()
    with serve(seeded_settings) as base:
        sign_in(page, base, case_manager_token(ORG))
        page.click('tr[data-referral="SD-LATE"] a')
        page.wait_for_url("**/tracker/referrals/*")
        kinds = page.locator("ol.timeline li").evaluate_all(
            "items => items.map(i => i.dataset.kind)"
        )
        for kind in (
            "received",
            "accepted",
            "intake",
            "no-show",
            "first-session",
            "reconciled",
            "deadline-overdue",
            "deadline-met",
        ):
            assert kind in kinds
        changes = page.locator("tr.reconciliation-row").evaluate_all(
            "rows => rows.map(r => r.dataset.change)"
        )
        assert changes == ["continued", "dose-changed", "stopped", "new"]
        _assert_charts_drawn(page, points=3)
        assert _text(page, "#plan-hours .flag") == "Within 9-19 h"
        screenshot(page, "tracker-referral")


def _assert_charts_drawn(page: Page, *, points: int) -> None:
    for title in ("PHQ-9", "GAD-7"):
        chart = page.locator(f'svg[data-instrument="{title}"]')
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert chart.locator("circle.point").count() == points
        assert chart.locator("polyline.line").count() == 1
        assert chart.locator("line.threshold").count() >= 3  # the severity thresholds
    hours = page.locator("svg.hours rect.bar")
    box = hours.bounding_box()
    assert box is not None and box["width"] > 0


# --- live: a real step-down flow through HAPI, then the tracker --------------------------------


@pytest.mark.live
def test_tracker__shows_a_live_step_down_flow(
    browser_context: BrowserContext, tmp_path: Path, unique: str, screenshot: Shot
) -> None:
    settings = Settings(
        fhir_base_url=live_base_url(),  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'live-tracker.db'}",
        organization_id=f"IOP-{unique}",  # apart from every other test's Tasks on the server
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        retry_initial_wait_seconds=0.05,
        retry_max_wait_seconds=1.0,
    )
    # The flow is asyncio; Playwright's sync API owns this thread's loop, so it runs in another.
    with ThreadPoolExecutor(1) as pool:
        identifier, referral_key = pool.submit(asyncio.run, _live_flow(settings, unique)).result()
    page = browser_context.new_page()
    with serve(settings) as base:
        sign_in(page, base, case_manager_token(settings.organization_id))
        row = f'tr[data-referral="{identifier}"]'
        assert _text(page, f"{row} .status") == "completed"
        assert _text(page, f"{row} .fui-7 .flag") == "Overdue"  # first attended on day 9
        assert _text(page, f"{row} .fui-30 .flag") == "Met"
        assert _text(page, f"{row} td:nth-child(9)") == "1"  # the no-show
        assert (_text(page, "#count-total .n"), _text(page, "#count-overdue-7 .n")) == ("1", "1")
        screenshot(page, "live-tracker-list")

        page.click(f"{row} a")
        page.wait_for_url(f"**/tracker/referrals/{referral_key}")
        kinds = page.locator("ol.timeline li").evaluate_all(
            "items => items.map(i => i.dataset.kind)"
        )
        for kind in (
            "discharge",
            "received",
            "accepted",
            "intake",
            "no-show",
            "first-session",
            "reconciled",
            "deadline-overdue",
            "deadline-met",
        ):
            assert kind in kinds, kinds
        changes = page.locator("tr.reconciliation-row").evaluate_all(
            "rows => rows.map(r => r.dataset.change)"
        )
        assert sorted(set(changes)) == ["continued", "dose-changed", "new", "stopped"]
        _assert_charts_drawn(page, points=3)
        assert page.locator("svg.hours").get_attribute("data-hours") == "10.0"
        screenshot(page, "live-tracker-referral")


async def _live_flow(settings: Settings, unique: str) -> tuple[str, int]:
    """The residential EHR refers; iop-bridge takes it in by poll; the case manager accepts,
    schedules, records a no-show and the first attended session, reconciles medications; the
    outbox delivers all of it. Returns the referral's business identifier and store id."""
    fhir = FhirClient.from_settings(settings)
    engine = create_db_engine(settings.database_url)
    ehr = ResidentialEhr.connect(
        settings.fhir_base,
        organization_id=f"RES-{unique}",
        iop_identifier=(settings.organization_id_system, settings.organization_id),
    )
    try:
        organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
        referred = await ehr.refer(int(unique, 16) % 10**6)
        await inbound.poll_tasks(fhir, engine, settings, organization)
        with session_scope(engine) as session:
            found = repo.get_referral(session, referred.identifier)
            assert found is not None, "the poll did not take the referral in"
            referral_key = found.id
        _case_manager_acts(engine, referral_key, referred, unique)
        await _drain(engine, fhir)
        task = await ehr.task(referred.identifier)
        assert task["status"] == "completed"  # the loop is closed on the server
        await _store_plan_from_server(fhir, engine, referred)
        return referred.identifier, referral_key
    finally:
        await ehr.aclose()
        await fhir.aclose()
        engine.dispose()


def _case_manager_acts(engine: Any, referral_key: int, referred: Any, unique: str) -> None:
    discharged: datetime = referred.package.discharged
    now = datetime.now(UTC)

    def session_on(day: int, attendance: Attendance, n: int) -> Session:
        start = (discharged + timedelta(days=day)).replace(hour=17, minute=0, second=0)
        kind, delivery = SessionKind.GROUP, Delivery.IN_PERSON
        return Session(
            f"S{n}-{unique}", kind, delivery, attendance, start, start + timedelta(hours=3)
        )

    steps = [
        lambda db: step_down.accept(db, referral_key, at=now),
        lambda db: step_down.schedule_intake(
            db, referral_key, (discharged + timedelta(days=4)).date(), at=now
        ),
        lambda db: step_down.record_session(
            db, referral_key, session_on(4, Attendance.NO_SHOW, 1), at=now
        ),
        lambda db: step_down.record_session(
            db, referral_key, session_on(9, Attendance.ATTENDED, 2), at=now
        ),
        lambda db: medication_lists.record_intake_list(
            db, referral_key, _intake_list(read_back(referred.package)), now
        ),
        lambda db: medications.reconcile_referral(db, referral_key, at=now),
    ]
    for step in steps:
        with session_scope(engine) as db:
            step(db)
    with session_scope(engine) as db:  # the IOP's own weekly scores after the package's
        referral = repo.get_referral(db, referred.identifier)
        for week, (phq9, gad7) in enumerate(((11, 9), (7, 5)), start=1):
            authored = discharged + timedelta(days=7 * week)
            for instrument, total, severity in (
                ("phq-9", phq9, "moderate" if phq9 >= 10 else "mild"),
                ("gad-7", gad7, "mild"),
            ):
                repo.add_assessment(
                    db,
                    referral,
                    business_id=f"{referred.identifier}-{instrument}-W{week}",
                    instrument=instrument,
                    total=total,
                    severity=severity,
                    authored=authored,
                )


def _intake_list(package: ReadBack) -> MedicationList:
    """The first four discharge medications kept, sertraline's dose doubled, the other four
    stopped, and one new over-the-counter medication."""
    tag = package.identifier
    kept = list(package.medications.entries[:4])
    kept[1] = replace(kept[1], dose_text="100 mg by mouth once daily", dose=Dose(100, "mg"))
    entries = tuple(replace(e, identifier=f"{tag}-IN-{i}") for i, e in enumerate(kept))
    new = MedicationEntry(f"{tag}-IN-NEW", "Melatonin 3 mg (patient reported)", times_per_day=1)
    return MedicationList(
        f"{tag}-INTAKE",
        "IOP intake medications",
        ListSource.IOP_INTAKE,
        datetime.now(UTC),
        (*entries, new),
    )


async def _store_plan_from_server(fhir: FhirClient, engine: Any, referred: Any) -> None:
    """The plan the residential program sent, read back from HAPI as iop-bridge maps it (no
    workflow stores plans yet: DESIGN.md's plan intake is still to come)."""
    system = MappingContext().care_plan_id_system
    page = await fhir.search(
        "CarePlan", {"identifier": f"{system}|{read_back(referred.package).plan_identifier}"}
    )
    [entry] = page["entry"]
    plan = registry.from_fhir(entry["resource"], MappingContext()).value
    document = {
        "identifier": plan.identifier,
        "status": plan.status,
        "level_of_care": plan.level_of_care,
        "modalities": [asdict(m) for m in plan.modalities],
    }
    with session_scope(engine) as session:
        referral = repo.get_referral(session, referred.identifier)
        assert referral is not None
        repo.save_plan(session, referral, business_id=plan.identifier, plan=document)


async def _drain(engine: Any, fhir: FhirClient) -> None:
    """Deliver the outbox until nothing is pending or in flight (none may go dead)."""
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(engine, fhir, worker_id="browser-live", stop_event=stop, poll_interval=0.1)
    )
    try:
        async with asyncio.timeout(120):
            while True:
                with session_scope(engine) as session:
                    counts = count_by_status(session)
                if not counts.get("pending") and not counts.get("in-flight"):
                    break
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await worker
    assert not counts.get("dead"), counts
