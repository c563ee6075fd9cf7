"""Readers and writers shared by the Encounter and QuestionnaireResponse mappers.

dateTime with timezone, business identifiers, typed references, modifier extensions and
element-by-element loss reporting. Like ``fhir_read``, every reader records Problems and Losses
instead of raising, so ``from_fhir`` can report everything wrong with an input at once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from mappers.errors import Problem
from mappers.fhir_read import read_str_in
from mappers.loss import Loss

NOT_MODELLED = "element not modelled by iop-bridge"

# FHIR R4 dateTime with a time part (datatypes.html#dateTime): seconds are required, and "if
# hours and minutes are specified, a time zone SHALL be populated". Leap second 60 is not kept.
_DATETIME = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})"
)
# The R4 regex allows offsets up to 13:59 either way, and 14:00.
_MAX_OFFSET = timedelta(hours=14)
_MINUTE = timedelta(minutes=1)

# Keys of the small elements read everywhere, as constants rather than a set literal per call.
REFERENCE_KEYS = frozenset({"reference"})
IDENTIFIER_KEYS = frozenset({"system", "value"})
CODING_KEYS = frozenset({"system", "code", "display"})
CONCEPT_KEYS = frozenset({"coding", "text"})
PERIOD_KEYS = frozenset({"start", "end"})
URN_PREFIXES = ("urn:uuid:", "urn:oid:")

# A literal reference: relative `Type/id` or absolute `.../Type/id`, optionally versioned
# (references.html#literal). urn:uuid/urn:oid references inside transaction Bundles carry no type.
_LITERAL_REFERENCE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def datetime_problems(value: datetime, field: str) -> list[Problem]:
    """Why ``value`` cannot be sent as a FHIR dateTime with timezone (empty if it can)."""
    offset = value.utcoffset()
    if offset is None:
        return [Problem(field, "needs a timezone (FHIR dateTime with a time SHALL have one)")]
    if offset % _MINUTE or abs(offset) > _MAX_OFFSET:
        return [Problem(field, f"timezone offset {offset} is not a whole-minute offset <= 14h")]
    return []


def format_datetime(value: datetime) -> str:
    """Render an aware datetime as a FHIR dateTime (``Z`` for UTC, microseconds if any)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


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
    if abs(parsed.utcoffset() or timedelta()) > _MAX_OFFSET:
        problems.append(Problem(path, f"timezone offset of {value!r} is beyond 14h"))
        return None
    return parsed


def unmapped_keys(
    element: Mapping[str, Any], known: Iterable[str], *, path: str, reason: str = NOT_MODELLED
) -> list[Loss]:
    """Name every key of a nested element (not a resource) that the mapper did not read."""
    # Runs for nearly every element read: check key by key before building anything, since
    # almost every element has nothing extra.
    for key in element:
        if key not in known and key != "id":
            break
    else:
        return []
    return [Loss(f"{path}.{key}", reason) for key in element if key not in known and key != "id"]


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


def reference_problems(reference: str, expected_type: str, field: str) -> list[Problem]:
    """Check a literal reference points at ``expected_type`` (urn: references cannot be told)."""
    if reference.startswith(URN_PREFIXES):
        return []
    found = _literal_type(reference)
    if found is None:
        return [Problem(field, f"{reference!r} is not a literal reference to a {expected_type}")]
    if found != expected_type:
        return [Problem(field, f"must reference a {expected_type}, not a {found}: {reference!r}")]
    return []


def is_reference_to(reference: str, types: Collection[str]) -> bool:
    """Whether ``reference_problems`` accepts ``reference`` for one of ``types`` (type names,
    such as a tuple): a literal reference to one of them, or a urn: reference (whose type
    cannot be told)."""
    if reference.startswith(URN_PREFIXES):
        return bool(types)
    found = _literal_type(reference)
    return found is not None and found in types


def _literal_type(reference: str) -> str | None:
    """The resource type a literal reference names, or None if it is not one."""
    match = _LITERAL_REFERENCE.search(reference)
    if match is None:
        return None
    whole, found = match.group(0, "type")
    return found if reference.endswith(whole) else None


def reference(target: str) -> dict[str, str]:
    """A FHIR Reference with a literal reference only."""
    return {"reference": target}


def read_reference(
    value: Any,
    path: str,
    expected_type: str,
    problems: list[Problem],
    losses: list[Loss],
) -> str | None:
    """Read Reference.reference, checking its type; other Reference parts are reported as lost."""
    if not isinstance(value, dict):
        problems.append(Problem(path, "expected a Reference object", "structure"))
        return None
    target = read_str_in(value, "reference", path, problems, required=True)
    if len(value) != 1 or target is None:  # a bare {"reference": ...} has nothing else to lose
        losses.extend(unmapped_keys(value, REFERENCE_KEYS, path=path))
    if target is not None and not target.startswith(URN_PREFIXES):  # a urn: is never refused
        problems.extend(reference_problems(target, expected_type, f"{path}.reference"))
    return target


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


def identifier_problems(value: str, field: str) -> list[Problem]:
    """A business identifier must be a non-blank string."""
    return [] if value.strip() else [Problem(field, "is required", "required")]


def read_known_coding(
    concept: Any,
    path: str,
    known: Mapping[tuple[str, str], Any],
    problems: list[Problem],
    *,
    owned_systems: frozenset[str] = frozenset(),
) -> tuple[Any, list[Loss]]:
    """Find the meaning of a CodeableConcept from its recognised codings.

    Returns the value of the recognised codings (they must agree) and the losses inside the
    concept: every other coding, and unmodelled keys. ``text`` is a label of the same concept and
    is regenerated on output, so it is not a loss. A code in one of ``owned_systems`` that is not
    in ``known`` is a Problem, not a loss: in those systems iop-bridge knows every legal code.
    """
    if not isinstance(concept, dict):
        problems.append(Problem(path, "expected a CodeableConcept object", "structure"))
        return None, []
    losses = unmapped_keys(concept, CONCEPT_KEYS, path=path)
    found: dict[Any, None] = {}
    for index, coding in enumerate(read_list_in(concept, "coding", path, problems)):
        at = f"{path}.coding[{index}]"
        key = _coding_key(coding)
        if key is not None and key in known:
            found[known[key]] = None
            losses.extend(unmapped_keys(coding, CODING_KEYS, path=at))
        elif key is not None and key[0] in owned_systems:
            problems.append(
                Problem(f"{at}.code", f"{key[1]!r} is not allowed here", "code-invalid")
            )
        else:
            losses.append(Loss(at, "coding in a system or code iop-bridge does not map here"))
    if len(found) > 1:
        problems.append(Problem(f"{path}.coding", f"codings disagree: {sorted(map(str, found))}"))
    return next(iter(found), None), losses


def has_coding_in(codings: Any, system: str) -> bool:
    """Whether any Coding in a ``coding`` list (None or empty: none) is in ``system``."""
    for coding in codings or []:
        if isinstance(coding, dict) and coding.get("system") == system:
            return True
    return False


def _coding_key(coding: Any) -> tuple[str, str] | None:
    """(system, code) of a Coding with both as strings, else None."""
    if not isinstance(coding, dict):
        return None
    system, code = coding.get("system"), coding.get("code")
    return (system, code) if isinstance(system, str) and isinstance(code, str) else None
