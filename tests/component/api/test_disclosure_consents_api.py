"""Recording the client's Part 2 consent to disclose to the next provider
(``POST /api/referrals/{id}/disclosure-consents``), with the FHIR server mocked (respx): the
Consent queued for the server, bad input named by field with nothing stored, who may record it,
and the discharge's Part 2 check refusing before and passing after."""

# ruff: noqa: F811  (fixtures imported from referral_support are test parameters here)

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, func, select

from integration.db.audit_table import AuditEventRecord
from integration.db.models import DisclosureConsentRecord
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.discharges.consents import AGGREGATE_TYPE
from integration.settings import Settings
from mappers import consent_reader
from mappers.registry import MappingContext
from tests.component.api.referral_support import (  # noqa: F401
    ADMIN,
    CASE_MANAGER,
    EHR,
    IOP,
    NEXT,
    OTHER_CASE_MANAGER,
    app,
    fhir_mock,
    http,
    org_ref,
    outbox_count,
    settings,
    store,
)
from tests.component.api.test_discharges_api import ORDER, REFERRAL, _clinical_record, _ready
from tests.db.fixtures import empty_db_url  # noqa: F401

pytestmark = pytest.mark.anyio
CONTEXT = MappingContext()
URL = f"/api/referrals/{REFERRAL}/disclosure-consents"
TODAY = date.today()


def _body(**changes: Any) -> dict[str, Any]:
    body = {
        "recipient": NEXT,
        "start": (TODAY - timedelta(days=1)).isoformat(),
        "end": (TODAY + timedelta(days=365)).isoformat(),
        "signed_on": (TODAY - timedelta(days=1)).isoformat(),
        "disclosed": "all SUD treatment records",
    }
    return {k: v for k, v in (body | changes).items() if v is not None}


def _queued(store: Engine) -> list[dict[str, Any]]:
    with session_scope(store) as session:
        rows = session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.aggregate_type == AGGREGATE_TYPE)
        ).all()
        return [dict(r) for r in rows]


def _stored(store: Engine) -> int:
    with session_scope(store) as session:
        return int(session.scalar(select(func.count(DisclosureConsentRecord.id))) or 0)


async def test_record__queues_our_consent_for_the_next_provider_and_audits_it(
    http: httpx.AsyncClient, store: Engine, settings: Settings
) -> None:
    await _ready(http, store, settings)
    response = await http.post(URL, json=_body(), headers=CASE_MANAGER)
    assert response.status_code == 201, response.text
    out = response.json()
    assert (out["recipient"], out["recipient_reference"]) == (NEXT, org_ref(NEXT))
    [payload] = _queued(store)
    resource = payload["resource"]
    assert payload["request"] == {"method": "PUT", "url": f"Consent/{out['id']}"}
    assert resource["provision"]["actor"][0]["reference"] == {"reference": org_ref(NEXT)}
    assert resource["provision"]["period"] == {"start": _body()["start"], "end": _body()["end"]}
    assert resource["patient"] == {"reference": "Patient/p31"}
    assert resource["organization"][0]["reference"].startswith("Organization/")
    assert "all SUD treatment records" in resource["text"]["div"]
    read = consent_reader.from_fhir(resource, id_system=CONTEXT.consent_id_system).value
    assert (read.status, read.recipients) == ("active", (org_ref(NEXT),))
    assert read.identifier == out["id"]
    with session_scope(store) as session:
        audited = session.scalars(
            select(AuditEventRecord).where(AuditEventRecord.action == "record-consent")
        ).one()
        assert (audited.entity_id, audited.recipient) == (out["id"], org_ref(NEXT))
        assert (audited.agent_subject, audited.agent_role) == ("caller-1", "case-manager")
    listed = await http.get(URL, headers=CASE_MANAGER)
    assert [c["id"] for c in listed.json()] == [out["id"]]


