"""Status and workflow codes: Condition, Goal, Encounter discharge, Task, referral, List.

HL7 codes were checked against the FHIR R4 4.0.1 code systems that HAPI FHIR's validator ships
(hapi-fhir-validation-resources-r4 8.12.1, valuesets.xml); each group cites its spec page.
"""

from typing import Final

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import (
    APPOINTMENT_STATUS,
    BSER_TASK_BUSINESS_STATUS,
    CONDITION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VER_STATUS,
    DISCHARGE_DISPOSITION,
    GOAL_ACHIEVEMENT,
    LIST_EXAMPLE_USE_CODES,
    LIST_ITEM_FLAG,
    MEDICATION_REQUEST_CATEGORY,
    SDOHCC_TEMPORARY_CODES,
    TASK_CODE,
    V2_IDENTIFIER_TYPE,
)


def _spec(system: str, code: str, display: str, page: str) -> Code:
    """Return a Code defined by the FHIR R4 specification page `page`."""
    return Code(system, code, display, f"http://hl7.org/fhir/R4/{page}", Evidence.SPEC)


# --- Condition.clinicalStatus (R4 codesystem-condition-clinical.html, required binding) --------
_CLINICAL: Final = "codesystem-condition-clinical.html"
CONDITION_ACTIVE: Final = _spec(CONDITION_CLINICAL, "active", "Active", _CLINICAL)
CONDITION_RECURRENCE: Final = _spec(CONDITION_CLINICAL, "recurrence", "Recurrence", _CLINICAL)
CONDITION_RELAPSE: Final = _spec(CONDITION_CLINICAL, "relapse", "Relapse", _CLINICAL)
CONDITION_INACTIVE: Final = _spec(CONDITION_CLINICAL, "inactive", "Inactive", _CLINICAL)
CONDITION_REMISSION: Final = _spec(CONDITION_CLINICAL, "remission", "Remission", _CLINICAL)
CONDITION_RESOLVED: Final = _spec(CONDITION_CLINICAL, "resolved", "Resolved", _CLINICAL)

# --- Condition.verificationStatus (R4 codesystem-condition-ver-status.html) ---------------------
_VER: Final = "codesystem-condition-ver-status.html"
VERIFICATION_UNCONFIRMED: Final = _spec(CONDITION_VER_STATUS, "unconfirmed", "Unconfirmed", _VER)
VERIFICATION_PROVISIONAL: Final = _spec(CONDITION_VER_STATUS, "provisional", "Provisional", _VER)
VERIFICATION_DIFFERENTIAL: Final = _spec(CONDITION_VER_STATUS, "differential", "Differential", _VER)
VERIFICATION_CONFIRMED: Final = _spec(CONDITION_VER_STATUS, "confirmed", "Confirmed", _VER)
VERIFICATION_REFUTED: Final = _spec(CONDITION_VER_STATUS, "refuted", "Refuted", _VER)
VERIFICATION_ENTERED_IN_ERROR: Final = _spec(
    CONDITION_VER_STATUS, "entered-in-error", "Entered in Error", _VER
)

# --- Condition.category (R4 codesystem-condition-category.html) ---------------------------------
_CAT: Final = "codesystem-condition-category.html"
CATEGORY_PROBLEM_LIST_ITEM: Final = _spec(
    CONDITION_CATEGORY, "problem-list-item", "Problem List Item", _CAT
)
CATEGORY_ENCOUNTER_DIAGNOSIS: Final = _spec(
    CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis", _CAT
)

# --- Goal.achievementStatus (R4 codesystem-goal-achievement.html, preferred binding) ------------
_ACH: Final = "codesystem-goal-achievement.html"
GOAL_IN_PROGRESS: Final = _spec(GOAL_ACHIEVEMENT, "in-progress", "In Progress", _ACH)
GOAL_IMPROVING: Final = _spec(GOAL_ACHIEVEMENT, "improving", "Improving", _ACH)
GOAL_WORSENING: Final = _spec(GOAL_ACHIEVEMENT, "worsening", "Worsening", _ACH)
GOAL_NO_CHANGE: Final = _spec(GOAL_ACHIEVEMENT, "no-change", "No Change", _ACH)
GOAL_ACHIEVED: Final = _spec(GOAL_ACHIEVEMENT, "achieved", "Achieved", _ACH)
GOAL_SUSTAINING: Final = _spec(GOAL_ACHIEVEMENT, "sustaining", "Sustaining", _ACH)
GOAL_NOT_ACHIEVED: Final = _spec(GOAL_ACHIEVEMENT, "not-achieved", "Not Achieved", _ACH)
GOAL_NO_PROGRESS: Final = _spec(GOAL_ACHIEVEMENT, "no-progress", "No Progress", _ACH)
GOAL_NOT_ATTAINABLE: Final = _spec(GOAL_ACHIEVEMENT, "not-attainable", "Not Attainable", _ACH)

