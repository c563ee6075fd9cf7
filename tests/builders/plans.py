"""Builders for treatment plans and goals: synthetic data, keyword overrides.

The two goals are the SMART examples of seeds/004 ("attend 12 meetings in 30 days") and DESIGN.md
("PHQ-9 under 10"); the plan is the seeds/000 "3 evenings a week" schedule plus weekly CBT.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from fhir_profiles.canonical import identifier_system_url
from fhir_profiles.terminology.assessments import PHQ9_TOTAL
from mappers.care_plan import TreatmentPlan
from mappers.goal import Goal, GoalTarget, Measure, ProgressNote, TargetQuantity
from mappers.schedule import PlannedModality

GOAL_SYSTEM = identifier_system_url("goal")
PLAN_SYSTEM = identifier_system_url("care-plan")
SUBJECT = "Patient/iop-test-patient"
CONDITION_REFERENCES = ("Condition/iop-test-dx-1", "Condition/iop-test-dx-2")


def make_phq9_goal(**overrides: Any) -> Goal:
    """Mental-health goal: PHQ-9 total (LOINC 44261-6) under 10 within 60 days."""
    target = GoalTarget(
        measure=Measure.of(PHQ9_TOTAL, text="PHQ-9 total score"),
        detail=TargetQuantity(10, "<", "score"),
        due=date(2026, 11, 30),
    )
    base = Goal(
        identifier="GOAL-TEST-0001",
        description="Bring the PHQ-9 total score under 10 within 60 days",
        lifecycle_status="active",
        area="mental-health",
        achievement_status="in-progress",
        start=date(2026, 10, 1),
        targets=(target,),
        notes=(ProgressNote(date(2026, 10, 15), "PHQ-9 down from 17 to 13."),),
    )
    return replace(base, **overrides)


def make_meetings_goal(**overrides: Any) -> Goal:
    """Sobriety goal: attend 12 meetings in 30 days (text-only measure, integer count)."""
    target = GoalTarget(measure=Measure("Meetings attended"), detail=12, due=date(2026, 10, 31))
    base = Goal(
        identifier="GOAL-TEST-0002",
        description="Attend 12 mutual-support meetings in the first 30 days",
        lifecycle_status="active",
        area="sobriety",
        achievement_status="improving",
        start=date(2026, 10, 1),
        targets=(target,),
    )
    return replace(base, **overrides)


def make_group_therapy(**overrides: Any) -> PlannedModality:
    """Group therapy three evenings a week (Mon/Wed/Thu), 3 hours, in person: 9 h a week."""
    base = PlannedModality(
        modality="group-therapy",
        sessions_per_week=3,
        hours_per_session=3.0,
        days_of_week=("mon", "wed", "thu"),
        time_block="evening",
        delivery="in-person",
    )
    return replace(base, **overrides)


def make_cbt(**overrides: Any) -> PlannedModality:
    """Individual CBT once a week (Tuesday evening), 1 hour, by telehealth."""
    base = PlannedModality(
        modality="cbt",
        sessions_per_week=1,
        hours_per_session=1.0,
        days_of_week=("tue",),
        time_block="evening",
        delivery="telehealth",
    )
    return replace(base, **overrides)


def make_plan(**overrides: Any) -> TreatmentPlan:
    """An active 12-week ASAM 2.1 plan: 10 hours a week, two goals, review every 30 days."""
    base = TreatmentPlan(
        identifier="PLAN-TEST-0001",
        status="active",
        level_of_care="2.1",
        start=date(2026, 10, 1),
        weeks=12,
        modalities=(make_group_therapy(), make_cbt()),
        review_every_days=30,
        family_involvement="Partner joins the monthly family session",
        preferences="Prefers a faith-based support group; no sessions on Friday evenings",
        goals=(make_phq9_goal(), make_meetings_goal()),
    )
    return replace(base, **overrides)


def goal_references(plan: TreatmentPlan) -> tuple[str, ...]:
    """One reference per goal of ``plan``, in order (as a registry would pass them)."""
    return tuple(f"Goal/{goal.identifier.lower()}" for goal in plan.goals)
