"""Our conformance resources on a FHIR server, and ``$validate`` against them.

Profiles are uploaded BEFORE anything is validated against them: HAPI caches an "unknown
profile" answer (hapi-fhir issue #5707), so validating first and uploading later gives stale
errors until the cache expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fhir_profiles.us_core import US_CORE_VERSION
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirPreconditionFailed, FhirUnprocessable
from integration.fhir.responses import problems_from_outcome
from mappers.errors import Problem

ERROR_SEVERITIES = frozenset({"error", "fatal"})


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What the server's validator said about one resource."""

    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    outcome: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        """True when the validator reported no error or fatal issue."""
        return not self.errors


# US Core's resources ship as YAML source (the IG publisher converts them); what the server needs
# of them to validate: profiles, extensions, value sets and code systems.
US_CORE_KINDS = ("CodeSystem", "ValueSet", "StructureDefinition")


class _NoTimestamps(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    """YAML without implicit timestamps: FHIR dates stay strings, as in the JSON form."""


_NoTimestamps.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_us_core(directory: Path) -> list[dict[str, Any]]:
    """US Core's conformance resources from its ``resources-yaml`` folder, stamped with the IG
    version (the IG publisher does the same; US Core's own examples claim ``|9.0.0``), code
    systems and value sets first."""
    found = []
    for path in sorted(directory.glob("*.yml")):
        resource = yaml.load(path.read_text(encoding="utf-8"), Loader=_NoTimestamps)
        if isinstance(resource, dict) and resource.get("resourceType") in US_CORE_KINDS:
            found.append({**resource, "version": US_CORE_VERSION})
    if not found:
        raise FileNotFoundError(f"no US Core conformance resources in {directory}")
    return sorted(found, key=lambda r: US_CORE_KINDS.index(r["resourceType"]))


async def upload_conformance(fhir: FhirClient, resources: Iterable[Mapping[str, Any]]) -> int:
    """PUT each resource at its own id (an idempotent upsert); return how many were sent."""
    count = 0
    for resource in resources:
        await fhir.update(resource)
        count += 1
    return count


async def validate(fhir: FhirClient, resource: Mapping[str, Any]) -> ValidationReport:
    """POST [base]/Type/$validate; profiles named in meta.profile are checked too."""
    path = f"{resource['resourceType']}/$validate"
    try:
        outcome = (await fhir.request("POST", path, body=resource)).body
    except (FhirPreconditionFailed, FhirUnprocessable) as rejected:
        # HAPI answers a resource with errors 412 (some servers 422) with the OperationOutcome.
        outcome = dict(rejected.outcome or {})
    return report_from_outcome(outcome)


def report_from_outcome(outcome: Mapping[str, Any]) -> ValidationReport:
    """Split an OperationOutcome into errors (error, fatal) and warnings (the rest but info)."""
    errors, warnings = [], []
    problems = problems_from_outcome(outcome)
    for issue, problem in zip(outcome.get("issue") or [], problems, strict=True):
        severity = issue.get("severity")
        if severity in ERROR_SEVERITIES:
            errors.append(problem)
        elif severity == "warning":
            warnings.append(problem)
    return ValidationReport(tuple(errors), tuple(warnings), outcome)
