"""IOP SMART goal <- FHIR R4 Goal: ``from_fhir``, the reader of what ``mappers.goal`` writes.

Goal.target, its measure and detail[x], and dated notes are read back into the domain types;
what is not modelled is reported as lost, and the domain rules are checked with FHIR paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_profiles.terminology.systems import GOAL_ACHIEVEMENT, IOP_GOAL_AREA, UCUM
from mappers.errors import Problem, raise_if_problems, rename_paths
from mappers.fhir_coding import CODING_KEYS, CONCEPT_KEYS, has_coding_in, read_coded
from mappers.fhir_read import (
    modifier_extension_problems,
    open_resource,
    read_date,
    read_day,
    read_identifier_list,
    read_str_in,
)
from mappers.fhir_reference import indexed_links, read_reference, read_references
from mappers.goal import Goal, GoalTarget, Measure, ProgressNote, TargetDetail, TargetQuantity
from mappers.loss import Loss, Mapped, unmapped_keys

# The detail[x] choices iop-bridge models; Range, CodeableConcept, boolean and Ratio are reported.
DETAIL_ELEMENTS = ("detailQuantity", "detailInteger", "detailString")


_MAPPED = frozenset(
    {"identifier", "modifierExtension", "lifecycleStatus", "achievementStatus", "category"}
    | {"description", "subject", "startDate", "target", "addresses", "note"}
)


def from_fhir(resource: Any, *, goal_id_system: str) -> Mapped[Goal]:
    """Read a Goal from Goal.identifier, statuses, category, description, startDate, target and
    note; links hold ``subject`` and ``addresses[i]``."""
    problems: list[Problem] = []
    fhir, losses = open_resource(resource, "Goal", _MAPPED, problems)
    renames: dict[str, str] = {}
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
    # Valid placeholders stand in for what could not be read (see care_plan_reader.from_fhir).
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
