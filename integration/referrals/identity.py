"""Whose identifiers a submitted package may carry, and no silent identity merges (issue 13's
identity rule; issue 15 finding 2).

1. Namespaces: every business identifier a caller writes (each entry's ``identifier`` and its
   ``ifNoneExist``) must be in the caller's own namespaces (``organization_namespaces``); a
   caller without configured namespaces writes only in iop-bridge's default systems, and never
   in a system another organization owns. Otherwise the conditional creates on the FHIR server
   would land on another referrer's Patient, Condition or Task.
2. Demographics: a Patient whose identifier already names a Patient on the FHIR server is the
   same person only if family name and birth date agree; otherwise the package is refused
   rather than merged into the other record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from integration.fhir.client import FhirClient
from mappers.errors import IopBridgeError, Problem


class IdentityRefused(IopBridgeError):
    """A package whose identifiers are not the caller's, or would merge two people."""

    http_status = 422
    issue_code = "business-rule"


def namespace_problems(
    bundle: Mapping[str, Any],
    caller: str,
    namespaces: Mapping[str, Sequence[str]],
    defaults: Iterable[str],
) -> list[Problem]:
    """Every identifier of the Bundle outside the caller's namespaces, with its path."""
    own = tuple(namespaces.get(caller, ()))
    others = tuple(s for org, systems in namespaces.items() if org != caller for s in systems)
    allowed = own or tuple(defaults)
    found = []
    for path, system in _systems(bundle):
        if not system.startswith(allowed) or (not own and system.startswith(others)):
            found.append(
                Problem(path, f"{system!r} is not one of {caller}'s identifier systems", "security")
            )
    return found


def _systems(bundle: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    for i, entry in enumerate(bundle.get("entry") or []):
        resource = (entry or {}).get("resource") or {}
        raw = resource.get("identifier")
        items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
        for j, identifier in enumerate(items):
            if isinstance(identifier, dict) and isinstance(identifier.get("system"), str):
                at = f"[{j}]" if isinstance(raw, list) else ""
                yield f"Bundle.entry[{i}].resource.identifier{at}.system", identifier["system"]


async def demographic_problems(fhir: FhirClient, bundle: Mapping[str, Any]) -> list[Problem]:
    """A Patient entry whose identifier matches a Patient on the server with another family
    name or birth date (compared case-insensitively; nothing of the other record is told)."""
    found = []
    for i, entry in enumerate(bundle.get("entry") or []):
        patient = (entry or {}).get("resource") or {}
        if patient.get("resourceType") != "Patient":
            continue
        for _, system in _systems({"entry": [entry]}):
            value = next(
                x.get("value") for x in patient.get("identifier") or [] if x.get("system") == system
            )
            result = await fhir.search("Patient", {"identifier": f"{system}|{value}"})
            matches = [e.get("resource") or {} for e in result.get("entry") or []]
            if any(not _same_person(patient, match) for match in matches):
                found.append(Problem(
                    f"Bundle.entry[{i}].resource.identifier",
                    "names a Patient on the FHIR server whose family name or birth date differ: "
                    "refused rather than merged",
                    "conflict",
                ))  # fmt: skip
    return found


def _same_person(submitted: Mapping[str, Any], existing: Mapping[str, Any]) -> bool:
    return _family(submitted) == _family(existing) and (
        submitted.get("birthDate") == existing.get("birthDate")
    )


def _family(patient: Mapping[str, Any]) -> set[str]:
    return {
        str(name.get("family", "")).strip().casefold()
        for name in patient.get("name") or []
        if isinstance(name, dict) and name.get("family")
    }
