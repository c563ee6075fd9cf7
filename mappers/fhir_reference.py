"""FHIR References: the check a domain reference must pass, the writer, and the readers shared
by the mappers (literal references, typed by resource type; urn: references inside transaction
Bundles carry no type and are never refused).

Readers record Problems and Losses instead of raising, like ``mappers.fhir_read``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from mappers.errors import Problem
from mappers.fhir_read import read_list, read_str_in
from mappers.loss import Loss, unmapped_keys

# The keys of a bare Reference, as a constant rather than a set literal per call.
REFERENCE_KEYS = frozenset({"reference"})
URN_PREFIXES = ("urn:uuid:", "urn:oid:")
# Who may request, own or perform a referral: R4 Task.requester / Task.owner and
# ServiceRequest.requester / performer allow all of these (BSeR and Gravity senders use
# PractitionerRole; US Core's ServiceRequest examples a Practitioner).
PARTY_TYPES = ("Organization", "Practitioner", "PractitionerRole", "HealthcareService")
# A literal reference: relative `Type/id` or absolute `.../Type/id`, optionally versioned
# (references.html#literal). urn:uuid/urn:oid references inside transaction Bundles carry no type.
_LITERAL_REFERENCE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def literal_reference(resource_type: str, server_id: object) -> str:
    """``Type/id``: the relative literal reference to a resource on the server
    (references.html#literal); the one place this shape is written."""
    return f"{resource_type}/{server_id}"


def split_literal_reference(reference: str) -> tuple[str, str] | None:
    """``(type, id)`` of a relative literal reference, ``Type/id`` or ``Type/id/_history/vid``
    (the version dropped); None for anything else (absolute URLs, urn:, contained ``#``)."""
    parts = reference.split("/")
    if len(parts) not in (2, 4) or not parts[0][:1].isupper() or not parts[1]:
        return None
    if len(parts) == 4 and parts[2] != "_history":
        return None
    return parts[0], parts[1]


def reference_tail(reference: str) -> str:
    """The ``Type/id`` an absolute reference (``https://ehr.example/fhir/Medication/7``) ends
    with, to find the resource in a package keyed by relative references."""
    return "/".join(reference.rstrip("/").split("/")[-2:])


def reference(target: str) -> dict[str, str]:
    """A FHIR Reference with a literal reference only."""
    return {"reference": target}


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


def typed_reference_problems(target: str, allowed: Sequence[str], field: str) -> list[Problem]:
    """Check a literal reference points at one of the ``allowed`` resource types."""
    if is_reference_to(target, allowed):
        return []
    kinds = ", ".join(allowed)
    return [Problem(field, f"{target!r} is not a literal reference to one of: {kinds}")]


def read_reference_to(
    value: Any, path: str, allowed: Sequence[str], problems: list[Problem], losses: list[Loss]
) -> str:
    """Reference.reference to one of ``allowed`` types (a Problem otherwise); other parts lost."""
    if not isinstance(value, dict):
        problems.append(Problem(path, "expected a Reference object", "structure"))
        return ""
    target = read_str_in(value, "reference", path, problems, required=True)
    if len(value) != 1 or target is None:  # a bare {"reference": ...} has nothing else to lose
        losses += unmapped_keys(value, REFERENCE_KEYS, path=path)
    if target is None:
        return ""
    if is_reference_to(target, allowed):
        return target
    problems += typed_reference_problems(target, allowed, f"{path}.reference")
    return ""


def read_required_reference(
    fhir: Mapping[str, Any],
    type_name: str,
    element: str,
    kind: str,
    problems: list[Problem],
    losses: list[Loss],
) -> str:
    """A required single Reference element to a ``kind`` resource."""
    value = fhir.get(element)
    if value is None:
        problems.append(Problem(f"{type_name}.{element}", "is required", "required"))
        return ""
    return read_reference_to(value, f"{type_name}.{element}", (kind,), problems, losses)


def read_reference_list(
    value: Any, path: str, allowed: Sequence[str], problems: list[Problem], losses: list[Loss]
) -> tuple[str, ...]:
    """A repeating Reference element: references to ``allowed`` types are kept in order; any
    other literal reference is reported as lost; one that is not a Reference is a Problem."""
    kept: list[str] = []
    for index, item in enumerate(read_list(value, path, problems)):
        target = item.get("reference") if isinstance(item, dict) else None
        if not isinstance(target, str) or not target.strip():
            problems.append(Problem(f"{path}[{index}].reference", "expected a literal reference"))
        elif not is_reference_to(target, allowed):
            reason = f"reference to a type not modelled here: {target!r}"
            losses.append(Loss(f"{path}[{index}]", reason))
        else:
            if len(item) > 1:  # more than its reference (the usual Reference has nothing else)
                losses += unmapped_keys(item, REFERENCE_KEYS, path=f"{path}[{index}]")
            kept.append(target)
    return tuple(kept)


def read_references(
    resource: Mapping[str, Any], path: str, losses: list[Loss]
) -> list[tuple[int, str]]:
    """Read a repeating Reference element as (index, reference) pairs; entries without a
    literal reference are reported."""
    read: list[tuple[int, str]] = []
    for index, item in enumerate(resource.get(path.rsplit(".", 1)[-1]) or []):
        reference = item.get("reference") if isinstance(item, dict) else None
        if not isinstance(reference, str) or not reference:
            losses.append(Loss(f"{path}[{index}]", "reference without a literal reference"))
            continue
        if len(item) > 1:  # more than its reference (the usual Reference has nothing else)
            losses += unmapped_keys(item, REFERENCE_KEYS, path=f"{path}[{index}]")
        read.append((index, reference))
    return read


def indexed_links(name: str, references: Iterable[tuple[int, str]]) -> dict[str, str]:
    """Links ``name[0]``, ``name[1]``... in reading order (Mapped.links is a flat mapping)."""
    return {f"{name}[{i}]": reference for i, (_, reference) in enumerate(references)}


def references_in(links: Mapping[str, str], name: str) -> tuple[str, ...]:
    """The references ``indexed_links`` stored under ``name``, in order."""
    return tuple(links[f"{name}[{i}]"] for i in range(len(links)) if f"{name}[{i}]" in links)
