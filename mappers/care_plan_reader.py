"""IOP treatment plan <- FHIR R4 CarePlan: ``from_fhir``, the reader of what ``mappers.care_plan``
writes.

The level-of-care extension, the period as whole weeks, the activities sorted into modalities,
review cadence and family involvement (``mappers.schedule``), the preferences note and the goal
references; what is not modelled is reported as lost, and the plan's rules (the 9-19 hour band
of ASAM 2.1 among them) are checked with FHIR paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fhir_profiles.terminology.systems import COLORADO_BHA_ASAM_LEVEL_OF_CARE as ASAM_SYSTEM
from mappers.care_plan import (
    AUXILIARY_STATUS,
    CATEGORY,
    CATEGORY_TEXT,
    LEVEL_OF_CARE_EXTENSION,
    TreatmentPlan,
)
from mappers.errors import Problem, raise_if_problems, rename_paths
from mappers.fhir_coding import read_coded
from mappers.fhir_read import (
    PERIOD_KEYS,
    open_resource,
    read_day,
    read_identifier_list,
    read_str,
    read_str_in,
)
from mappers.fhir_reference import indexed_links, read_reference, read_references
from mappers.goal import Goal
from mappers.loss import Loss, Mapped, unmapped_keys
from mappers.schedule import (
    FAMILY_TEXT,
    REVIEW_TEXT,
    PlannedModality,
    activity_from_fhir,
    activity_kind,
    family_from_fhir,
    review_from_fhir,
)

# Another build of the Colorado BHA IG spells outpatient "1"; map it on input (reference 2.1).
ASAM_ALIASES = {"1": "1.0"}


_MAPPED = frozenset(
    {"extension", "modifierExtension", "identifier", "status", "intent", "category", "subject"}
    | {"period", "addresses", "goal", "activity", "note", "text"}
)


_CATEGORIES = ({"text": CATEGORY_TEXT}, CATEGORY)  # earlier text-only, and US Core coded


_EXTENSION_MAPPED = frozenset({"url", "valueCodeableConcept"})


_NOTE_MAPPED = frozenset({"text"})


# Domain field -> FHIR element, for problems found after reading (the rest are added per index).
_FIXED_RENAMES = {
    "TreatmentPlan.identifier": "CarePlan.identifier",
    "TreatmentPlan.status": "CarePlan.status",
    "TreatmentPlan.start": "CarePlan.period.start",
    "TreatmentPlan.weeks": "CarePlan.period.end",
    "TreatmentPlan.total_hours_per_week": "CarePlan.activity",
    "TreatmentPlan.preferences": "CarePlan.note[0].text",
}


def from_fhir(
    resource: Any,
    *,
    plan_id_system: str,
    goals: Mapping[str, Goal] | None = None,
    band_is_warning: bool = False,
) -> Mapped[TreatmentPlan]:
    """Read a TreatmentPlan from CarePlan.extension (level of care), identifier, status,
    period, activity and note. Links: ``subject``, ``addresses[i]``, ``goal[i]``; ``goals``
    (the caller's Goals keyed by reference) fills TreatmentPlan.goals, else it stays empty.
    ``band_is_warning`` (another system's plan): hours outside the ASAM 2.1 band are a warning
    in the loss report, not a refusal."""
    problems: list[Problem] = []
    fhir, losses = open_resource(resource, "CarePlan", _MAPPED, problems)
    renames = dict(_FIXED_RENAMES)
    identifier = read_identifier_list(
        fhir.get("identifier"), plan_id_system, "CarePlan.identifier", problems, losses
    )
    status = read_str_in(fhir, "status", "CarePlan", problems, required=True)
    _check_intent(fhir.get("intent"), problems)
    losses += [
        Loss(f"CarePlan.category[{i}]", "category not modelled")
        for i, c in enumerate(fhir.get("category") or [])
        if c not in _CATEGORIES
    ]
    # A "generated" narrative only restates the structured data (R4 narrative.html); any other
    # status may say more than we map.
    if isinstance(fhir.get("text"), dict) and fhir["text"].get("status") != "generated":
        losses.append(Loss("CarePlan.text", "narrative beyond the structured data not kept"))
    level = _read_level(fhir.get("extension") or [], problems, losses, renames)
    start, weeks = _read_period(fhir.get("period"), problems, losses)
    read = _read_activities(fhir.get("activity") or [], status, problems, losses, renames)
    preferences = _read_preferences(fhir.get("note") or [], problems, losses)
    links, plan_goals = _read_links(fhir, goals, problems, losses, renames)
    # Valid placeholders stand in for what could not be read, so that the domain rules still
    # check everything else; rename_paths drops what they would say about the placeholders.
    plan = TreatmentPlan(
        identifier or "?",
        status or "unknown",
        level,
        start or date.min,
        weeks or 1,
        *read,
        preferences=preferences,
        goals=plan_goals,
    )
    gathered = rename_paths(problems, plan.problems(), renames)
    if band_is_warning:  # another system's plan: the 9-19 h band is its business, shown
        warnings = [p for p in gathered if p.code == "business-rule" and "band" in p.message]
        gathered = [p for p in gathered if p not in warnings]
        losses += [Loss(p.path, f"warning: {p.message}") for p in warnings]
    raise_if_problems("CarePlan", gathered)
    return Mapped(plan, links, tuple(losses))


def _check_intent(intent: Any, problems: list[Problem]) -> None:
    # A proposal or an order is not the agreed plan this domain models (R4 careplan.html#intent).
    value = read_str(intent, "CarePlan.intent", problems, required=True)
    if value is not None and value != "plan":
        problems.append(Problem("CarePlan.intent", f"expected 'plan', got {value!r}"))


def _read_level(
    extensions: list[Any], problems: list[Problem], losses: list[Loss], renames: dict[str, str]
) -> str | None:
    """Read the first iop-level-of-care extension; report every other extension."""
    level = None
    for index, extension in enumerate(extensions):
        path = f"CarePlan.extension[{index}]"
        if not (isinstance(extension, dict) and extension.get("url") == LEVEL_OF_CARE_EXTENSION):
            losses.append(Loss(path, "extension not modelled by iop-bridge"))
            continue
        if level is not None:
            losses.append(Loss(path, "only one level of care is kept"))
            continue
        losses += unmapped_keys(extension, _EXTENSION_MAPPED, path=path)
        value_path = f"{path}.valueCodeableConcept"
        value = extension.get("valueCodeableConcept")
        code = read_coded(value, ASAM_SYSTEM, value_path, problems, losses)
        level = ASAM_ALIASES.get(code, code) if code is not None else None
        renames["TreatmentPlan.level_of_care"] = value_path
    return level


def _read_period(
    period: Any, problems: list[Problem], losses: list[Loss]
) -> tuple[date | None, int | None]:
    """Read period.start and the inclusive period.end as a whole number of planned weeks."""
    if not isinstance(period, dict):
        problems.append(Problem("CarePlan.period", "is required", "required"))
        return None, None
    losses += unmapped_keys(period, PERIOD_KEYS, path="CarePlan.period")
    start = read_day(period.get("start"), "CarePlan.period.start", problems, losses)
    end = read_day(period.get("end"), "CarePlan.period.end", problems, losses)
    for name in ("start", "end"):
        if period.get(name) is None:
            problems.append(Problem(f"CarePlan.period.{name}", "is required", "required"))
    if start is None or end is None:
        return None, None
    if end < start:
        problems.append(Problem("CarePlan.period.end", f"{end} is before period.start {start}"))
        return None, None
    days = (end - start).days + 1
    if days % 7:
        message = f"{end} is not a whole number of weeks after period.start {start} (inclusive)"
        problems.append(Problem("CarePlan.period.end", message))
        return None, None
    return start, days // 7


# Modalities, review cadence in days, family involvement: in TreatmentPlan's field order.
_Activities = tuple[tuple[PlannedModality, ...], int | None, str | None]


def _read_activities(
    activities: list[Any],
    plan_status: str | None,
    problems: list[Problem],
    losses: list[Loss],
    renames: dict[str, str],
) -> _Activities:
    """Sort activities into modalities, the review cadence and family involvement."""
    modalities: list[PlannedModality] = []
    review: int | None = None
    family: str | None = None
    status = AUXILIARY_STATUS.get(plan_status or "")
    for index, activity in enumerate(activities):
        path = f"CarePlan.activity[{index}]"
        kind = activity_kind(activity)
        if kind == "modality":
            planned, fields = activity_from_fhir(activity, path, problems, losses)
            if planned is not None:
                here = f"TreatmentPlan.modalities[{len(modalities)}]"
                renames[here] = path
                renames.update({f"{here}.{k}": v for k, v in fields.items()})
                modalities.append(planned)
        elif kind == REVIEW_TEXT and review is None:
            review, at = review_from_fhir(activity["detail"], path, status, problems, losses)
            renames["TreatmentPlan.review_every_days"] = at
        elif kind == FAMILY_TEXT and family is None:
            family, at = family_from_fhir(activity["detail"], path, status, problems, losses)
            renames["TreatmentPlan.family_involvement"] = at
        else:
            losses.append(Loss(path, "activity not modelled (no iop-modality code, or a repeat)"))
    return tuple(modalities), review, family


def _read_preferences(notes: list[Any], problems: list[Problem], losses: list[Loss]) -> str | None:
    """Read note[0].text as the cultural and religious preferences; report further notes."""
    if not notes:
        return None
    if len(notes) > 1:
        losses += [
            Loss(f"CarePlan.note[{i}]", "only the first note is kept") for i in range(1, len(notes))
        ]
    first = notes[0] if isinstance(notes[0], dict) else {}
    losses += unmapped_keys(first, _NOTE_MAPPED, path="CarePlan.note[0]")
    return read_str_in(first, "text", "CarePlan.note[0]", problems, required=True)


def _read_links(
    fhir: Mapping[str, Any],
    goals: Mapping[str, Goal] | None,
    problems: list[Problem],
    losses: list[Loss],
    renames: dict[str, str],
) -> tuple[dict[str, str], tuple[Goal, ...]]:
    """Read subject, addresses and goal references; pick the caller's Goal for each goal."""
    subject = read_reference(fhir.get("subject"), "CarePlan.subject", "Patient", problems, losses)
    goal_refs = read_references(fhir, "CarePlan.goal", losses)
    links = {"subject": subject or ""}
    links.update(indexed_links("addresses", read_references(fhir, "CarePlan.addresses", losses)))
    links.update(indexed_links("goal", goal_refs))
    if goals is None:
        return links, ()
    found: list[Goal] = []
    for index, reference in goal_refs:
        goal = goals.get(reference)
        if goal is None:
            message = f"no Goal was given for {reference!r}"
            problems.append(Problem(f"CarePlan.goal[{index}]", message, "not-found"))
            continue
        renames[f"TreatmentPlan.goals[{len(found)}]"] = f"CarePlan.goal[{index}]"
        found.append(goal)
    return links, tuple(found)
