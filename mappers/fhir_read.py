"""Small readers shared by the ``from_fhir`` mappers: strings, dates and dateTimes, codes, lists,
identifiers, notes and modifier extensions.

Each records Problems (and Losses) instead of raising, so ``from_fhir`` can report everything
wrong with an input at once. CodeableConcepts are read by ``mappers.fhir_coding``, References by
``mappers.fhir_reference``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from mappers.errors import Problem
from mappers.fhir_write import MAX_TIMEZONE_OFFSET
from mappers.loss import Loss, unmapped_keys, unmapped_top_level

# Keys of the small elements read everywhere, as constants rather than a set literal per call.
IDENTIFIER_KEYS = frozenset({"system", "value"})
PERIOD_KEYS = frozenset({"start", "end"})


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
    if value is None and not required:
        return None  # an optional element left out: nothing to report
    return read_str(value, f"{path}.{key}", problems, required=required)


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


def read_day(value: Any, path: str, problems: list[Problem], losses: list[Loss]) -> date | None:
    """Read the date of a FHIR date or dateTime; a time of day is reported as not kept."""
    if isinstance(value, str) and len(value) > len("YYYY-MM-DD"):
        losses.append(Loss(path, "time of day not kept (date only)"))
        value = value[: len("YYYY-MM-DD")]
    return read_date(value, path, problems)


# FHIR R4 dateTime with a time part (datatypes.html#dateTime): seconds are required, and "if
# hours and minutes are specified, a time zone SHALL be populated". Leap second 60 is not kept.
_DATETIME = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})"
)


def read_datetime(
    value: Any, path: str, problems: list[Problem], losses: list[Loss]
) -> datetime | None:
    """Parse a FHIR dateTime to the second with timezone; record a Problem if it is not one."""
    if value is None:
        problems.append(Problem(path, "is required", "required"))
        return None
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        problems.append(
            Problem(path, f"expected a dateTime with seconds and timezone, got {value!r}")
        )
        return None
    base, fraction, zone = match.groups()
    if fraction is None:
        text = base
    else:
        if len(fraction) > 6:
            losses.append(Loss(path, "precision below a microsecond is not kept"))
        text = f"{base}.{fraction[:6].ljust(6, '0')}"
    try:
        parsed = datetime.fromisoformat(text + ("+00:00" if zone == "Z" else zone))
    except ValueError as exc:
        problems.append(Problem(path, f"{value!r} is not a valid dateTime: {exc}"))
        return None
    if abs(parsed.utcoffset() or timedelta()) > MAX_TIMEZONE_OFFSET:
        problems.append(Problem(path, f"timezone offset of {value!r} is beyond 14h"))
        return None
    return parsed


def read_code(value: Any, path: str, allowed: Iterable[str], problems: list[Problem]) -> str | None:
    """A required ``code`` element that must be one of ``allowed``."""
    code = read_str(value, path, problems, required=True)
    allowed = frozenset(allowed)
    if code is not None and code not in allowed:
        problems.append(
            Problem(path, f"{code!r} is not one of: {', '.join(sorted(allowed))}", "code-invalid")
        )
        return None
    return code


def read_fixed_code(value: Any, path: str, expected: str, problems: list[Problem]) -> None:
    """A required ``code`` element whose only accepted value is ``expected``."""
    code = read_str(value, path, problems, required=True)
    if code is not None and code != expected:
        problems.append(Problem(path, f"expected {expected!r}, got {code!r}", "code-invalid"))


def read_first_note(
    value: Any, path: str, problems: list[Problem], losses: list[Loss]
) -> str | None:
    """The text of the first Annotation; later notes and annotation authors/times are lost."""
    notes = read_list(value, path, problems)
    if not notes:
        return None
    losses += [Loss(f"{path}[{i}]", "only the first note is kept") for i in range(1, len(notes))]
    first = notes[0] if isinstance(notes[0], dict) else {}
    losses += unmapped_keys(first, _NOTE_KEYS, path=f"{path}[0]")
    return read_str_in(first, "text", f"{path}[0]", problems, required=True)


_NOTE_KEYS = frozenset({"text"})


def read_optional_datetime(
    value: Any, path: str, problems: list[Problem], losses: list[Loss]
) -> datetime | None:
    """An optional dateTime with seconds and timezone."""
    return None if value is None else read_datetime(value, path, problems, losses)


def read_list(value: Any, path: str, problems: list[Problem]) -> list[Any]:
    """A repeating element as a list: absent is empty, anything but a JSON array is a Problem."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    problems.append(Problem(path, "expected a JSON array (a repeating element)", "structure"))
    return []


def read_list_in(
    element: Mapping[str, Any], key: str, path: str, problems: list[Problem]
) -> list[Any]:
    """``read_list`` of ``element[key]``, reported at ``path.key`` (built only for a Problem)."""
    value = element.get(key)
    if isinstance(value, list):
        return value
    if value is None:
        return []
    return read_list(value, f"{path}.{key}", problems)


def modifier_extension_problems(element: Mapping[str, Any], path: str) -> list[Problem]:
    """A modifierExtension may change the meaning of its element: unknown ones are refused.

    FHIR R4 extensibility.html#modifierExtension: a system that does not understand a modifier
    extension SHALL NOT process the element as if it were absent.
    """
    if "modifierExtension" not in element:
        return []
    found: list[Problem] = []
    entries = read_list(element.get("modifierExtension"), f"{path}.modifierExtension", found)
    return found + [
        Problem(f"{path}.modifierExtension[{i}]", "unknown modifier extension", "not-supported")
        for i, _ in enumerate(entries)
    ]


def open_resource(
    resource: Any, expected: str, mapped: Iterable[str], problems: list[Problem]
) -> tuple[Mapping[str, Any], list[Loss]]:
    """Start a reader: check resourceType, refuse unknown modifierExtensions, and return the
    resource with a Loss for every top-level element outside ``mapped``."""
    fhir = require_resource_type(resource, expected, problems)
    losses = unmapped_top_level(fhir, mapped, type_name=expected)
    problems += modifier_extension_problems(fhir, expected)
    return fhir, losses


def read_identifier_list(
    identifiers: Any, system: str, path: str, problems: list[Problem], losses: list[Loss]
) -> str | None:
    """Read the value of the identifier in ``system`` from a repeating Identifier element."""
    entries = read_list(identifiers, path, problems)
    for index, item in enumerate(entries):
        if isinstance(item, dict) and item.get("system") == system:
            if len(entries) > 1:
                losses.extend(
                    Loss(f"{path}[{i}]", f"identifier outside {system}")
                    for i in range(len(entries))
                    if i != index
                )
            value = item.get("value")
            if len(item) == 2 and isinstance(value, str) and value.strip():
                return value  # just system and value, as sent: nothing lost, nothing wrong
            at = f"{path}[{index}]"
            losses.extend(unmapped_keys(item, IDENTIFIER_KEYS, path=at))
            return read_str_in(item, "value", at, problems, required=True)
    problems.append(Problem(path, f"no identifier in system {system}", "required"))
    return None
