"""Small pure readers shared by the ``from_fhir`` mappers: each records a Problem, never raises."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from mappers.errors import Problem


def require_resource_type(
    resource: Any, expected: str, problems: list[Problem]
) -> Mapping[str, Any]:
    """Check the JSON object is a FHIR resource of ``expected`` type; return it as a mapping."""
    if not isinstance(resource, dict):
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


def read_str_in(
    element: Mapping[str, Any], key: str, path: str, problems: list[Problem], *, required: bool
) -> str | None:
    """``read_str`` of ``element[key]``, reported at ``path.key``.

    The path is built only when a problem is recorded: this runs for most string elements a
    mapper reads, and nearly all of them are valid.
    """
    value = element.get(key)
    if isinstance(value, str) and value.strip():
        return value
    return read_str(value, f"{path}.{key}", problems, required=required)


def find_coding(
    concept: Any, system: str, path: str, problems: list[Problem]
) -> tuple[Mapping[str, Any] | None, int | None]:
    """Find the first coding of ``system`` in a CodeableConcept; return it and its index."""
    if not isinstance(concept, dict):
        problems.append(Problem(path, "expected a CodeableConcept object", "structure"))
        return None, None
    codings = concept.get("coding") or []
    for index, coding in enumerate(codings):
        if isinstance(coding, dict) and coding.get("system") == system:
            return coding, index
    return None, None


_FHIR_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")


def read_fhir_date(value: Any, path: str, problems: list[Problem]) -> tuple[str | None, bool]:
    """A FHIR ``date`` of any precision (YYYY, YYYY-MM, YYYY-MM-DD) from a date or dateTime.

    Returns the date and whether a time of day was cut off (the caller reports that as a loss).
    """
    if value is None:
        return None, False
    if isinstance(value, str):
        day, _, time_part = value.partition("T")
        if _FHIR_DATE.match(day) and (len(day) < 10 or _is_calendar_date(day)):
            return day, bool(time_part)
    problems.append(Problem(path, f"expected a FHIR date or dateTime, got {value!r}"))
    return None, False


def _is_calendar_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
