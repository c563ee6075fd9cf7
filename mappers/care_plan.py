"""IOP treatment plan <-> FHIR R4 CarePlan: level of care, one activity per modality with its
weekly schedule, period, progress-review cadence, preferences, family involvement, goals.

Where each field lands (no element of R4 CarePlan fits some of them, and fhir_profiles defines
only the level-of-care extension, so the others use standard elements):

- level of care -> the iop-level-of-care extension (ASAM code, Colorado BHA system);
- modalities -> ``activity[]`` with ``detail.scheduledTiming`` (see mappers.schedule);
- review cadence -> an ``activity`` whose ``detail.code.text`` is "Progress review", repeating
  every N days; family involvement -> an ``activity`` "Family involvement" with the text in
  ``detail.description``; both are identified on input by that exact text-only code;
- cultural and religious preferences -> ``note[0].text`` (R4: "notes about the plan not covered
  elsewhere"); further notes are reported as lost;
- goals -> ``goal[]`` references passed in. ``from_fhir`` cannot rebuild Goal objects from a
  CarePlan: it returns the references as ``links["goal[i]"]`` and rebuilds ``goals`` only when
  the caller passes the Goals it read, keyed by reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology.clinical import ASAM_2_1_INTENSIVE_OUTPATIENT, ASAM_LEVELS
from fhir_profiles.terminology.clinical import ASAM_2_5_PARTIAL_HOSPITALIZATION as ASAM_2_5
from fhir_profiles.terminology.systems import COLORADO_BHA_ASAM_LEVEL_OF_CARE as ASAM_SYSTEM
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_common import (
    PERIOD_KEYS,
    modifier_extension_problems,
    read_identifier_list,
    read_reference,
    reference_problems,
    unmapped_keys,
)
from mappers.fhir_read import read_str, read_str_in, require_resource_type
from mappers.goal import Goal
from mappers.loss import Loss, Mapped, unmapped_top_level
from mappers.schedule import (
    FAMILY_TEXT,
    REVIEW_TEXT,
    PlannedModality,
    activity_from_fhir,
    activity_kind,
    activity_to_fhir,
    family_activity,
    family_from_fhir,
    indexed_links,
    read_coded,
    read_day,
    read_references,
    rename_paths,
    review_activity,
    review_from_fhir,
)

CAREPLAN_PROFILE = structure_definition_url("iop-careplan")
LEVEL_OF_CARE_EXTENSION = structure_definition_url("iop-level-of-care")
ASAM_BY_CODE = {c.code: c for c in ASAM_LEVELS}
# Another build of the Colorado BHA IG spells outpatient "1"; map it on input (reference 2.1).
ASAM_ALIASES = {"1": "1.0"}
# CarePlan.status, required binding (R4 valueset-request-status.html).
REQUEST_STATUSES = frozenset(
    ["draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"]
)
# Medicare's adult IOP band and the PHP floor (fhir-domain-reference.md 4.3).
IOP_WEEKLY_HOURS = (9.0, 19.0)
PHP_MIN_WEEKLY_HOURS = 20.0
HOURS_IN_A_WEEK = 168.0
# Usual IOP length (DESIGN.md, "The domain"): outside it is a warning, not an error.
IOP_USUAL_WEEKS = (4, 12)
# CarePlan.category has only an example binding and no verified code means "IOP plan": text.
CATEGORY_TEXT = "IOP treatment plan"
# detail.status of the review and family activities follows the plan's status (R4
# valueset-care-plan-activity-status.html); a different status on input is reported as lost.
AUXILIARY_STATUS = {
    "draft": "not-started",
    "active": "scheduled",
    "on-hold": "on-hold",
    "revoked": "cancelled",
    "completed": "completed",
    "entered-in-error": "entered-in-error",
    "unknown": "unknown",
}


@dataclass(frozen=True, slots=True)
class TreatmentPlan:
    """The client's individualized IOP plan. ``weeks`` is the planned length from ``start``."""

    identifier: str
    status: str
    level_of_care: str | None
    start: date
    weeks: int
    modalities: tuple[PlannedModality, ...] = ()
    review_every_days: int | None = 30
    family_involvement: str | None = None
    preferences: str | None = None
    goals: tuple[Goal, ...] = ()

    @property
    def end(self) -> date:
        """The last planned day; FHIR Period.end is inclusive (R4 datatypes.html#Period)."""
        return self.start + timedelta(weeks=self.weeks, days=-1)

    @property
    def total_sessions_per_week(self) -> int:
        """Sessions a week across every modality."""
        return sum(m.sessions_per_week for m in self.modalities)

    @property
    def total_hours_per_week(self) -> float:
        """Treatment hours a week across every modality (rounded off float noise)."""
        return round(sum(m.hours_per_week for m in self.modalities), 6)

    def problems(self, path: str = "TreatmentPlan") -> list[Problem]:
        """Every reason this plan cannot be sent as a CarePlan, each named under ``path``;
        for ASAM 2.1 that includes weekly hours outside 9-19."""
        found = _field_problems(self, path)
        modality_problems = _modality_problems(self.modalities, path)
        found += modality_problems
        if not modality_problems:
            found += _hours_problems(self, path)
        found += _goal_problems(self.goals, path)
        return found

    def warnings(self) -> list[Problem]:
        """Doubts that do not block sending: no level of care (no band checked), a partial
        hospitalization plan under 20 h a week, an IOP length outside the usual 4-12 weeks."""
        found: list[Problem] = []
        hours = self.total_hours_per_week
        if self.level_of_care is None:
            found.append(_warning("level_of_care", "not given: weekly hours are not checked"))
        if self.level_of_care == ASAM_2_5.code and hours < PHP_MIN_WEEKLY_HOURS:
            found.append(_warning("total_hours_per_week", f"{hours:g} h; PHP is 20 h or more"))
        low, high = IOP_USUAL_WEEKS
        if (
            self.level_of_care == ASAM_2_1_INTENSIVE_OUTPATIENT.code
            and not low <= self.weeks <= high
        ):
            found.append(_warning("weeks", f"{self.weeks}; an IOP usually runs {low}-{high} weeks"))
        return found


