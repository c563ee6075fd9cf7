"""Workflow 1 (step-down referral) on SQLite and PostgreSQL, the FHIR server faked with respx.

The fake server holds the synthetic 25-resource package (sandbox/step_down_package.py) with
server ids, and answers reads and batch GETs the way HAPI does.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, func, select

from fhir_profiles.terminology import clinical, part2
from fhir_profiles.terminology.systems import V3_ACT_CODE
from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy
from integration.inbound import engine as inbound
from integration.privacy import disclosure
from integration.referrals import step_down, task_outbox
from integration.workflow_errors import ReferralActionRefused, ReferralNotFound
from mappers.encounter import Attendance, Delivery, Session, SessionKind
from mappers.errors import InvalidInputError
from mappers.fhir_write import format_datetime
from mappers.referral_task import IllegalTransitionError
from mappers.registry import MappingContext
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "sandbox"))
import step_down_package as pkg

BASE = "http://fhir.test/fhir"
IOP = "Organization/iop-1"
RESIDENTIAL = "Organization/res-1"
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.anyio


def server_resources(n: int = 1) -> dict[str, dict[str, Any]]:
    """The package as HAPI would store it: urn:uuid references replaced by Type/id."""
    package = pkg.make_package(n, iop_organization=IOP, residential_organization=RESIDENTIAL)
    transaction = pkg.to_transaction(package)
    ids = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{100 + i}"
        for i, e in enumerate(transaction["entry"])
    }
    text = json.dumps(transaction)
    for full_url, ref in ids.items():
        text = text.replace(full_url, ref)
    resources = {}
    for entry in json.loads(text)["entry"]:
        resource = entry["resource"]
        ref = entry["fullUrl"]
        resource["id"] = ref.split("/")[1]
        resource["meta"] = {"versionId": "1", "lastUpdated": "2026-11-02T10:00:00.000+00:00"}
        resources[ref] = resource
    return resources


def task_of(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in resources.values() if r["resourceType"] == "Task")


class FakeServer:
    """Answers GET Type/id and batch Bundles of GETs from ``resources``."""

    def __init__(self, resources: dict[str, dict[str, Any]]) -> None:
        self.resources = resources
        self.batches = 0

    def batch(self, request: httpx.Request) -> httpx.Response:
        self.batches += 1
        entries = []
        for entry in json.loads(request.content)["entry"]:
            found = self.resources.get(entry["request"]["url"])
            status = "200 OK" if found else "404 Not Found"
            entries.append(
                {"resource": found, "response": {"status": status}}
                if found
                else {"response": {"status": status}}
            )
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "batch-response", "entry": entries}
        )

    def read(self, request: httpx.Request) -> httpx.Response:
        ref = request.url.path.removeprefix("/fhir/")
        found = self.resources.get(ref)
        return httpx.Response(200 if found else 404, json=found or {})


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer(server_resources())
    with respx.mock(assert_all_called=False) as mock:
        mock.post(BASE + "/").mock(side_effect=fake.batch)
        mock.get(url__regex=re.escape(BASE) + r"/[A-Za-z]+/[^/?]+$").mock(side_effect=fake.read)
        yield fake


@pytest.fixture
async def fhir() -> AsyncIterator[FhirClient]:
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(1, 0, 0))
    yield client
    await client.aclose()


async def ingest(engine: Engine, fhir: FhirClient, task: dict[str, Any]) -> inbound.Outcome:
    handler = step_down.task_handler(fhir, MappingContext(), IOP)
    return await inbound.accept_task(engine, task, via=inbound.Via.POLL, handler=handler, now=T0)


async def ingested(engine: Engine, fhir: FhirClient, server: FakeServer) -> int:
    """Ingest the server's package; the referral's id."""
    assert await ingest(engine, fhir, task_of(server.resources)) is inbound.Outcome.HANDLED
    with session_scope(engine) as session:
        return int(session.scalars(select(models.Referral.id)).one())


def messages(engine: Engine) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def referral(engine: Engine, referral_key: int) -> tuple[models.Referral, ReferralLink]:
    with session_scope(engine) as session:
        row = session.get(models.Referral, referral_key)
        link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral_key))
        assert row is not None and link is not None
        return row, link


def count(engine: Engine, model: type[object]) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)  # type: ignore[arg-type]


def iop_session(identifier: str, attendance: Attendance, day: int = 4) -> Session:
    start = datetime(2026, 11, day, 17, 0, tzinfo=UTC)
    return Session(
        identifier,
        SessionKind.GROUP,
        Delivery.IN_PERSON,
        attendance,
        start,
        start + timedelta(hours=3),
    )


async def test_ingest__stores_referral_intake_assessments_and_medications(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    row, link = referral(engine, referral_key)
    assert (row.status, row.business_id, row.client_mrn) == ("requested", "SD-000001", "SD-000001")
    assert row.residential_discharge_date == date(2026, 11, 2)
    assert (row.task_server_id, row.task_version_id, row.iop_organization) == ("124", "1", IOP)
    assert link.problems == [] and link.losses == []
    assert (link.service_request, link.patient, link.business_status) == (
        "ServiceRequest/123",
        "Patient/100",
        "2.0",
    )
    assert count(engine, models.Intake) == 1
    assert count(engine, models.AssessmentRecord) == 2
    assert count(engine, models.MedicationLine) == 8
    with session_scope(engine) as session:  # stored the way workflow 2 reconciles it
        first = session.scalars(select(models.MedicationLine).order_by(models.MedicationLine.id))
        assert first.first().detail["current"]["identifier"] == "SD-000001-MED1"  # type: ignore[union-attr]
    assert server.batches == 3  # the ServiceRequest, what it references, the List's statements
    assert messages(engine) == []  # taking a referral in sends nothing


async def test_ingest__same_version_again_does_nothing(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    await ingested(engine, fhir, server)
    again = await ingest(engine, fhir, task_of(server.resources))
    assert again is inbound.Outcome.DUPLICATE
    assert count(engine, models.Referral) == 1
    assert server.batches == 3  # the duplicate read nothing


async def test_ingest__task_of_another_owner_is_not_taken_in(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    task = task_of(server.resources) | {"owner": {"reference": "Organization/someone-else"}}
    assert await ingest(engine, fhir, task) is inbound.Outcome.HANDLED  # recorded as seen
    assert count(engine, models.Referral) == 0
    assert server.batches == 0


async def test_ingest__a_resource_that_fails_goes_to_the_loss_report_and_the_rest_is_kept(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    server.resources["Condition/101"]["code"] = {"text": "no ICD-10-CM code"}
    del server.resources["MedicationStatement/111"]
    referral_key = await ingested(engine, fhir, server)
    row, link = referral(engine, referral_key)
    assert row.status == "requested" and link.problems == []
    lost = {(x["resource"], x["reason"].split(":")[0]) for x in link.losses}
    assert ("Condition/101", "not mapped") in lost
    assert any(x["resource"] == "MedicationStatement/111" for x in link.losses)
    # everything else of the package is kept: the intake, the scores, the residential stay
    assert count(engine, models.Intake) == 1
    assert count(engine, models.AssessmentRecord) == 2
    assert row.residential_discharge_date is not None
    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=T0)
    assert referral(engine, referral_key)[0].status == "accepted"


async def test_ingest__package_without_a_readable_patient_is_kept_requested_with_its_problems(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    patient = next(k for k in server.resources if k.startswith("Patient/"))
    server.resources[patient]["birthDate"] = "not a date"
    referral_key = await ingested(engine, fhir, server)
    row, link = referral(engine, referral_key)
    assert row.status == "requested"
    assert patient in {p["resource"] for p in link.problems}
    # nothing of the package is half-stored
    assert count(engine, models.Intake) == count(engine, models.AssessmentRecord) == 0
    assert count(engine, models.MedicationListRecord) == 0
    with session_scope(engine) as session, pytest.raises(ReferralActionRefused):
        step_down.accept(session, referral_key, at=T0)
    with session_scope(engine) as session:
        step_down.decline(session, referral_key, "Package incomplete: client record", at=T0)
    [message] = messages(engine)
    assert message.payload["set"]["status"] == "rejected"
    assert message.payload["set"]["statusReason"] == {"text": "Package incomplete: client record"}


async def test_remote_cancel__cancels_the_referral_and_echoes_change_nothing(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=T0)
    task = task_of(server.resources)
    echo = task | {"status": "accepted", "meta": {"versionId": "2"}}
    await ingest(engine, fhir, echo)  # our own accept, notified back
    assert referral(engine, referral_key)[0].status == "accepted"
    cancel = task | {
        "status": "cancelled",
        "statusReason": {"text": "Client moved away"},
        "meta": {"versionId": "3"},
    }
    await ingest(engine, fhir, cancel)
    row, link = referral(engine, referral_key)
    assert (row.status, row.task_version_id, link.status_reason) == (
        "cancelled",
        "3",
        "Client moved away",
    )
    await ingest(engine, fhir, echo | {"meta": {"versionId": "2", "lastUpdated": "x"}})
    assert referral(engine, referral_key)[0].status == "cancelled"  # a late echo changes nothing


async def test_accept__enqueues_one_owned_fields_message_with_the_change(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=T0)
    [message] = messages(engine)
    assert (message.kind, message.aggregate_type, message.aggregate_key) == (
        "owned-fields",
        "referral",
        str(referral_key),
    )
    payload = message.payload
    assert payload["identifier"] == {
        "system": MappingContext().task_id_system,
        "value": "SD-000001",
    }
    assert payload["set"]["status"] == "accepted"
    assert payload["set"]["businessStatus"]["coding"][0]["code"] == "3.0"
    assert payload["set"]["lastModified"] == "2026-11-03T09:00:00Z"
    assert "owner" not in payload["set"] and payload["remove"] == ["statusReason", "output"]
    row, _ = referral(engine, referral_key)
    assert (row.status, row.decision, row.decided_at) == ("accepted", "accepted", T0)


async def test_accept__rolled_back_stores_neither_change_nor_message(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        step_down.accept(session, referral_key, at=T0)
        raise RuntimeError("the caller's transaction fails after the action")
    assert referral(engine, referral_key)[0].status == "requested"
    assert messages(engine) == []


async def test_decline__without_reason_is_refused_and_nothing_is_stored(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    for reason in (None, "", "   "):
        with session_scope(engine) as session, pytest.raises(InvalidInputError) as caught:
            step_down.decline(session, referral_key, reason, at=T0)
        assert caught.value.problems[0].path == "reason"
    assert referral(engine, referral_key)[0].status == "requested"
    assert messages(engine) == []


async def test_decline__rejected_with_reason_and_business_status_4(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    with session_scope(engine) as session:
        step_down.decline(session, referral_key, "No evening group capacity", at=T0)
    [message] = messages(engine)
    assert message.payload["set"]["businessStatus"]["coding"][0]["code"] == "4.0"
    row, link = referral(engine, referral_key)
    assert (row.status, row.decision_reason, link.status_reason) == (
        "rejected",
        "No evening group capacity",
        "No evening group capacity",
    )


async def test_illegal_transitions__refused_and_nothing_is_stored(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    with session_scope(engine) as session, pytest.raises(ReferralActionRefused):
        step_down.schedule_intake(session, referral_key, date(2026, 11, 5), at=T0)
    with session_scope(engine) as session:
        step_down.decline(session, referral_key, "Needs a higher level of care", at=T0)
    with session_scope(engine) as session, pytest.raises(IllegalTransitionError) as caught:
        step_down.accept(session, referral_key, at=T0 + timedelta(hours=1))
    assert "rejected -> accepted" in str(caught.value)
    assert referral(engine, referral_key)[0].status == "rejected"
    assert len(messages(engine)) == 1  # only the decline
    with session_scope(engine) as session, pytest.raises(ReferralNotFound):
        step_down.accept(session, 999_999, at=T0)


async def test_sessions__schedule_no_show_then_attended_completes_with_the_encounter(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=T0)
        step_down.schedule_intake(session, referral_key, date(2026, 11, 4), at=T0)
    with session_scope(engine) as session:
        step_down.record_session(
            session, referral_key, iop_session("S1", Attendance.NO_SHOW), at=T0 + timedelta(days=1)
        )
    with session_scope(engine) as session:
        step_down.record_session(
            session,
            referral_key,
            iop_session("S2", Attendance.ATTENDED, 5),
            at=T0 + timedelta(days=2),
        )
    sent = messages(engine)
    assert [m.kind for m in sent] == [
        "owned-fields",
        "owned-fields",
        "resource",
        "owned-fields",
        "resource",
        "owned-fields",
    ]
    assert {m.aggregate_key for m in sent} == {str(referral_key)}  # one aggregate: in order
    codes = [
        m.payload["set"]["businessStatus"]["coding"][0]["code"]
        for m in sent
        if m.kind == "owned-fields"
    ]
    assert codes == ["3.0", "5.1.1", "5.1.2", "7.0"]
    # 5.1.1 says the intake is scheduled; the note appended to Task.note says when
    assert sent[1].payload["add"] == {
        "note": [{"time": format_datetime(T0), "text": "Intake scheduled for 2026-11-04"}]
    }
    assert all("add" not in m.payload for m in sent if m is not sent[1])
    assert sent[3].payload["set"]["status"] == "accepted"  # a no-show leaves the Task open
    encounter = sent[4].payload
    expected_id = task_outbox.encounter_id(MappingContext().session_id_system, "S2")
    assert encounter["request"] == {"method": "PUT", "url": f"Encounter/{expected_id}"}
    assert encounter["resource"]["id"] == expected_id
    assert encounter["resource"]["subject"] == {"reference": "Patient/100"}
    assert encounter["resource"]["basedOn"] == [{"reference": "ServiceRequest/123"}]
    done = sent[5].payload["set"]
    assert done["status"] == "completed"
    assert done["output"][0]["valueReference"] == {"reference": f"Encounter/{expected_id}"}
    row, _ = referral(engine, referral_key)
    assert row.status == "completed"
    with session_scope(engine) as session:
        intake = session.scalar(select(models.Intake))
        assert intake is not None
        assert (intake.scheduled_date, intake.first_attended_date) == (
            date(2026, 11, 4),
            date(2026, 11, 5),
        )


async def test_sessions__after_completion_are_kept_without_touching_the_task(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    referral_key = await ingested(engine, fhir, server)
    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=T0)
        step_down.record_session(
            session, referral_key, iop_session("S1", Attendance.ATTENDED), at=T0
        )
    before = len(messages(engine))
    with session_scope(engine) as session:
        step_down.record_session(
            session,
            referral_key,
            iop_session("S2", Attendance.ATTENDED, 6),
            at=T0 + timedelta(days=3),
        )
    assert [m.kind for m in messages(engine)[before:]] == ["resource"]
    with session_scope(engine) as session, pytest.raises(ReferralActionRefused):
        step_down.record_session(
            session,
            referral_key,
            iop_session("S2", Attendance.ATTENDED, 6),
            at=T0 + timedelta(days=3),
        )
    assert count(engine, models.SessionRecord) == 2


def test_encounter_id__stable_legal_and_distinct() -> None:
    first = task_outbox.encounter_id("http://x.example/sid/session", "S-1")
    assert first == task_outbox.encounter_id("http://x.example/sid/session", "S-1")
    assert first != task_outbox.encounter_id("http://x.example/sid/session", "S-2")
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", first) and not first.isdigit()


@pytest.mark.parametrize("sender_labelled", [True, False])
async def test_ingest__a_senders_part2_label_makes_the_referral_part2(
    engine: Engine, fhir: FhirClient, server: FakeServer, sender_labelled: bool
) -> None:
    # No SUD diagnosis and no MOUD left in the package: only the sender's own label can say so.
    text = json.dumps(server.resources).replace('"F10.20"', '"F41.1"')
    for moud in part2.MOUD_MEDICATIONS:
        text = text.replace(f'"{moud.code}"', f'"{clinical.RX_SERTRALINE_50.code}"')
    server.resources.clear()
    server.resources.update(json.loads(text))
    if sender_labelled:
        stay = next(r for r in server.resources.values() if r["resourceType"] == "Encounter")
        stay["meta"]["security"] = [{"system": V3_ACT_CODE, "code": "42CFRPart2"}]
    referral_key = await ingested(engine, fhir, server)
    with session_scope(engine) as session:
        assert disclosure.is_part2(session, referral_key) is sender_labelled
