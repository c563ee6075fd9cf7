"""Readers that check each element once, while reading it, and do not run the domain value's
``problems()`` again on what they built (mappers.referral, mappers.referral_task,
mappers.consent_reader): whatever such a reader returns must pass ``problems()``.

Checked on our own dialect and on foreign fixtures, and on every variant made by removing an
element or giving it another value (a blank string, a wrong type, a reference to another type,
dates earlier and later than the originals, a repeated entry, statuses that need a reason).
A reader that stops checking
something ``problems()`` refuses (a reversed consent period, a lastModified before authoredOn, a
repeated recipient, a performer that is not a party) lets a variant through and fails here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mappers import registry
from mappers.errors import MappingError
from mappers.fhir_reference import PARTY_TYPES
from mappers.registry import MappingContext
from sandbox import step_down_package as pkg

FOREIGN = Path(__file__).resolve().parents[2] / "data" / "foreign"
CONTEXT = MappingContext()
CHECKED = ("ServiceRequest", "Task", "Consent")
# Other values an element may be given: each kind of wrong input the readers must catch.
VALUES: tuple[Any, ...] = (
    "",
    " ",
    5,
    [],
    {},
    "1999-01-01",
    "2099-12-31",
    "1999-01-01T00:00:00Z",
    "2099-12-31T23:59:59+14:00",
    "2026-12-01T10:00:00+14:30",
    {"reference": "Patient/p-1"},
    {"reference": "Observation/o-1"},
    {"reference": "Organization/o-1"},
)

# Top-level values set whether or not the original has the element: the codes and elements
# whose rules span several elements (SDOHCC: a reason for these statuses; R4 Task inv-1).
SET_ALSO: dict[str, tuple[tuple[str, Any], ...]] = {
    "Task": (
        *(("status", s) for s in ("rejected", "cancelled", "on-hold", "failed", "completed")),
        ("statusReason", {"text": " "}),
        ("lastModified", "1999-01-01T00:00:00Z"),
        ("lastModified", "2099-12-31T23:59:59Z"),
    ),
    "ServiceRequest": (("status", "revoked"), ("note", [{"text": " "}])),
    "Consent": (("status", "inactive"), ("organization", [{"reference": "Patient/p-1"}])),
}


def resources() -> list[dict[str, Any]]:
    """The checked resource types in our dialect (the step-down package) and as foreign
    senders write them (tests/data/foreign)."""
    counter = iter(range(10**6))
    ours = pkg.to_transaction(
        pkg.make_package(1), new_uuid=lambda: f"00000000-0000-4000-8000-{next(counter):012d}"
    )
    found = [e["resource"] for e in ours["entry"]]
    for path in sorted(FOREIGN.glob("*.json")):
        found.append(json.loads(path.read_text()))
    return [r for r in found if r.get("resourceType") in CHECKED]


def variants(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The resource with each element (at any depth) removed, given each of VALUES, or, in a
    list, repeated; and with each of SET_ALSO set."""
    for steps in _paths(resource):
        if steps == ("resourceType",):
            continue
        yield _changed(resource, steps, _remove)
        for value in VALUES:
            yield _changed(resource, steps, partial(_set, value=value))
        if isinstance(steps[-1], int):
            yield _changed(resource, steps, _repeat)
    for key, value in SET_ALSO[resource["resourceType"]]:
        yield _changed(resource, (key,), partial(_set, value=value))


def _paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    children = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in children if isinstance(node, dict | list) else ():
        yield (*at, key)
        yield from _paths(child, (*at, key))


def _changed(
    resource: dict[str, Any], steps: tuple[Any, ...], change: Callable[[Any, Any], None]
) -> dict[str, Any]:
    copied = copy.deepcopy(resource)
    parent = copied
    for step in steps[:-1]:
        parent = parent[step]
    change(parent, steps[-1])
    return copied


def _remove(parent: Any, key: Any) -> None:
    del parent[key]


def _set(parent: Any, key: Any, value: Any) -> None:
    parent[key] = copy.deepcopy(value)


def _repeat(parent: Any, key: Any) -> None:
    parent.insert(key, copy.deepcopy(parent[key]))


def problems_of(value: Any) -> list[Any]:
    """What the value's own check finds (a Referral read from any sender may name any party)."""
    if type(value).__name__ == "Referral":
        return list(value.problems(PARTY_TYPES))
    return list(value.problems())


def read(resource: dict[str, Any]) -> Any:
    """Our reader's value (a foreign resource through our reader, as mappers.foreign.generic
    adopts it), or None when the reader refuses it."""
    try:
        return registry.FROM_FHIR[resource["resourceType"]](resource, CONTEXT).value
    except (MappingError, TypeError, LookupError, AttributeError):
        return None


@pytest.mark.parametrize("resource_type", CHECKED)
def test_what_a_reader_returns_passes_its_value_check(resource_type: str) -> None:
    """Every variant a reader accepts gives a value whose problems() finds nothing."""
    originals = [r for r in resources() if r["resourceType"] == resource_type]
    assert len(originals) >= 2  # ours and at least one sender's
    accepted, failures = 0, []
    for original in originals:
        for variant in variants(original):
            value = read(variant)
            if value is None:
                continue
            accepted += 1
            if type(value).__name__ == "Referral" and "" in (value.level_of_care, value.performer):
                continue  # a foreign referral's unknown level or performer, cleared after reading
            found = problems_of(value)
            if found:
                failures.append((variant, found))
    assert accepted > 50  # the variants reach the readers, not only their refusals
    assert failures == [], failures[:3]
