"""Workflow 2 against HAPI: the reconciled List, its MedicationRequests and the changes List
land once per business identifier, and a second reconciliation after the intake list changed
updates them in place instead of adding any.

Also the shared live setup of workflows 2 and 3 (imported by test_discharge_live): the step-down
package posted the way the residential EHR posts it, the referral rows in the store, and a
worker run until the outbox is empty.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from fhir_profiles import canonical
from fhir_profiles.registry import conformance_resources
from fhir_profiles.terminology.clinical import RX_SERTRALINE_50
from integration.db import repositories as repo
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import referral_key_of
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.conformance import upload_conformance, validate
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from integration.outbox.queue import count_by_status
from integration.outbox.worker import run_worker
from mappers import medication_request
from mappers.bundle import identifier_token
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from tests.residential import ReadBack, read_back, residential_ehr

pytestmark = [pytest.mark.live, pytest.mark.anyio]
RECEIVED = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
REQUESTS = canonical.MEDICATION_REQUEST_ID_SYSTEM
LISTS = canonical.MEDICATION_LIST_ID_SYSTEM


# --- shared setup (also used by test_discharge_live) -------------------------------------------


async def post_package(fhir: FhirClient, *, consent_recipients: tuple[str, ...] = ()) -> ReadBack:
    """A fresh package of the residential EHR (literal FHIR JSON) on the server, its Consent
    naming the IOP and ``consent_recipients``; returned as our readers map it."""
    for org_id, name in (("iop-program", "Riverside IOP"), ("residential-program", "Lakeview")):
        await fhir.update({"resourceType": "Organization", "id": org_id, "name": name})
    package = residential_ehr.package(
        random.randrange(10**6, 10**9), also_disclose_to=consent_recipients
    )
    await fhir.transaction(package.bundle)
    return read_back(package)


def store_referral(engine: Engine, package: ReadBack) -> str:
    """The referral, its discharge list, sessions and scores in the store, as step-down leaves
    them; returns the referral's business identifier."""
    with session_scope(engine) as session:
        referral = repo.add_referral(
            session,
            business_id=package.identifier,
            status="completed",
            client_mrn=package.client.mrn,
            iop_organization="IOP-DEMO-ORG",
            received_at=RECEIVED,
        )
        for score in package.assessments:
            repo.add_assessment(
                session, referral, business_id=score.identifier, instrument=score.instrument,
                total=score.total, severity=score.severity, authored=score.authored,
            )  # fmt: skip
        repo.save_plan(session, referral, business_id=package.plan_identifier, plan={})
        medication_lists.record_discharge_list(
            session, referral.id, package.medications, RECEIVED
        )
    return package.identifier


def intake_list(package: ReadBack, *, version: int) -> MedicationList:
    """The IOP intake list: the first four discharge medications kept (version 1 doubles the
    sertraline dose), the other four stopped, one new over-the-counter medication."""
    kept = list(package.medications.entries[:4])
    tag = package.identifier
    if version == 1:
        kept[1] = replace(kept[1], dose_text="100 mg by mouth once daily", dose=Dose(100, "mg"))
    new = MedicationEntry(f"{tag}-IN-NEW", "Melatonin 3 mg (patient reported)", times_per_day=1)
    entries = tuple(replace(e, identifier=f"{tag}-IN-{i}") for i, e in enumerate(kept))
    return MedicationList(
        f"{tag}-INTAKE", "IOP intake medications", ListSource.IOP_INTAKE, RECEIVED, (*entries, new)
    )


async def drain_outbox(engine: Engine, fhir: FhirClient, *, timeout: float = 120) -> None:
    """Run a worker until nothing is pending or in flight; fail on any dead message."""
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(engine, fhir, worker_id="live-workflows", stop_event=stop, poll_interval=0.1)
    )
    try:
        async with asyncio.timeout(timeout):
            while True:
                counts = await asyncio.to_thread(_counts, engine)
                if not counts.get("pending") and not counts.get("in-flight"):
                    break
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await worker
    assert not counts.get("dead"), _dead_errors(engine)


