"""Clinical codes: SNOMED CT therapies, encounter classes, ASAM levels, diagnoses, medications.

Only codes that the shared reference (fhir-domain-reference.md) marks as verified or seen with
a source are listed; concepts with no verified code stay text-only (see TEXT_ONLY_MODALITIES).
"""

from typing import Final

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import (
    COLORADO_BHA_ASAM_LEVEL_OF_CARE,
    ICD_10_CM,
    RXNORM,
    SNOMED_CT,
    V3_ACT_CODE,
)

# --- SNOMED CT services and therapies -----------------------------------------------------------
# fhir-domain-reference.md 2.2: VSAC "Follow Up for Adult Depression"
# 2.16.840.1.113883.3.526.3.1568, "Follow Up for Adolescent Depression" ...1569 (eCQM Update
# 2025-05-08) and "Opioid Medication Assisted Treatment (MAT)" 2.16.840.1.113762.1.4.1111.177;
# procedure categories from https://hl7.org/fhir/valueset-procedure-category.html
_SRC_VSAC_DEPRESSION: Final = (
    "VSAC 2.16.840.1.113883.3.526.3.1568/1569; fhir-domain-reference.md 2.2"
)
_SRC_VSAC_MAT: Final = "VSAC 2.16.840.1.113762.1.4.1111.177; fhir-domain-reference.md 2.2"
_SRC_PROC_CATEGORY: Final = (
    "https://hl7.org/fhir/valueset-procedure-category.html; fhir-domain-reference.md 2.2"
)


def _snomed(code: str, display: str, source: str = _SRC_VSAC_DEPRESSION) -> Code:
    """Return a SNOMED CT Code seen in a terminology expansion."""
    return Code(SNOMED_CT, code, display, source, Evidence.TERM)


SNOMED_CBT: Final = _snomed("228557008", "Cognitive and behavioral therapy (regime/therapy)")
SNOMED_DBT: Final = _snomed("405780009", "Dialectical behavior therapy (regime/therapy)")
SNOMED_GROUP_PSYCHOTHERAPY: Final = _snomed("76168009", "Group psychotherapy (regime/therapy)")
SNOMED_BRIEF_GROUP_PSYCHOTHERAPY: Final = _snomed("1555005", "Brief group psychotherapy")
SNOMED_INTERACTIVE_GROUP_PSYCHOTHERAPY: Final = _snomed(
    "28868002", "Interactive group medical psychotherapy"
)
SNOMED_INDIVIDUAL_PSYCHOTHERAPY: Final = _snomed(
    "18512000", "Individual psychotherapy (regime/therapy)"
)
SNOMED_FAMILY_PSYCHOTHERAPY: Final = _snomed(
    "108313002", "Family psychotherapy procedure (regime/therapy)"
)
SNOMED_PSYCHOTHERAPY: Final = _snomed("75516001", "Psychotherapy (regime/therapy)")
SNOMED_REFERRAL_TO_FAMILY_THERAPY: Final = _snomed(
    "710914003", "Referral to family therapy (procedure)"
)
SNOMED_REFERRAL_TO_SUPPORT_GROUP: Final = _snomed(
    "711281004", "Referral to support group (procedure)"
)
SNOMED_REFERRAL_FOR_PSYCHOTHERAPY: Final = _snomed("81294000", "Patient referral for psychotherapy")
SNOMED_REFERRAL_TO_MENTAL_HEALTH_TEAM: Final = _snomed(
    "390866009", "Referral to mental health team"
)
SNOMED_CRISIS_INTERVENTION: Final = _snomed("5694008", "Crisis intervention with follow-up")
SNOMED_CASE_MANAGEMENT_FOLLOW_UP: Final = _snomed(
    "425604002", "Case management follow up (procedure)"
)
# The closest verified concept to psychoeducation, but NOT an equivalent: the reference calls the
# mapping a judgment call, so the psychoeducation modality stays text-only in SNOMED terms.
SNOMED_MENTAL_HEALTH_CARE_EDUCATION: Final = _snomed(
    "410224008", "Mental health care education (procedure)"
)
SNOMED_MAT_BUPRENORPHINE: Final = _snomed(
    "792901003", "Drug addiction therapy using buprenorphine", _SRC_VSAC_MAT
)
SNOMED_MAT_BUPRENORPHINE_NALOXONE: Final = _snomed(
    "792902005", "Drug addiction therapy using buprenorphine and naloxone", _SRC_VSAC_MAT
)
SNOMED_MAT_METHADONE: Final = _snomed(
    "310653000", "Drug addiction therapy using methadone", _SRC_VSAC_MAT
)
SNOMED_CATEGORY_PSYCHIATRY: Final = _snomed(
    "24642003", "Psychiatry procedure or service", _SRC_PROC_CATEGORY
)
SNOMED_CATEGORY_COUNSELING: Final = _snomed("409063005", "Counseling", _SRC_PROC_CATEGORY)
SNOMED_CATEGORY_EDUCATION: Final = _snomed("409073007", "Education", _SRC_PROC_CATEGORY)
SNOMED_CATEGORY_SOCIAL_SERVICE: Final = _snomed(
    "410606002", "Social service procedure", _SRC_PROC_CATEGORY
)

