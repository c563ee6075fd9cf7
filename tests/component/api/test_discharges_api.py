"""The discharge handoff routes with the FHIR server mocked (respx): the case manager's
discharge (Part 2 refusal as 403 with its reasons), the next provider's view of the aftercare
loop, and the document for the named next provider only."""

# ruff: noqa: F811  (fixtures imported from referral_support are test parameters here)

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, select, update

from api.schema_examples import EXAMPLE_DISCHARGE
from api.schemas import ReferralSubmission
from integration.db.audit_table import AuditEventRecord
from integration.db.outbox_table import OutboxMessage, OutboxStatus
from integration.db.referral_lookup import referral_key_of
from integration.db.store import record_sync, session_scope
from integration.discharges.aftercare import poll_open_discharges
from integration.fhir.client import FhirClient
from integration.medications.lists import record_intake_list
from integration.medications.workflow import reconcile_referral
from integration.settings import Settings
from mappers import assessment, condition, consent, patient
from mappers.medication import MedicationList
from mappers.registry import MappingContext
from tests.builders.discharge import organization
from tests.component.api.referral_support import (  # noqa: F401
    ADMIN,
    CASE_MANAGER,
    EHR,
    FHIR_JSON,
    IOP,
    NEXT,
    NEXT_EHR,
    OTHER,
    OTHER_CASE_MANAGER,
    OTHER_EHR,
    RES,
    app,
    fhir_mock,
    http,
    org_ref,
    outbox_count,
    settings,
    store,
    submission,
)
from tests.db.fixtures import empty_db_url  # noqa: F401

pytestmark = pytest.mark.anyio
CONTEXT = MappingContext()
REFERRAL = "SD-000031"
URL = f"/api/referrals/{REFERRAL}/discharge"
ORDER = EXAMPLE_DISCHARGE | {"next_provider": NEXT}


async def _ready(http: httpx.AsyncClient, store: Engine, settings: Settings) -> dict[str, Any]:
    """A submitted, delivered referral with its intake list reconciled; its package."""
    body = submission(31)
    assert (await http.post("/api/referrals", json=body, headers=EHR)).status_code == 201
    with session_scope(store) as session:
        for kind, system, server_id in (("Patient", settings.mrn_system, "p31"),
                                        ("ServiceRequest", CONTEXT.referral_id_system, "sr31"),
                                        ("Task", CONTEXT.task_id_system, "t31")):  # fmt: skip
            record_sync(session, resource_type=kind, identifier=(system, REFERRAL),
                        server_id=server_id, version_id="1", outcome="created")  # fmt: skip
        at = datetime(2026, 11, 6, 10, tzinfo=UTC)
        intake = _discharge_list(body)
        key = referral_key_of(session, REFERRAL)
        record_intake_list(session, key, replace(intake, identifier="IN-31", source=None), at)
        reconcile_referral(session, key, at=at)
    return body


def _discharge_list(body: dict[str, Any]) -> MedicationList:
    return ReferralSubmission.model_validate(body).to_domain().medications


def _clinical_record(
    fhir_mock: respx.MockRouter, body: dict[str, Any], recipients: tuple[str, ...]
) -> None:
    """What the discharge reads from the server: the ServiceRequest, the package it references
    and the Organizations and our own scores, each batch answered from the same resources."""
    package = ReferralSubmission.model_validate(body).to_domain()
    given = replace(package.consent, patient="Patient/p31", recipients=recipients)
    client = patient.to_fhir(package.client, mrn_system=CONTEXT.mrn_system)
    alcohol = condition.to_fhir(
        package.diagnoses[0], id_system=CONTEXT.condition_id_system, subject_reference="Patient/p31"
    )
    resources = {
        "Patient/p31": {**client, "id": "p31"},
        "Condition/dx1": alcohol,
        "Consent/c31": consent.to_fhir(given, id_system=CONTEXT.consent_id_system),
        org_ref(IOP): organization("Synthetic IOP", IOP),
        org_ref(NEXT): organization("Harbor Street", NEXT),
    }  # fmt: skip
    scores = {a.identifier: assessment.to_fhir(a, id_system=CONTEXT.assessment_id_system,
                                               subject_reference="Patient/p31")
              for a in package.assessments}  # fmt: skip

    def batch(request: httpx.Request) -> httpx.Response:
        answers = []
        for entry in json.loads(request.content)["entry"]:
            url = entry["request"]["url"]
            found = resources.get(url)
            if url.startswith("QuestionnaireResponse?"):
                score = scores[url.rsplit("|", 1)[1]]
                found = {"resourceType": "Bundle", "entry": [{"resource": {**score, "id": "q"}}]}
            answers.append({"resource": found, "response": {"status": "200 OK"}} if found
                           else {"response": {"status": "404 Not Found"}})  # fmt: skip
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": answers})

    request = {"resourceType": "ServiceRequest", "id": "sr31",
               "subject": {"reference": "Patient/p31"},
               "reasonReference": [{"reference": "Condition/dx1"}],
               "supportingInfo": [{"reference": "Consent/c31"}]}  # fmt: skip
    resources["ServiceRequest/sr31"] = request  # the package is read back by its references
    fhir_mock.get("/ServiceRequest/sr31").respond(json=request)
    fhir_mock.post("/").mock(side_effect=batch)


