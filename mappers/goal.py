"""IOP SMART goal <-> FHIR R4 Goal (area, measurable target with due date, progress notes)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology import workflow
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.local import GOAL_AREAS
from fhir_profiles.terminology.systems import GOAL_ACHIEVEMENT, IOP_GOAL_AREA, UCUM
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_common import (
    CODING_KEYS,
    CONCEPT_KEYS,
    has_coding_in,
    modifier_extension_problems,
    read_identifier_list,
    read_reference,
    reference_problems,
    unmapped_keys,
)
from mappers.fhir_read import read_date, read_str_in, require_resource_type
from mappers.loss import Loss, Mapped, unmapped_top_level
from mappers.schedule import (
    indexed_links,
    number,
    read_coded,
    read_day,
    read_references,
    rename_paths,
)

GOAL_PROFILE = structure_definition_url("iop-goal")
LIFECYCLE_STATUSES = frozenset(workflow.GOAL_LIFECYCLE_STATUSES)
# Goal.achievementStatus codes (R4 codesystem-goal-achievement.html), as fhir_profiles lists them.
ACHIEVEMENT_STATUSES = {
    c.code: c
    for c in vars(workflow).values()
    if isinstance(c, Code) and c.system == GOAL_ACHIEVEMENT
}
# Quantity.comparator, required binding (R4 valueset-quantity-comparator.html).
COMPARATORS = frozenset({"<", "<=", ">=", ">"})
# The detail[x] choices iop-bridge models; Range, CodeableConcept, boolean and Ratio are reported.
DETAIL_ELEMENTS = ("detailQuantity", "detailInteger", "detailString")


@dataclass(frozen=True, slots=True)
class Measure:
    """What a target measures: a coded concept (e.g. LOINC 44261-6) and/or plain text."""

    text: str | None
    system: str | None = None
    code: str | None = None
    display: str | None = None

    @classmethod
    def of(cls, code: Code, text: str | None = None) -> Measure:
        """A coded measure from a fhir_profiles Code, with optional text."""
        return cls(text, code.system, code.code, code.display)


@dataclass(frozen=True, slots=True)
class TargetQuantity:
    """A target amount such as ``< 10`` (PHQ-9 score), optionally with a UCUM unit code."""

    value: float
    comparator: str | None = None
    unit: str | None = None
    ucum_code: str | None = None


# A target detail: an amount, a count (e.g. 12 meetings) or a free-text description.
TargetDetail = TargetQuantity | int | str


@dataclass(frozen=True, slots=True)
class GoalTarget:
    """One measurable target: the measure, the desired detail and the date it is due."""

    measure: Measure | None
    detail: TargetDetail | None = None
    due: date | None = None


@dataclass(frozen=True, slots=True)
class ProgressNote:
    """A dated progress note on a goal."""

    on: date
    text: str


@dataclass(frozen=True, slots=True)
class Goal:
    """A SMART goal set with the client: area, description, targets, statuses and notes."""

    identifier: str
    description: str
    lifecycle_status: str
    area: str | None = None
    achievement_status: str | None = None
    start: date | None = None
    targets: tuple[GoalTarget, ...] = ()
    notes: tuple[ProgressNote, ...] = ()

    def problems(self, path: str = "Goal") -> list[Problem]:
        """Every reason this goal cannot be sent as a Goal, each named under ``path``."""
        found: list[Problem] = []
        if not self.identifier.strip():
            found.append(Problem(f"{path}.identifier", "is required", "required"))
        if not self.description.strip():
            found.append(Problem(f"{path}.description", "is required", "required"))
        if self.lifecycle_status not in LIFECYCLE_STATUSES:
            found.append(_unknown(f"{path}.lifecycle_status", self.lifecycle_status))
        if self.area is not None and self.area not in GOAL_AREAS:
            found.append(_unknown(f"{path}.area", self.area))
        status = self.achievement_status
        if status is not None and status not in ACHIEVEMENT_STATUSES:
            found.append(_unknown(f"{path}.achievement_status", status))
        for index, target in enumerate(self.targets):
            found += _target_problems(target, self.start, f"{path}.targets[{index}]")
        for index, note in enumerate(self.notes):
            if not note.text.strip():
                found.append(Problem(f"{path}.notes[{index}].text", "is required", "required"))
        return found


def _unknown(path: str, value: str) -> Problem:
    return Problem(path, f"{value!r} is not a known code", "code-invalid")


def _target_problems(target: GoalTarget, start: date | None, path: str) -> list[Problem]:
    if target.measure is None and target.detail is None and target.due is None:
        # ele-1 (R4 element.html): an empty target element is not valid FHIR.
        return [Problem(path, "needs a measure or a due date", "required")]
    found: list[Problem] = []
    measure = target.measure
    if measure is None:
        # gol-1 (R4 goal.html#invs): a target with a detail must say what it measures.
        if target.detail is not None:
            found.append(Problem(f"{path}.measure", "is required when a detail is given"))
    else:
        if (measure.system is None) != (measure.code is None):
            found.append(Problem(f"{path}.measure", "needs both a system and a code, or neither"))
        if measure.code is None and not (measure.text or "").strip():
            found.append(Problem(f"{path}.measure", "needs a code or a text", "required"))
    found += _detail_problems(target.detail, f"{path}.detail")
    if target.due is not None and start is not None and target.due < start:
        found.append(Problem(f"{path}.due", f"{target.due} is before the goal start {start}"))
    return found


def _detail_problems(detail: TargetDetail | None, path: str) -> list[Problem]:
    if isinstance(detail, bool):
        return [Problem(path, "a yes/no detail is not supported; use a count or text")]
    if isinstance(detail, str) and not detail.strip():
        return [Problem(path, "text detail must not be empty")]
    if not isinstance(detail, TargetQuantity):
        return []
    found: list[Problem] = []
    if not math.isfinite(detail.value):
        found.append(Problem(f"{path}.value", f"{detail.value!r} is not a finite number"))
    if detail.comparator is not None and detail.comparator not in COMPARATORS:
        found.append(_unknown(f"{path}.comparator", detail.comparator))
    return found


def to_fhir(
    goal: Goal,
    *,
    goal_id_system: str,
    subject_reference: str,
    condition_references: Sequence[str] = (),
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Fill Goal.identifier, lifecycleStatus, achievementStatus, category, description, subject,
    startDate, target, addresses and note."""
    subject_problems = reference_problems(subject_reference, "Patient", "subject_reference")
    raise_if_problems("Goal", goal.problems() + subject_problems)
    resource: dict[str, Any] = {"resourceType": "Goal"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["meta"] = {"profile": [GOAL_PROFILE]}
    resource["identifier"] = [{"system": goal_id_system, "value": goal.identifier}]
    resource["lifecycleStatus"] = goal.lifecycle_status
    if goal.achievement_status is not None:
        coding = ACHIEVEMENT_STATUSES[goal.achievement_status].coding()
        resource["achievementStatus"] = {"coding": [coding]}
    if goal.area is not None:
        resource["category"] = [GOAL_AREAS[goal.area].codeable_concept()]
    resource["description"] = {"text": goal.description}
    resource["subject"] = {"reference": subject_reference}
    if goal.start is not None:
        resource["startDate"] = goal.start.isoformat()
    if goal.targets:
        resource["target"] = [_target_to_fhir(t) for t in goal.targets]
    if condition_references:
        resource["addresses"] = [{"reference": ref} for ref in condition_references]
    if goal.notes:
        resource["note"] = [{"time": n.on.isoformat(), "text": n.text} for n in goal.notes]
    return resource


def _target_to_fhir(target: GoalTarget) -> dict[str, Any]:
    element: dict[str, Any] = {}
    if target.measure is not None:
        element["measure"] = _measure_to_fhir(target.measure)
    detail = target.detail
    if isinstance(detail, TargetQuantity):
        element["detailQuantity"] = _quantity_to_fhir(detail)
    elif isinstance(detail, int):
        element["detailInteger"] = detail
    elif isinstance(detail, str):
        element["detailString"] = detail
    if target.due is not None:
        element["dueDate"] = target.due.isoformat()
    return element


def _measure_to_fhir(measure: Measure) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if measure.system is not None and measure.code is not None:
        coding = {"system": measure.system, "code": measure.code}
        if measure.display is not None:
            coding["display"] = measure.display
        concept["coding"] = [coding]
    if measure.text is not None:
        concept["text"] = measure.text
    return concept


def _quantity_to_fhir(quantity: TargetQuantity) -> dict[str, Any]:
    element: dict[str, Any] = {"value": number(quantity.value)}
    if quantity.comparator is not None:
        element["comparator"] = quantity.comparator
    if quantity.unit is not None:
        element["unit"] = quantity.unit
    if quantity.ucum_code is not None:
        # qty-3 (R4 datatypes.html#Quantity): a unit code needs its system.
        element["system"] = UCUM
        element["code"] = quantity.ucum_code
    return element


_MAPPED = frozenset(
    {"identifier", "modifierExtension", "lifecycleStatus", "achievementStatus", "category"}
    | {"description", "subject", "startDate", "target", "addresses", "note"}
)


def from_fhir(resource: Any, *, goal_id_system: str) -> Mapped[Goal]:
    """Read a Goal from Goal.identifier, statuses, category, description, startDate, target and
    note; links hold ``subject`` and ``addresses[i]``."""
    problems: list[Problem] = []
    fhir = require_resource_type(resource, "Goal", problems)
    losses = unmapped_top_level(fhir, _MAPPED, type_name="Goal")
    renames: dict[str, str] = {}
    problems += modifier_extension_problems(fhir, "Goal")
    identifier = read_identifier_list(
        fhir.get("identifier"), goal_id_system, "Goal.identifier", problems, losses
    )
    lifecycle = read_str_in(fhir, "lifecycleStatus", "Goal", problems, required=True)
    achievement = None
    if fhir.get("achievementStatus") is not None:
        achievement = read_coded(
            fhir["achievementStatus"], GOAL_ACHIEVEMENT, "Goal.achievementStatus", problems, losses
        )
    area = _read_area(fhir.get("category") or [], problems, losses, renames)
    description = _read_description(fhir.get("description"), problems, losses)
    start = read_date(fhir.get("startDate"), "Goal.startDate", problems)
    targets = _read_targets(fhir.get("target") or [], problems, losses, renames)
    notes = _read_notes(fhir.get("note") or [], problems, losses, renames)
    subject = read_reference(fhir.get("subject"), "Goal.subject", "Patient", problems, losses)
    links = {"subject": subject or ""}
    links.update(indexed_links("addresses", read_references(fhir, "Goal.addresses", losses)))
    # Valid placeholders stand in for what could not be read (see care_plan.from_fhir).
    goal = Goal(
        identifier or "?",
        description or "?",
        lifecycle or "proposed",
        area,
        achievement_status=achievement,
        start=start,
        targets=targets,
        notes=notes,
    )
    renames.update(_FIXED_RENAMES)
    raise_if_problems("Goal", rename_paths(problems, goal.problems(), renames))
    return Mapped(goal, links, tuple(losses))


# Domain field -> FHIR element, for problems found after reading (the rest are added per index).
_FIXED_RENAMES = {
    "Goal.lifecycle_status": "Goal.lifecycleStatus",
    "Goal.achievement_status": "Goal.achievementStatus",
    "Goal.description": "Goal.description.text",
    "Goal.start": "Goal.startDate",
}


def _read_area(
    categories: list[Any], problems: list[Problem], losses: list[Loss], renames: dict[str, str]
) -> str | None:
    """Keep the first category coded in iop-goal-area; report every other category."""
    area = None
    for index, concept in enumerate(categories):
        path = f"Goal.category[{index}]"
        has_area = isinstance(concept, dict) and has_coding_in(concept.get("coding"), IOP_GOAL_AREA)
        if area is None and has_area:
            area = read_coded(concept, IOP_GOAL_AREA, path, problems, losses)
            renames["Goal.area"] = path
        else:
            losses.append(Loss(path, "category outside iop-goal-area"))
    return area


def _read_description(concept: Any, problems: list[Problem], losses: list[Loss]) -> str | None:
    if concept is None:
        problems.append(Problem("Goal.description", "is required", "required"))
        return None
    if not isinstance(concept, dict):
        problems.append(Problem("Goal.description", "expected a CodeableConcept", "structure"))
        return None
    losses += unmapped_keys(concept, _DESCRIPTION_MAPPED, path="Goal.description")
    return read_str_in(concept, "text", "Goal.description", problems, required=True)


_DESCRIPTION_MAPPED = frozenset({"text"})
_TARGET_MAPPED = frozenset({"measure", "dueDate", "modifierExtension", *DETAIL_ELEMENTS})
_QUANTITY_MAPPED = frozenset({"value", "comparator", "unit", "system", "code"})
_NOTE_MAPPED = frozenset({"time", "text"})


def _read_targets(
    targets: list[Any], problems: list[Problem], losses: list[Loss], renames: dict[str, str]
) -> tuple[GoalTarget, ...]:
    read: list[GoalTarget] = []
    for index, element in enumerate(targets):
        path = f"Goal.target[{index}]"
        if not isinstance(element, dict):
            problems.append(Problem(path, "expected a target object", "structure"))
            continue
        losses += unmapped_keys(element, _TARGET_MAPPED, path=path)
        problems += modifier_extension_problems(element, path)
        measure = _read_measure(element.get("measure"), f"{path}.measure", problems, losses)
        detail, detail_name = _read_detail(element, path, problems, losses)
        due = read_date(element.get("dueDate"), f"{path}.dueDate", problems)
        domain = f"Goal.targets[{len(read)}]"
        renames[domain] = path
        renames[f"{domain}.measure"] = f"{path}.measure"
        renames[f"{domain}.detail"] = f"{path}.{detail_name}"
        renames[f"{domain}.due"] = f"{path}.dueDate"
        read.append(GoalTarget(measure, detail, due))
    return tuple(read)


def _read_measure(
    concept: Any, path: str, problems: list[Problem], losses: list[Loss]
) -> Measure | None:
    if concept is None:
        return None
    if not isinstance(concept, dict):
        problems.append(Problem(path, "expected a CodeableConcept", "structure"))
        return None
    losses += unmapped_keys(concept, CONCEPT_KEYS, path=path)
    text = read_str_in(concept, "text", path, problems, required=False)
    codings = concept.get("coding") or []
    if len(codings) > 1:
        losses += [
            Loss(f"{path}.coding[{i}]", "only one coding is kept") for i in range(1, len(codings))
        ]
    if not codings:
        return Measure(text)
    first = codings[0] if isinstance(codings[0], dict) else {}
    at = f"{path}.coding[0]"
    losses += unmapped_keys(first, CODING_KEYS, path=at)
    system = read_str_in(first, "system", at, problems, required=True)
    code = read_str_in(first, "code", at, problems, required=True)
    display = read_str_in(first, "display", at, problems, required=False)
    return Measure(text, system, code, display)


def _read_detail(
    target: Mapping[str, Any], path: str, problems: list[Problem], losses: list[Loss]
) -> tuple[TargetDetail | None, str]:
    if "detailQuantity" in target:
        name = "detailQuantity"
        return _read_quantity(target[name], f"{path}.{name}", problems, losses), name
    if "detailInteger" in target:
        value = target["detailInteger"]
        if isinstance(value, int) and not isinstance(value, bool):
            return value, "detailInteger"
        problems.append(Problem(f"{path}.detailInteger", f"expected an integer, got {value!r}"))
        return None, "detailInteger"
    if "detailString" in target:
        name = "detailString"
        return read_str_in(target, name, path, problems, required=True), name
    return None, "detail[x]"


def _read_quantity(
    element: Any, path: str, problems: list[Problem], losses: list[Loss]
) -> TargetQuantity | None:
    if not isinstance(element, dict):
        problems.append(Problem(path, "expected a Quantity", "structure"))
        return None
    losses += unmapped_keys(element, _QUANTITY_MAPPED, path=path)
    value = element.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(Problem(f"{path}.value", f"expected a number, got {value!r}"))
        return None
    code = read_str_in(element, "code", path, problems, required=False)
    system = element.get("system")
    if system is not None and (system != UCUM or code is None):
        losses.append(Loss(f"{path}.system", "only a UCUM unit code is kept"))
    if code is not None and system != UCUM:
        losses.append(Loss(f"{path}.code", "unit code outside UCUM"))
        code = None
    comparator = read_str_in(element, "comparator", path, problems, required=False)
    unit = read_str_in(element, "unit", path, problems, required=False)
    return TargetQuantity(float(value), comparator, unit, code)


def _read_notes(
    notes: list[Any], problems: list[Problem], losses: list[Loss], renames: dict[str, str]
) -> tuple[ProgressNote, ...]:
    read: list[ProgressNote] = []
    for index, note in enumerate(notes):
        path = f"Goal.note[{index}]"
        if not isinstance(note, dict):
            problems.append(Problem(path, "expected an Annotation", "structure"))
            continue
        time = note.get("time")
        if not isinstance(time, str):
            losses.append(Loss(path, "note without a date is not kept as a progress note"))
            continue
        losses += unmapped_keys(note, _NOTE_MAPPED, path=path)
        on = read_day(time, f"{path}.time", problems, losses)
        text = read_str_in(note, "text", path, problems, required=True)
        renames[f"Goal.notes[{len(read)}]"] = path
        if on is not None and text is not None:
            read.append(ProgressNote(on, text))
    return tuple(read)