def _counts(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return count_by_status(session)


def _dead_errors(engine: Engine) -> list[str | None]:
    with session_scope(engine) as session:
        query = select(OutboxMessage.last_error).where(OutboxMessage.status == "dead")
        return list(session.scalars(query))


async def count(fhir: FhirClient, resource_type: str, system: str, value: str) -> int:
    """How many resources of ``resource_type`` carry the identifier."""
    return await fhir.count(resource_type, {"identifier": identifier_token(system, value)})


async def one(fhir: FhirClient, resource_type: str, system: str, value: str) -> dict[str, Any]:
    """The one resource with this identifier."""
    page = await fhir.search(resource_type, {"identifier": identifier_token(system, value)})
    assert page.get("total") == 1, page.get("total")
    return dict(page["entry"][0]["resource"])


# --- the tests ----------------------------------------------------------------------------------


def _reconcile(engine: Engine, referral_id: str, intake: MedicationList, at: datetime) -> None:
    with session_scope(engine) as session:
        key = referral_key_of(session, referral_id)
        medication_lists.record_intake_list(session, key, intake, at)
        medications.reconcile_referral(session, key, at=at)


async def test_reconciliation__on_the_server_once_even_after_a_second_run(
    fhir: FhirClient, engine: Engine
) -> None:
    package = await post_package(fhir)
    referral_id = store_referral(engine, package)
    first, second = intake_list(package, version=1), intake_list(package, version=2)
    _reconcile(engine, referral_id, first, RECEIVED + timedelta(days=5))
    await drain_outbox(engine, fhir)
    _reconcile(engine, referral_id, second, RECEIVED + timedelta(days=6))
    await drain_outbox(engine, fhir)

    for value in (f"{referral_id}-RECONCILED", f"{referral_id}-RECONCILED-CHANGES"):
        assert await count(fhir, "List", LISTS, value) == 1
    for entry in (*package.medications.entries, *second.entries):
        assert await count(fhir, "MedicationRequest", REQUESTS, entry.identifier) == 1
    reconciled = await one(fhir, "List", LISTS, f"{referral_id}-RECONCILED")
    assert reconciled["meta"]["versionId"] == "2"  # updated in place by the second run
    assert reconciled["subject"]["reference"].startswith("Patient/")
    assert len(reconciled["entry"]) == len(second.entries)
    sertraline = await one(fhir, "MedicationRequest", REQUESTS, second.entries[1].identifier)
    assert sertraline["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 50
    assert second.entries[1].rxnorm_code == RX_SERTRALINE_50.code


async def test_reconciliation__lists_on_the_server_validate(
    fhir: FhirClient, engine: Engine, us_core: None
) -> None:
    package = await post_package(fhir)
    referral_id = store_referral(engine, package)
    _reconcile(engine, referral_id, intake_list(package, version=1), RECEIVED + timedelta(days=5))
    await drain_outbox(engine, fhir)
    changes = await one(fhir, "List", LISTS, f"{referral_id}-RECONCILED-CHANGES")
    flags = [e["flag"]["coding"][0]["code"] for e in changes["entry"]]
    # 3 continued (01), 1 dose-changed (02, two entries), 4 stopped (05), 1 new (04)
    assert sorted(flags) == ["01"] * 3 + ["02"] * 2 + ["04"] + ["05"] * 4
    reconciled = await one(fhir, "List", LISTS, f"{referral_id}-RECONCILED")
    await upload_conformance(fhir, conformance_resources())  # iop-medicationrequest, on US Core
    requests = [await fhir.read(*e["item"]["reference"].split("/")) for e in changes["entry"]]
    assert {r["resourceType"] for r in requests} == {"MedicationRequest"}
    assert {r["meta"]["profile"][0] for r in requests} == {medication_request.PROFILE}
    for resource in (changes, reconciled, *requests):
        report = await validate(fhir, resource)
        assert report.errors == (), [str(e) for e in report.errors]
