"""Code system URIs (Coding.system values) used by iop-bridge, each with its source.

HL7 URIs were checked against the FHIR R4 4.0.1 terminology resources that HAPI FHIR ships for
its validator (hapi-fhir-validation-resources-r4 8.12.1: valuesets.xml, v3-codesystems.xml,
v2-tables.xml), which are the same definitions as the pages cited below.
"""

from typing import Final

from fhir_profiles.canonical import code_system_url

# External terminologies (FHIR R4 terminologies-systems.html lists the URIs).
LOINC: Final = "http://loinc.org"
SNOMED_CT: Final = "http://snomed.info/sct"
ICD_10_CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
# FDA National Drug Codes: HL7 Terminology CodeSystem v3-ndc, url http://hl7.org/fhir/sid/ndc,
# OID 2.16.840.1.113883.6.69, content not-present (https://build.fhir.org/ig/HL7/UTG/
# CodeSystem-v3-ndc.json; NamingSystem-v3-ndc lists this URI as the preferred one).
NDC: Final = "http://hl7.org/fhir/sid/ndc"
UCUM: Final = "http://unitsofmeasure.org"
# BCP-47 language tags: R4 Patient.communication.language binds to "all languages"
# (http://hl7.org/fhir/R4/valueset-all-languages.html), whose system is this URI.
BCP_47: Final = "urn:ietf:bcp:47"

# HL7 v3 / v2 code systems (terminology.hl7.org; present in R4 v3-codesystems.xml, v2-tables.xml).
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_CONFIDENTIALITY: Final = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V2_IDENTIFIER_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V3_PARTICIPATION_TYPE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

# FHIR R4 code systems used in CodeableConcepts (http://hl7.org/fhir/R4/terminologies-systems.html).
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
GOAL_ACHIEVEMENT: Final = "http://terminology.hl7.org/CodeSystem/goal-achievement"
DISCHARGE_DISPOSITION: Final = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
CONSENT_SCOPE: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_POLICY: Final = "http://terminology.hl7.org/CodeSystem/consentpolicycodes"
TASK_CODE: Final = "http://hl7.org/fhir/CodeSystem/task-code"
CONSENT_ACTION: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
LIST_EXAMPLE_USE_CODES: Final = "http://terminology.hl7.org/CodeSystem/list-example-use-codes"
MEDICATION_REQUEST_CATEGORY: Final = (
    "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
)
# R4 CodeSystem list-item-flag "Patient Medicine Change Types" (codesystem-list-item-flag.html):
# in R4 its system is this OID, checked in hapi-fhir-validation-resources-r4 8.12.1 valuesets.xml.
LIST_ITEM_FLAG: Final = "urn:oid:1.2.36.1.2001.1001.101.104.16592"

# AuditEvent code systems (R4 auditevent.html; checked in R4 valuesets.xml,
# hapi-fhir-validation-resources-r4 8.12.1).
DICOM_DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
AUDIT_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SECURITY_SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"

# Code systems behind plain `code` elements: Task.status, Goal.lifecycleStatus, etc. Coded
# values there carry no system in instances, but the URI names where the codes are defined.
TASK_STATUS: Final = "http://hl7.org/fhir/task-status"
GOAL_STATUS: Final = "http://hl7.org/fhir/goal-status"
ENCOUNTER_STATUS: Final = "http://hl7.org/fhir/encounter-status"
APPOINTMENT_STATUS: Final = "http://hl7.org/fhir/appointmentstatus"

# R4 core extension "reasonCancelled" (extension-encounter-reasoncancelled.html; context
# Encounter, valueCodeableConcept): "If the encountered was cancelled after it was planned, why?
# Applies only if the status is cancelled." Checked in the R4 extension-definitions.xml that
# HAPI's validator ships (hapi-fhir-validation-resources-r4 8.8.0).
ENCOUNTER_REASON_CANCELLED_EXTENSION: Final = (
    "http://hl7.org/fhir/StructureDefinition/encounter-reasonCancelled"
)

# R4 core extensions bounding a Questionnaire item's answer (extension-minvalue.html,
# extension-maxvalue.html; context Questionnaire.item, value[x] includes integer).
MIN_VALUE_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/maxValue"

# Extension that carries an answer's score (R4 extension-ordinalvalue.html; in R4 its context
# includes Coding and Questionnaire.item.answerOption).
ORDINAL_VALUE_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

# BSeR Task.businessStatus codes: HL7/bser input/fsh/codesystems/TaskBusinessStatusCS.fsh; the
# IG canonical is http://hl7.org/fhir/us/bser (fhir-domain-reference.md section 1.2).
BSER_TASK_BUSINESS_STATUS: Final = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"

# SDOHCC temporary codes (fhir-domain-reference.md 1.1, "Temporary codes of note").
SDOHCC_TEMPORARY_CODES: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)

# Colorado BHA ASAM levels of care: CoBHA/CoBHRM-FHIR-IG sushi-config.yaml gives the canonical
# http://bha.colorado.gov/fhir/bha-ig and BHAASAMLevelOfCareCS.fsh the id (reference section
# 2.1). CONFLICT noted there: the RatioPBC test build publishes the same codes under
# .../bha-test-ig/CodeSystem/..., and a later CoBHA build spells outpatient `1` not `1.0`.
COLORADO_BHA_ASAM_LEVEL_OF_CARE: Final = (
    "http://bha.colorado.gov/fhir/bha-ig/CodeSystem/bha-asam-level-of-care-cs"
)

# Our own code systems (resources/CodeSystem-*.json).
IOP_MODALITY: Final = code_system_url("iop-modality")
IOP_DIAGNOSIS_ROLE: Final = code_system_url("iop-diagnosis-role")
IOP_GOAL_AREA: Final = code_system_url("iop-goal-area")
