"""The step-down packages a fault run enqueues, and the count on HAPI that each landed once."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from fault_run_config import REPO, RunReport
from sqlalchemy import Engine

from fhir_profiles import canonical
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.outbox import queue as outbox
from integration.outbox.worker import business_identifier
from mappers.bundle import identifier_token

if str(REPO / "sandbox") not in sys.path:
    sys.path.insert(0, str(REPO / "sandbox"))  # step_down_package is a sandbox script, no package
import step_down_package as pkg

ORG_SYSTEM = "http://fault-test.example/fhir/sid/organization"  # apart from the worker's own
Key = tuple[str, str, str]  # (resource type, identifier system, value)


@dataclass(frozen=True, slots=True)
class Expected:
    """What HAPI must hold: the key identifiers per package, totals per identifier system."""

    keys: list[Key]
    totals: Counter[tuple[str, str]]


def package_keys(package: pkg.StepDownPackage) -> list[Key]:
    """The Patient (MRN), ServiceRequest, Task and Consent business identifiers."""
    return [
        ("Patient", pkg.CONTEXT.mrn_system, package.client.mrn),
        ("ServiceRequest", canonical.REFERRAL_ID_SYSTEM, package.referral.identifier),
        ("Task", canonical.TASK_ID_SYSTEM, package.task.identifier),
        ("Consent", canonical.CONSENT_ID_SYSTEM, package.consent.identifier),
    ]


def enqueue_packages(engine: Engine, count: int, organizations: Sequence[str]) -> Expected:
    """One transaction message per package (aggregate: the package), 50 per database commit."""
    iop, residential = organizations
    expected = Expected([], Counter())
    for start in range(1, count + 1, 50):
        with session_scope(engine) as session:
            for n in range(start, min(start + 50, count + 1)):
                package = pkg.make_package(
                    n, iop_organization=iop, residential_organization=residential
                )
                payload = pkg.to_transaction(package)
                outbox.enqueue(
                    session,
                    aggregate_type="step-down-package",
                    aggregate_key=package.referral.identifier,
                    kind=outbox.MessageKind.TRANSACTION,
                    payload=payload,
                )
                expected.keys.extend(package_keys(package))
                for entry in payload["entry"]:
                    system, _ = business_identifier(entry["request"]) or ("", "")
                    expected.totals[(entry["resource"]["resourceType"], system)] += 1
    return expected


async def create_organizations(fhir: FhirClient) -> list[str]:
    """The IOP and the residential program, created once (conditional create) before the run."""
    references = []
    for value, name in (("FAULT-IOP", "Fault Test IOP"), ("FAULT-RES", "Fault Test Residential")):
        resource = {
            "resourceType": "Organization",
            "identifier": [{"system": ORG_SYSTEM, "value": value}],
            "name": name,
        }
        written = await fhir.create(resource, if_none_exist=f"identifier={ORG_SYSTEM}|{value}")
        references.append(f"Organization/{written.resource['id']}")
    return references


async def verify(fhir: FhirClient, expected: Expected, report: RunReport) -> None:
    """Count each key identifier (must be 1) and each system's total (must match) on HAPI."""
    limit = asyncio.Semaphore(8)

    async def count(resource_type: str, system: str, value: str) -> int:
        async with limit:
            token = identifier_token(system, value)
            return await fhir.count(resource_type, {"identifier": token})

    found = await asyncio.gather(*(count(*key) for key in expected.keys))
    for (resource_type, _, value), hits in zip(expected.keys, found, strict=True):
        if hits == 0:
            report.lost.append(f"{resource_type} {value}")
        elif hits > 1:
            report.duplicated.append(f"{resource_type} {value} x{hits}")
    for (resource_type, system), want in sorted(expected.totals.items()):
        total = await count(resource_type, system, "")  # "system|": any value in the system
        report.totals[f"{resource_type} {system}"] = [want, total]
