"""The readers of each IOP discharge summary section (R4 composition.html Composition.section):
narrative paragraphs and entry references back into DischargeSummary fields, keyed by the
section's LOINC code (``part2`` for the text-only notice). ``mappers.discharge_reader`` reads
the document around them and picks the reader by section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from fhir_profiles import canonical
from fhir_profiles.canonical import DISCHARGE_SUMMARY_ID_SYSTEM
from fhir_profiles.terminology.documents import (
    SECTION_AFTERCARE,
    SECTION_ALLERGIES,
    SECTION_COURSE,
    SECTION_MEDICATIONS,
    SECTION_PLAN,
    SECTION_PROBLEMS,
    SECTION_RESULTS,
)
from mappers import assessment, condition, medication_reader, medication_request
from mappers.assessment import Assessment
from mappers.condition import Diagnosis
from mappers.discharge import (
    AFTERCARE_LABELS,
    COURSE_LABELS,
    SUPPORT_GROUPS_LABEL,
    AftercarePlan,
    CourseOfTreatment,
    DocumentedDiagnosis,
    DocumentedMedications,
    FinalScore,
    PlanOfCare,
    read_narrative,
)
from mappers.document_entries import DocumentEntries
from mappers.errors import Problem
from mappers.fhir_read import read_list
from mappers.loss import Loss, Mapped, unmapped_keys
from mappers.medication import MedicationEntry


@dataclass(frozen=True, slots=True)
class ReadSystems:
    """The business identifier systems a document's resources are read with."""

    discharge: str = DISCHARGE_SUMMARY_ID_SYSTEM
    condition: str = canonical.CONDITION_ID_SYSTEM
    medication_statement: str = canonical.MEDICATION_STATEMENT_ID_SYSTEM
    medication_request: str = canonical.MEDICATION_REQUEST_ID_SYSTEM
    medication_list: str = canonical.MEDICATION_LIST_ID_SYSTEM
    assessment: str = canonical.ASSESSMENT_ID_SYSTEM


def _targets_of(section: Mapping[str, Any], at: str, doc: DocumentEntries) -> list[str]:
    found: list[str] = []
    for index, item in enumerate(read_list(section.get("entry"), f"{at}.entry", doc.problems)):
        target = item.get("reference") if isinstance(item, dict) else None
        path = f"{at}.entry[{index}]"
        if isinstance(target, str) and target:
            found.append(target)
            doc.losses += unmapped_keys(item, {"reference"}, path=path)
        else:
            doc.problems.append(Problem(f"{path}.reference", "expected a literal reference"))
    return found


def _paragraphs(section: Mapping[str, Any], at: str, doc: DocumentEntries) -> list[str] | None:
    read = read_narrative(section.get("text"))
    if read is None:
        doc.problems.append(
            Problem(f"{at}.text.div", "not in the narrative shape iop-bridge writes")
        )
        return None
    return read[0] + read[1]


def _read_course(section: Any, at: str, doc: DocumentEntries, _: ReadSystems) -> dict[str, Any]:
    parts = _paragraphs(section, at, doc) or []
    counts = [_labelled(p, label) for p, label in zip(parts, COURSE_LABELS, strict=False)]
    if len(parts) not in (3, 4) or any(c is None or not c.isdigit() for c in counts):
        doc.problems.append(Problem(f"{at}.text.div", "expected weeks, attended and missed counts"))
        return {"course": None}
    weeks, attended, missed = (int(c or 0) for c in counts)
    summary = parts[3] if len(parts) == 4 else None
    return {"course": CourseOfTreatment(weeks, attended, missed, summary)}


def _labelled(paragraph: str, label: str) -> str | None:
    prefix = f"{label}: "
    return paragraph[len(prefix) :] if paragraph.startswith(prefix) else None


def _read_problems(
    section: Any, at: str, doc: DocumentEntries, systems: ReadSystems
) -> dict[str, Any]:
    def mapper(resource: Any) -> Mapped[Diagnosis]:
        return condition.from_fhir(resource, id_system=systems.condition)

    found = []
    for index, target in enumerate(_targets_of(section, at, doc)):
        diagnosis = doc.read(mapper, target, "Condition", f"{at}.entry[{index}]")
        if diagnosis is not None:
            found.append(DocumentedDiagnosis(target, diagnosis))
    return {"diagnoses": tuple(found)}


def _first_target(section: Any, at: str, doc: DocumentEntries) -> str | None:
    targets = _targets_of(section, at, doc)
    doc.losses += [
        Loss(f"{at}.entry[{i}]", "only one entry is kept") for i in range(1, len(targets))
    ]
    if not targets:
        doc.problems.append(Problem(f"{at}.entry", "is required", "required"))
    return targets[0] if targets else None


