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

# Identifier.system per concept: the namespace of the business identifier each mapper reads and
# writes (its `id_system` argument). Tail names follow the ones the test builders and Settings
# already use (tests/builders, integration/settings.py); each is a resource's own business id,
# not a resource id (FHIR R4 datatypes.html#Identifier).
ORGANIZATION_ID_SYSTEM: Final = identifier_system_url("organization")
CONDITION_ID_SYSTEM: Final = identifier_system_url("condition")
GOAL_ID_SYSTEM: Final = identifier_system_url("goal")
CARE_PLAN_ID_SYSTEM: Final = identifier_system_url("care-plan")
SESSION_ID_SYSTEM: Final = identifier_system_url("session")
RESIDENTIAL_STAY_ID_SYSTEM: Final = identifier_system_url("residential-stay")
ASSESSMENT_ID_SYSTEM: Final = identifier_system_url("assessment")
# The ASAM intake is a QuestionnaireResponse like the PHQ-9 and GAD-7 and is numbered by the same
# assessment register (the test builders send it in the assessment namespace), so it shares it.
INTAKE_ID_SYSTEM: Final = ASSESSMENT_ID_SYSTEM
REFERRAL_ID_SYSTEM: Final = identifier_system_url("referral")
TASK_ID_SYSTEM: Final = identifier_system_url("referral-task")
CONSENT_ID_SYSTEM: Final = identifier_system_url("consent")
MEDICATION_STATEMENT_ID_SYSTEM: Final = identifier_system_url("medication-statement")
# What we send is a MedicationRequest (US Core has not profiled MedicationStatement since v4);
# statements we sent before, and senders' statements, keep their own namespace.
MEDICATION_REQUEST_ID_SYSTEM: Final = identifier_system_url("medication-request")
# The IOP program's PractitionerRole (mappers.practitioner_role): author, referral requester.
PRACTITIONER_ROLE_ID_SYSTEM: Final = identifier_system_url("practitioner-role")
MEDICATION_LIST_ID_SYSTEM: Final = identifier_system_url("medication-list")
DISCHARGE_SUMMARY_ID_SYSTEM: Final = identifier_system_url("discharge-summary")