# IOP modality (our iop-modality code) -> verified SNOMED CT equivalent.
SNOMED_BY_MODALITY: Final[dict[str, Code]] = {
    "cbt": SNOMED_CBT,
    "dbt": SNOMED_DBT,
    "family-therapy": SNOMED_FAMILY_PSYCHOTHERAPY,
    "group-therapy": SNOMED_GROUP_PSYCHOTHERAPY,
    "individual-therapy": SNOMED_INDIVIDUAL_PSYCHOTHERAPY,
}
# No verified SNOMED CT concept (reference 2.2 marks MI, relapse prevention and exact
# psychoeducation UNVERIFIED; none was found for the others): send our iop-modality code plus
# CodeableConcept.text, never a guessed SNOMED code.
TEXT_ONLY_MODALITIES: Final = (
    "motivational-interviewing",
    "trauma-informed-therapy",
    "psychoeducation",
    "relapse-prevention",
    "medication-management",
    "holistic-expressive",
)

# --- Encounter.class (v3 ActCode) ---------------------------------------------------------------
# fhir-domain-reference.md 2.3 lists AMB/IMP from the UTG encounter-class value set and VR from
# [CODE] instances only; all three codes and displays were checked here against the R4 v3-ActCode
# code system that HAPI's validator ships (hapi-fhir-validation-resources-r4, v3-codesystems.xml).
_SRC_ACT_ENCOUNTER: Final = (
    "https://build.fhir.org/ig/HL7/UTG/ValueSet-encounter-class.html; R4 v3-ActCode; reference 2.3"
)
ENCOUNTER_CLASS_AMBULATORY: Final = Code(
    V3_ACT_CODE, "AMB", "ambulatory", _SRC_ACT_ENCOUNTER, Evidence.SPEC
)
ENCOUNTER_CLASS_VIRTUAL: Final = Code(
    V3_ACT_CODE, "VR", "virtual", _SRC_ACT_ENCOUNTER, Evidence.SPEC
)
ENCOUNTER_CLASS_INPATIENT: Final = Code(
    V3_ACT_CODE, "IMP", "inpatient encounter", _SRC_ACT_ENCOUNTER, Evidence.SPEC
)
# NONAC, a child of IMP: "Any category of inpatient encounter except 'acute'". The class of an
# ASAM 3.x residential stay (admitted, overnight, room and board, not acute care); see
# mappers/residential.py. Not in reference 2.3: code, display and parent were read in the R4
# v3-ActCode that HAPI's validator ships (hapi-fhir-validation-resources-r4 8.8.0 and 8.12.1,
# v3-codesystems.xml, _ActEncounterCode > IMP > NONAC).
ENCOUNTER_CLASS_NON_ACUTE: Final = Code(
    V3_ACT_CODE,
    "NONAC",
    "inpatient non-acute",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode (R4 4.0.1, as shipped in "
    "hapi-fhir-validation-resources-r4 v3-codesystems.xml): _ActEncounterCode > IMP > NONAC",
    Evidence.SPEC,
)

# --- ASAM levels of care (Colorado BHA, variant A) ----------------------------------------------
# CoBHA/CoBHRM-FHIR-IG input/fsh/codesystems/BHAASAMLevelOfCareCS.fsh (displays as published;
# the source notes 3.2-D and 3.3 end with the 2025 ASAM criteria and 3.7x is provisional).
# CONFLICT (reference 2.1): another build of the same IG has 23 concepts and spells outpatient
# `1`, not `1.0`; always send the system URL, and map on input.
_SRC_ASAM: Final = (
    "https://github.com/CoBHA/CoBHRM-FHIR-IG input/fsh/codesystems/BHAASAMLevelOfCareCS.fsh; "
    "fhir-domain-reference.md 2.1 (variant A)"
)


def _asam(code: str, display: str) -> Code:
    """Return a Colorado BHA ASAM level-of-care Code."""
    return Code(COLORADO_BHA_ASAM_LEVEL_OF_CARE, code, display, _SRC_ASAM, Evidence.IG)


ASAM_1_0_OUTPATIENT: Final = _asam("1.0", "Outpatient (OP) and EOP")
ASAM_2_1_INTENSIVE_OUTPATIENT: Final = _asam("2.1", "Intensive Outpatient")
ASAM_2_5_PARTIAL_HOSPITALIZATION: Final = _asam("2.5", "Partial Hospitalization")
ASAM_3_1: Final = _asam("3.1", "Clinically Managed Low-Intensity Residential Services")
ASAM_3_2_D: Final = _asam(
    "3.2-D",
    "Clinically Managed Residential Withdrawal Management - Going away with New 2025 ASAM",
)
ASAM_3_3: Final = _asam(
    "3.3",
    "Clinically Managed Medium-Intensity Residential Services - Going away with New 2025 ASAM",
)
ASAM_3_5: Final = _asam("3.5", "Clinically Managed High-Intensity Residential Services")
ASAM_3_7: Final = _asam("3.7", "Medically Monitored Intensive Residential Treatment")
ASAM_3_7X: Final = _asam("3.7x", "Medically Monitored Inpatient Withdrawal Management")
ASAM_LEVELS: Final = (
    ASAM_1_0_OUTPATIENT,
    ASAM_2_1_INTENSIVE_OUTPATIENT,
    ASAM_2_5_PARTIAL_HOSPITALIZATION,
    ASAM_3_1,
    ASAM_3_2_D,
    ASAM_3_3,
    ASAM_3_5,
    ASAM_3_7,
    ASAM_3_7X,
)

# --- ICD-10-CM diagnoses ------------------------------------------------------------------------
# [CODE]-sourced only (fhir-domain-reference.md 2.5): seen consistently in public code and the
# SHIFT SUD example value set (SHIFT-Task-Force/demo-fhir-data input/fsh/valuesets/SUD.fsh). The
# mCODE Elixhauser value sets list the same F10/F11/F33 families, but no tabular page was read:
# confirm against the CMS/CDC ICD-10-CM tabular list before go-live.
_SRC_ICD: Final = "fhir-domain-reference.md 2.5 ([CODE]: SHIFT demo-fhir-data SUD.fsh and others)"


def _icd(code: str, display: str) -> Code:
    """Return an ICD-10-CM Code whose only backing is third-party code."""
    return Code(ICD_10_CM, code, display, _SRC_ICD, Evidence.CODE)


ICD_ALCOHOL_DEPENDENCE: Final = _icd("F10.20", "Alcohol dependence, uncomplicated")
ICD_OPIOID_DEPENDENCE: Final = _icd("F11.20", "Opioid dependence, uncomplicated")
ICD_OPIOID_ABUSE_IN_REMISSION: Final = _icd("F11.11", "Opioid abuse, in remission")
ICD_MDD_RECURRENT_MODERATE: Final = _icd("F33.1", "Major depressive disorder, recurrent, moderate")
ICD_GENERALIZED_ANXIETY: Final = _icd("F41.1", "Generalized anxiety disorder")
ICD_PTSD_UNSPECIFIED: Final = _icd("F43.10", "Post-traumatic stress disorder, unspecified")
ICD_PTSD_CHRONIC: Final = _icd("F43.12", "Post-traumatic stress disorder, chronic")

# --- RxNorm medications -------------------------------------------------------------------------
# fhir-domain-reference.md 2.6: VSAC "Opiate Antagonists" 2.16.840.1.113883.3.464.1003.198.12.1132
# and "Antidepressant Medication" ...196.12.1213 (eCQM Update 2021-05-06). Sertraline 50 mg is
# 312941 (312938 is the 100 mg tablet, a CONFLICT in sample code). RxNorm remaps codes: re-check
# against RxNav before go-live.
_SRC_RXNORM: Final = "VSAC 2.16.840.1.113883.3.464.1003.198.12.1132 / .196.12.1213; reference 2.6"


def _rx(code: str, display: str) -> Code:
    """Return an RxNorm Code from the VSAC expansion."""
    return Code(RXNORM, code, display, _SRC_RXNORM, Evidence.TERM)


RX_BUP_NAL_FILM_8_2: Final = _rx("1010604", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film")
RX_BUP_NAL_FILM_2_05: Final = _rx("1010600", "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Film")
RX_BUP_NAL_FILM_4_1: Final = _rx("1307056", "buprenorphine 4 MG / naloxone 1 MG Sublingual Film")
RX_BUP_NAL_FILM_12_3: Final = _rx("1307061", "buprenorphine 12 MG / naloxone 3 MG Sublingual Film")
RX_BUP_NAL_TABLET_8_2: Final = _rx("351267", "buprenorphine 8 MG / naloxone 2 MG Sublingual Tablet")
RX_NALTREXONE_50_TABLET: Final = _rx("1483744", "naltrexone hydrochloride 50 MG Oral Tablet")
RX_NALTREXONE_ER_INJECTION: Final = _rx("637213", "naltrexone 380 MG Injection")
RX_ACAMPROSATE_333: Final = _rx("835726", "acamprosate calcium 333 MG Delayed Release Oral Tablet")
RX_DISULFIRAM_250: Final = _rx("197623", "disulfiram 250 MG Oral Tablet")
RX_SERTRALINE_50: Final = _rx("312941", "sertraline 50 MG Oral Tablet")
RX_TRAZODONE_50: Final = _rx("856377", "trazodone hydrochloride 50 MG Oral Tablet")
RX_TRAZODONE_100: Final = _rx("856373", "trazodone hydrochloride 100 MG Oral Tablet")
