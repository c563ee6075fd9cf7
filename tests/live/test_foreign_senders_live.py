"""Workflow 1 end to end against HAPI with senders that share no code with iop-bridge
(sandbox/senders: a US Core residential EHR, a PACIO Transitions of Care sender, a Gravity/BSeR
platform), each writing literal FHIR JSON its own way.

The sender posts; the poll takes the referral in; the tracker's referral page shows the
residential discharge date and the 7- and 30-day deadlines, the diagnoses with the co-occurring
flag, PHQ-9/GAD-7 with recomputed totals and any disagreement with the sender, the discharge
medications, the consent and its period, the sender's schedule preference and the collapsed loss
report. Accept -> the Task is accepted on HAPI; the first attended session -> the Task is
completed with the session's Encounter as its output.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from api.app import create_app
from integration.db.models import Referral
from integration.db.outbox_table import OutboxMessage, OutboxStatus
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_organization
from integration.inbound import engine as inbound
from integration.outbox.worker import run_worker
from integration.referrals import step_down, task_outbox
from integration.settings import Settings
from mappers.encounter import Attendance, Delivery, Session, SessionKind
from mappers.registry import MappingContext
from tests.conftest import live_base_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox" / "senders"))
from fhir_http import FhirHttp

pytestmark = [pytest.mark.live, pytest.mark.anyio]
NOW = datetime.now(UTC).replace(microsecond=0)
SECRET = "foreign-senders-live-secret-of-sufficient-length"
SESSIONS = MappingContext().session_id_system

# What each sender's page must show (its own data, as literal as the sender wrote it).
EXPECTED = {
    "us_core_ehr": {
        "days_before_today": 3,
        "shows": ["Alcohol dependence, uncomplicated", "Major depressive disorder, recurrent",
                  "sertraline 50 MG Oral Tablet", "NDC 68533-056-12", "Trazodone 50 mg tablet",
                  "evening group schedule", "ASAM 3.5"],
        "disagreement": "PHQ-9: the sender&#39;s total 12 disagrees with 10",
    },
    "pacio_toc": {
        "days_before_today": 5,
        "shows": ["Opioid dependence, uncomplicated", "Post-traumatic stress disorder",
                  "buprenorphine 8 MG / naloxone 2 MG Sublingual Film", "Prefers morning groups",
                  "ASAM 3.7"],
        "disagreement": None,
    },
    "gravity_bser": {
        "days_before_today": 2,
        "shows": ["Alcohol dependence, uncomplicated", "Generalized anxiety disorder",
                  "Needs an evening schedule", "ASAM 3.7",
                  'id="package-medications-none"'],  # a BSeR referral without a medication list
        "disagreement": None,
    },
}  # fmt: skip


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    return live_settings.model_copy(
        update={"organization_id": f"IOP-{unique}", "auth_jwt_secret": SecretStr(SECRET)}
    )


@pytest.fixture
async def organization(fhir: FhirClient, settings: Settings) -> str:
    return await ensure_organization(fhir, settings, name="Synthetic IOP")


@pytest.fixture
async def sender_http() -> AsyncIterator[FhirHttp]:
    client = FhirHttp(live_base_url())
    yield client
    await client.aclose()


async def _drain(engine: Engine, fhir: FhirClient) -> None:
    """Run the outbox worker until every message is delivered (none may go dead)."""
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(engine, fhir, worker_id="live-foreign", stop_event=stop, poll_interval=0.1)
    )

    def unsettled() -> dict[str, int]:
        with session_scope(engine) as session:
            query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            counts = {status: n for status, n in session.execute(query)}
        return {s: n for s, n in counts.items() if s != OutboxStatus.DELIVERED}

    try:
        async with asyncio.timeout(90):
            while (left := unsettled()) and OutboxStatus.DEAD not in left:
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await worker
    assert unsettled() == {}


async def _page(settings: Settings, referral_key: int) -> str:
    claims = {"sub": "cm-live", "role": "case-manager", "org": settings.organization_id,
              "aud": "iop-bridge", "exp": int(time.time()) + 600}  # fmt: skip
    headers = {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        response = await client.get(f"/tracker/referrals/{referral_key}", headers=headers)
    assert response.status_code == 200, response.text
    return response.text


async def take_in(
    name: str,
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    sender_http: FhirHttp,
    unique: str,
) -> tuple[Any, Referral]:
    """The sender ``name`` refers a client; the poll takes the referral in. The sender's
    answer (Task id, identifier) and the stored referral row."""
    sender: ModuleType = importlib.import_module(name)
    iop = (settings.organization_id_system, settings.organization_id)
    referred = await sender.refer(sender_http, iop, int(unique, 16) % 10**5, date.today())
    await inbound.poll_tasks(fhir, engine, settings, organization)
    with session_scope(engine) as session:
        row = session.scalar(select(Referral).where(Referral.business_id == referred.identifier[1]))
        assert row is not None, f"{name}: referral not taken in"
        session.expunge(row)
    return referred, row


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_foreign_sender__taken_in_shown_accepted_and_completed(
    name: str,
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    sender_http: FhirHttp,
    unique: str,
) -> None:
    referred, row = await take_in(name, fhir, engine, settings, organization, sender_http, unique)
    referral_key, discharged = row.id, row.residential_discharge_date
    expected: dict[str, Any] = EXPECTED[name]
    assert discharged == date.today() - timedelta(days=expected["days_before_today"])

    html = await _page(settings, referral_key)
    for text in [
        *expected["shows"],
        discharged.isoformat(),
        "co-occurring SUD and mental health",
        'id="fui-7"',
        'id="fui-30"',
        'id="loss-report"',
        'id="package-consent"',
    ]:
        assert text in html, f"{name}: {text!r} not on the page"  # fmt: skip
    assert "The referral package did not map" not in html
    if expected["disagreement"]:
        assert expected["disagreement"] in html
    else:
        assert "disagrees with" not in html

    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=NOW)
    await _drain(engine, fhir)
    task = await fhir.read("Task", referred.task_id)
    assert task["status"] == "accepted"

    start = (NOW + timedelta(days=1)).replace(hour=17, minute=0, second=0)
    attended = Session(f"S-{unique}", SessionKind.GROUP, Delivery.IN_PERSON, Attendance.ATTENDED,
                       start, start + timedelta(hours=3))  # fmt: skip
    with session_scope(engine) as session:
        step_down.record_session(session, referral_key, attended, at=NOW + timedelta(seconds=1))
    await _drain(engine, fhir)
    task = await fhir.read("Task", referred.task_id)
    encounter = f"Encounter/{task_outbox.encounter_id(SESSIONS, attended.identifier)}"
    assert task["status"] == "completed"
    assert [o["valueReference"] for o in task["output"]] == [{"reference": encounter}]
    assert task["requester"] == (await fhir.read("Task", referred.task_id))["requester"]
