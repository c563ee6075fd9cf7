"""Workflow 3 for referrals from senders that share no code with iop-bridge (sandbox/senders): a
US Core EHR, a PACIO Transitions of Care sender and a Gravity/BSeR platform. Each referral is
posted by its sender, taken in by the poll, accepted, its first session attended, its
medications reconciled through the API and the client discharged through the API; the
aftercare Task reaches the next provider on HAPI and the discharge document there validates
(HAPI's $validate, our profiles and US Core loaded). Before, the discharge read the clinical
record by our own identifier systems and answered 409 for every foreign referral.

The client's consent naming the next provider is the sender's: a Consent written as literal JSON
and added to the referral's ServiceRequest.supportingInfo, as the referring program would.
"""

# ruff: noqa: F811  (fixtures imported from the foreign senders' live test are parameters here)

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import Engine

from api.app import create_app
from fhir_profiles import canonical
from fhir_profiles.registry import conformance_resources
from integration.db.store import session_scope
from integration.discharges.handoff_bundle import AFTERCARE_SUFFIX
from integration.fhir.client import FhirClient
from integration.fhir.conformance import upload_conformance, validate
from integration.referrals import step_down
from integration.settings import Settings
from mappers.discharge_document import DOCUMENT_ID_SYSTEM
from mappers.encounter import Attendance, Delivery, Session, SessionKind
from tests.live.directory import NEXT_PROVIDER_NAME, register_next_provider
from tests.live.test_foreign_senders_live import (
    SECRET,
    _drain,
    organization,  # noqa: F401
    sender_http,  # noqa: F401
    settings,  # noqa: F401
    take_in,
)
from tests.live.test_medications_live import one

pytestmark = [pytest.mark.live, pytest.mark.anyio, pytest.mark.usefixtures("us_core")]
NOW = datetime.now(UTC).replace(microsecond=0)
CONSENTS = "http://harbor-consent-desk.example/fhir/sid/consent"  # the sender's own system

# Per sender: its discharge medication lines, and what the document must say about its scores.
SENDERS = {
    "us_core_ehr": {"lines": 3, "scores": "QuestionnaireResponse"},
    "pacio_toc": {"lines": 2, "scores": "QuestionnaireResponse"},
    "gravity_bser": {"lines": 0, "scores": "Observation"},
}


