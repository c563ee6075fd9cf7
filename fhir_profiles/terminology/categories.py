"""Category codes US Core asks for on what we send (CarePlan, ServiceRequest).

Read in the US Core 9.0.0 resources (../shared/corpus/us-core-9.0.0/resources-yaml, CC0):
CodeSystem-careplan-category.yml and valueset-us-core-servicerequest-category.yml.
"""

from typing import Final

from fhir_profiles.terminology.clinical import SNOMED_CATEGORY_COUNSELING
from fhir_profiles.terminology.code import Code, Evidence

US_CORE_CAREPLAN_CATEGORY: Final = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"

# US Core 6.1 requires CarePlan.category:AssessPlan = assess-plan. US Core 9.0.0 removed the
# slice and retired the code system ("can be replicated as a local code"); the code still
# validates against 9.0.0 and satisfies receivers certified on 6.1.
CAREPLAN_ASSESS_PLAN: Final = Code(
    US_CORE_CAREPLAN_CATEGORY,
    "assess-plan",
    "Assessment and Plan of Treatment",
    "US Core 9.0.0 CodeSystem-careplan-category.yml (status retired); US Core 6.1 "
    "StructureDefinition-us-core-careplan CarePlan.category:AssessPlan",
    Evidence.IG,
)

# US Core ServiceRequest.category:us-core (required binding, us-core-servicerequest-category):
# the value set includes R4's servicerequest-category, which lists SNOMED CT 409063005
# Counselling; an IOP is counselling-based treatment. The code is the verified one already in
# ``clinical`` (R4 procedure-category spells the display "Counseling").
SERVICE_REQUEST_COUNSELING: Final = SNOMED_CATEGORY_COUNSELING

# US Core DocumentReference.category:uscore (1..*): the discharge document is a clinical note.
CLINICAL_NOTE: Final = Code(
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
    "clinical-note",
    "Clinical Note",
    "US Core 9.0.0 CodeSystem-us-core-documentreference-category.yml",
    Evidence.IG,
)
