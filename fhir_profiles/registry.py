"""Load the packaged conformance resources and examples, in dependency order.

The JSON files under resources/ and examples/ are package data read with importlib.resources;
nothing here touches the network. Loading is cached; callers get fresh deep copies so that one
caller's edits never leak into another's.
"""

import copy
import json
from functools import cache
from importlib import resources
from typing import Any, Final

from fhir_profiles.canonical import structure_definition_url

FhirResource = dict[str, Any]

# Upload order for a server: what is referenced comes first. CodeSystems before the ValueSets
# that include them, ValueSets before the StructureDefinitions that bind them, extensions before
# the profiles that slice them in, and Questionnaires last (they use only external codes).
_CONFORMANCE_RANK: Final = {
    "CodeSystem": 0,
    "ValueSet": 1,
    "StructureDefinition:Extension": 2,
    "StructureDefinition": 3,
    "Questionnaire": 4,
}
# Examples in reference order: each refers only to resources listed before it.
_EXAMPLE_RANK: Final = {
    "Patient": 0,
    "Condition": 1,
    "Goal": 2,
    "CarePlan": 3,
    "Encounter": 4,
    "QuestionnaireResponse": 5,
    "MedicationRequest": 6,
}
# Profiles picked when asked by resource type. Encounter defaults to the IOP session (the
# residential stay is asked for by name); QuestionnaireResponse has one profile per instrument,
# so it always needs a name.
_PROFILE_BY_TYPE: Final = {
    "Patient": "iop-patient",
    "Condition": "iop-condition",
    "CarePlan": "iop-careplan",
    "Goal": "iop-goal",
    "Encounter": "iop-session-encounter",
    "MedicationRequest": "iop-medicationrequest",
}


class UnknownProfileError(LookupError):
    """No shipped profile matches the name or resource type asked for."""


def _conformance_key(resource: FhirResource) -> tuple[int, str]:
    """Sort key placing a conformance resource by its dependency rank, then by id."""
    kind = resource["resourceType"]
    if kind == "StructureDefinition" and resource.get("type") == "Extension":
        kind = "StructureDefinition:Extension"
    return _CONFORMANCE_RANK[kind], resource["id"]


def _example_key(resource: FhirResource) -> tuple[int, str]:
    """Sort key placing an example after the examples it references, then by id."""
    return _EXAMPLE_RANK[resource["resourceType"]], resource["id"]


@cache
def _load_folder(folder: str) -> tuple[FhirResource, ...]:
    """Parse every JSON file in one packaged folder, once per process."""
    root = resources.files("fhir_profiles").joinpath(folder)
    loaded = []
    for entry in root.iterdir():
        if entry.name.endswith(".json"):
            loaded.append(json.loads(entry.read_text(encoding="utf-8")))
    return tuple(loaded)


def conformance_resources() -> list[FhirResource]:
    """Return all CodeSystems, ValueSets, StructureDefinitions and Questionnaires, deps first."""
    ordered = sorted(_load_folder("resources"), key=_conformance_key)
    return copy.deepcopy(ordered)


def example_resources() -> list[FhirResource]:
    """Return the synthetic example instances, each after the resources it references."""
    ordered = sorted(_load_folder("examples"), key=_example_key)
    return copy.deepcopy(ordered)


def conformance_resource(url: str) -> FhirResource:
    """Return the shipped conformance resource whose canonical `url` matches."""
    for resource in _load_folder("resources"):
        if resource.get("url") == url:
            return copy.deepcopy(resource)
    raise LookupError(f"no shipped conformance resource has url {url!r}")


def _profile_ids() -> dict[str, str]:
    """Map each shipped profile's id and name to its id (extensions excluded)."""
    ids: dict[str, str] = {}
    for resource in _load_folder("resources"):
        if resource["resourceType"] == "StructureDefinition" and resource["kind"] == "resource":
            ids[resource["id"]] = resource["id"]
            ids[resource["name"]] = resource["id"]
    return ids


def profile_url_for(resource_type_or_name: str) -> str:
    """Return the profile canonical for a resource type (e.g. Patient) or a profile id/name."""
    profile_id = _PROFILE_BY_TYPE.get(resource_type_or_name)
    if profile_id is None:
        profile_id = _profile_ids().get(resource_type_or_name)
    if profile_id is None:
        if resource_type_or_name == "QuestionnaireResponse":
            raise UnknownProfileError(
                "QuestionnaireResponse has one profile per instrument: ask for "
                "iop-phq9-response, iop-gad7-response or iop-asam-intake-response"
            )
        raise UnknownProfileError(f"no shipped profile for {resource_type_or_name!r}")
    return structure_definition_url(profile_id)
