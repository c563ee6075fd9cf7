"""The discharge's clinical record of a referral from another system, at the FHIR client's seam
(respx). The server holds the sender's resources as the sender wrote them (literal FHIR JSON
below, nothing built with our mappers): its own identifier systems, a partial birth date,
ICD-10-CM as an OID, a text-only diagnosis, PHQ-9 on LOINC's canonical with prefixed linkIds, a
screening Observation panel, a transfer-summary document in supportingInfo. Before, the record
was searched by our own identifier systems and every such referral was "not ready" (409)."""

# ruff: noqa: F811  (the fhir fixture imported from discharge_support is a parameter here)

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from fhir_profiles import canonical
from integration.discharges import clinical_record, handoff_bundle
from integration.fhir.client import FhirClient
from integration.workflow_errors import WorkflowNotReady
from mappers.registry import MappingContext
from tests.builders.discharge import organization
from tests.component.integration.discharges.discharge_support import (
    BASE,
    IOP,
    NEXT,
    fhir,  # noqa: F401
)

pytestmark = pytest.mark.anyio
SID = "http://cedar-ridge.example/fhir/sid"
LOINC = "http://loinc.org"
REQUEST = "ServiceRequest/sr9"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "p9",
    "meta": {"versionId": "3", "lastUpdated": "2026-12-01T10:00:00Z"},
    "identifier": [{"system": f"{SID}/mrn", "value": "CR-000123",
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                         "code": "MR"}]}}],
    "name": [{"family": "Quill", "given": ["Jordan"]}],
    "gender": "female", "birthDate": "1991-07",
}  # fmt: skip
SUD: dict[str, Any] = {
    "resourceType": "Condition", "id": "dx9",
    "identifier": [{"system": f"{SID}/problem", "value": "CR-PROBLEM-A"}],
    "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "code": {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.90", "code": "F10.20",
                         "display": "Alcohol dependence, uncomplicated"}]},
    "subject": {"reference": "Patient/p9"},
}  # fmt: skip
MDD: dict[str, Any] = {
    "resourceType": "Condition", "id": "dx10",
    "identifier": [{"system": f"{SID}/problem", "value": "CR-PROBLEM-B"}],
    "code": {"text": "Major depressive disorder, recurrent"},
    "subject": {"reference": "Patient/p9"},
}  # fmt: skip
PHQ9_ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
              "44253-3", "44260-8"]  # fmt: skip