def _read_medications(
    section: Any, at: str, doc: DocumentEntries, systems: ReadSystems
) -> dict[str, Any]:
    target = _first_target(section, at, doc)
    found = None if target is None else doc.resolve(target, "List", f"{at}.entry[0]")
    if target is None or found is None:
        return {"medications": None}
    path, resource = found
    statements: dict[str, MedicationEntry] = {}
    for index, item in enumerate(read_list(resource.get("entry"), f"{path}.entry", [])):
        pointer = item.get("item") if isinstance(item, dict) else None
        ref = pointer.get("reference") if isinstance(pointer, dict) else None
        if not isinstance(ref, str) or ref not in doc.by_url:
            continue  # list_from_fhir names it
        reader, kind = _medication_reader(doc.by_url[ref][1], systems)
        entry = doc.read(reader, ref, kind, f"{path}.entry[{index}].item")
        if entry is not None:
            statements[ref] = entry
    med_list = doc.read(
        lambda r: medication_reader.list_from_fhir(
            r, id_system=systems.medication_list, statements=statements
        ),
        target, "List", f"{at}.entry[0]",
    )  # fmt: skip
    return {"medications": None if med_list is None else DocumentedMedications(target, med_list)}


def _medication_reader(
    resource: Mapping[str, Any], systems: ReadSystems
) -> tuple[Callable[[Any], Mapped[MedicationEntry]], str]:
    """Our MedicationRequests (what we send); MedicationStatements (documents sent before)."""
    if resource.get("resourceType") == medication_request.MR:
        system = systems.medication_request
        return lambda r: medication_request.from_fhir(r, id_system=system), medication_request.MR
    system = systems.medication_statement
    return lambda r: medication_reader.from_fhir(r, id_system=system), "MedicationStatement"


def _read_plan(section: Any, at: str, doc: DocumentEntries, _: ReadSystems) -> dict[str, Any]:
    target = _first_target(section, at, doc)
    parts = _paragraphs(section, at, doc)
    if target is None or not doc.resolve(target, "CarePlan", f"{at}.entry[0]") or not parts:
        return {"plan_of_care": None}
    doc.losses += [Loss(f"{at}.text", "only the first paragraph is kept")] if len(parts) > 1 else []
    return {"plan_of_care": PlanOfCare(target, parts[0])}


def _read_results(
    section: Any, at: str, doc: DocumentEntries, systems: ReadSystems
) -> dict[str, Any]:
    def mapper(resource: Any) -> Mapped[Assessment]:
        return assessment.from_fhir(resource, id_system=systems.assessment)

    found: dict[str, Any] = {}
    for index, target in enumerate(_targets_of(section, at, doc)):
        path = f"{at}.entry[{index}]"
        read = doc.read(mapper, target, "QuestionnaireResponse", path)
        if read is None:
            continue
        key = read.instrument.replace("-", "")  # phq-9 -> phq9
        if key in found:
            doc.losses.append(Loss(path, f"a second {read.instrument}: the first is kept"))
            continue
        found[key] = FinalScore(target, read)
    return found


def _read_aftercare(section: Any, at: str, doc: DocumentEntries, _: ReadSystems) -> dict[str, Any]:
    target = _first_target(section, at, doc)
    read = read_narrative(section.get("text"))
    parts, groups = read if read is not None else ([], [])
    values = [_labelled(p, label) for p, label in zip(parts, AFTERCARE_LABELS, strict=False)]
    tail = parts[len(AFTERCARE_LABELS) :]
    if (
        len(values) < len(AFTERCARE_LABELS)
        or None in values
        or tail not in ([], [SUPPORT_GROUPS_LABEL])
    ):
        doc.problems.append(
            Problem(f"{at}.text.div", "not the aftercare narrative iop-bridge writes")
        )
        return {"aftercare": None}
    if target is None or not doc.resolve(target, "Organization", f"{at}.entry[0]"):
        return {"aftercare": None}
    name, relapse, follow_up, crisis = (str(v) for v in values)
    plan = AftercarePlan(target, name, relapse, follow_up, tuple(groups), crisis or None)
    return {"aftercare": plan}


def _read_part2(section: Any, at: str, doc: DocumentEntries, _: ReadSystems) -> dict[str, Any]:
    parts = _paragraphs(section, at, doc)
    return {"part2_notice": "\n".join(parts) if parts else None}


def _read_allergies(
    section: Any, at: str, doc: DocumentEntries, systems: ReadSystems
) -> dict[str, Any]:
    """The PACIO TOC allergies section: iop-bridge records no allergies, so entries are lost."""
    entries = section.get("entry") if isinstance(section, dict) else None
    for index in range(len(entries) if isinstance(entries, list) else 0):
        doc.losses.append(Loss(f"{at}.entry[{index}]", "allergies are not modelled by iop-bridge"))
    return {}


SECTION_READERS: Final[
    Mapping[str, Callable[[Any, str, DocumentEntries, ReadSystems], dict[str, Any]]]
] = {
    SECTION_COURSE.code: _read_course,
    SECTION_PROBLEMS.code: _read_problems,
    SECTION_MEDICATIONS.code: _read_medications,
    SECTION_PLAN.code: _read_plan,
    SECTION_RESULTS.code: _read_results,
    SECTION_AFTERCARE.code: _read_aftercare,
    SECTION_ALLERGIES.code: _read_allergies,
    "part2": _read_part2,
}