async def test_discharge__refused_before_the_consent_is_recorded_and_passes_after(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    body = await _ready(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP),))  # names only the IOP
    discharge = f"/api/referrals/{REFERRAL}/discharge"
    refused = await http.post(discharge, json=ORDER, headers=CASE_MANAGER)
    assert refused.status_code == 403, refused.text
    recorded = await http.post(URL, json=_body(), headers=CASE_MANAGER)
    assert recorded.status_code == 201, recorded.text
    done = await http.post(discharge, json=ORDER, headers=CASE_MANAGER)
    assert done.status_code == 201, done.text
    with session_scope(store) as session:
        permitted = session.scalars(
            select(AuditEventRecord).where(AuditEventRecord.reason_code == "consent-permits")
        ).one()
        assert permitted.consent == f"Consent/{recorded.json()['id']}"


async def test_discharge__a_consent_for_another_recipient_does_not_count(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    body = await _ready(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP),))
    assert (await http.post(URL, json=_body(recipient="RES-2"), headers=CASE_MANAGER)).is_success
    refused = await http.post(f"/api/referrals/{REFERRAL}/discharge", json=ORDER,
                              headers=CASE_MANAGER)  # fmt: skip
    assert refused.status_code == 403, refused.text
    assert any("is not named" in p["message"] for p in refused.json()["problems"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"end": (TODAY - timedelta(days=30)).isoformat()}, "end"),  # before start
        ({"start": (TODAY - timedelta(days=60)).isoformat(),
          "end": (TODAY - timedelta(days=2)).isoformat()}, "end"),  # expired
        ({"signed_on": (TODAY + timedelta(days=3)).isoformat()}, "signed_on"),
        ({"recipient": "NOBODY-REGISTERED"}, "recipient"),
        ({"recipient": "two words"}, "recipient"),
        ({"end": None}, "end"),
        ({"start": "2026-13-01"}, "start"),
        ({"signed_on": "0001-01-01", "start": "0001-01-01"}, "signed_on"),
        ({"disclosed": ""}, "disclosed"),
        ({"disclosed": "x" * 501}, "disclosed"),
        ({"surprise": "field"}, "surprise"),
    ],
)  # fmt: skip
async def test_record__bad_input_names_the_field_and_stores_nothing(
    http: httpx.AsyncClient, store: Engine, settings: Settings, changes: dict[str, Any], field: str
) -> None:
    await _ready(http, store, settings)
    response = await http.post(URL, json=_body(**changes), headers=CASE_MANAGER)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [p["path"] for p in response.json()["problems"]], response.json()
    assert (_stored(store), outbox_count(store, AGGREGATE_TYPE)) == (0, 0)


async def test_record__not_json_and_oversized_bodies_are_refused(
    http: httpx.AsyncClient, store: Engine, settings: Settings
) -> None:
    await _ready(http, store, settings)
    text = await http.post(URL, content=b"recipient=x", headers=CASE_MANAGER | {
        "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert text.status_code == 415, text.text
    broken = await http.post(URL, content=b"{", headers=CASE_MANAGER | {
        "content-type": "application/json"})  # fmt: skip
    assert broken.status_code == 400, broken.text
    assert _stored(store) == 0


@pytest.mark.parametrize("headers", [EHR, ADMIN])
async def test_record__only_a_case_manager_may(
    http: httpx.AsyncClient, store: Engine, settings: Settings, headers: dict[str, str]
) -> None:
    await _ready(http, store, settings)
    response = await http.post(URL, json=_body(), headers=headers)
    assert response.status_code == 403, response.text
    assert _stored(store) == 0


async def test_record__another_organizations_referral_is_not_found(
    http: httpx.AsyncClient, store: Engine, settings: Settings
) -> None:
    await _ready(http, store, settings)
    response = await http.post(URL, json=_body(), headers=OTHER_CASE_MANAGER)
    assert response.status_code == 404, response.text
    assert (await http.get(URL, headers=OTHER_CASE_MANAGER)).status_code == 404
    assert _stored(store) == 0
