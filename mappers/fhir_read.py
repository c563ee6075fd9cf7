"""Small pure readers shared by the ``from_fhir`` mappers: each records a Problem, never raises."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from mappers.errors import Problem


def require_resource_type(
    resource: Any, expected: str, problems: list[Problem]
) -> Mapping[str, Any]:
    """Check the JSON object is a FHIR resource of ``expected`` type; return it as a mapping."""
    if not isinstance(resource, Mapping):
        problems.append(Problem(expected, "expected a JSON object", "structure"))
        return {}
    actual = resource.get("resourceType")
    if actual != expected:
        problems.append(
            Problem(f"{expected}.resourceType", f"expected {expected!r}, got {actual!r}")
        )
    return resource


def read_date(value: Any, path: str, problems: list[Problem]) -> date | None:
    """Parse a FHIR ``date`` of full precision (YYYY-MM-DD); record a problem otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(Problem(path, f"expected a full date YYYY-MM-DD, got {value!r}"))
    return None


def read_str(value: Any, path: str, problems: list[Problem], *, required: bool) -> str | None:
    """Return a non-empty string or record why it is missing or malformed."""
    if value is None:
        if required:
            problems.append(Problem(path, "is required", "required"))
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(path, f"expected a non-empty string, got {value!r}"))
        return None
    return value


def find_coding(
    concept: Any, system: str, path: str, problems: list[Problem]
) -> tuple[Mapping[str, Any] | None, int | None]:
    """Find the first coding of ``system`` in a CodeableConcept; return it and its index."""
    if not isinstance(concept, Mapping):
        problems.append(Problem(path, "expected a CodeableConcept object", "structure"))
        return None, None
    codings = concept.get("coding") or []
    for index, coding in enumerate(codings):
        if isinstance(coding, Mapping) and coding.get("system") == system:
            return coding, index
    return None, None
