"""Hypothesis strategies for valid TreatmentPlans (synthetic data only)."""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from fhir_profiles.terminology.local import MODALITIES
from mappers.care_plan import ASAM_BY_CODE, REQUEST_STATUSES, TreatmentPlan
from mappers.schedule import (
    ACTIVITY_STATUSES,
    DAYS_OF_WEEK,
    DELIVERY_DISPLAYS,
    TIME_BLOCKS,
    PlannedModality,
)
from tests.strategies.goal import days, goals, identifiers, texts

IOP = "2.1"
# Quarter hours are exact in binary floating point, so weekly sums never drift.
session_hours = st.integers(2, 16).map(lambda quarters: quarters / 4)


@st.composite
def planned_modalities(draw: st.DrawFn, modality: str, max_sessions: int) -> PlannedModality:
    """One modality with a weekly schedule of at most ``max_sessions`` sessions."""
    return PlannedModality(
        modality=modality,
        sessions_per_week=draw(st.integers(1, max_sessions)),
        hours_per_session=draw(session_hours),
        days_of_week=tuple(draw(st.lists(st.sampled_from(DAYS_OF_WEEK), unique=True))),
        time_block=draw(st.none() | st.sampled_from(sorted(TIME_BLOCKS))),
        delivery=draw(st.none() | st.sampled_from(sorted(DELIVERY_DISPLAYS))),
        status=draw(st.sampled_from(sorted(ACTIVITY_STATUSES))),
    )


@st.composite
def treatment_plans(draw: st.DrawFn) -> TreatmentPlan:
    """A valid plan; ASAM 2.1 plans (half of them) keep their weekly hours within 9-19."""
    level = draw(st.just(IOP) | st.none() | st.sampled_from(sorted(ASAM_BY_CODE)))
    codes = draw(st.lists(st.sampled_from(sorted(MODALITIES)), unique=True, max_size=4))
    # At most 4 modalities x 7 sessions x 4 h = 112 h, under the 168 hours of a week.
    modalities = tuple(draw(planned_modalities(c, 4 if level == IOP else 7)) for c in codes)
    plan = TreatmentPlan(
        identifier=draw(identifiers),
        status=draw(st.sampled_from(sorted(REQUEST_STATUSES))),
        level_of_care=level,
        start=draw(days),
        weeks=draw(st.integers(1, 26)),
        modalities=modalities,
        review_every_days=draw(st.none() | st.integers(1, 90)),
        family_involvement=draw(st.none() | texts),
        preferences=draw(st.none() | texts),
        goals=tuple(draw(st.lists(goals(), max_size=3, unique_by=lambda g: g.identifier))),
    )
    assume(level != IOP or 9 <= plan.total_hours_per_week <= 19)
    return plan
