"""Our conformance resources on a FHIR server, and ``$validate`` against them.

Profiles are uploaded BEFORE anything is validated against them: HAPI caches an "unknown
profile" answer (hapi-fhir issue #5707), so validating first and uploading later gives stale
errors until the cache expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
