"""Workflow 3 against HAPI: the discharge document lands once and validates, the aftercare Task
reaches the next provider, the simulated provider accepts it, and check_aftercare records the
acknowledgement. Without a consent naming the next provider the discharge is refused and
nothing is stored or sent."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from fhir_profiles import canonical
from fhir_profiles.registry import conformance_resources
from integration.db import models
from integration.db import repositories as repo
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.discharges import aftercare, workflow
from integration.fhir.client import FhirClient
from integration.fhir.conformance import upload_conformance, validate
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from integration.outbox.queue import ClaimedMessage
from integration.outbox.worker import deliver_message
from integration.settings import Settings
from integration.workflow_errors import DisclosureRefused
from mappers import encounter
from mappers.bundle import identifier_token
from mappers.discharge import AftercarePlan
from mappers.discharge_document import DOCUMENT_ID_SYSTEM
from mappers.discharge_reader import discharge_from_document
from tests.builders.sessions import make_session
from tests.live.test_medications_live import (
    RECEIVED,
    count,
    drain_outbox,
    intake_list,
    one,
    post_package,
    store_referral,
)
from tests.residential import ReadBack

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
import aftercare_provider as provider

# US Core on the server: the discharge document is validated against our profiles, which derive
# from it (alone, or first in a run, nothing else has loaded it yet)
pytestmark = [pytest.mark.live, pytest.mark.anyio, pytest.mark.usefixtures("us_core")]
DISCHARGED = RECEIVED + timedelta(weeks=9, days=4, hours=15)  # Friday of week 10


def _next_provider(settings: Settings) -> str:
    """The simulated provider's Organization, created through its own client."""
    with provider.http_client(settings.fhir_base) as client:
        return provider.ensure_organization(
            client, name="Harbor Street Outpatient Counseling", identifier=uuid.uuid4().hex
        )


def _aftercare(next_provider: str) -> AftercarePlan:
    return AftercarePlan(
        next_provider=next_provider,
        next_provider_name="Harbor Street Outpatient Counseling",
        relapse_prevention="Triggers: payday, old friends; call sponsor; leave within 5 minutes",
        medication_follow_up="Prescriber visit for sertraline and buprenorphine within 14 days",
        support_groups=("SMART Recovery, Tuesday evenings",),
    )


def _ready_for_discharge(engine: Engine, referral_id: str, package: ReadBack) -> int:
    """Ten weeks of sessions, two a week (one no-show), and the medication list reconciled;
    the referral's row key."""
    with session_scope(engine) as session:
        referral = repo.get_referral(session, referral_id)
        assert referral is not None
        for week in range(10):
            for day, attendance in ((0, "attended"), (2, "attended" if week != 3 else "no-show")):
                repo.record_session(
                    session, referral, business_id=f"{referral_id}-S{week}-{day}",
                    starts_at=RECEIVED + timedelta(weeks=week, days=day, hours=9),
                    attendance=models.Attendance(attendance),
                )  # fmt: skip
        intake = intake_list(package, version=1)
        medication_lists.record_intake_list(session, referral.id, intake, RECEIVED)
        medications.reconcile_referral(session, referral.id, at=RECEIVED)
        return referral.id


async def _last_session_on_the_server(fhir: FhirClient, referral_id: str, package: ReadBack) -> str:
    """Week 10's Monday session (the last attended) as the session workflow writes it."""
    token = identifier_token(canonical.MRN_SYSTEM, package.client.mrn)
    [found] = (await fhir.search("Patient", {"identifier": token}))["entry"]
    identifier = f"{referral_id}-S9-2"
    starts = RECEIVED + timedelta(weeks=9, days=2, hours=9)
    session = make_session(identifier=identifier, start=starts, end=starts + timedelta(hours=3))
    await fhir.create(encounter.to_fhir(
        session, id_system=canonical.SESSION_ID_SYSTEM,
        subject_reference=f"Patient/{found['resource']['id']}",
    ))  # fmt: skip
    return identifier


async def _redeliver_discharge(engine: Engine, fhir: FhirClient) -> None:
    with session_scope(engine) as session:
        query = select(OutboxMessage).where(OutboxMessage.aggregate_type == "discharge")
        row = session.scalars(query).one()
        message = ClaimedMessage(
            row.id, row.aggregate_type, row.aggregate_key, row.kind, row.payload, row.attempts,
            row.max_attempts, "redeliver",
        )  # fmt: skip
    delivered = await deliver_message(fhir, message)
    # document, request, task, DocumentReference, the IOP's PractitionerRole
    assert [d.label for d in delivered] == ["matched"] * 5


