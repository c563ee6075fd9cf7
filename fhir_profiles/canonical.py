"""Canonical URLs for the conformance resources iop-bridge publishes.

Every StructureDefinition, CodeSystem, ValueSet and Questionnaire we own lives under
CANONICAL_BASE. The `.example` top-level domain is reserved by RFC 2606, so the base can never
collide with a real publisher and is never resolved over the network: FHIR canonicals are
identifiers first and locations only by convention (FHIR R4 references.html#canonical).
"""

import re
from typing import Final

CANONICAL_BASE: Final = "http://iop-bridge.example/fhir"

# Business version stamped on every conformance resource we ship; bumped with the package.
CONFORMANCE_VERSION: Final = "0.1.0"

# A FHIR id: 1-64 of [A-Za-z0-9-.] (FHIR R4 datatypes.html#id). Our canonical tails reuse the
# resource id, so the same rule keeps URL tails and ids in lockstep.
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _tail(name: str) -> str:
    """Return name if it is a legal FHIR id, else raise ValueError naming the bad value."""
    if not _ID_PATTERN.fullmatch(name):
        raise ValueError(f"not a legal FHIR id for a canonical URL tail: {name!r}")
    return name


def canonical_url(resource_type: str, name: str) -> str:
    """Return the canonical URL `CANONICAL_BASE/<resource_type>/<name>`."""
    return f"{CANONICAL_BASE}/{_tail(resource_type)}/{_tail(name)}"


def structure_definition_url(name: str) -> str:
    """Return StructureDefinition.url for a profile or extension we define."""
    return canonical_url("StructureDefinition", name)


def code_system_url(name: str) -> str:
    """Return CodeSystem.url (and Coding.system) for a code system we define."""
    return canonical_url("CodeSystem", name)


def value_set_url(name: str) -> str:
    """Return ValueSet.url for a value set we define."""
    return canonical_url("ValueSet", name)


def questionnaire_url(name: str) -> str:
    """Return Questionnaire.url, the value QuestionnaireResponse.questionnaire points at."""
    return canonical_url("Questionnaire", name)


def identifier_system_url(name: str) -> str:
    """Return an Identifier.system namespace we own, e.g. `.../sid/mrn` for the program MRN."""
    return f"{CANONICAL_BASE}/sid/{_tail(name)}"


def is_ours(url: str) -> bool:
    """Tell whether a canonical or system URL lies under CANONICAL_BASE."""
    return url.startswith(CANONICAL_BASE + "/")


MRN_SYSTEM: Final = identifier_system_url("mrn")
