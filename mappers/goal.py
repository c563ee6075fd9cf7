"""IOP SMART goal <-> FHIR R4 Goal (area, measurable target with due date, progress notes).

The reader (``from_fhir``) is ``mappers.goal_reader``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology import workflow
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.local import GOAL_AREAS
from fhir_profiles.terminology.systems import GOAL_ACHIEVEMENT, UCUM
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import (
    reference_problems,
)
from mappers.fhir_write import number

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
