"""Workflow 1 end to end against HAPI: the residential EHR refers, iop-bridge closes the loop.

The EHR posts a package; the poll takes it in; accept, intake scheduled, a no-show and the first
attended session each go through the outbox worker to HAPI's Task, whose requester-side elements
stay as the EHR wrote them. The session's Encounter exists exactly once, even when every message
is delivered a second time. Declining and the EHR's cancellation close the other two paths.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from integration.db.models import Referral
from integration.db.outbox_table import OutboxMessage, OutboxStatus
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_organization
from integration.inbound import engine as inbound
from integration.outbox.queue import ClaimedMessage
from integration.outbox.worker import deliver_message, run_worker
from integration.referrals import actions, step_down, task_outbox
from integration.settings import Settings
from integration.workflow_errors import ReferralActionRefused
from mappers import bundle
from mappers.encounter import Attendance, Delivery, Session, SessionKind
from mappers.registry import MappingContext
from tests.conftest import live_base_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
from residential_ehr import ResidentialEhr

pytestmark = [pytest.mark.live, pytest.mark.anyio]
NOW = datetime.now(UTC).replace(microsecond=0)
SESSIONS = MappingContext().session_id_system
REQUESTER_ELEMENTS = (
    "identifier",
    "intent",
    "code",
    "focus",
    "for",
    "authoredOn",
    "requester",
    "owner",
)


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    return live_settings.model_copy(update={"organization_id": f"IOP-{unique}"})


@pytest.fixture
async def organization(fhir: FhirClient, settings: Settings) -> str:
    return await ensure_organization(fhir, settings, name="Synthetic IOP")


@pytest.fixture
async def ehr(settings: Settings, organization: str, unique: str) -> AsyncIterator[ResidentialEhr]:
    client = ResidentialEhr.connect(
        live_base_url(),
        organization_id=f"RES-{unique}",
        iop_identifier=(settings.organization_id_system, settings.organization_id),
    )
    yield client
    await client.aclose()


async def _take_in(
    fhir: FhirClient, engine: Engine, settings: Settings, organization: str, business_id: str
) -> int:
    await inbound.poll_tasks(fhir, engine, settings, organization)
    with session_scope(engine) as session:
        found = session.scalar(select(Referral.id).where(Referral.business_id == business_id))
    assert found is not None, f"referral {business_id} was not taken in"
    return int(found)


def _unsettled(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        counts = {status: n for status, n in session.execute(query)}
    return {s: n for s, n in counts.items() if s != OutboxStatus.DELIVERED}


async def _drain(engine: Engine, fhir: FhirClient) -> None:
    """Run the outbox worker until every message is delivered (none may go dead)."""
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(engine, fhir, worker_id="live-step-down", stop_event=stop, poll_interval=0.1)
    )
    try:
        async with asyncio.timeout(90):
            while (left := _unsettled(engine)) and OutboxStatus.DEAD not in left:
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await worker
    assert _unsettled(engine) == {}


def _code(task: dict[str, Any]) -> str:
    return str(task["businessStatus"]["coding"][0]["code"])


def _session(identifier: str, attendance: Attendance, day: int) -> Session:
    start = (NOW + timedelta(days=day)).replace(hour=17, minute=0, second=0)
    return Session(
        identifier,
        SessionKind.GROUP,
        Delivery.IN_PERSON,
        attendance,
        start,
        start + timedelta(hours=3),
    )


async def test_step_down__accepted_scheduled_no_show_then_attended_completes_the_task(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    ehr: ResidentialEhr,
    unique: str,
) -> None:
    referred = await ehr.refer(int(unique, 16))
    posted = await fhir.read("Task", referred.task_id)
    referral_key = await _take_in(fhir, engine, settings, organization, referred.identifier)

    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=NOW)
    await _drain(engine, fhir)
    task = await fhir.read("Task", referred.task_id)
    assert (task["status"], _code(task)) == ("accepted", "3.0")
    assert {k: task[k] for k in REQUESTER_ELEMENTS} == {k: posted[k] for k in REQUESTER_ELEMENTS}

    with session_scope(engine) as session:
        step_down.schedule_intake(session, referral_key, date.today(), at=NOW)
    await _drain(engine, fhir)
    assert _code(await fhir.read("Task", referred.task_id)) == "5.1.1"

    s1, s2 = f"S1-{unique}", f"S2-{unique}"
    with session_scope(engine) as session:
        step_down.record_session(session, referral_key, _session(s1, Attendance.NO_SHOW, 1), at=NOW)
    await _drain(engine, fhir)
    task = await fhir.read("Task", referred.task_id)
    assert (task["status"], _code(task)) == ("accepted", "5.1.2")

    with session_scope(engine) as session:
        step_down.record_session(
            session,
            referral_key,
            _session(s2, Attendance.ATTENDED, 2),
            at=NOW + timedelta(seconds=1),
        )
    await _drain(engine, fhir)
    await _redeliver_everything(engine, fhir)
    task = await fhir.read("Task", referred.task_id)
    encounter_ref = f"Encounter/{task_outbox.encounter_id(SESSIONS, s2)}"
    assert (task["status"], _code(task)) == ("completed", "7.0")
    assert [o["valueReference"] for o in task["output"]] == [{"reference": encounter_ref}]
    assert {k: task[k] for k in REQUESTER_ELEMENTS} == {k: posted[k] for k in REQUESTER_ELEMENTS}
    assert await fhir.count("Encounter", {"identifier": bundle.identifier_token(SESSIONS, s2)}) == 1
    encounter = await fhir.read("Encounter", encounter_ref.split("/")[1])
    assert encounter["status"] == "finished"
    assert encounter["basedOn"] == [posted["focus"]]
    assert encounter["subject"] == posted["for"]

    # Our own writes come back to the poll as new Task versions: they change nothing here.
    await inbound.poll_tasks(fhir, engine, settings, organization)
    with session_scope(engine) as session:
        assert session.get(Referral, referral_key).status == "completed"  # type: ignore[union-attr]


async def _redeliver_everything(engine: Engine, fhir: FhirClient) -> None:
    """Deliver every message once more, as after a lost acknowledgement: nothing duplicates."""
    with session_scope(engine) as session:
        rows = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        claimed = [
            ClaimedMessage(
                r.id,
                r.aggregate_type,
                r.aggregate_key,
                r.kind,
                r.payload,
                r.attempts,
                r.max_attempts,
                "redeliver",
            )
            for r in rows
        ]
    for message in claimed:
        await deliver_message(fhir, message)


async def test_step_down__declined_with_a_reason(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    ehr: ResidentialEhr,
    unique: str,
) -> None:
    referred = await ehr.refer(int(unique, 16))
    referral_key = await _take_in(fhir, engine, settings, organization, referred.identifier)
    with session_scope(engine) as session:
        step_down.decline(session, referral_key, "No evening group capacity this month", at=NOW)
    await _drain(engine, fhir)
    task = await fhir.read("Task", referred.task_id)
    assert (task["status"], _code(task)) == ("rejected", "4.0")
    assert task["statusReason"] == {"text": "No evening group capacity this month"}


async def test_step_down__cancelled_by_the_residential_program(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    ehr: ResidentialEhr,
    unique: str,
) -> None:
    referred = await ehr.refer(int(unique, 16))
    referral_key = await _take_in(fhir, engine, settings, organization, referred.identifier)
    await ehr.cancel(referred.identifier, "Client chose another program")
    await inbound.poll_tasks(fhir, engine, settings, organization)
    with session_scope(engine) as session:
        row = session.get(Referral, referral_key)
        assert row is not None and row.status == "cancelled"


async def test_step_down__no_discharge_date__accept_refused_until_the_case_manager_records_it(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    ehr: ResidentialEhr,
    unique: str,
) -> None:
    # the residential program refers while the stay is in progress: its Encounter has no end
    referred = await ehr.refer(int(unique, 16), discharge_known=False)
    referral_id = await _take_in(fhir, engine, settings, organization, referred.identifier)
    with pytest.raises(ReferralActionRefused) as refused, session_scope(engine) as session:
        referral = session.get(Referral, referral_id)
        assert referral is not None and referral.residential_discharge_date is None
        actions.perform(session, referral, actions.ACCEPT, None, at=NOW, session_ids="x")
    assert [p.path for p in refused.value.problems] == ["Encounter.period.end"]
    assert _unsettled(engine) == {}  # nothing queued for the server
    with session_scope(engine) as session:
        referral = session.get(Referral, referral_id)
        assert referral is not None
        fields = {actions.DISCHARGE_DATE: NOW.date().isoformat()}
        stated = actions.parse(actions.ACCEPT, fields, settings.program_zone())
        actions.perform(session, referral, actions.ACCEPT, stated, at=NOW, session_ids="x")
    await _drain(engine, fhir)
    task = await fhir.read("Task", referred.task_id)
    assert (task["status"], _code(task)) == ("accepted", "3.0")
    with session_scope(engine) as session:
        referral = session.get(Referral, referral_id)
        assert referral is not None and referral.residential_discharge_date == NOW.date()
