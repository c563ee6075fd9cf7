"""Hypothesis strategies for valid PHQ-9 / GAD-7 assessments and ASAM intakes (synthetic data)."""

from __future__ import annotations

from hypothesis import strategies as st

from fhir_profiles.terminology import assessments as terms
from mappers.asam_intake import ASAM_DIMENSIONS, DimensionRating, IntakeAssessment
from mappers.assessment import DIFFICULTY_ANSWERS, Assessment
from mappers.questionnaire_response import STATUSES
from tests.strategies.encounter import aware_datetimes, identifiers

_ITEM_SCORES = st.integers(min_value=0, max_value=3)
# Clinician notes: letters, digits, punctuation, symbols and spaces, without edge whitespace
# (FHIR R4 string: "SHOULD not contain leading or trailing whitespace").
_NOTE_TEXT = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=200
)
_NOTES = st.none() | _NOTE_TEXT.map(str.strip).filter(bool)


@st.composite
def assessments(draw: st.DrawFn) -> Assessment:
    """Any valid PHQ-9 (with or without the difficulty answer) or GAD-7, in any status."""
    instrument = draw(st.sampled_from((terms.PHQ9, terms.GAD7)))
    count = len(instrument.scored_items)
    difficulty = None
    if instrument is terms.PHQ9:
        difficulty = draw(st.none() | st.sampled_from(sorted(DIFFICULTY_ANSWERS)))
    return Assessment(
        identifier=draw(identifiers()),
        instrument=instrument.key,
        item_scores=tuple(draw(st.lists(_ITEM_SCORES, min_size=count, max_size=count))),
        authored=draw(aware_datetimes()),
        status=draw(st.sampled_from(sorted(STATUSES))),
        difficulty=difficulty,
    )


@st.composite
def intake_assessments(draw: st.DrawFn) -> IntakeAssessment:
    """Any valid intake: six ratings 0-4, each with or without a note."""
    ratings = st.builds(DimensionRating, st.integers(min_value=0, max_value=4), _NOTES)
    count = len(ASAM_DIMENSIONS)
    return IntakeAssessment(
        identifier=draw(identifiers()),
        authored=draw(aware_datetimes()),
        ratings=tuple(draw(st.lists(ratings, min_size=count, max_size=count))),
        status=draw(st.sampled_from(sorted(STATUSES))),
    )
