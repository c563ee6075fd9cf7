"""LOINC document type and section codes for the IOP discharge summary Composition.

Each checked in HL7's C-CDA on FHIR IG (HL7/ccda-on-fhir); no profile of that IG is claimed,
the codes are reused for what they mean. The section codes are slices of its Discharge Summary
profile, except medications and results, taken from its CCD example: the Discharge Summary's
own medications code (10183-2) is limited there to MedicationStatement entries, not a List.
PACIO TOC section codes were NOT used (fhir-domain-reference.md 1.4, CONFLICT).
"""

from typing import Final

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import LOINC

_CCDA: Final = "https://github.com/HL7/ccda-on-fhir input/fsh/profiles/DischargeSummary.fsh"
_CCD: Final = (
    "https://github.com/HL7/ccda-on-fhir "
    "input/fsh/instances/Continuity-of-Care-Document-Example.fsh"
)

# Composition.type: C-CDA on FHIR ValueSet DischargeSummaryDocumentTypeCode.
DISCHARGE_SUMMARY: Final = Code(
    LOINC, "18842-5", "Discharge summary",
    "http://hl7.org/fhir/us/ccda/ValueSet-2.16.840.1.113883.11.20.4.1.html", Evidence.IG,
)  # fmt: skip
# Composition.section.code
SECTION_COURSE: Final = Code(LOINC, "8648-8", "Hospital course", _CCDA, Evidence.IG)
SECTION_PROBLEMS: Final = Code(LOINC, "11450-4", "Problem list - Reported", _CCDA, Evidence.IG)
SECTION_MEDICATIONS: Final = Code(
    LOINC, "10160-0", "History of Medication use Narrative", _CCD, Evidence.IG
)
SECTION_PLAN: Final = Code(LOINC, "18776-5", "Plan of care note", _CCDA, Evidence.IG)
SECTION_RESULTS: Final = Code(
    LOINC, "30954-2", "Relevant diagnostic tests/laboratory data note", _CCD, Evidence.IG
)
SECTION_AFTERCARE: Final = Code(
    LOINC, "8653-8", "Hospital discharge instructions", _CCDA, Evidence.IG
)
