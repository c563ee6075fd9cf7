"""Workflow 3, steps 1 and 2 at the FHIR client's seam (respx): the clinical record read back by
the package's references, our own responses by our identifiers, and a record the server lacks
is not ready. Foreign senders' records: test_clinical_record_foreign.py."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures and discharge_support are test
# parameters here)

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from fhir_profiles import canonical
from integration.discharges import clinical_record
from integration.fhir.client import FhirClient
from integration.workflow_errors import WorkflowNotReady
from mappers import assessment, condition, consent, encounter, patient
from mappers.registry import MappingContext
from tests.builders import make_client
from tests.builders.discharge import organization
from tests.builders.sessions import make_phq9, make_session
from tests.component.integration.discharges.discharge_support import (
    ALCOHOL,
    BASE,
    IOP,
    NEXT,
    PATIENT,
    REFERRAL,
    fhir,  # noqa: F401
    make_discharge_consent,
)

pytestmark = pytest.mark.anyio


def _batch_answer(request: httpx.Request) -> httpx.Response:
    """A batch-response: each GET answered from the package, searches as searchsets."""
    subject = PATIENT
    dx = condition.to_fhir(
        ALCOHOL, id_system=canonical.CONDITION_ID_SYSTEM, subject_reference=subject
    )
    given = make_discharge_consent(recipients=(IOP, NEXT))
    resources = {
        PATIENT: {**patient.to_fhir(make_client(), mrn_system=canonical.MRN_SYSTEM), "id": "p1"},
        "Condition/dx1": dx,
        "Consent/c1": consent.to_fhir(given, id_system=canonical.CONSENT_ID_SYSTEM),
        IOP: organization("Riverside IOP", "ORG-IOP"),
        NEXT: organization("Harbor Street", "ORG-NEXT"),
        "ServiceRequest/sr1": _service_request(),
    }  # fmt: skip
    phq9 = assessment.to_fhir(
        make_phq9(), id_system=canonical.ASSESSMENT_ID_SYSTEM, subject_reference=subject
    )
    answers = []
    for entry in httpx.Response(200, content=request.content).json()["entry"]:
        url = entry["request"]["url"]
        if url.startswith("Encounter?"):  # the last attended session: on the server or not
            on_server = url.endswith("|S-ON-SERVER")
            hits = [{"resource": {**_session_encounter(), "id": "s1"}}] if on_server else []
            found = {"resourceType": "Bundle", "type": "searchset", "entry": hits}
            answers.append({"resource": found, "response": {"status": "200 OK"}})
        elif url.startswith("QuestionnaireResponse?"):
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


def _session_encounter() -> dict[str, Any]:
    return encounter.to_fhir(
        make_session(identifier="S-ON-SERVER"), id_system=canonical.SESSION_ID_SYSTEM,
        subject_reference=PATIENT,
    )  # fmt: skip


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
async def test_read_clinical_record__the_package_by_its_references(
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
    # the ServiceRequest, what it references, then the Organizations and our own PHQ-9 (not
    # in the package: found by our identifier)
    assert batch.call_count == 3
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


@pytest.mark.parametrize("session", ["S-ON-SERVER", "S-NOT-DELIVERED"])
async def test_read_clinical_record__the_last_session_is_the_encounter_when_on_the_server(
    fhir: FhirClient, session: str
) -> None:
    with respx.mock(base_url=BASE) as respx_mock:
        await _read_with_session(respx_mock, fhir, session)


async def _read_with_session(respx_mock: respx.MockRouter, fhir: FhirClient, session: str) -> None:
    respx_mock.get("/ServiceRequest/sr1").respond(json=_service_request())
    respx_mock.post("/").mock(side_effect=_batch_answer)
    facts = clinical_record.StoreFacts(REFERRAL, "ServiceRequest/sr1", (), None, session)
    record = await clinical_record.read_clinical_record(
        fhir, facts, iop_organization=IOP, next_provider=NEXT, context=MappingContext()
    )
    if session == "S-ON-SERVER":
        assert record.encounter == ("Encounter/s1", make_session(identifier="S-ON-SERVER"))
    else:  # the document is complete without it (Composition.encounter 0..1)
        assert record.encounter is None
