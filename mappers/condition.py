"""IOP diagnosis <-> FHIR R4 Condition (ICD-10-CM, optionally SNOMED CT)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology.local import DIAGNOSIS_ROLES
from fhir_profiles.terminology.systems import ICD_10_CM, SNOMED_CT
from fhir_profiles.us_core import US_CORE_PROFILE
from mappers import security_labels
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_coding import find_coding
from mappers.fhir_read import open_resource, read_fhir_date, read_str
from mappers.loss import Loss, Mapped, unmapped_list_entries

ICD10CM_SYSTEM = ICD_10_CM
CLINICAL_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
PROFILE = structure_definition_url("iop-condition")
ROLE_EXTENSION = structure_definition_url("iop-diagnosis-role")

# Code lists of the three R4 Condition value sets above (hl7.org/fhir/R4/condition.html).
CLINICAL_STATUSES = frozenset(
    {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
)
VERIFICATION_STATUSES = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)
CATEGORIES = frozenset({"problem-list-item", "encounter-diagnosis"})


# Words that name a diagnosis kind when no ICD-10-CM code came with it (text-only concepts;
# no code is inferred from them, only the SUD / mental-health kind).
SUBSTANCE_USE_WORDS = ("alcohol", "opioid", "substance", "cannabis", "cocaine", "stimulant",
                       "amphetamine", "sedative", "use disorder", "dependence")  # fmt: skip
MENTAL_HEALTH_WORDS = ("depress", "anxiety", "panic", "ptsd", "post-traumatic", "bipolar",
                       "schizo", "psychotic", "obsessive", "mood disorder")  # fmt: skip


def _names_any(text: str | None, words: tuple[str, ...]) -> bool:
    lowered = (text or "").lower()
    return any(word in lowered for word in words)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A diagnosis on the client's problem list, identified by a business identifier."""

    identifier: str
    icd10_code: str
    display: str
    category: str = "problem-list-item"
    clinical_status: str = "active"
    verification_status: str = "confirmed"
    onset: str | None = None  # a FHIR date of any precision: "2021", "2021-08", "2021-08-15"
    role: str | None = None  # primary | co-occurring (iop-diagnosis-role); None = not stated
    snomed_code: str | None = None  # optional SNOMED CT coding beside the ICD-10-CM one
    snomed_display: str | None = None
    recorded: str | None = None  # Condition.recordedDate, a FHIR date (US Core must support)

    @property
    def is_substance_use(self) -> bool:
        """A substance use disorder by 42 CFR 2.11: ICD-10-CM F10-F19 except F17 (tobacco), or a
        SNOMED CT SUD disorder (``mappers.security_labels``, the one rule for Part 2 labels); a
        diagnosis another system sent without ICD-10-CM, by the words of its display or text."""
        if security_labels.is_sud_code(self.icd10_code):
            return True
        if self.snomed_code is not None and security_labels.is_sud_snomed(self.snomed_code):
            return True
        text = (self.snomed_display or self.display).lower()
        if self.icd10_code or any(word in text for word in ("tobacco", "nicotine")):
            return False
        return _names_any(text, SUBSTANCE_USE_WORDS)

    @property
    def is_mental_health(self) -> bool:
        """ICD-10-CM chapter 5 (F01-F99) outside F10-F19; without ICD-10-CM, by its words."""
        code = self.icd10_code.upper()
        if code:
            return code.startswith("F") and not (code.startswith("F1") and code[2:3].isdigit())
        return _names_any(self.snomed_display or self.display, MENTAL_HEALTH_WORDS)

    def problems(self) -> list[Problem]:
        """Every reason this diagnosis cannot be sent as a Condition, each with its field."""
        found: list[Problem] = []
        if not self.identifier.strip():
            found.append(Problem("Diagnosis.identifier", "is required", "required"))
        if not self.icd10_code.strip():
            found.append(Problem("Diagnosis.icd10_code", "is required", "required"))
        if self.role is not None and self.role not in DIAGNOSIS_ROLES:
            found.append(Problem("Diagnosis.role", f"{self.role!r} is not a known code"))
        for name, value in (("onset", self.onset), ("recorded", self.recorded)):
            if value is not None:
                date_problems: list[Problem] = []
                read_fhir_date(value, f"Diagnosis.{name}", date_problems)
                found += date_problems
        if self.snomed_display is not None and self.snomed_code is None:
            found.append(Problem("Diagnosis.snomed_code", "is required with snomed_display"))
        for name, value, allowed in (
            ("category", self.category, CATEGORIES),
            ("clinical_status", self.clinical_status, CLINICAL_STATUSES),
            ("verification_status", self.verification_status, VERIFICATION_STATUSES),
        ):
            if value not in allowed:
                found.append(Problem(f"Diagnosis.{name}", f"{value!r} is not a known code"))
        return found


