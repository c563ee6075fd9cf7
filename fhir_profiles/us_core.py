"""US Core 9.0.0: the profiles ours are based on, and the ones we claim directly.

US Core (HL7, CC0) is the floor US receivers expect. Each of our profiles derives from the US
Core profile of its type where one exists (``BASE_OF``); the server that validates them needs
US Core 9.0.0 loaded first (the live tier loads the IG's own resources from the shared corpus,
``tests/us_core.py``). Resources we send without a profile of our own claim the US Core profile
directly (``US_CORE_PROFILE``).

Not derived from US Core: the QuestionnaireResponse profiles. US Core's QuestionnaireResponse
derives from SDC's ``sdc-questionnaireresponse`` (hl7.fhir.uv.sdc), a package this machine cannot
fetch (packages.fhir.org is unreachable; SDC is on none of Maven Central, PyPI, npm or Debian),
so HAPI answers HAPI-0705 "Unknown base definition" for it and cannot build its snapshot.
Their US Core must-support elements are checked by our own test instead
(``tests/unit/mappers/test_us_core_must_support.py``).
"""

from typing import Final

US_CORE_VERSION: Final = "9.0.0"
US_CORE_BASE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/"


def us_core_url(name: str) -> str:
    """The canonical of a US Core StructureDefinition (unversioned)."""
    return US_CORE_BASE + name


# Our profile id -> the US Core profile it derives from.
BASE_OF: Final = {
    "iop-patient": us_core_url("us-core-patient"),
    "iop-condition": us_core_url("us-core-condition-problems-health-concerns"),
    "iop-careplan": us_core_url("us-core-careplan"),
    "iop-goal": us_core_url("us-core-goal"),
    "iop-session-encounter": us_core_url("us-core-encounter"),
    "iop-residential-encounter": us_core_url("us-core-encounter"),
    "iop-medicationrequest": us_core_url("us-core-medicationrequest"),
}
# Profiles whose US Core counterpart cannot be built here (see the module docstring).
NOT_BASED_ON_US_CORE: Final = frozenset(
    {"iop-phq9-response", "iop-gad7-response", "iop-asam-intake-response"}
)
# Resource type -> US Core profile claimed directly in meta.profile (no profile of ours).
US_CORE_PROFILE: Final = {
    "ServiceRequest": us_core_url("us-core-servicerequest"),
    "Condition:encounter-diagnosis": us_core_url("us-core-condition-encounter-diagnosis"),
}