# Goal.lifecycleStatus is a required-bound `code` (R4 valueset-goal-status.html).
GOAL_LIFECYCLE_STATUSES: Final = (
    "proposed",
    "planned",
    "accepted",
    "active",
    "on-hold",
    "completed",
    "cancelled",
    "entered-in-error",
    "rejected",
)

# --- Encounter.hospitalization.dischargeDisposition (R4 codesystem-discharge-disposition.html) --
# Example binding. None of the 11 means "discharged to an outpatient SUD program": for a
# residential -> IOP step-down use other-hcf or home and carry the referral in ServiceRequest/Task
# (fhir-domain-reference.md 2.7). `oth` was unverified there and is confirmed by the R4 code system.
_DD: Final = "codesystem-discharge-disposition.html"
DISCHARGE_HOME: Final = _spec(DISCHARGE_DISPOSITION, "home", "Home", _DD)
DISCHARGE_ALT_HOME: Final = _spec(DISCHARGE_DISPOSITION, "alt-home", "Alternative home", _DD)
DISCHARGE_OTHER_HCF: Final = _spec(
    DISCHARGE_DISPOSITION, "other-hcf", "Other healthcare facility", _DD
)
DISCHARGE_HOSPICE: Final = _spec(DISCHARGE_DISPOSITION, "hosp", "Hospice", _DD)
DISCHARGE_LONG_TERM_CARE: Final = _spec(DISCHARGE_DISPOSITION, "long", "Long-term care", _DD)
DISCHARGE_AGAINST_ADVICE: Final = _spec(
    DISCHARGE_DISPOSITION, "aadvice", "Left against advice", _DD
)
DISCHARGE_EXPIRED: Final = _spec(DISCHARGE_DISPOSITION, "exp", "Expired", _DD)
DISCHARGE_PSYCHIATRIC_HOSPITAL: Final = _spec(
    DISCHARGE_DISPOSITION, "psy", "Psychiatric hospital", _DD
)
DISCHARGE_REHABILITATION: Final = _spec(DISCHARGE_DISPOSITION, "rehab", "Rehabilitation", _DD)
DISCHARGE_SNF: Final = _spec(DISCHARGE_DISPOSITION, "snf", "Skilled nursing facility", _DD)
DISCHARGE_OTHER: Final = _spec(DISCHARGE_DISPOSITION, "oth", "Other", _DD)

# Encounter.status is a required-bound `code` (R4 valueset-encounter-status.html).
ENCOUNTER_STATUSES: Final = (
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
)

# Appointment status `noshow` (R4 codesystem-appointmentstatus.html): "Some or all of the
# participant(s) have not/did not appear for the appointment (usually the patient)". R4 Encounter
# has no no-show status, so a missed IOP session can carry this code (e.g. in an extension or on
# the Appointment) while the referral Task records BSeR 5.1.2.
APPOINTMENT_NO_SHOW: Final = _spec(
    APPOINTMENT_STATUS, "noshow", "No Show", "codesystem-appointmentstatus.html"
)

# --- Patient.identifier.type for the program MRN (R4 v2/0203, table v2-0203) -------------------
IDENTIFIER_TYPE_MR: Final = Code(
    V2_IDENTIFIER_TYPE,
    "MR",
    "Medical record number",
    "http://hl7.org/fhir/R4/v2/0203/index.html",
    Evidence.SPEC,
)
# ServiceRequest.identifier type: code and display checked in R4 v2-0203
# (hapi-fhir-validation-resources-r4 8.12.1 v2-tables.xml) and listed in the R4 identifier-type
# value set (valuesets.xml); BSeR slices identifier on it (fhir-domain-reference.md 1.2).
IDENTIFIER_TYPE_PLAC: Final = Code(
    V2_IDENTIFIER_TYPE,
    "PLAC",
    "Placer Identifier",
    "http://hl7.org/fhir/R4/v2/0203/index.html",
    Evidence.SPEC,
)

# --- MedicationRequest.category (R4 codesystem-medicationrequest-category.html; US Core 9.0.0
# slices category:us-core with a required binding to this value set) ---------------------------
_MR_CAT: Final = "codesystem-medicationrequest-category.html"
# "requests for medications to be administered or consumed by the patient in their home": what
# an IOP client takes between sessions (the intake and reconciled lists).
MEDICATION_COMMUNITY: Final = _spec(MEDICATION_REQUEST_CATEGORY, "community", "Community", _MR_CAT)
# "requests for medications created when the patient is being released from a facility": the
# residential discharge list and the list in the IOP discharge document.
MEDICATION_DISCHARGE: Final = _spec(MEDICATION_REQUEST_CATEGORY, "discharge", "Discharge", _MR_CAT)