ANSWERS = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]  # 0..3
PHQ9: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse", "id": "q9",
    "identifier": {"system": f"{SID}/phq9", "value": "CR-PHQ9-1"},
    "questionnaire": "http://loinc.org/q/44249-1|2.72", "status": "completed",
    "subject": {"reference": "Patient/p9"}, "authored": "2026-11-28T10:15:00-06:00",
    "item": [{"linkId": f"phq9-item-{i}/{code}", "answer": [{"valueCoding": {
        "system": LOINC, "code": ANSWERS[s]}}]}
        for i, (code, s) in enumerate(zip(PHQ9_ITEMS, [2, 2, 1, 2, 1, 1, 1, 0, 0], strict=True))],
}  # fmt: skip
CONSENT: dict[str, Any] = {
    "resourceType": "Consent", "id": "c9",
    "identifier": [{"system": f"{SID}/consent", "value": "CR-CONSENT-1"}],
    "status": "active",
    "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                          "code": "patient-privacy"}]},
    "category": [{"coding": [{"system": LOINC, "code": "64292-6"}]}],
    "patient": {"reference": "Patient/p9"}, "dateTime": "2026-11-26",
    "policy": [{"uri": "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"}],
    "provision": {"type": "permit", "period": {"start": "2026-11-26", "end": "2027-11-26"},
                  "actor": [{"role": {"coding": [{
                      "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                      "code": "IRCP"}]}, "reference": {"reference": NEXT}}],
                  "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                               "code": "TREAT"}]},
}  # fmt: skip


def _request(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "id": "sr9", "status": "active",
            "intent": "order", "subject": {"reference": "Patient/p9"}} | elements  # fmt: skip


def _server(respx_mock: respx.MockRouter, resources: dict[str, dict[str, Any]]) -> list[str]:
    """Answer every batch GET from ``resources`` (a search finds nothing); returns the URLs
    asked for, in order."""
    asked: list[str] = []
    held = resources  # as the test changes it
    held |= {IOP: organization("Riverside IOP", "ORG-IOP"),
             NEXT: organization("Harbor Street", "ORG-NEXT")}  # fmt: skip

    def batch(request: httpx.Request) -> httpx.Response:
        answers = []
        for entry in json.loads(request.content)["entry"]:
            url = entry["request"]["url"]
            asked.append(url)
            if "?" in url:
                found = {"resourceType": "Bundle", "type": "searchset", "entry": []}
                answers.append({"resource": found, "response": {"status": "200 OK"}})
            elif url in held:
                answers.append({"resource": held[url], "response": {"status": "200 OK"}})
            else:
                answers.append({"response": {"status": "404 Not Found"}})
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": answers})

    respx_mock.get(f"/{REQUEST}").respond(json=resources[REQUEST])
    respx_mock.post("/").mock(side_effect=batch)
    return asked


async def _read(fhir: FhirClient, *assessments: str) -> clinical_record.ClinicalRecord:
    facts = clinical_record.StoreFacts("CR-REF-1", REQUEST, assessments, None)
    return await clinical_record.read_clinical_record(
        fhir, facts, iop_organization=IOP, next_provider=NEXT, context=MappingContext()
    )


@respx.mock(base_url=BASE)
async def test_us_core_record__read_by_the_package_references_with_the_foreign_readers(
    respx_mock: respx.MockRouter, fhir: FhirClient
) -> None:
    request = _request(
        reasonReference=[{"reference": "Condition/dx9"}, {"reference": "Condition/dx10"}],
        supportingInfo=[{"reference": "QuestionnaireResponse/q9"}, {"reference": "Consent/c9"}],
    )
    resources = {
        REQUEST: request,
        "Patient/p9": PATIENT,
        "Condition/dx9": SUD,
        "Condition/dx10": MDD,
        "QuestionnaireResponse/q9": PHQ9,
        "Consent/c9": CONSENT,
    }
    asked = _server(respx_mock, resources)  # fmt: skip
    record = await _read(fhir, "CR-PHQ9-1")
    assert (record.patient, record.client.mrn, record.client.mrn_system) == (
        "Patient/p9", "CR-000123", f"{SID}/mrn",
    )  # fmt: skip
    assert [(ref, dx.icd10_code) for ref, dx in record.diagnoses] == [
        ("Condition/dx9", "F10.20"), ("Condition/dx10", ""),
    ]  # fmt: skip
    assert [(ref, a.instrument, a.total) for ref, a in record.scores] == [
        ("QuestionnaireResponse/q9", "phq-9", 10)
    ]
    assert [ref for ref, _ in record.consents] == ["Consent/c9"]
    assert NEXT in record.consents[0][1].recipients
    # the sender's resources are the document's, as the sender wrote them; nothing of theirs
    # is searched under our identifier systems
    assert set(record.as_sent) == {"Patient/p9", "Condition/dx9", "Condition/dx10",
                                   "QuestionnaireResponse/q9"}  # fmt: skip
    assert not [u for u in asked if canonical.ASSESSMENT_ID_SYSTEM in u]
    assert (record.problem_notes, record.result_notes) == ((), ())


@respx.mock(base_url=BASE)
async def test_gravity_record__a_screening_observation_is_said_not_refused(
    respx_mock: respx.MockRouter, fhir: FhirClient
) -> None:
    members = {f"Observation/o{i}": {
        "resourceType": "Observation", "id": f"o{i}", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p9"},
        "valueCodeableConcept": {"coding": [{"system": LOINC, "code": ANSWERS[1]}]},
    } for i, code in enumerate(PHQ9_ITEMS)}  # fmt: skip
    panel = {
        "resourceType": "Observation", "id": "panel", "status": "final",
        "identifier": [{"system": "https://gravity.example/obs", "value": "GR-PHQ9-7"}],
        "code": {"coding": [{"system": LOINC, "code": "44249-1"}]},
        "subject": {"reference": "Patient/p9"}, "effectiveDateTime": "2026-12-01T09:00:00Z",
        "hasMember": [{"reference": f"{BASE}/{key}"} for key in members],  # absolute
    }  # fmt: skip
    request = _request(
        reasonReference=[{"reference": f"{BASE}/Condition/dx9"}],
        supportingInfo=[{"reference": f"{BASE}/Observation/panel"}],
    )
    _server(respx_mock, {REQUEST: request, "Patient/p9": PATIENT, "Condition/dx9": SUD,
                         "Observation/panel": panel, **members})  # fmt: skip
    record = await _read(fhir, "GR-PHQ9-7")
    assert record.scores == ()  # the results section holds QuestionnaireResponses only
    [note] = record.result_notes
    assert note.startswith("PHQ-9 total 9 (mild), 2026-12-01") and "screening Observation" in note
    assert [ref for ref, _ in record.diagnoses] == ["Condition/dx9"]


@respx.mock(base_url=BASE)
async def test_pacio_record__the_transfer_summary_entries_and_the_same_client(
    respx_mock: respx.MockRouter, fhir: FhirClient
) -> None:
    urn = {k: f"urn:uuid:0b6f0c9e-51a4-4c55-9b0c-00000000000{i}"
           for i, k in enumerate(("composition", "patient", "dx", "phq9"))}  # fmt: skip
    own_copy = {key: value for key, value in PATIENT.items() if key not in ("id", "meta")}
    in_document = {"reference": urn["patient"]}
    document = {
        "resourceType": "Bundle", "id": "doc9", "type": "document",
        "identifier": {"system": "http://lakeside.example/document", "value": "LK-TS-1"},
        "timestamp": "2026-12-01T14:00:00-05:00",
        "entry": [
            {"fullUrl": urn["composition"], "resource": {
                "resourceType": "Composition", "status": "final", "subject": in_document,
                "type": {"coding": [{"system": LOINC, "code": "18761-7"}]},
                "date": "2026-12-01T14:00:00-05:00", "author": [{"display": "Lakeside"}],
                "title": "Transfer summary"}},
            {"fullUrl": urn["patient"], "resource": own_copy},
            {"fullUrl": urn["dx"], "resource": {**SUD, "id": None, "subject": in_document}},
            {"fullUrl": urn["phq9"], "resource": {**PHQ9, "subject": in_document}},
        ],
    }  # fmt: skip
    del document["entry"][2]["resource"]["id"]
    del document["entry"][3]["resource"]["id"]
    request = _request(supportingInfo=[{"reference": "Bundle/doc9"}])
    _server(respx_mock, {REQUEST: request, "Patient/p9": PATIENT, "Bundle/doc9": document})
    record = await _read(fhir, "CR-PHQ9-1")
    assert [ref for ref, _ in record.diagnoses] == [urn["dx"]]
    assert [ref for ref, _ in record.scores] == [urn["phq9"]]
    assert record.aliases == {urn["patient"]: "Patient/p9"}  # the sender's copy of the client
    # in our document every reference to the client is our subject's fullUrl
    from mappers.sender_copy import sender_copy  # here: new with this test

    urls = handoff_bundle.SummaryUrls("CR-REF-1-DISCHARGE")
    copy = sender_copy(record.as_sent[urn["dx"]], handoff_bundle.moved_in(record, urls))
    assert copy["subject"] == {"reference": urls.of("Patient/p9")}


@respx.mock(base_url=BASE)
async def test_unreadable_diagnosis_is_said_and_an_unreadable_client_is_not_ready(
    respx_mock: respx.MockRouter, fhir: FhirClient
) -> None:
    broken = {**MDD, "code": {"coding": [{"system": "http://example.org/local", "code": "X"}]}}
    request = _request(reasonReference=[{"reference": "Condition/dx9"},
                                        {"reference": "Condition/dx10"}])  # fmt: skip
    resources = {REQUEST: request, "Patient/p9": PATIENT, "Condition/dx9": SUD,
                 "Condition/dx10": broken}  # fmt: skip
    _server(respx_mock, resources)
    record = await _read(fhir)
    assert [ref for ref, _ in record.diagnoses] == ["Condition/dx9"]
    [note] = record.problem_notes
    assert "(Condition/dx10) is not included" in note

    resources["Patient/p9"] = {**PATIENT, "identifier": [], "name": "Quill"}  # not R4
    with pytest.raises(WorkflowNotReady) as not_ready:
        await _read(fhir)
    assert [p.path for p in not_ready.value.problems] == ["ServiceRequest.subject"]