async def test_discharge__without_consent_for_the_next_provider_is_403_with_reasons(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    body = await _ready(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP),))
    response = await http.post(URL, json=ORDER, headers=CASE_MANAGER)
    assert response.status_code == 403, response.text
    problem = response.json()
    assert "42 CFR Part 2" in problem["title"] and org_ref(NEXT) in problem["title"]
    assert any("is not named" in p["message"] for p in problem["problems"]), problem
    assert outbox_count(store, "discharge") == 0


async def test_discharge__hands_over_and_the_next_provider_follows_it(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    body = await _ready(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP), org_ref(NEXT)))
    response = await http.post(URL, json=ORDER, headers=CASE_MANAGER)
    assert response.status_code == 201, response.text
    handoff = response.json()
    assert (handoff["next_provider"], handoff["delivery"], handoff["acknowledged"]) == (
        org_ref(NEXT), "pending", False,
    )  # fmt: skip
    assert response.headers["location"] == f"/api/discharges/{REFERRAL}"
    again = await http.post(URL, json=ORDER, headers=CASE_MANAGER)
    assert again.status_code == 409 and outbox_count(store, "discharge") == 1
    for headers in (NEXT_EHR, CASE_MANAGER, ADMIN):
        listed = (await http.get("/api/discharges", headers=headers)).json()
        assert [item["id"] for item in listed["items"]] == [REFERRAL]
    for headers in (EHR, OTHER_EHR, OTHER_CASE_MANAGER):
        assert (await http.get("/api/discharges", headers=headers)).json()["total"] == 0
        assert (await http.get(f"/api/discharges/{REFERRAL}", headers=headers)).status_code == 404
    document = await http.get(f"/api/discharges/{REFERRAL}/document", headers=NEXT_EHR)
    assert document.status_code == 200 and document.headers["content-type"] == FHIR_JSON
    bundle = document.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "document")
    assert {c["code"] for c in bundle["meta"]["security"]} >= {"R", "ETH"}  # Part 2 labels
    with session_scope(store) as session:
        released = session.scalars(
            select(AuditEventRecord).where(AuditEventRecord.action == "disclose",
                                           AuditEventRecord.recipient == org_ref(NEXT))
        ).all()  # fmt: skip
        assert [r.entity_id for r in released][-1] == bundle["identifier"]["value"]
    for headers, status in ((CASE_MANAGER, 403), (EHR, 404), (OTHER_EHR, 404)):
        refused = await http.get(f"/api/discharges/{REFERRAL}/document", headers=headers)
        assert refused.status_code == status


async def test_discharge__the_next_provider_sees_the_acknowledgement(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    body = await _ready(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP), org_ref(NEXT)))
    assert (await http.post(URL, json=ORDER, headers=CASE_MANAGER)).status_code == 201
    with session_scope(store) as session:
        session.execute(update(OutboxMessage).where(OutboxMessage.aggregate_type == "discharge")
                        .values(status=OutboxStatus.DELIVERED))  # fmt: skip
    task = {"resourceType": "Task", "id": "after31", "status": "accepted",
            "lastModified": "2027-02-01T09:00:00+00:00", "meta": {"versionId": "2"},
            "businessStatus": {"coding": [{"code": "3.0"}]}}  # fmt: skip
    fhir_mock.get("/Task").respond(json={"resourceType": "Bundle", "entry": [{"resource": task}]})
    followed = (await http.get(f"/api/discharges/{REFERRAL}", headers=NEXT_EHR)).json()
    assert (followed["aftercare_task"], followed["task_status"], followed["acknowledged"]) == (
        "Task/after31", "accepted", True,
    )  # fmt: skip
    # the GET showed the server's state and wrote nothing: the background loop records it
    unrecorded = await http.get("/api/discharges?acknowledged=false", headers=CASE_MANAGER)
    assert unrecorded.json()["total"] == 1
    fhir = FhirClient.from_settings(settings)
    try:
        [polled] = await poll_open_discharges(fhir, store)
    finally:
        await fhir.aclose()
    assert (polled.task, polled.acknowledged_at) == (
        "Task/after31", datetime(2027, 2, 1, 9, tzinfo=UTC),
    )  # fmt: skip
    acknowledged = await http.get("/api/discharges?acknowledged=true", headers=CASE_MANAGER)
    assert acknowledged.json()["total"] == 1
    waiting = await http.get("/api/discharges?acknowledged=false", headers=CASE_MANAGER)
    assert waiting.json()["total"] == 0


