"""The referral package as the discharge reads it back from the FHIR server: by the references
the package really used (the ServiceRequest's subject, reasonReference and supportingInfo, and
what those reference in turn: ``integration.referrals.package_fetch``), each resource read with
the same readers the inbound mapping uses (``mappers.foreign.package_reader``: our dialect read
exactly, other systems' Patients, Conditions, PHQ-9/GAD-7 responses, screening Observations and
Consents read tolerantly, under the sender's own identifiers).

Nothing here refuses: each part is a value with the key it was read under ("Type/id" on the
server, or a fullUrl inside a document the sender stored), or the reason it could not be read.
Which parts the discharge cannot do without is decided by ``clinical_record``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from integration.fhir.client import FhirClient
from integration.referrals.package_fetch import fetch_package
from mappers.assessment import Assessment
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.foreign import package_reader
from mappers.foreign.identity import has_system
from mappers.patient import Client
from mappers.referral_package.references import relative_reference
from mappers.registry import MappingContext
from mappers.sender_copy import copy_problems


@dataclass(frozen=True, slots=True)
class Part:
    """One resource of the package: its key, what it was read as, and the resource as stored."""

    key: str
    resource: Mapping[str, Any]
    value: Any = None
    why_not: str | None = None  # why it could not be read (then ``value`` is None)

    @property
    def kind(self) -> str:
        return str(self.resource.get("resourceType", self.key.split("/")[0]))


@dataclass(frozen=True, slots=True)
class PackageRecord:
    """What the discharge takes from the package, in the package's order."""

    subject: str | None  # "Patient/<id>" of ServiceRequest.subject
    parts: tuple[Part, ...] = ()
    ours: frozenset[str] = field(default_factory=frozenset)  # keys of our own dialect's resources

    def patient(self) -> Part | None:
        return next((p for p in self.parts if p.key == self.subject), None)

    def of_kind(self, kind: str) -> list[Part]:
        return [p for p in self.parts if p.kind == kind]

    def assessment(self, identifier: str) -> Part | None:
        """The package's PHQ-9/GAD-7 (a response or a screening Observation) under the
        identifier the store recorded at intake (the sender's value, or ours)."""
        for part in self.parts:
            if isinstance(part.value, Assessment) and part.value.identifier == identifier:
                return part
        return None


# Which of our identifier systems marks a resource as our own dialect (read and written exactly).
_OUR_SYSTEMS = {
    "Patient": lambda c: c.mrn_system,
    "Condition": lambda c: c.condition_id_system,
    "QuestionnaireResponse": lambda c: c.assessment_id_system,
    "Consent": lambda c: c.consent_id_system,
}
_VALUES = {"Patient": Client, "Condition": Diagnosis, "Consent": DisclosureConsent}


async def read_package(
    fhir: FhirClient, service_request: str, context: MappingContext
) -> PackageRecord:
    """Read the package the ServiceRequest references, every resource with the tolerant readers."""
    fetched = await fetch_package(fhir, {"focus": {"reference": service_request}})
    request = fetched.resources.get(service_request) or {}
    subject = relative_reference(request.get("subject"), fhir.base_url)
    resources, _ = package_reader.expand_documents(fetched.resources)
    parts = [_part(r, resources[r.key]) for r in package_reader.read_all(resources, context)]
    parts += [
        Part(p.resource, {"resourceType": p.resource.split("/")[0]}, why_not=p.message)
        for p in fetched.problems
        if p.resource not in resources
    ]
    ours = frozenset(
        p.key for p in parts
        if p.kind in _OUR_SYSTEMS and has_system(p.resource, _OUR_SYSTEMS[p.kind](context))
    )  # fmt: skip
    return PackageRecord(subject, tuple(parts), ours)


def _part(result: package_reader.ReadResult, resource: Mapping[str, Any]) -> Part:
    """A read result as a Part; a value of the wrong kind for its resource is not one."""
    if not result.ok:
        return Part(result.key, resource, why_not="; ".join(p.message for p in result.problems))
    kind = str(resource.get("resourceType"))
    expected = _VALUES.get(kind)
    if expected is not None and not isinstance(result.value, expected):
        return Part(result.key, resource, why_not=f"not read as a {expected.__name__}")
    return Part(result.key, resource, result.value)


def sendable(part: Part) -> str | None:
    """Why the sender's resource cannot be included in a document as it is (not well-formed
    R4), else None."""
    problems = copy_problems(part.resource)
    return "; ".join(f"{p.path}: {p.message}" for p in problems) or None
