"""Hypothesis strategies for valid Goals (synthetic data only)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import strategies as st

from fhir_profiles.terminology.assessments import GAD7_TOTAL, PHQ9_TOTAL
from fhir_profiles.terminology.local import GOAL_AREAS
from mappers.goal import (
    ACHIEVEMENT_STATUSES,
    COMPARATORS,
    LIFECYCLE_STATUSES,
    Goal,
    GoalTarget,
    Measure,
    ProgressNote,
    TargetDetail,
    TargetQuantity,
)

# Printable text without leading or trailing blanks (FHIR strings; read_str refuses blanks).
texts = (
    st.text(st.characters(categories=["L", "N", "P"], include_characters=" "), max_size=60)
    .map(str.strip)
    .filter(bool)
)
identifiers = st.from_regex(r"[A-Z]{2,5}-[0-9]{1,6}", fullmatch=True)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))
# Unit text with the UCUM code that fits it (annotations such as {score} are valid UCUM).
UNITS = (("score", "{score}"), ("days", "d"), ("hours", "h"), ("kg", "kg"), ("meetings", None))

measures = st.one_of(
    st.builds(Measure.of, st.sampled_from([PHQ9_TOTAL, GAD7_TOTAL]), st.none() | texts),
    st.builds(Measure, texts),
)


@st.composite
def quantities(draw: st.DrawFn) -> TargetQuantity:
    """A target amount in tenths (exact in JSON), with an optional comparator and unit."""
    unit, code = draw(st.sampled_from(UNITS))
    with_unit = draw(st.booleans())
    return TargetQuantity(
        value=draw(st.integers(0, 2000)) / 10,
        comparator=draw(st.none() | st.sampled_from(sorted(COMPARATORS))),
        unit=unit if with_unit else None,
        ucum_code=code if with_unit and draw(st.booleans()) else None,
    )


details: st.SearchStrategy[TargetDetail] = st.one_of(quantities(), st.integers(0, 1000), texts)


@st.composite
def targets(draw: st.DrawFn, start: date | None) -> GoalTarget:
    """A target whose due date is not before the goal's start (gol-1 respected)."""
    measure = draw(st.none() | measures)
    detail = draw(st.none() | details) if measure is not None else None
    due = draw(st.none() | days)
    if due is not None and start is not None and due < start:
        due = start + timedelta(days=draw(st.integers(0, 365)))
    if measure is None and due is None:
        due = start or draw(days)  # an empty target is not valid FHIR (ele-1)
    return GoalTarget(measure, detail, due)


@st.composite
def goals(draw: st.DrawFn) -> Goal:
    """A valid Goal: known codes, non-blank texts, due dates on or after the start."""
    start = draw(st.none() | days)
    return Goal(
        identifier=draw(identifiers),
        description=draw(texts),
        lifecycle_status=draw(st.sampled_from(sorted(LIFECYCLE_STATUSES))),
        area=draw(st.none() | st.sampled_from(sorted(GOAL_AREAS))),
        achievement_status=draw(st.none() | st.sampled_from(sorted(ACHIEVEMENT_STATUSES))),
        start=start,
        targets=tuple(draw(st.lists(targets(start), max_size=3))),
        notes=tuple(draw(st.lists(st.builds(ProgressNote, days, texts), max_size=3))),
    )