async def test_discharge__document_once_valid_and_the_aftercare_loop_closes(
    fhir: FhirClient, engine: Engine, live_settings: Settings
) -> None:
    await upload_conformance(fhir, conformance_resources())
    next_provider = _next_provider(live_settings)
    package = await post_package(fhir, consent_recipients=(next_provider,))
    referral_id = store_referral(engine, package)
    referral_key = _ready_for_discharge(engine, referral_id, package)
    last_session = await _last_session_on_the_server(fhir, referral_id, package)
    result = await workflow.discharge(
        engine, fhir, referral_key, iop_organization="Organization/iop-program",
        discharged_at=DISCHARGED, aftercare=_aftercare(next_provider),
        at=DISCHARGED + timedelta(hours=1),
    )  # fmt: skip
    assert result.has_substance_use and result.consent is not None
    await drain_outbox(engine, fhir)
    await _redeliver_discharge(engine, fhir)  # a worker died after HAPI committed: sent again

    assert await count(fhir, "Bundle", DOCUMENT_ID_SYSTEM, result.document_identifier) == 1
    document = await one(fhir, "Bundle", DOCUMENT_ID_SYSTEM, result.document_identifier)
    report = await validate(fhir, {k: v for k, v in document.items() if k not in ("id", "meta")})
    assert report.errors == (), [str(e) for e in report.errors]
    summary = discharge_from_document(document).value
    assert (summary.course.weeks, summary.course.sessions_attended) == (10, 19)
    assert summary.course.sessions_missed == 1 and summary.part2_notice is not None
    assert None not in (summary.plan_of_care, summary.phq9, summary.gad7)
    assert [d.diagnosis.icd10_code for d in summary.diagnoses] == ["F10.20", "F43.10", "F33.1"]
    task_system = canonical.TASK_ID_SYSTEM
    assert await count(fhir, "Task", task_system, result.aftercare_identifier) == 1
    # BSeR: the aftercare Task's requester is the IOP's PractitionerRole of its Organization;
    # PACIO TOC: the same role authors the document.
    task = await one(fhir, "Task", task_system, result.aftercare_identifier)
    role = await fhir.read(*task["requester"]["reference"].split("/"))
    assert role["resourceType"] == "PractitionerRole"
    assert role["organization"]["reference"] == "Organization/iop-program"
    roles = canonical.PRACTITIONER_ROLE_ID_SYSTEM
    assert await count(fhir, "PractitionerRole", roles, role["identifier"][0]["value"]) == 1
    composition = document["entry"][0]["resource"]
    authors = [e["resource"] for e in document["entry"]
               if e["fullUrl"] == composition["author"][0]["reference"]]  # fmt: skip
    assert [a["resourceType"] for a in authors] == ["PractitionerRole"]
    # PACIO TOC: the encounter is the last attended session, held by the document.
    [held] = [e["resource"] for e in document["entry"]
              if e["fullUrl"] == composition["encounter"]["reference"]]  # fmt: skip
    assert held["identifier"][0]["value"] == last_session
    assert (await aftercare.check_aftercare(fhir, engine, referral_key)).acknowledged_at is None

    with provider.http_client(live_settings.fhir_base) as client:
        accepted = provider.accept_all(client, next_provider)
    status = await aftercare.check_aftercare(fhir, engine, referral_key)
    assert [status.task] == accepted
    assert (status.status, status.business_status) == ("accepted", "3.0")
    assert status.acknowledged_at is not None
    assert await aftercare.poll_open_discharges(fhir, engine) == []  # the loop is closed
    with session_scope(engine) as session:
        stored = session.scalar(select(models.DischargeRecord))
        assert stored is not None and stored.acknowledged_at == status.acknowledged_at
        assert f"Task/{stored.aftercare_task_id}" == status.task


async def test_discharge__refused_without_a_consent_naming_the_next_provider(
    fhir: FhirClient, engine: Engine, live_settings: Settings
) -> None:
    next_provider = _next_provider(live_settings)
    package = await post_package(fhir)  # the consent names the IOP only
    referral_id = store_referral(engine, package)
    referral_key = _ready_for_discharge(engine, referral_id, package)
    with pytest.raises(DisclosureRefused) as refused:
        await workflow.discharge(
            engine, fhir, referral_key, iop_organization="Organization/iop-program",
            discharged_at=DISCHARGED, aftercare=_aftercare(next_provider),
            at=datetime.now(UTC),
        )  # fmt: skip
    assert any(next_provider in p.message for p in refused.value.problems)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(models.DischargeRecord)) == 0
        kinds = session.scalars(select(OutboxMessage.aggregate_type)).all()
        assert "discharge" not in kinds