def _warning(field: str, message: str) -> Problem:
    return Problem(f"TreatmentPlan.{field}", message, "informational")


def _field_problems(plan: TreatmentPlan, path: str) -> list[Problem]:
    found: list[Problem] = []
    if not plan.identifier.strip():
        found.append(Problem(f"{path}.identifier", "is required", "required"))
    if plan.status not in REQUEST_STATUSES:
        found.append(Problem(f"{path}.status", f"{plan.status!r} is not a request-status code"))
    if plan.level_of_care is not None and plan.level_of_care not in ASAM_BY_CODE:
        found.append(
            Problem(f"{path}.level_of_care", f"{plan.level_of_care!r} is not an ASAM level")
        )
    if plan.weeks <= 0:
        found.append(Problem(f"{path}.weeks", f"{plan.weeks} is not a positive number of weeks"))
    if plan.review_every_days is not None and plan.review_every_days <= 0:
        found.append(
            Problem(f"{path}.review_every_days", f"{plan.review_every_days} is not positive")
        )
    for name, text in (
        ("preferences", plan.preferences),
        ("family_involvement", plan.family_involvement),
    ):
        if text is not None and not text.strip():
            found.append(Problem(f"{path}.{name}", "must not be empty (use None for none)"))
    return found


def _modality_problems(modalities: Sequence[PlannedModality], path: str) -> list[Problem]:
    found: list[Problem] = []
    first_index: dict[str, int] = {}
    for index, planned in enumerate(modalities):
        here = f"{path}.modalities[{index}]"
        found += planned.problems(here)
        if planned.modality in first_index:
            other = first_index[planned.modality]
            found.append(
                Problem(f"{here}.modality", f"{planned.modality!r} is already planned at [{other}]")
            )
        first_index.setdefault(planned.modality, index)
    return found


def _hours_problems(plan: TreatmentPlan, path: str) -> list[Problem]:
    hours = plan.total_hours_per_week
    here = f"{path}.total_hours_per_week"
    if hours > HOURS_IN_A_WEEK:
        return [Problem(here, f"{hours:g} hours is more than the {HOURS_IN_A_WEEK:g} in a week")]
    low, high = IOP_WEEKLY_HOURS
    if plan.level_of_care == ASAM_2_1_INTENSIVE_OUTPATIENT.code and not low <= hours <= high:
        message = (
            f"{hours:g} hours a week ({plan.total_sessions_per_week} sessions) is outside the "
            f"{low:g}-{high:g} hours a week of ASAM 2.1 intensive outpatient (Medicare IOP band)"
        )
        return [Problem(here, message, "business-rule")]
    return []