# --- Medication List ----------------------------------------------------------------------------
# List.code (example binding): checked in R4 valuesets.xml (hapi-fhir-validation-resources-r4
# 8.12.1), CodeSystem list-example-use-codes.
LIST_MEDICATIONS: Final = Code(
    LIST_EXAMPLE_USE_CODES,
    "medications",
    "Medication List",
    "http://hl7.org/fhir/R4/codesystem-list-example-codes.html",
    Evidence.SPEC,
)
# List.entry.flag (example binding): R4 list-item-flag "Patient Medicine Change Types", codes and
# displays checked in hapi-fhir-validation-resources-r4 8.12.1 valuesets.xml.
_FLAG: Final = "codesystem-list-item-flag.html"
FLAG_UNCHANGED: Final = _spec(LIST_ITEM_FLAG, "01", "Unchanged", _FLAG)
FLAG_CHANGED: Final = _spec(LIST_ITEM_FLAG, "02", "Changed", _FLAG)
FLAG_PRESCRIBED: Final = _spec(LIST_ITEM_FLAG, "04", "Prescribed", _FLAG)
FLAG_CEASED: Final = _spec(LIST_ITEM_FLAG, "05", "Ceased", _FLAG)

# --- Referral Task ------------------------------------------------------------------------------
# Task.code is fixed to task-code#fulfill by SDOHCC and BSeR (fhir-domain-reference.md 1.1, 1.2;
# R4 codesystem-task-code.html).
TASK_FULFILL: Final = _spec(
    TASK_CODE, "fulfill", "Fulfill the focal request", "codesystem-task-code.html"
)

# Task.status values the SDOHCC referral profile allows: FHIR task-status minus `ready` and
# `received` (SDOHCC ValueSetReferralTaskStatus, STU3, 10 concepts;
# https://www.hl7.org/fhir/us/sdoh-clinicalcare/en/ValueSet-SDOHCC-ValueSetReferralTaskStatus.html).
SDOHCC_REFERRAL_TASK_STATUSES: Final = (
    "draft",
    "requested",
    "accepted",
    "rejected",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
)
# SDOHCC expects statusReason.text whenever the Task is in one of these states (reference 1.1).
SDOHCC_STATUSES_NEEDING_REASON: Final = ("rejected", "cancelled", "on-hold", "failed")

# BSeR Task.businessStatus milestones (HL7/bser input/fsh/codesystems/TaskBusinessStatusCS.fsh;
# fhir-domain-reference.md 1.2). Displays as published.
_SRC_BSER: Final = "https://github.com/HL7/bser input/fsh/codesystems/TaskBusinessStatusCS.fsh"


def _bser(code: str, display: str) -> Code:
    """Return a BSeR Task business-status Code."""
    return Code(BSER_TASK_BUSINESS_STATUS, code, display, _SRC_BSER, Evidence.IG)


BSER_CREATED: Final = _bser("2.0", "Service Request Created")
BSER_ACCEPTED: Final = _bser("3.0", "Service Request Accepted")
BSER_DECLINED: Final = _bser("4.0", "Service Request Declined")
BSER_EVENT_SCHEDULED: Final = _bser("5.1.1", "Service Request Event Scheduled")
BSER_EVENT_UNATTENDED: Final = _bser("5.1.2", "Scheduled Service Request Event Unattended")
BSER_EVENT_CANCELLED: Final = _bser("5.1.3", "Scheduled Service Request Event Cancelled")
BSER_EVENT_COMPLETED: Final = _bser("5.1.4", "Service Request Event Completed")
BSER_CANCELLATION_REQUESTED: Final = _bser("5.2", "Service Request Cancellation Requested")
BSER_FULFILLMENT_CANCELLED: Final = _bser("6.0", "Service Request Fulfillment Cancelled")
BSER_FULFILLMENT_COMPLETED: Final = _bser("7.0", "Service Request Fulfillment Completed")
BSER_BUSINESS_STATUSES: Final = (
    BSER_CREATED,
    BSER_ACCEPTED,
    BSER_DECLINED,
    BSER_EVENT_SCHEDULED,
    BSER_EVENT_UNATTENDED,
    BSER_EVENT_CANCELLED,
    BSER_EVENT_COMPLETED,
    BSER_CANCELLATION_REQUESTED,
    BSER_FULFILLMENT_CANCELLED,
    BSER_FULFILLMENT_COMPLETED,
)

# SDOHCC Task.output.type (both output slices of TaskForReferralManagement; reference 1.1).
# Display read in HL7/fhir-sdoh-clinicalcare SDOHCCCodeSystemTemporaryCodes.fsh and its Task
# examples ("Resulting Activity"), with the search tool on 2026-12-07.
SDOHCC_RESULTING_ACTIVITY: Final = Code(
    SDOHCC_TEMPORARY_CODES,
    "resulting-activity",
    "Resulting Activity",
    "https://github.com/HL7/fhir-sdoh-clinicalcare "
    "input/fsh/codesystems/SDOHCCCodeSystemTemporaryCodes.fsh",
    Evidence.IG,
)
