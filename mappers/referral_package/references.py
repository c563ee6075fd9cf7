"""Which resources a step-down referral package is made of, read from its references (pure):
Task.focus is the ServiceRequest; its subject is the Patient, reasonReference the Conditions,
supportingInfo the residential stay, the PHQ-9/GAD-7 responses, the discharge medication List
(whose entries are MedicationRequests or MedicationStatements) and the Part 2 Consent.
``integration.referrals.package_fetch`` reads what these name from the FHIR server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mappers.fhir_reference import literal_reference
from mappers.referral_package.mapping import PackageProblem, problem_of
from mappers.referral_package.submission import rewrite_references

# "Type/id" or "Type/id/_history/n": a reference to a resource on this same server.
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def relative_reference(value: Any, base: str | None = None) -> str | None:
    """``Type/id`` of a Reference (or reference string) to this server, relative or absolute
    under ``base`` (R4 references.html#literal: an absolute URL to the same server is local);
    None otherwise."""
    target = value.get("reference") if isinstance(value, Mapping) else value
    if isinstance(target, str) and base and target.startswith(base):
        target = target[len(base) :]
    match = _RELATIVE.match(target) if isinstance(target, str) else None
    return literal_reference(match.group(1), match.group(2)) if match else None


def localized(resource: Mapping[str, Any], base: str) -> Any:
    """``resource`` with every absolute reference to this server made relative, so the package
    is keyed and read one way whichever form the sender wrote (R4 references.html#literal)."""
    if base not in str(resource):  # the usual case: nothing absolute to this server
        return resource
    return rewrite_references(resource, lambda ref: relative_reference(ref, base))


def nested_targets(
    found: Mapping[str, Any], key: str, problems: list[PackageProblem], base: str
) -> list[str]:
    """What a package resource references that the package needs too."""
    kind = found.get("resourceType")
    if kind == "List":
        return _list_items(found, key, problems, base)
    if kind == "MedicationRequest":
        medication = relative_reference(found.get("medicationReference"), base)
        return [medication] if medication else []
    if kind == "Observation":
        return [t for m in found.get("hasMember") or [] if (t := relative_reference(m, base))]
    return []


def request_targets(
    task: Mapping[str, Any],
    request: Mapping[str, Any],
    problems: list[PackageProblem],
    base: str | None = None,
) -> list[str]:
    """The Patient, Conditions and supporting information the ServiceRequest points at."""
    targets: list[str] = []
    named = [("ServiceRequest.subject", request.get("subject")), ("Task.for", task.get("for"))]
    named += [
        (f"ServiceRequest.{element}[{i}]", item)
        for element in ("reasonReference", "supportingInfo")
        for i, item in enumerate(request.get(element) or [])
    ]
    for path, value in named:
        target = relative_reference(value, base)
        if target is None:
            if value is not None:
                problems.append(
                    problem_of("ServiceRequest", path, "not a reference to this server")
                )
        elif target not in targets:
            targets.append(target)
    return targets


def _list_items(
    found: Mapping[str, Any], key: str, problems: list[PackageProblem], base: str | None = None
) -> list[str]:
    items = []
    for i, entry in enumerate(found.get("entry") or []):
        target = relative_reference((entry or {}).get("item"), base)
        if target is None:
            problems.append(problem_of(key, f"List.entry[{i}].item", "not a reference to here"))
        else:
            items.append(target)
    return items
