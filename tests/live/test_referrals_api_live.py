"""The EHR-facing API against HAPI: a step-down package submitted through the API reaches the
FHIR server through the outbox exactly once, however often it is submitted, and the inbound
sync that hears of its Task takes it as the referral it already is."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from api.app import create_app
from api.schema_examples import EXAMPLE_SUBMISSION
from api.schemas import ReferralSubmission
from fhir_profiles.registry import conformance_resources
from integration.db.models import Referral
from integration.db.outbox_table import OutboxMessage, OutboxStatus
from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.conformance import upload_conformance, validate
from integration.fhir.setup import ensure_organization
from integration.inbound import engine as inbound
from integration.outbox.worker import run_worker
from integration.referrals.package_fetch import fetch_package
from integration.settings import Settings
from mappers import bundle
from mappers.referral_package.mapping import map_package, map_task
from mappers.referral_package.references import localized
from mappers.registry import MappingContext
from tests.residential import residential_ehr

pytestmark = [pytest.mark.live, pytest.mark.anyio]
SECRET = "live-referral-api-secret-of-sufficient-length"
CONTEXT = MappingContext()


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    return live_settings.model_copy(
        update={"organization_id": f"IOP-{unique}", "auth_jwt_secret": SecretStr(SECRET)}
    )


@pytest.fixture
async def organizations(fhir: FhirClient, settings: Settings, unique: str) -> dict[str, str]:
    """The IOP and the referring EHR's Organization on HAPI, by identifier."""
    iop = await ensure_organization(fhir, settings, name="Synthetic IOP")
    system, key = settings.organization_id_system, f"RES-{unique}"
    ehr = {"resourceType": "Organization", "name": "Synthetic residential program",
           "identifier": [{"system": system, "value": key}]}  # fmt: skip
    match = bundle.identifier_query(system, key)
    created = await fhir.create(ehr, if_none_exist=match)
    return {"iop": iop, "ehr": f"Organization/{created.resource['id']}"}


@pytest.fixture
async def api(settings: Settings, organizations: dict[str, str]) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def _headers(unique: str, content_type: str) -> dict[str, str]:
    claims = {"sub": "ehr-live", "role": "ehr-system", "org": f"RES-{unique}",
              "aud": "iop-bridge", "exp": int(time.time()) + 600}  # fmt: skip
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": content_type}


async def _drain(engine: Engine, fhir: FhirClient) -> None:
    """Run the outbox worker until no message is pending or in flight (none may go dead)."""

    def unsettled() -> dict[str, int]:
        with session_scope(engine) as session:
            query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            return {s: n for s, n in session.execute(query) if s != OutboxStatus.DELIVERED}

    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(engine, fhir, worker_id="live-api", stop_event=stop, poll_interval=0.1)
    )
    try:
        async with asyncio.timeout(90):
            while (left := unsettled()) and OutboxStatus.DEAD not in left:
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await worker
    assert unsettled() == {}


async def _on_server(fhir: FhirClient, resource_type: str, system: str, value: str) -> int:
    return await fhir.count(resource_type, {"identifier": bundle.identifier_token(system, value)})


async def _submit_twice_and_drain(
    api: FastAPI,
    fhir: FhirClient,
    settings: Settings,
    body: dict[str, Any],
    headers: dict[str, str],
) -> dict[str, Any]:
    engine = create_db_engine(settings.database_url, migrate_schema=False)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        first = await http.post("/api/referrals", content=json.dumps(body), headers=headers)
        assert first.status_code == 201, first.text
        await _drain(engine, fhir)
        again = await http.post("/api/referrals", content=json.dumps(body), headers=headers)
        assert again.status_code == 200, again.text
        await _drain(engine, fhir)
        read = await http.get(f"/api/referrals/{first.json()['id']}", headers=headers)
    with session_scope(engine) as session:
        messages = session.scalar(select(func.count()).select_from(OutboxMessage))
    engine.dispose()
    assert messages == 1  # the repeat enqueued nothing
    return dict(read.json())


