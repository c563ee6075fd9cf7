"""First vertical slice: a client and their diagnoses pushed to the FHIR server idempotently.

Steps: map to FHIR (mappers) -> one transaction of conditional creates keyed on business
identifiers (FHIR client) -> record where each landed (store) -> read back and compare.
Pushing the same client twice leaves exactly one Patient and one Condition per diagnosis.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from integration.db.store import record_sync, session_scope
from integration.fhir.client import FhirClient
from integration.settings import Settings
from mappers import bundle, condition, patient
from mappers.condition import Diagnosis
from mappers.patient import Client


@dataclass(frozen=True, slots=True)
class PushedResource:
    """One resource of the push: where it lives and whether this push created it."""

    resource_type: str
    business_id: str
    server_id: str
    version_id: str | None
    created: bool


@dataclass(frozen=True, slots=True)
class ReadBack:
    """What the server holds for the client after a push, compared with what was sent."""

    patient_count: int
    condition_counts: dict[str, int]
    matches_sent: bool


async def push_client(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    client: Client,
    diagnoses: Sequence[Diagnosis],
    *,
    new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
) -> list[PushedResource]:
    """Send Patient + Conditions in one transaction of conditional creates; record the outcome."""
    request = _build_transaction(settings, client, diagnoses, new_uuid)
    response = await fhir.transaction(request)
    outcomes = bundle.read_transaction_response(response)
    business_ids = [client.mrn, *(d.identifier for d in diagnoses)]
    systems = [settings.mrn_system, *([settings.condition_id_system] * len(diagnoses))]
    pushed = [
        PushedResource(o.resource_type, bid, o.resource_id, o.version_id, o.created)
        for o, bid in zip(outcomes, business_ids, strict=True)
    ]
    with session_scope(engine) as session:
        for item, system in zip(pushed, systems, strict=True):
            record_sync(
                session,
                resource_type=item.resource_type,
                identifier=(system, item.business_id),
                server_id=item.server_id,
                version_id=item.version_id,
                outcome="created" if item.created else "matched",
            )
    return pushed


async def read_back(
    fhir: FhirClient, settings: Settings, client: Client, diagnoses: Sequence[Diagnosis]
) -> ReadBack:
    """Count the client's Patient and Conditions by business identifier and compare content."""
    mrn_query = {"identifier": bundle.identifier_token(settings.mrn_system, client.mrn)}
    patients = [r async for r in fhir.search_all("Patient", mrn_query)]
    same = len(patients) == 1 and (
        patient.from_fhir(patients[0], mrn_system=settings.mrn_system).value == client
    )
    counts: dict[str, int] = {}
    for diagnosis in diagnoses:
        query = {
            "identifier": bundle.identifier_token(
                settings.condition_id_system, diagnosis.identifier
            )
        }
        found = [r async for r in fhir.search_all("Condition", query)]
        counts[diagnosis.identifier] = len(found)
        same = (
            same
            and len(found) == 1
            and (
                condition.from_fhir(found[0], id_system=settings.condition_id_system).value
                == diagnosis
            )
        )
    return ReadBack(len(patients), counts, same)


def _build_transaction(
    settings: Settings,
    client: Client,
    diagnoses: Sequence[Diagnosis],
    new_uuid: Callable[[], uuid.UUID],
) -> dict[str, object]:
    patient_url = f"urn:uuid:{new_uuid()}"
    entries = [
        bundle.conditional_create_entry(
            patient.to_fhir(client, mrn_system=settings.mrn_system),
            full_url=patient_url,
            if_none_exist=bundle.identifier_query(settings.mrn_system, client.mrn),
        )
    ]
    for diagnosis in diagnoses:
        resource = condition.to_fhir(
            diagnosis, id_system=settings.condition_id_system, subject_reference=patient_url
        )
        entries.append(
            bundle.conditional_create_entry(
                resource,
                full_url=f"urn:uuid:{new_uuid()}",
                if_none_exist=bundle.identifier_query(
                    settings.condition_id_system, diagnosis.identifier
                ),
            )
        )
    return bundle.transaction(entries)
