"""Workflow 3 in the store (SQLite and PostgreSQL) and at the FHIR client's seam (respx): the
course counted from sessions, the Part 2 refusal that stores nothing, the document + aftercare
transaction enqueued with the discharge, and the aftercare loop's acknowledgement."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, func, select

from fhir_profiles import canonical
from integration.db import models
from integration.db import repositories as repo
from integration.db.outbox_table import OutboxMessage
from integration.fhir_client import FhirClient
from integration.retry_policy import RetryPolicy
from integration.store import session_scope
from integration.workflows import aftercare, clinical_record, medication_lists, medications
from integration.workflows import discharge as workflow
from integration.workflows.clinical_record import ClinicalRecord
from integration.workflows.errors import AlreadyDischarged, DisclosureRefused, WorkflowNotReady
from mappers import assessment, condition, consent, patient
from mappers.discharge_reader import discharge_from_document
from mappers.registry import MappingContext
from tests.builders import make_client, make_diagnosis
from tests.builders.discharge import make_aftercare, organization
from tests.builders.plans import make_plan
from tests.builders.referrals import make_consent, make_medication_list
from tests.builders.sessions import make_gad7, make_phq9
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

BASE = "http://fhir.test/fhir"
REFERRAL = "SD-DC-0001"
IOP = "Organization/iop-program"
NEXT = "Organization/harbor-street"
PATIENT = "Patient/p1"
START = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)  # a Monday evening
DISCHARGED = START + timedelta(weeks=11, days=4)  # Friday of week 12
AT = DISCHARGED + timedelta(hours=2)
ALCOHOL = make_diagnosis(identifier="DX-1")
DEPRESSION = make_diagnosis(identifier="DX-2", icd10_code="F33.1", display="MDD, recurrent")
pytestmark = pytest.mark.anyio


def _record(**overrides: Any) -> ClinicalRecord:
    """The referral package as read from the server: SUD + depression, consent to the IOP and
    the next provider, final scores and the plan."""
    base = ClinicalRecord(
        patient=PATIENT,
        client=make_client(),
        iop_organization=IOP,
        organizations={
            IOP: organization("Riverside IOP", "ORG-IOP"),
            NEXT: organization("Harbor Street", "ORG-NEXT"),
        },
        diagnoses=(("Condition/dx1", ALCOHOL), ("Condition/dx2", DEPRESSION)),
        consents=(("Consent/c1", _consent(recipients=(IOP, NEXT))),),
        scores=(
            ("QuestionnaireResponse/q1", make_phq9()),
            ("QuestionnaireResponse/q2", make_gad7()),
        ),
        plan=("CarePlan/plan1", make_plan(goals=())),
    )
    return replace(base, **overrides)


def _consent(**overrides: Any) -> consent.DisclosureConsent:
    fields: dict[str, Any] = {"start": date(2026, 1, 1), "end": date(2026, 12, 31)}
    return make_consent(patient=PATIENT, **(fields | overrides))


def _ready(engine: Engine, *, reconciled: bool = True) -> None:
    """The referral, twelve weeks of sessions and the reconciled medication list in the store."""
    meds = make_medication_list()
    with session_scope(engine) as session:
        referral = repo.add_referral(
            session, business_id=REFERRAL, client_mrn="MRN-1", iop_organization="IOP-DEMO-ORG",
            received_at=START - timedelta(days=3),
        )  # fmt: skip
        missed = ((2, 2), (7, 0))
        sessions = [
            (START + timedelta(weeks=w, days=d), "no-show" if (w, d) in missed else "attended")
            for w in range(12) for d in (0, 2, 3)
        ]  # fmt: skip
        sessions += [
            (START + timedelta(days=9), "cancelled"),
            (DISCHARGED + timedelta(days=3), "scheduled"),
        ]
        for n, (starts_at, attendance) in enumerate(sessions):
            repo.record_session(
                session, referral, business_id=f"S-{n}", starts_at=starts_at,
                attendance=models.Attendance(attendance),
            )  # fmt: skip
        medication_lists.record_discharge_list(session, REFERRAL, meds, START)
        medication_lists.record_intake_list(
            session, REFERRAL, replace(meds, identifier="IN", source=None), START
        )
        if reconciled:
            medications.reconcile_referral(session, REFERRAL, at=START)


def _discharge(
    engine: Engine, record: ClinicalRecord | None = None, **kw: Any
) -> workflow.DischargeResult:
    with session_scope(engine) as session:
        return workflow.discharge_client(
            session, REFERRAL, record=record or _record(), discharged_at=DISCHARGED,
            aftercare=make_aftercare(next_provider=NEXT), at=AT, **kw,
        )  # fmt: skip


def _stored(engine: Engine) -> tuple[int, list[dict[str, Any]]]:
    """How many discharge records, and the payloads of the discharge messages."""
    with session_scope(engine) as session:
        records = session.scalar(select(func.count()).select_from(models.DischargeRecord))
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.aggregate_type == "discharge")
        )
        return int(records or 0), [r.payload for r in rows]


def test_discharge_client__enqueues_document_request_and_task_with_the_record(
    engine: Engine,
) -> None:
    _ready(engine)
    result = _discharge(engine, course_summary="Completed the program.")
    records, [payload] = _stored(engine)
    assert records == 1 and result.consent == "Consent/c1" and result.has_substance_use
    document, request, task = (e["resource"] for e in payload["entry"])
    conditions = [e["request"].get("ifNoneExist") for e in payload["entry"]]
    assert conditions == [
        f"identifier=urn:ietf:rfc:3986|{result.document_identifier}",
        f"identifier={canonical.REFERRAL_ID_SYSTEM}|{REFERRAL}-AFTERCARE",
        f"identifier={canonical.TASK_ID_SYSTEM}|{REFERRAL}-AFTERCARE",
    ]
    assert request["supportingInfo"] == [{"reference": payload["entry"][0]["fullUrl"]}]
    assert (request["subject"], request["performer"]) == (
        {"reference": PATIENT},
        [{"reference": NEXT}],
    )
    assert [r["reference"] for r in request["reasonReference"]] == [
        "Condition/dx1",
        "Condition/dx2",
    ]
    assert task["focus"] == {"reference": payload["entry"][1]["fullUrl"]}
    assert (task["status"], task["owner"], task["requester"]) == (
        "requested",
        {"reference": NEXT},
        {"reference": IOP},
    )
    assert {c["code"] for c in document["meta"]["security"]} == {"R", "ETH"}  # Part 2 labels
    summary = discharge_from_document(document).value
    assert (
        summary.course.weeks,
        summary.course.sessions_attended,
        summary.course.sessions_missed,
    ) == (12, 34, 2)
    assert summary.course.summary == "Completed the program."
    assert summary.medications.medication_list.entries == make_medication_list().entries


def test_discharge_client__same_summary_builds_the_same_document(engine: Engine) -> None:
    _ready(engine)
    first = _discharge(engine)
    with session_scope(engine) as session:
        session.execute(models.DischargeRecord.__table__.delete())
    second = _discharge(engine)
    assert first.document_identifier == second.document_identifier
    _, (one, two) = _stored(engine)
    assert one == two  # stable urn:uuids: a rebuilt document matches the one sent


@pytest.mark.parametrize(
    ("consents", "reason"),
    [
        ((("Consent/c1", _consent()),), f"recipient {NEXT} is not named"),
        (
            (("Consent/c1", _consent(recipients=(NEXT,), end=date(2026, 3, 1))),),
            "expired on 2026-03-01",
        ),
        (
            (("Consent/c1", _consent(recipients=(NEXT,), purposes=("HPAYMT",))),),
            "purpose TREAT is not permitted",
        ),
        ((), "the referral carries no Consent"),
    ],
)
def test_discharge_client__sud_without_a_covering_consent_stores_nothing(
    engine: Engine, consents: tuple[Any, ...], reason: str
) -> None:
    _ready(engine)
    with pytest.raises(DisclosureRefused) as refused:
        _discharge(engine, _record(consents=consents))
    assert refused.value.http_status == 403 and "42 CFR Part 2" in str(refused.value)
    assert any(reason in p.message for p in refused.value.problems), refused.value.problems
    assert _stored(engine) == (0, [])


def test_discharge_client__without_sud_needs_no_consent(engine: Engine) -> None:
    _ready(engine)
    result = _discharge(engine, _record(diagnoses=(("Condition/dx2", DEPRESSION),), consents=()))
    _, [payload] = _stored(engine)
    assert result.consent is None and not result.has_substance_use
    assert "meta" not in payload["entry"][0]["resource"]  # no Part 2 labels


def test_discharge_client__rolled_back_leaves_neither_record_nor_message(engine: Engine) -> None:
    _ready(engine)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        workflow.discharge_client(
            session, REFERRAL, record=_record(), discharged_at=DISCHARGED,
            aftercare=make_aftercare(next_provider=NEXT), at=AT,
        )  # fmt: skip
        raise RuntimeError("the caller's transaction fails after the step")
    assert _stored(engine) == (0, [])


def test_discharge_client__twice_is_refused(engine: Engine) -> None:
    _ready(engine)
    _discharge(engine)
    with pytest.raises(AlreadyDischarged):
        _discharge(engine)
    assert _stored(engine)[0] == 1


def test_discharge_client__needs_the_reconciled_list(engine: Engine) -> None:
    _ready(engine, reconciled=False)
    with pytest.raises(WorkflowNotReady, match="reconcile"):
        _discharge(engine)
    assert _stored(engine) == (0, [])


def test_course_of_treatment__counts_held_sessions_until_discharge(engine: Engine) -> None:
    _ready(engine)
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        course = workflow.course_of_treatment(session, referral, DISCHARGED, None)
        early = workflow.course_of_treatment(session, referral, START + timedelta(days=2), None)
        none_yet = workflow.course_of_treatment(session, referral, START - timedelta(days=1), None)
    assert (course.weeks, course.sessions_attended, course.sessions_missed) == (12, 34, 2)
    assert (early.weeks, early.sessions_attended) == (1, 2)  # the Wednesday session counts
    assert (none_yet.weeks, none_yet.sessions_attended, none_yet.sessions_missed) == (1, 0, 0)


# --- at the FHIR client's seam ------------------------------------------------------------------


@pytest.fixture
async def fhir() -> AsyncIterator[FhirClient]:
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(max_attempts=1))
    yield client
    await client.aclose()


def _batch_answer(request: httpx.Request) -> httpx.Response:
    """A batch-response: each GET answered from the package, searches as searchsets."""
    subject = PATIENT
    dx = condition.to_fhir(
        ALCOHOL, id_system=canonical.CONDITION_ID_SYSTEM, subject_reference=subject
    )
    given = _consent(recipients=(IOP, NEXT))
    resources = {
        PATIENT: {**patient.to_fhir(make_client(), mrn_system=canonical.MRN_SYSTEM), "id": "p1"},
        "Condition/dx1": dx,
        "Consent/c1": consent.to_fhir(given, id_system=canonical.CONSENT_ID_SYSTEM),
        IOP: organization("Riverside IOP", "ORG-IOP"),
        NEXT: organization("Harbor Street", "ORG-NEXT"),
    }  # fmt: skip
    phq9 = assessment.to_fhir(
        make_phq9(), id_system=canonical.ASSESSMENT_ID_SYSTEM, subject_reference=subject
    )
    answers = []
    for entry in httpx.Response(200, content=request.content).json()["entry"]:
        url = entry["request"]["url"]
        if url.startswith("QuestionnaireResponse?"):
            found = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": {**phq9, "id": "q1"}}],
            }
            answers.append({"resource": found, "response": {"status": "200 OK"}})
        elif url in resources:
            answers.append({"resource": resources[url], "response": {"status": "200 OK"}})
        else:
            answers.append({"response": {"status": "404 Not Found"}})
    return httpx.Response(
        200, json={"resourceType": "Bundle", "type": "batch-response", "entry": answers}
    )


def _service_request(**extra: Any) -> dict[str, Any]:
    request = {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "subject": {"reference": PATIENT},
        "reasonReference": [{"reference": "Condition/dx1"}],
        "supportingInfo": [{"reference": "Consent/c1"}, {"reference": "Encounter/stay"}],
    }
    return request | extra


@respx.mock(base_url=BASE)
async def test_read_clinical_record__the_package_in_one_batch(
    respx_mock: respx.MockRouter, fhir: FhirClient
) -> None:
    found = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": _service_request()}],
    }
    respx_mock.get("/ServiceRequest").respond(json=found)
    batch = respx_mock.post("/").mock(side_effect=_batch_answer)
    facts = clinical_record.StoreFacts(REFERRAL, None, ("PHQ9-TEST-0001",), None)
    record = await clinical_record.read_clinical_record(
        fhir, facts, iop_organization=IOP, next_provider=NEXT, context=MappingContext()
    )
    assert batch.call_count == 1
    assert (record.patient, record.client) == (PATIENT, make_client())
    assert record.diagnoses == (("Condition/dx1", ALCOHOL),)
    assert [ref for ref, _ in record.consents] == ["Consent/c1"]
    assert record.scores == (("QuestionnaireResponse/q1", make_phq9()),)
    assert set(record.organizations) == {IOP, NEXT} and record.plan is None


@respx.mock(base_url=BASE)
async def test_read_clinical_record__a_score_missing_on_the_server_is_not_ready(
    respx_mock: respx.MockRouter, fhir: FhirClient
) -> None:
    respx_mock.get("/ServiceRequest/sr1").respond(json=_service_request())
    respx_mock.post("/").mock(side_effect=_batch_answer)
    facts = clinical_record.StoreFacts(REFERRAL, "ServiceRequest/sr1", (), "PLAN-NOT-THERE")
    with pytest.raises(WorkflowNotReady) as not_ready:
        await clinical_record.read_clinical_record(
            fhir, facts, iop_organization=IOP, next_provider=NEXT, context=MappingContext()
        )
    assert [p.path for p in not_ready.value.problems] == [
        f"CarePlan?identifier={canonical.CARE_PLAN_ID_SYSTEM}|PLAN-NOT-THERE"
    ]


def _task(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "t1",
        "status": status,
        "meta": {"versionId": "2"},
    } | extra


@respx.mock(base_url=BASE)
async def test_check_aftercare__records_the_acknowledgement_once_accepted(
    respx_mock: respx.MockRouter, fhir: FhirClient, engine: Engine
) -> None:
    _ready(engine)
    _discharge(engine)
    search = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": _task("requested")}],
    }
    respx_mock.get("/Task").respond(json=search)
    waiting = await aftercare.check_aftercare(fhir, engine, REFERRAL)
    assert (waiting.task, waiting.status, waiting.acknowledged_at) == ("Task/t1", "requested", None)
    accepted = _task("accepted", lastModified="2026-04-01T09:30:00+00:00",
                     businessStatus={"coding": [{"code": "3.0"}]})  # fmt: skip
    read = respx_mock.get("/Task/t1").respond(json=accepted)
    status = await aftercare.check_aftercare(fhir, engine, REFERRAL)
    assert read.called  # the Task id was remembered from the first check
    assert (status.status, status.business_status) == ("accepted", "3.0")
    assert status.acknowledged_at == datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
    with session_scope(engine) as session:
        stored = session.scalar(select(models.DischargeRecord))
        assert stored is not None and stored.acknowledged_at == status.acknowledged_at
    assert await aftercare.poll_open_discharges(fhir, engine) == []


@respx.mock(base_url=BASE)
async def test_check_aftercare__a_rejected_task_is_no_acknowledgement(
    respx_mock: respx.MockRouter, fhir: FhirClient, engine: Engine
) -> None:
    _ready(engine)
    _discharge(engine)
    rejected = _task("rejected", statusReason={"text": "no capacity"})
    respx_mock.get("/Task").respond(
        json={"resourceType": "Bundle", "entry": [{"resource": rejected}]}
    )
    [status] = await aftercare.poll_open_discharges(fhir, engine)
    assert (status.status, status.acknowledged_at) == ("rejected", None)
