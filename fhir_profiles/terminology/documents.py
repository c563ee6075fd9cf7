"""LOINC document type and section codes for the IOP discharge summary Composition.

Each checked in HL7's C-CDA on FHIR IG (HL7/ccda-on-fhir); no profile of that IG is claimed,
the codes are reused for what they mean. The section codes are slices of its Discharge Summary
profile, except medications and results, taken from its CCD example: the Discharge Summary's
own medications code (10183-2) is limited there to MedicationStatement entries, not a List.
The document now follows the current PACIO Transitions of Care TOCComposition (HL7/
fhir-transitions-of-care-ig input/fsh/TOCComposition.fsh, revision of 2025-12-31 "mlt20251231",
read with the search tool on 2026-12-07): category 18761-7, the allergies section 48765-2 and
discharge instructions 69730-0 (it replaced the older draft's 59271-7 and C-CDA's 8653-8). Its
problems 11450-4, medications 10160-0 (entries: the SMP List, as we build it), plan of care
18776-5 and clinical results 30954-2 are the codes below. 8653-8 stays readable (documents we
sent before).
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
SECTION_AFTERCARE_CCDA: Final = Code(
    LOINC, "8653-8", "Hospital discharge instructions", _CCDA, Evidence.IG
)
_TOC: Final = (
    "https://github.com/HL7/fhir-transitions-of-care-ig input/fsh/TOCComposition.fsh "
    "(2025-12-31 revision)"
)
# PACIO TOC: Composition.category (fixed) and the sections it adds.
TOC_CATEGORY: Final = Code(LOINC, "18761-7", "Transfer Summary Note", _TOC, Evidence.IG)
SECTION_AFTERCARE: Final = Code(LOINC, "69730-0", "Discharge Instructions", _TOC, Evidence.IG)
SECTION_ALLERGIES: Final = Code(
    LOINC, "48765-2", "Allergies and adverse reactions Document", _TOC, Evidence.IG
)
# Section.emptyReason for the allergies section: the IOP records no allergies (R4 list-empty-
# reason, as the TOC examples use it: JF-TOCComposition2.fsh, emptyReason on empty sections).
EMPTY_UNAVAILABLE: Final = Code(
    "http://terminology.hl7.org/CodeSystem/list-empty-reason",
    "unavailable",
    "Unavailable",
    "R4 codesystem-list-empty-reason; PACIO TOC examples (JF-TOCComposition2.fsh)",
    Evidence.SPEC,
)
