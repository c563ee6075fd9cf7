"""Shared by the CarePlan writer and reader tests: a plan as FHIR, and a CarePlan read back."""

from __future__ import annotations

from typing import Any

from mappers import care_plan, care_plan_reader
from mappers.care_plan import TreatmentPlan
from mappers.loss import Mapped
from tests.builders.plans import PLAN_SYSTEM, SUBJECT, goal_references


def plan_to_fhir(plan: TreatmentPlan, **kwargs: Any) -> dict[str, Any]:
    """The plan as a CarePlan, pointing at its goals' references unless told otherwise."""
    kwargs.setdefault("goal_references", goal_references(plan))
    return care_plan.to_fhir(plan, plan_id_system=PLAN_SYSTEM, subject_reference=SUBJECT, **kwargs)


def read_plan(resource: Any, plan: TreatmentPlan | None = None) -> Mapped[TreatmentPlan]:
    """Read a CarePlan back, given the goals of ``plan`` (none without it)."""
    goals = None if plan is None else dict(zip(goal_references(plan), plan.goals, strict=True))
    return care_plan_reader.from_fhir(resource, plan_id_system=PLAN_SYSTEM, goals=goals)