def _goal_problems(goals: Sequence[Goal], path: str) -> list[Problem]:
    found: list[Problem] = []
    seen: set[str] = set()
    for index, goal in enumerate(goals):
        found += goal.problems(f"{path}.goals[{index}]")
        if goal.identifier in seen:
            found.append(Problem(f"{path}.goals[{index}].identifier", "repeats another goal's"))
        seen.add(goal.identifier)
    return found


def to_fhir(
    plan: TreatmentPlan,
    *,
    plan_id_system: str,
    subject_reference: str,
    goal_references: Sequence[str] = (),
    condition_references: Sequence[str] = (),
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Fill CarePlan.extension (level of care), identifier, status, intent, category, subject,
    period, addresses, goal, activity (modalities, review, family) and note (preferences).
    ``goal_references`` name the plan's goals, one per goal and in order."""
    raise_if_problems("TreatmentPlan", _send_problems(plan, subject_reference, goal_references))
    resource: dict[str, Any] = {"resourceType": "CarePlan"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["meta"] = {"profile": [CAREPLAN_PROFILE]}
    if plan.level_of_care is not None:
        concept = ASAM_BY_CODE[plan.level_of_care].codeable_concept()
        resource["extension"] = [{"url": LEVEL_OF_CARE_EXTENSION, "valueCodeableConcept": concept}]
    resource["identifier"] = [{"system": plan_id_system, "value": plan.identifier}]
    resource["status"] = plan.status
    resource["intent"] = "plan"
    resource["category"] = [{"text": CATEGORY_TEXT}]
    resource["subject"] = {"reference": subject_reference}
    resource["period"] = {"start": plan.start.isoformat(), "end": plan.end.isoformat()}
    if condition_references:
        resource["addresses"] = [{"reference": ref} for ref in condition_references]
    if goal_references:
        resource["goal"] = [{"reference": ref} for ref in goal_references]
    activities = _activities_to_fhir(plan)
    if activities:
        resource["activity"] = activities
    if plan.preferences is not None:
        resource["note"] = [{"text": plan.preferences}]
    return resource


def _send_problems(
    plan: TreatmentPlan, subject_reference: str, goal_references: Sequence[str]
) -> list[Problem]:
    problems = plan.problems()
    problems += reference_problems(subject_reference, "Patient", "subject_reference")
    if len(goal_references) != len(plan.goals):
        message = f"{len(goal_references)} given for {len(plan.goals)} goals; pass one per goal"
        problems.append(Problem("goal_references", message, "required"))
    return problems


def _activities_to_fhir(plan: TreatmentPlan) -> list[dict[str, Any]]:
    activities = [activity_to_fhir(m) for m in plan.modalities]
    status = AUXILIARY_STATUS[plan.status]
    if plan.review_every_days is not None:
        activities.append(review_activity(plan.review_every_days, status))
    if plan.family_involvement is not None:
        activities.append(family_activity(plan.family_involvement, status))
    return activities


_MAPPED = frozenset(
    {"extension", "modifierExtension", "identifier", "status", "intent", "category", "subject"}
    | {"period", "addresses", "goal", "activity", "note"}
)
_CATEGORY = {"text": CATEGORY_TEXT}
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
    resource: Any, *, plan_id_system: str, goals: Mapping[str, Goal] | None = None
) -> Mapped[TreatmentPlan]:
    """Read a TreatmentPlan from CarePlan.extension (level of care), identifier, status,
    period, activity and note. Links: ``subject``, ``addresses[i]``, ``goal[i]``; ``goals``
    (the caller's Goals keyed by reference) fills TreatmentPlan.goals, else it stays empty."""
    problems: list[Problem] = []
    fhir = require_resource_type(resource, "CarePlan", problems)
    losses = unmapped_top_level(fhir, _MAPPED, type_name="CarePlan")
    renames = dict(_FIXED_RENAMES)
    problems += modifier_extension_problems(fhir, "CarePlan")
    identifier = read_identifier_list(
        fhir.get("identifier"), plan_id_system, "CarePlan.identifier", problems, losses
    )
    status = read_str_in(fhir, "status", "CarePlan", problems, required=True)
    _check_intent(fhir.get("intent"), problems)
    losses += [
        Loss(f"CarePlan.category[{i}]", "category not modelled")
        for i, c in enumerate(fhir.get("category") or [])
        if c != _CATEGORY
    ]
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
    raise_if_problems("CarePlan", rename_paths(problems, plan.problems(), renames))
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
