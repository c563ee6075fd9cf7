"""Consent and security-label codes for 42 CFR Part 2 disclosures.

Codes from fhir-domain-reference.md section 3 (DS4P IG, HL7 terminology) and 1.5 (the BH
Profiles consent example). Every code and display below was also checked against the R4 code
systems HAPI's validator ships (hapi-fhir-validation-resources-r4 8.12.1, v3-codesystems.xml
and valuesets.xml). The Part 2 consent *shape* built from them is a design proposal, not an IG
profile (reference 3.3).
"""

from collections.abc import Mapping
from typing import Final

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import (
    CONSENT_POLICY,
    CONSENT_SCOPE,
    V3_ACT_CODE,
    V3_ACT_REASON,
    V3_CONFIDENTIALITY,
    V3_PARTICIPATION_TYPE,
)

_SRC_DS4P: Final = (
    "https://build.fhir.org/ig/HL7/fhir-security-label-ds4p/; R4 v3-ActCode / v3-Confidentiality; "
    "fhir-domain-reference.md 3.1"
)
_SRC_CONSENT: Final = (
    "https://build.fhir.org/ig/HL7/us-behavioral-health-profiles/"
    "Consent-SDOHCC-ConsentInformationDisclosure-example-1.html; reference 1.5, 3.3"
)


def _label(system: str, code: str, display: str) -> Code:
    """Return a DS4P security-label Code."""
    return Code(system, code, display, _SRC_DS4P, Evidence.SPEC)


# Confidentiality (exactly one per labelled resource, DS4P).
CONFIDENTIALITY_NORMAL: Final = _label(V3_CONFIDENTIALITY, "N", "normal")
CONFIDENTIALITY_RESTRICTED: Final = _label(V3_CONFIDENTIALITY, "R", "restricted")
CONFIDENTIALITY_VERY_RESTRICTED: Final = _label(V3_CONFIDENTIALITY, "V", "very restricted")

# Sensitivity (v3 ActCode). The reference left the SUD display unverified; the R4 code system
# spells it as below.
SENSITIVITY_ETH: Final = _label(V3_ACT_CODE, "ETH", "substance abuse information sensitivity")
SENSITIVITY_SUD: Final = _label(
    V3_ACT_CODE, "SUD", "substance use disorder information sensitivity"
)
SENSITIVITY_PSY: Final = _label(V3_ACT_CODE, "PSY", "psychiatry disorder information sensitivity")
SENSITIVITY_BH: Final = _label(V3_ACT_CODE, "BH", "behavioral health information sensitivity")

# Policy, refrain and obligation (v3 ActCode). Emit NORDSCLCD; the misspelling NORDSLCD is
# retired but may still arrive on input (reference 3.1 note).
POLICY_42CFR_PART2: Final = _label(V3_ACT_CODE, "42CFRPart2", "42 CFR Part2")
REFRAIN_NO_REDISCLOSURE: Final = _label(
    V3_ACT_CODE, "NORDSCLCD", "no redisclosure without consent directive"
)
REFRAIN_NO_DISCLOSURE: Final = _label(
    V3_ACT_CODE, "NODSCLCD", "no disclosure without consent directive"
)
REFRAIN_NO_AUTHORIZATION: Final = _label(
    V3_ACT_CODE, "NOAUTH", "no disclosure without subject authorization"
)
OBLIGATION_ENCRYPT: Final = _label(V3_ACT_CODE, "ENCRYPT", "encrypt")

# The label set for every SUD-derived resource that leaves the service (reference 3.2, 6.6).
PART2_SECURITY_LABELS: Final = (
    CONFIDENTIALITY_RESTRICTED,
    SENSITIVITY_ETH,
    POLICY_42CFR_PART2,
    REFRAIN_NO_REDISCLOSURE,
)

# Consent.scope / category / policyRule as in the BH Profiles disclosure example.
CONSENT_SCOPE_PATIENT_PRIVACY: Final = Code(
    CONSENT_SCOPE, "patient-privacy", "Privacy Consent", _SRC_CONSENT, Evidence.IG
)
CONSENT_CATEGORY_IDSCL: Final = Code(
    V3_ACT_CODE, "IDSCL", "information disclosure", _SRC_CONSENT, Evidence.IG
)
CONSENT_POLICY_HIPAA_AUTH: Final = Code(
    CONSENT_POLICY, "hipaa-auth", "HIPAA Authorization", _SRC_CONSENT, Evidence.IG
)

# Part 2 consent actor role, purposes of use and data classes. Codes and displays checked in R4
# v3-codesystems.xml / valuesets.xml (hapi-fhir-validation-resources-r4 8.12.1).
_SRC_R4_V3: Final = "R4 v3-codesystems.xml (hapi-fhir-validation-resources-r4 8.12.1)"
ROLE_RECIPIENT: Final = Code(
    V3_PARTICIPATION_TYPE, "IRCP", "information recipient", _SRC_R4_V3, Evidence.SPEC
)


def _purpose(code: str, display: str) -> Code:
    """Return a v3-ActReason Code under PurposeOfUse."""
    return Code(V3_ACT_REASON, code, display, _SRC_R4_V3 + ", is-a PurposeOfUse", Evidence.SPEC)


# Purposes of use a Part 2 consent names (treatment, payment, operations), with their R4
# specialisations: COC and ETREAT are kinds of TREAT, CAREMGT a kind of HOPERAT.
PURPOSES: Final[Mapping[str, Code]] = {
    c.code: c
    for c in (
        _purpose("TREAT", "treatment"),
        _purpose("ETREAT", "Emergency Treatment"),
        _purpose("COC", "coordination of care"),
        _purpose("HPAYMT", "healthcare payment"),
        _purpose("HOPERAT", "healthcare operations"),
        _purpose("CAREMGT", "care management"),
        _purpose("PATRQT", "patient requested"),
    )
}
PURPOSE_PARENT: Final = {"ETREAT": "TREAT", "COC": "TREAT", "CAREMGT": "HOPERAT"}
# Data classes a Part 2 consent covers: provision.securityLabel sensitivity codes.
DATA_CLASSES: Final[Mapping[str, Code]] = {
    c.code: c for c in (SENSITIVITY_ETH, SENSITIVITY_SUD, SENSITIVITY_PSY, SENSITIVITY_BH)
}


# Consent.category as other systems send it: LOINC document codes in the R4 consent-category
# value set (hl7.org/fhir/R4/valueset-consent-category.html) and CH Core's ConsentCategoriesVS
# (tx.fhir.org expansion, LOINC 2.82): 59284-0 "Patient Consent", 64292-6 "Release of
# information consent". Read as a disclosure consent when no IDSCL category is given.
CONSENT_CATEGORY_LOINC_PATIENT_CONSENT: Final = Code(
    "http://loinc.org", "59284-0", "Patient Consent",
    "R4 valueset-consent-category; CH Core ConsentCategoriesVS", Evidence.TERM,
)  # fmt: skip
CONSENT_CATEGORY_LOINC_RELEASE_OF_INFORMATION: Final = Code(
    "http://loinc.org", "64292-6", "Release of information consent",
    "R4 valueset-consent-category; CH Core ConsentCategoriesVS", Evidence.TERM,
)  # fmt: skip