def _headers(settings: Settings) -> dict[str, str]:
    claims = {"sub": "cm-live", "role": "case-manager", "org": settings.organization_id,
              "aud": "iop-bridge", "exp": int(time.time()) + 600}  # fmt: skip
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def _api(settings: Settings, calls: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    """POST each (path, body) to the API as the IOP's case manager, in one app lifespan."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    answers = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        for path, body in calls:
            answers.append(await client.post(path, json=body, headers=_headers(settings)))
    return answers


def _consent_for(patient: str, recipient: str, unique: str) -> dict[str, Any]:
    """The client's Part 2 consent to disclose to the next provider, as a referring program
    writes it (LOINC category, the Part 2 rule by policy.uri, the recipient as IRCP actor)."""
    return {
        "resourceType": "Consent",
        "identifier": [{"system": CONSENTS, "value": f"CONSENT-{unique}"}],
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "64292-6",
                                  "display": "Release of information consent"}]}],
        "patient": {"reference": patient},
        "dateTime": (date.today() - timedelta(days=1)).isoformat(),
        "policy": [{"uri": "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"}],
        "provision": {
            "type": "permit",
            "period": {"start": (date.today() - timedelta(days=1)).isoformat(),
                       "end": (date.today() + timedelta(days=365)).isoformat()},
            "actor": [{
                "role": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "IRCP"}]},
                "reference": {"reference": recipient},
            }],
            "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                         "code": "TREAT"}],
        },
    }  # fmt: skip


def _sender_consents(base: str, task_id: str, next_provider: str, unique: str) -> None:
    """The sender records the client's consent and adds it to its ServiceRequest."""
    with httpx.Client(base_url=base, timeout=30) as client:
        task = client.get(f"/Task/{task_id}").json()
        focus = task["focus"]["reference"].removeprefix(base + "/")
        request = client.get(f"/{focus}").json()
        patient = request["subject"]["reference"].removeprefix(base + "/")
        created = client.post("/Consent", json=_consent_for(patient, next_provider, unique))
        created.raise_for_status()
        infos = request.get("supportingInfo") or []
        request["supportingInfo"] = [*infos, {"reference": f"Consent/{created.json()['id']}"}]
        client.put(f"/{focus}", json=request).raise_for_status()


def _reconciliation(lines: int) -> dict[str, Any]:
    if lines:
        return {"lines": [{"position": i, "action": "continue"} for i in range(lines)]}
    return {"lines": [], "new": [{"medication": "Naltrexone 50 MG Oral Tablet", "dose": "50 mg"}]}


def _discharge_body(unique: str) -> dict[str, Any]:
    return {
        "discharged_at": (NOW - timedelta(minutes=5)).isoformat(),
        "next_provider": f"AFTER-{unique}",
        "next_provider_name": NEXT_PROVIDER_NAME,
        "relapse_prevention": "Call the sponsor; leave within 5 minutes",
        "medication_follow_up": "Prescriber visit within 14 days",
        "support_groups": ["SMART Recovery, Tuesdays"],
    }


@pytest.mark.parametrize("name", sorted(SENDERS))
async def test_foreign_referral__accepted_reconciled_and_discharged(
    name: str,
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    sender_http: Any,
    unique: str,
) -> None:
    await upload_conformance(fhir, conformance_resources())
    referred, row = await take_in(name, fhir, engine, settings, organization, sender_http, unique)
    key, business_id = row.id, row.business_id
    start = NOW - timedelta(minutes=100)
    attended = Session(f"S-{unique}", SessionKind.GROUP, Delivery.IN_PERSON, Attendance.ATTENDED,
                       start, start + timedelta(hours=1))  # fmt: skip
    with session_scope(engine) as session:
        step_down.accept(session, key, at=NOW - timedelta(hours=2))
        step_down.record_session(session, key, attended, at=NOW - timedelta(minutes=30))
    await _drain(engine, fhir)
    next_provider = register_next_provider(settings, unique)
    _sender_consents(settings.fhir_base, referred.task_id, next_provider, unique)

    path = f"/api/referrals/{business_id}"
    reconciled, discharged = await _api(settings, [
        (f"{path}/reconciliation", _reconciliation(SENDERS[name]["lines"])),
        (f"{path}/discharge", _discharge_body(unique)),
    ])  # fmt: skip
    assert reconciled.is_success, reconciled.text
    assert discharged.status_code == 201, discharged.text
    await _drain(engine, fhir)

    aftercare = business_id + AFTERCARE_SUFFIX
    task = await one(fhir, "Task", canonical.TASK_ID_SYSTEM, aftercare)
    assert (task["status"], task["owner"]["reference"]) == ("requested", next_provider)
    document = await _document(fhir, business_id)
    report = await validate(fhir, {k: v for k, v in document.items() if k not in ("id", "meta")})
    assert report.errors == (), [str(e) for e in report.errors]
    _check_document(document, SENDERS[name]["scores"])


async def _document(fhir: FhirClient, business_id: str) -> dict[str, Any]:
    """The discharge document on HAPI, found through the aftercare ServiceRequest."""
    request = await one(fhir, "ServiceRequest", canonical.REFERRAL_ID_SYSTEM,
                        business_id + AFTERCARE_SUFFIX)  # fmt: skip
    [info] = request["supportingInfo"]
    bundle = await fhir.read(*info["reference"].split("/"))
    identifier = bundle["identifier"]
    assert identifier["system"] == DOCUMENT_ID_SYSTEM
    return bundle


def _check_document(document: dict[str, Any], scores: str) -> None:
    """The sender's Patient and diagnoses are held as the sender wrote them (its identifiers,
    not ours; no server id); the results say where the final scores came from."""
    composition = document["entry"][0]["resource"]
    held = {e["fullUrl"]: e["resource"] for e in document["entry"]}
    client = held[composition["subject"]["reference"]]
    assert client["resourceType"] == "Patient" and "id" not in client
    assert [i["system"] for i in client["identifier"]] != [canonical.MRN_SYSTEM]
    sections = {s["title"]: s for s in composition["section"]}
    problems = [held[e["reference"]] for e in sections["Problems"]["entry"]]
    assert problems and all(p["resourceType"] == "Condition" for p in problems)
    systems = {i["system"] for p in problems for i in p["identifier"]}
    assert canonical.CONDITION_ID_SYSTEM not in systems
    results = sections["Final PHQ-9 and GAD-7"]
    if scores == "Observation":
        assert "screening Observation" in results["text"]["div"] and "entry" not in results
    else:
        kinds = {held[e["reference"]]["resourceType"] for e in results["entry"]}
        assert kinds == {"QuestionnaireResponse"}
