"""A package as other systems assemble it, read resource by resource.

Besides the resources the ServiceRequest points at, senders put documents in the package: a
PACIO transfer summary or a BSeR referral document is a Bundle (type ``document``; R4
documents.html) whose entries are the clinical resources, keyed by ``fullUrl``. Those entries
join the package; the Composition that orders them is reported, not read. A MedicationRequest
is read with the Medication it references (contained, in the package or in the document), a
screening panel Observation with its ``hasMember`` Observations.

Nothing here raises for one resource: each result is a value or the problems it met, so the
caller decides which failures stop the workflow and which only go into the loss report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mappers import registry
from mappers.errors import MappingError, Problem
from mappers.foreign import medication_request, screening_observations
from mappers.foreign.labels import security_labels
from mappers.loss import Loss

_DOCUMENT_TYPES = frozenset({"document", "collection", "searchset"})


@dataclass(frozen=True, slots=True)
class ReadResult:
    """One resource of the package: its value and losses, or its problems."""

    key: str
    value: Any = None
    losses: tuple[Loss, ...] = ()
    problems: tuple[Problem, ...] = ()
    labels: tuple[tuple[str, str], ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def expand_documents(
    resources: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, Mapping[str, Any]], list[tuple[str, Loss]]]:
    """The package with every document Bundle's entries in it (keyed by fullUrl, or Type/id);
    the Bundle and its Composition are reported as read entry by entry."""
    found: dict[str, Mapping[str, Any]] = {}
    notes: list[tuple[str, Loss]] = []
    for key, resource in resources.items():
        if resource.get("resourceType") != "Bundle" or resource.get("type") not in _DOCUMENT_TYPES:
            found.setdefault(key, resource)
            continue
        notes.append((key, Loss("Bundle", "document read entry by entry")))
        for index, entry in enumerate(resource.get("entry") or []):
            inner = (entry or {}).get("resource") if isinstance(entry, dict) else None
            if not isinstance(inner, dict):
                continue
            if inner.get("resourceType") == "Composition":
                notes.append((key, Loss(f"Bundle.entry[{index}]", "Composition: its entries read")))
                continue
            url = str(entry.get("fullUrl") or f"{inner.get('resourceType')}/{inner.get('id')}")
            if "id" not in inner:  # identified by its fullUrl within the document
                inner = {**inner, "id": url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]}
            found.setdefault(url, inner)
    return found, notes


def read_all(
    resources: Mapping[str, Mapping[str, Any]], context: registry.MappingContext
) -> list[ReadResult]:
    """Every resource read on its own (Medications and panel members with what uses them)."""
    medications = {k: r for k, r in resources.items() if r.get("resourceType") == "Medication"}
    members = {
        str((ref or {}).get("reference"))
        for r in resources.values() if r.get("resourceType") == "Observation"
        for ref in r.get("hasMember") or [] if isinstance(ref, dict)
    }  # fmt: skip
    observations = {k: r for k, r in resources.items() if r.get("resourceType") == "Observation"}
    results = []
    for key, resource in resources.items():
        if key in medications or (members and _is_member(key, members)):
            continue
        results.append(read_one(key, resource, context, medications, observations))
    return results


def read_one(
    key: str,
    resource: Mapping[str, Any],
    context: registry.MappingContext,
    medications: Mapping[str, Mapping[str, Any]],
    observations: Mapping[str, Mapping[str, Any]],
) -> ReadResult:
    """One resource as a ReadResult (never raises for bad input)."""
    labels = tuple(security_labels(resource))
    kind = resource.get("resourceType")
    try:
        if kind == "MedicationRequest":
            mapped: Any = registry.guarded(
                resource, lambda: medication_request.from_fhir(resource, medications)
            )
        elif kind == "Observation":
            mapped = registry.guarded(
                resource, lambda: screening_observations.from_fhir(resource, observations)
            )
        else:
            mapped = registry.from_fhir(resource, context)
    except MappingError as error:
        return ReadResult(key, problems=error.problems, labels=labels)
    return ReadResult(key, mapped.value, tuple(mapped.losses), labels=labels)


def _is_member(key: str, members: set[str]) -> bool:
    return key in members or any(m.endswith("/" + key) for m in members)