async def test_submit__domain_json_reaches_hapi_once(
    api: FastAPI, fhir: FhirClient, settings: Settings, unique: str
) -> None:
    referral_id = f"SD-{unique}"
    body = json.loads(json.dumps(EXAMPLE_SUBMISSION).replace("SD-000001", referral_id))
    read = await _submit_twice_and_drain(api, fhir, settings, body,
                                         _headers(unique, "application/json"))  # fmt: skip
    assert read["submission"] == "delivered" and read["task"].startswith("Task/")
    systems = {"Task": CONTEXT.task_id_system, "ServiceRequest": CONTEXT.referral_id_system,
               "Patient": settings.mrn_system}  # fmt: skip
    for kind, system in systems.items():
        assert await _on_server(fhir, kind, system, referral_id) == 1, kind
    task = await fhir.read("Task", read["task"].split("/")[1])
    assert (task["status"], task["owner"]["reference"]) == ("requested", read["program"])


async def test_submit__domain_json_read_back_from_hapi_maps_and_validates(
    api: FastAPI, fhir: FhirClient, settings: Settings, unique: str, us_core: None
) -> None:
    # The round trip of our own dialect: what the API wrote, read from HAPI by the inbound
    # package reader, maps every medication (MedicationRequests in a List) with no loss; and
    # every resource of it, the referrer's PractitionerRole too, validates on HAPI.
    referral_id = f"SD-{unique}"
    body = json.loads(json.dumps(EXAMPLE_SUBMISSION).replace("SD-000001", referral_id))
    body["medications"]["entries"].append(
        {"identifier": f"{referral_id}-MED2", "medication": "trazodone 50 MG Oral Tablet",
         "rxnorm_code": "856377", "status": "stopped", "start": "2026-10-06",
         "end": "2026-10-20"}
    )  # fmt: skip
    engine = create_db_engine(settings.database_url, migrate_schema=False)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        headers = _headers(unique, "application/json")
        sent = await http.post("/api/referrals", content=json.dumps(body), headers=headers)
        assert sent.status_code == 201, sent.text
        await _drain(engine, fhir)
        read = await http.get(f"/api/referrals/{referral_id}", headers=headers)
    engine.dispose()
    task = localized(await fhir.read("Task", read.json()["task"].split("/")[1]), fhir.base_url)
    fetched = await fetch_package(fhir, task)
    mapped_task, _, _ = map_task(task, CONTEXT.task_id_system)
    assert mapped_task is not None and fetched.problems == ()
    package, problems = map_package(fetched, mapped_task, CONTEXT)
    assert problems == [] and package is not None and package.medications is not None
    expected = ReferralSubmission.model_validate(body).to_domain().medications
    assert package.medications.entries == expected.entries
    assert [
        x for x in package.losses if x["resource"].startswith(("MedicationRequest/", "List/"))
    ] == []
    kinds = [key.split("/")[0] for key in fetched.resources]
    assert kinds.count("MedicationRequest") == 2 and "MedicationStatement" not in kinds
    [request] = [r for r in fetched.resources.values() if r["resourceType"] == "ServiceRequest"]
    role = await fhir.read("PractitionerRole", request["requester"]["reference"].split("/")[1])
    assert role["organization"]["reference"] == task["requester"]["reference"]
    await upload_conformance(fhir, conformance_resources())
    for resource in (*fetched.resources.values(), task, role):
        report = await validate(fhir, dict(resource))
        assert report.errors == (), f"{resource['resourceType']}: {[str(e) for e in report.errors]}"


async def test_submit__fhir_bundle_reaches_hapi_once_and_inbound_knows_it(
    api: FastAPI, fhir: FhirClient, settings: Settings, organizations: dict[str, str],
    unique: str,
) -> None:  # fmt: skip
    number = int(unique[:6], 16)  # the sandbox numbers its package's identifiers
    package = residential_ehr.package(
        number, iop=organizations["iop"], residential=organizations["ehr"]
    )  # literal FHIR JSON, as the residential EHR writes it
    body = package.bundle
    read = await _submit_twice_and_drain(api, fhir, settings, body,
                                         _headers(unique, "application/fhir+json"))  # fmt: skip
    identifier = package.identifier
    [plan] = [p["identifier"][0]["value"] for p in package.resources("CarePlan")]
    assert await _on_server(fhir, "Task", CONTEXT.task_id_system, identifier) == 1
    assert await _on_server(fhir, "CarePlan", CONTEXT.care_plan_id_system, plan) == 1
    engine = create_db_engine(settings.database_url, migrate_schema=False)
    await inbound.poll_tasks(fhir, engine, settings, organizations["iop"])  # HAPI tells of the Task
    with session_scope(engine) as session:
        stored = list(session.scalars(select(Referral).where(Referral.business_id == identifier)))
    engine.dispose()
    assert [(r.status, r.task_server_id) for r in stored] == [("requested", read["task"][5:])]