@pytest.mark.parametrize(
    ("headers", "order", "status", "path"),
    [
        (EHR, ORDER, 403, "role"),
        (ADMIN, ORDER, 403, "role"),
        (OTHER_CASE_MANAGER, ORDER, 404, None),
        (CASE_MANAGER, ORDER | {"next_provider": "NOBODY"}, 422, "next_provider"),
        (CASE_MANAGER, {"discharged_at": "2027-01-29"}, 422, "discharged_at"),
    ],
)
async def test_discharge__refusals(
    http: httpx.AsyncClient, store: Engine, settings: Settings,
    headers: dict[str, str], order: dict[str, Any], status: int, path: str | None,
) -> None:  # fmt: skip
    await _ready(http, store, settings)
    response = await http.post(URL, json=order, headers=headers)
    assert response.status_code == status, response.text
    if path is not None and status == 422:
        assert path in [p["path"] for p in response.json()["problems"]]
    assert outbox_count(store, "discharge") == 0


async def test_discharge__body_errors(http: httpx.AsyncClient) -> None:
    missing = await http.post("/api/referrals/SD-404/discharge", json=ORDER, headers=CASE_MANAGER)
    assert missing.status_code == 404
    text = {**CASE_MANAGER, "Content-Type": "text/plain"}
    assert (await http.post(URL, content=b"{}", headers=text)).status_code == 415
    json_body = {**CASE_MANAGER, "Content-Type": "application/json"}
    broken = await http.post(URL, content=b"{", headers=json_body)
    assert broken.status_code == 400 and broken.json()["problems"][0]["path"] == "body"


async def test_discharges__bad_filters_are_problems(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/discharges?from=2027-02-01&to=2027-01-01", headers=ADMIN)
    assert response.status_code == 422 and response.json()["problems"][0]["path"] == "from"
    paged = await http.get("/api/discharges?page=2&page_size=5", headers=ADMIN)
    assert paged.json()["links"] == {
        "self": "/api/discharges?page=2&page_size=5", "next": None,
        "prev": "/api/discharges?page=1&page_size=5",
    }  # fmt: skip


def _disclosures(store: Engine) -> list[AuditEventRecord]:
    with session_scope(store) as session:
        query = select(AuditEventRecord).where(AuditEventRecord.action == "disclose")
        rows = list(session.scalars(query.order_by(AuditEventRecord.id)))
        session.expunge_all()
        return rows


async def test_discharge__the_refused_disclosure_is_audited_with_its_reason(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    body = await _ready(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP),))
    assert (await http.post(URL, json=ORDER, headers=CASE_MANAGER)).status_code == 403
    [refused] = _disclosures(store)  # survives the rollback of the refused discharge
    assert (refused.outcome, refused.reason_code) == ("denied", "no-covering-consent")
    assert (refused.recipient, refused.organization) == (org_ref(NEXT), org_ref(IOP))
    assert (refused.agent_subject, refused.agent_role) == ("caller-1", "case-manager")


async def test_document__every_release_and_every_refusal_is_audited(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    body = await _ready(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP), org_ref(NEXT)))
    assert (await http.post(URL, json=ORDER, headers=CASE_MANAGER)).status_code == 201
    [permitted] = _disclosures(store)
    assert (permitted.outcome, permitted.reason_code) == ("success", "consent-permits")
    for _ in range(2):  # each fetch is a disclosure of its own
        document = await http.get(f"/api/discharges/{REFERRAL}/document", headers=NEXT_EHR)
        assert document.status_code == 200
    for headers in (EHR, OTHER_EHR):  # the referrer and a stranger: not the consented recipient
        refused = await http.get(f"/api/discharges/{REFERRAL}/document", headers=headers)
        assert refused.status_code == 404
    fetches = _disclosures(store)[1:]
    document_id = document.json()["identifier"]["value"]
    assert {(r.entity_type, r.entity_id) for r in fetches} == {("Bundle", document_id)}
    assert [(r.outcome, r.reason_code, r.recipient, r.agent_organization) for r in fetches] == [
        ("success", "released", org_ref(NEXT), NEXT),
        ("success", "released", org_ref(NEXT), NEXT),
        ("denied", "not-the-recipient", org_ref(RES), RES),
        ("denied", "not-the-recipient", org_ref(OTHER), OTHER),
    ]
    assert {r.organization for r in fetches} == {org_ref(IOP)}  # the IOP's admins see them


async def test_document__no_discharge_no_disclosure_audited(
    http: httpx.AsyncClient, store: Engine, settings: Settings
) -> None:
    await _ready(http, store, settings)
    missing = await http.get(f"/api/discharges/{REFERRAL}/document", headers=NEXT_EHR)
    assert missing.status_code == 404 and _disclosures(store) == []