def to_fhir(diagnosis: Diagnosis, *, id_system: str, subject_reference: str) -> dict[str, Any]:
    """Fill Condition.meta.profile, extension (role), identifier, clinicalStatus,
    verificationStatus, category, code (ICD-10-CM, optional SNOMED CT), subject, onsetDateTime."""
    raise_if_problems("Diagnosis", diagnosis.problems())
    codings = [
        {"system": ICD10CM_SYSTEM, "code": diagnosis.icd10_code, "display": diagnosis.display}
    ]
    if diagnosis.snomed_code is not None:
        snomed = {"system": SNOMED_CT, "code": diagnosis.snomed_code}
        if diagnosis.snomed_display is not None:
            snomed["display"] = diagnosis.snomed_display
        codings.append(snomed)
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "meta": {"profile": [profile_for(diagnosis.category)]},
    }
    if diagnosis.role is not None:
        resource["extension"] = [{"url": ROLE_EXTENSION, "valueCode": diagnosis.role}]
    resource |= {
        "identifier": [{"system": id_system, "value": diagnosis.identifier}],
        "clinicalStatus": _concept(CLINICAL_STATUS_SYSTEM, diagnosis.clinical_status),
        "verificationStatus": _concept(VERIFICATION_STATUS_SYSTEM, diagnosis.verification_status),
        "category": [_concept(CATEGORY_SYSTEM, diagnosis.category)],
        "code": {"coding": codings, "text": diagnosis.display},
        "subject": {"reference": subject_reference},
    }
    if diagnosis.onset is not None:
        resource["onsetDateTime"] = diagnosis.onset
    if diagnosis.recorded is not None:
        resource["recordedDate"] = diagnosis.recorded
    return resource


def profile_for(category: str) -> str:
    """iop-condition (on US Core problems and health concerns) for a problem-list item; an
    encounter diagnosis claims US Core's encounter-diagnosis profile, whose category slice
    differs (US Core 9.0.0 splits Condition into these two profiles)."""
    if category == "encounter-diagnosis":
        return US_CORE_PROFILE["Condition:encounter-diagnosis"]
    return PROFILE


def from_fhir(resource: Any, *, id_system: str) -> Mapped[Diagnosis]:
    """Read a Diagnosis from Condition.extension (role), identifier, statuses, category, code
    and onsetDateTime; the subject reference comes back in ``links``."""
    problems: list[Problem] = []
    condition, losses = open_resource(resource, "Condition", _MAPPED_ELEMENTS, problems)
    role, role_losses = _read_role(condition.get("extension") or [], problems)
    identifier, id_losses = _read_identifier(condition.get("identifier") or [], id_system, problems)
    codes, code_losses = _read_code(condition.get("code"), problems)
    category, category_losses = _read_category(condition.get("category") or [], problems)
    losses += role_losses + id_losses + code_losses + category_losses
    clinical = _read_status(condition, "clinicalStatus", CLINICAL_STATUS_SYSTEM, problems)
    verification = _read_status(
        condition, "verificationStatus", VERIFICATION_STATUS_SYSTEM, problems
    )
    onset, cut = read_fhir_date(condition.get("onsetDateTime"), "Condition.onsetDateTime", problems)
    if cut:
        losses.append(Loss("Condition.onsetDateTime", "time of day not kept, only the date"))
    recorded, cut = read_fhir_date(
        condition.get("recordedDate"), "Condition.recordedDate", problems
    )
    if cut:
        losses.append(Loss("Condition.recordedDate", "time of day not kept, only the date"))
    subject = (condition.get("subject") or {}).get("reference")
    read_str(subject, "Condition.subject.reference", problems, required=True)
    raise_if_problems("Condition", problems)
    assert identifier and codes and category and clinical and verification
    diagnosis = Diagnosis(
        identifier, codes[0], codes[1], category, clinical, verification, onset, role,
        codes[2], codes[3], recorded,
    )  # fmt: skip
    raise_if_problems("Condition", diagnosis.problems())
    return Mapped(diagnosis, {"subject": str(subject)}, tuple(losses))


_MAPPED_ELEMENTS = frozenset(
    {"extension", "identifier", "clinicalStatus", "verificationStatus", "category", "code",
     "subject", "onsetDateTime", "recordedDate"}
)  # fmt: skip


def _read_role(extensions: list[Any], problems: list[Problem]) -> tuple[str | None, list[Loss]]:
    """The iop-diagnosis-role extension; every other extension is reported as lost."""
    role, losses = None, []
    for index, extension in enumerate(extensions):
        if isinstance(extension, dict) and extension.get("url") == ROLE_EXTENSION:
            path = f"Condition.extension[{index}].valueCode"
            role = read_str(extension.get("valueCode"), path, problems, required=True)
        else:
            url = extension.get("url") if isinstance(extension, dict) else None
            losses.append(Loss(f"Condition.extension[{index}]", f"unknown extension {url}"))
    return role, losses


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _read_identifier(
    identifiers: list[Any], id_system: str, problems: list[Problem]
) -> tuple[str | None, list[Loss]]:
    for index, item in enumerate(identifiers):
        if isinstance(item, dict) and item.get("system") == id_system:
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


def _read_code(
    concept: Any, problems: list[Problem]
) -> tuple[tuple[str, str, str | None, str | None] | None, list[Loss]]:
    """ICD-10-CM code and display, plus the first SNOMED CT coding; other codings are lost."""
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
    snomed, snomed_index = find_coding(concept, SNOMED_CT, "Condition.code", problems)
    snomed_code = snomed_display = None
    if snomed is not None:
        path = f"Condition.code.coding[{snomed_index}].code"
        snomed_code = read_str(snomed.get("code"), path, problems, required=True)
        snomed_display = snomed.get("display")
    codings = concept.get("coding") or []
    losses = [
        Loss(f"Condition.code.coding[{i}]", "coding in another system")
        for i in range(len(codings))
        if i not in (index, snomed_index)
    ]
    return ((code, display, snomed_code, snomed_display) if code else None), losses


def _read_status(
    condition: Mapping[str, Any], element: str, system: str, problems: list[Problem]
) -> str | None:
    concept = condition.get(element)
    if concept is None:
        problems.append(Problem(f"Condition.{element}", "is required", "required"))
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
    problems.append(Problem("Condition.category", f"no coding in {CATEGORY_SYSTEM}", "required"))
    return None, []
