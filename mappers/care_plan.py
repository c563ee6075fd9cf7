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
- goals -> ``goal[]`` references passed in. The reader (``mappers.care_plan_reader``) cannot
  rebuild Goal objects from a CarePlan: it returns the references as ``links["goal[i]"]`` and
  rebuilds ``goals`` only when the caller passes the Goals it read, keyed by reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology.categories import CAREPLAN_ASSESS_PLAN
from fhir_profiles.terminology.clinical import ASAM_2_1_INTENSIVE_OUTPATIENT, ASAM_LEVELS
from fhir_profiles.terminology.clinical import ASAM_2_5_PARTIAL_HOSPITALIZATION as ASAM_2_5
from fhir_profiles.terminology.local import MODALITIES
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import (
    reference_problems,
)
from mappers.fhir_write import narrative
from mappers.goal import Goal
from mappers.schedule import (
    PlannedModality,
    activity_to_fhir,
    family_activity,
    review_activity,
)

CAREPLAN_PROFILE = structure_definition_url("iop-careplan")
LEVEL_OF_CARE_EXTENSION = structure_definition_url("iop-level-of-care")
ASAM_BY_CODE = {c.code: c for c in ASAM_LEVELS}
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
# US Core 6.1 (the certification baseline) slices CarePlan.category with assess-plan; 9.0.0 drops
# the slice and retires the code system but keeps the code valid, so both are satisfied.
CATEGORY: Final = {"coding": [CAREPLAN_ASSESS_PLAN.coding()], "text": CATEGORY_TEXT}
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
    resource["text"] = plan_narrative(plan)
    resource["category"] = [CATEGORY]
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


def plan_narrative(plan: TreatmentPlan) -> dict[str, str]:
    """CarePlan.text: what a receiver shows a clinician (US Core 6.1 requires it; 9.0.0 marks it
    must support): level, period and weekly hours, then one line per modality."""
    level = f" (ASAM {plan.level_of_care})" if plan.level_of_care is not None else ""
    summary = (
        f"IOP treatment plan{level}, {plan.status}, {plan.start.isoformat()} to "
        f"{plan.end.isoformat()}: {plan.total_sessions_per_week} sessions, "
        f"{plan.total_hours_per_week:g} hours a week."
    )
    lines = [
        f"{MODALITIES[m.modality].display}: {m.sessions_per_week} a week, "
        f"{m.hours_per_session:g} h each"
        for m in plan.modalities
    ]
    return narrative([summary], lines)


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
