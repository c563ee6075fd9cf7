"""A sender's Condition as a Diagnosis: SNOMED CT only, ICD-10-CM written as its OID, or text
only; statuses may be missing; US Core categories.

R4 condition.html: clinicalStatus and verificationStatus are 0..1 (con-3/con-4 only ask for a
clinicalStatus on problem-list items, and none on entered-in-error ones); US Core adds the
category ``health-concern`` (http://hl7.org/fhir/us/core/CodeSystem/condition-category). A
missing status is kept as "" (not stated) rather than guessed. Whether a diagnosis is a
substance use disorder or a mental health one is read from whatever arrives: ICD-10-CM F10-F19
and F01-F99, else the words of the display or text (``Diagnosis.kind_from_text``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_profiles.terminology.systems import ICD_10_CM, SNOMED_CT
from mappers.condition import (
    CATEGORY_SYSTEM,
    CLINICAL_STATUS_SYSTEM,
    VERIFICATION_STATUS_SYSTEM,
    Diagnosis,
)
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_read import open_resource, read_fhir_date
from mappers.foreign.identity import sender_identifier
from mappers.loss import Loss, Mapped

# HL7 OIDs of the same code systems (terminology.hl7.org: ICD-10-CM 2.16.840.1.113883.6.90,
# SNOMED CT 2.16.840.1.113883.6.96); some senders write the OID in place of the URI.
SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.90": ICD_10_CM,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED_CT,
    "http://hl7.org/fhir/sid/icd-10": ICD_10_CM,  # often sent for CM codes; read as CM
}
US_CORE_CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
READ_CATEGORIES = frozenset({"problem-list-item", "encounter-diagnosis", "health-concern"})
_MAPPED = frozenset(
    {"identifier", "clinicalStatus", "verificationStatus", "category", "code", "subject",
     "onsetDateTime", "onsetPeriod", "recordedDate", "extension"}
)  # fmt: skip


def from_fhir(resource: Mapping[str, Any]) -> Mapped[Diagnosis]:
    """Read a Diagnosis from a foreign Condition (identifier, code, statuses, category, onset);
    the subject comes back in ``links``."""
    problems: list[Problem] = []
    condition, losses = open_resource(resource, "Condition", _MAPPED, problems)
    found = sender_identifier(condition, "Condition", problems, losses)
    icd, snomed, display = _read_code(condition.get("code"), problems, losses)
    category = _read_category(condition.get("category"), losses)
    clinical = _status(condition, "clinicalStatus", CLINICAL_STATUS_SYSTEM, losses)
    verification = _status(condition, "verificationStatus", VERIFICATION_STATUS_SYSTEM, losses)
    onset = _read_onset(condition, problems, losses)
    losses += [Loss(f"Condition.extension[{i}]", "extension not modelled by iop-bridge")
               for i, _ in enumerate(condition.get("extension") or [])]  # fmt: skip
    subject = (condition.get("subject") or {}).get("reference")
    if not isinstance(subject, str):
        problems.append(Problem("Condition.subject.reference", "is required", "required"))
    raise_if_problems("Condition", problems)
    assert found is not None and display is not None
    diagnosis = Diagnosis(
        found.value, icd[0] if icd else "", display, category, clinical, verification, onset,
        None, snomed[0] if snomed else None, snomed[1] if snomed else None,
    )  # fmt: skip
    return Mapped(diagnosis, {"subject": str(subject)}, tuple(losses))


def _read_code(
    concept: Any, problems: list[Problem], losses: list[Loss]
) -> tuple[tuple[str, str] | None, tuple[str, str | None] | None, str | None]:
    """The ICD-10-CM and SNOMED CT codings (under any alias), and the display to show."""
    if not isinstance(concept, dict):
        problems.append(Problem("Condition.code", "is required (a CodeableConcept)", "required"))
        return None, None, None
    icd = snomed = None
    for index, coding in enumerate(concept.get("coding") or []):
        coding = coding if isinstance(coding, dict) else {}
        system = SYSTEM_ALIASES.get(str(coding.get("system")), coding.get("system"))
        code, shown = coding.get("code"), coding.get("display")
        if system == ICD_10_CM and icd is None and isinstance(code, str):
            icd = (code, str(shown or concept.get("text") or code))
        elif system == SNOMED_CT and snomed is None and isinstance(code, str):
            snomed = (code, shown if isinstance(shown, str) else None)
        else:
            losses.append(Loss(f"Condition.code.coding[{index}]", "coding in another system"))
    text = concept.get("text")
    display = (icd[1] if icd else None) or (snomed[1] if snomed else None) or text
    if not isinstance(display, str) or not display.strip():
        display = snomed[0] if snomed else None
    if display is None:
        problems.append(Problem("Condition.code", "no ICD-10-CM or SNOMED CT code and no text"))
    return icd, snomed, display


def _read_category(value: Any, losses: list[Loss]) -> str:
    """The first category in condition-category or US Core's; "" when none is given."""
    categories = value if isinstance(value, list) else []
    for index, concept in enumerate(categories):
        for coding in (concept or {}).get("coding") or []:
            if (
                isinstance(coding, dict)
                and coding.get("system") in (CATEGORY_SYSTEM, US_CORE_CATEGORY_SYSTEM)
                and coding.get("code") in READ_CATEGORIES
            ):
                losses += [Loss(f"Condition.category[{i}]", "another category")
                           for i in range(len(categories)) if i != index]  # fmt: skip
                return str(coding["code"])
    losses += [Loss(f"Condition.category[{i}]", "category not read")
               for i in range(len(categories))]  # fmt: skip
    return ""


def _status(condition: Mapping[str, Any], element: str, system: str, losses: list[Loss]) -> str:
    concept = condition.get(element)
    for coding in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
        if isinstance(coding, dict) and coding.get("system") == system:
            return str(coding.get("code") or "")
    if concept is not None:
        losses.append(Loss(f"Condition.{element}", f"no coding in {system}: not read"))
    return ""  # not stated by the sender (R4: 0..1)


def _read_onset(
    condition: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> str | None:
    if "onsetPeriod" in condition:
        start = (condition.get("onsetPeriod") or {}).get("start")
        losses.append(Loss("Condition.onsetPeriod", "read as its start date"))
        onset, _ = read_fhir_date(start, "Condition.onsetPeriod.start", problems)
        return onset
    onset, cut = read_fhir_date(condition.get("onsetDateTime"), "Condition.onsetDateTime", problems)
    if cut:
        losses.append(Loss("Condition.onsetDateTime", "time of day not kept, only the date"))
    if "recordedDate" in condition:
        losses.append(Loss("Condition.recordedDate", "element not modelled by iop-bridge"))
    return onset
