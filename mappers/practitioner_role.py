"""A program's role as a party: a FHIR R4 PractitionerRole of the program's Organization (the
IOP's, or a referring program's in a referral submitted through iop-bridge's API).

Why a PractitionerRole: the PACIO Transitions of Care Composition admits only Practitioner,
PractitionerRole, Patient, Device or RelatedPerson as its ``author`` (HL7/
fhir-transitions-of-care-ig input/fsh/TOCComposition.fsh: "author only Reference($USCorePractitioner
or $USCorePractitionerRole or PractitionerRole or ..."), not the Organization; BSeR names a
PractitionerRole as the requester of a referral (BSeRReferralServiceRequest: "requester only
Reference(USCorePractitionerRoleProfile)"). iop-bridge knows the program, not which
clinician acts, so the role has an ``organization`` and no ``practitioner`` (R4 allows either;
US Core's pd-1 asks for one of practitioner, organization, healthcareService or location).

The role's ``code`` is text only: no verified code names an IOP program's care team (US Core
binds PractitionerRole.code extensibly to the NUCC taxonomy, which names clinicians' kinds).
Not claimed: US Core PractitionerRole, whose us-core-13 asks for telecom or an endpoint, which
iop-bridge is not configured with.

One role per program: its identifier is the program Organization's identifier value in our
PractitionerRole namespace, so every conditional create of it matches the one on the server.
"""

from __future__ import annotations

from typing import Any, Final

from mappers.errors import raise_if_problems
from mappers.fhir_reference import reference, reference_problems
from mappers.fhir_write import identifier_problems

ROLE_TEXT: Final = "Intensive outpatient program care team"
REFERRER_ROLE_TEXT: Final = "Referring program care team"


def to_fhir(
    *,
    identifier: str,
    id_system: str,
    organization_reference: str,
    organization_name: str,
    role_text: str = ROLE_TEXT,
) -> dict[str, Any]:
    """Fill PractitionerRole.identifier, active, organization (with its name) and code (text)."""
    problems = identifier_problems(identifier, "PractitionerRole.identifier")
    problems += reference_problems(
        organization_reference, "Organization", "PractitionerRole.organization"
    )
    raise_if_problems("PractitionerRole", problems)
    organization = reference(organization_reference)
    if organization_name.strip():
        organization["display"] = organization_name
    return {
        "resourceType": "PractitionerRole",
        "identifier": [{"system": id_system, "value": identifier}],
        "active": True,
        "organization": organization,
        "code": [{"text": role_text}],
    }
