"""The simulated residential EHR (sandbox/residential_ehr.py) seen from our side: its literal
package read back with our own readers, the way inbound reads what another system sent. Tests
that need domain values (the discharge medication list, the scores, the plan's identifier) take
them from here, never from a package we built ourselves."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mappers import registry
from mappers.assessment import Assessment
from mappers.medication import MedicationEntry, MedicationList
from mappers.patient import Client
from mappers.registry import MappingContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sandbox"))
import residential_ehr

CONTEXT = MappingContext()


@dataclass(frozen=True, slots=True)
class ReadBack:
    """What the residential EHR sent, as our readers map it."""

    identifier: str  # the referral's business identifier (Task and ServiceRequest)
    client: Client
    medications: MedicationList  # the discharge list, its statements in List order
    assessments: tuple[Assessment, ...]
    plan_identifier: str


def read_back(package: residential_ehr.Package) -> ReadBack:
    """Map the package's resources one by one with ``mappers.registry``."""

    def values(kind: str) -> list[Any]:
        return [registry.from_fhir(r, CONTEXT).value for r in package.resources(kind)]

    by_url = {e["fullUrl"]: e["resource"] for e in package.bundle["entry"]}
    statements: dict[str, MedicationEntry] = {
        url: registry.from_fhir(r, CONTEXT).value
        for url, r in by_url.items()
        if r["resourceType"] == "MedicationStatement"
    }
    [listed] = values("List")
    [list_resource] = package.resources("List")
    entries = tuple(statements[e["item"]["reference"]] for e in list_resource["entry"])
    [client] = values("Patient")
    [plan] = values("CarePlan")
    return ReadBack(
        package.identifier,
        client,
        replace(listed, entries=entries),
        tuple(values("QuestionnaireResponse")),
        plan.identifier,
    )
