"""IOP diagnosis <-> FHIR R4 Condition (ICD-10-CM, optionally SNOMED CT)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from mappers.errors import Problem, raise_if_problems
from mappers.fhir_read import find_coding, read_date, read_str, require_resource_type
from mappers.loss import Loss, Mapped, unmapped_list_entries, unmapped_top_level

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"  # FHIR R4 terminologies-systems page
CLINICAL_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"

# Code lists of the three R4 Condition value sets above (hl7.org/fhir/R4/condition.html).
CLINICAL_STATUSES = frozenset(
    {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
)
VERIFICATION_STATUSES = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)
CATEGORIES = frozenset({"problem-list-item", "encounter-diagnosis"})


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A diagnosis on the client's problem list, identified by a business identifier."""

    identifier: str
    icd10_code: str
    display: str
    category: str = "problem-list-item"
    clinical_status: str = "active"
    verification_status: str = "confirmed"
    onset: date | None = None

    @property
    def is_substance_use(self) -> bool:
        """ICD-10-CM block F10-F19: mental and behavioural disorders due to substance use."""
        code = self.icd10_code.upper()
        return code.startswith("F1") and len(code) >= 3 and code[2].isdigit()

    def problems(self) -> list[Problem]:
        """Every reason this diagnosis cannot be sent as a Condition, each with its field."""
        found: list[Problem] = []
        if not self.identifier.strip():
            found.append(Problem("Diagnosis.identifier", "is required", "required"))
        if not self.icd10_code.strip():
            found.append(Problem("Diagnosis.icd10_code", "is required", "required"))
        for name, value, allowed in (
            ("category", self.category, CATEGORIES),
            ("clinical_status", self.clinical_status, CLINICAL_STATUSES),
            ("verification_status", self.verification_status, VERIFICATION_STATUSES),
        ):
            if value not in allowed:
                found.append(Problem(f"Diagnosis.{name}", f"{value!r} is not a known code"))
        return found


def to_fhir(diagnosis: Diagnosis, *, id_system: str, subject_reference: str) -> dict[str, Any]:
    """Fill Condition.identifier, clinicalStatus, verificationStatus, category, code, subject,
    onsetDateTime."""
    raise_if_problems("Diagnosis", diagnosis.problems())
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "identifier": [{"system": id_system, "value": diagnosis.identifier}],
        "clinicalStatus": _concept(CLINICAL_STATUS_SYSTEM, diagnosis.clinical_status),
        "verificationStatus": _concept(VERIFICATION_STATUS_SYSTEM, diagnosis.verification_status),
        "category": [_concept(CATEGORY_SYSTEM, diagnosis.category)],
        "code": {
            "coding": [
                {
                    "system": ICD10CM_SYSTEM,
                    "code": diagnosis.icd10_code,
                    "display": diagnosis.display,
                }
            ],
            "text": diagnosis.display,
        },
        "subject": {"reference": subject_reference},
    }
    if diagnosis.onset is not None:
        resource["onsetDateTime"] = diagnosis.onset.isoformat()
    return resource


def from_fhir(resource: Any, *, id_system: str) -> Mapped[Diagnosis]:
    """Read a Diagnosis from Condition.identifier, statuses, category, code and onsetDateTime."""
    problems: list[Problem] = []
    condition = require_resource_type(resource, "Condition", problems)
    mapped = {
        "identifier",
        "clinicalStatus",
        "verificationStatus",
        "category",
        "code",
        "subject",
        "onsetDateTime",
    }
    losses = unmapped_top_level(condition, mapped, type_name="Condition")
    identifier, id_losses = _read_identifier(condition.get("identifier") or [], id_system, problems)
    icd, code_losses = _read_icd10(condition.get("code"), problems)
    losses += id_losses + code_losses
    clinical = _read_status(condition, "clinicalStatus", CLINICAL_STATUS_SYSTEM, problems)
    verification = _read_status(
        condition, "verificationStatus", VERIFICATION_STATUS_SYSTEM, problems
    )
    category, category_losses = _read_category(condition.get("category") or [], problems)
    losses += category_losses
    onset = read_date(condition.get("onsetDateTime"), "Condition.onsetDateTime", problems)
    subject = (condition.get("subject") or {}).get("reference")
    read_str(subject, "Condition.subject.reference", problems, required=True)
    raise_if_problems("Condition", problems)
    assert identifier is not None and icd is not None
    diagnosis = Diagnosis(
        identifier,
        icd[0],
        icd[1],
        category or "problem-list-item",
        clinical or "active",
        verification or "confirmed",
        onset,
    )
    raise_if_problems("Condition", diagnosis.problems())
    return Mapped(diagnosis, {"subject": str(subject)}, tuple(losses))


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _read_identifier(
    identifiers: list[Any], id_system: str, problems: list[Problem]
) -> tuple[str | None, list[Loss]]:
    for index, item in enumerate(identifiers):
        if isinstance(item, Mapping) and item.get("system") == id_system:
            value = read_str(
                item.get("value"), f"Condition.identifier[{index}].value", problems, required=True
            )
            losses = unmapped_list_entries(
                identifiers,
                index,
                path="Condition.identifier",
                reason=f"identifier outside {id_system}",
            )
            return value, losses
    problems.append(Problem("Condition.identifier", f"no identifier in system {id_system}"))
    return None, []


def _read_icd10(concept: Any, problems: list[Problem]) -> tuple[tuple[str, str] | None, list[Loss]]:
    if concept is None:
        problems.append(Problem("Condition.code", "is required", "required"))
        return None, []
    coding, index = find_coding(concept, ICD10CM_SYSTEM, "Condition.code", problems)
    if coding is None:
        problems.append(
            Problem("Condition.code.coding", f"no coding in {ICD10CM_SYSTEM}", "code-invalid")
        )
        return None, []
    code = read_str(
        coding.get("code"), f"Condition.code.coding[{index}].code", problems, required=True
    )
    display = str(coding.get("display") or concept.get("text") or code or "")
    losses = unmapped_list_entries(
        concept.get("coding") or [],
        index,
        path="Condition.code.coding",
        reason="coding in another system",
    )
    return (code, display) if code else None, losses


def _read_status(
    condition: Mapping[str, Any], element: str, system: str, problems: list[Problem]
) -> str | None:
    concept = condition.get(element)
    if concept is None:
        return None
    coding, index = find_coding(concept, system, f"Condition.{element}", problems)
    if coding is None:
        problems.append(Problem(f"Condition.{element}", f"no coding in {system}"))
        return None
    return read_str(
        coding.get("code"), f"Condition.{element}.coding[{index}].code", problems, required=True
    )


def _read_category(categories: list[Any], problems: list[Problem]) -> tuple[str | None, list[Loss]]:
    for index, concept in enumerate(categories):
        coding, _ = find_coding(concept, CATEGORY_SYSTEM, f"Condition.category[{index}]", problems)
        if coding is not None:
            losses = unmapped_list_entries(
                categories,
                index,
                path="Condition.category",
                reason="category outside condition-category",
            )
            return str(coding.get("code")), losses
    return None, unmapped_list_entries(
        categories, None, path="Condition.category", reason="category outside condition-category"
    )
