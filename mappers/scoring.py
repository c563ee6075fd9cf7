"""PHQ-9 and GAD-7 scoring: answer scores, recomputed totals and severity bands.

Totals are always recomputed from the item answers, never taken from the sender (DESIGN.md,
"Assessment" row; fhir-domain-reference.md 6.8). Scores per answer come from fhir_profiles'
terminology, the same values the Questionnaires carry as ordinalValue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fhir_profiles.terminology import assessments
from fhir_profiles.terminology.assessments import Instrument
from fhir_profiles.terminology.code import Code

INSTRUMENTS: Final[Mapping[str, Instrument]] = {i.key: i for i in assessments.INSTRUMENTS}
ITEM_SCORE_MAX: Final = 3

# Severity bands as (lowest total, label), checked from the top. The bands and their sources
# (PHQ-9: HL7 MII IG PRO and Kroenke & Spitzer 2002; GAD-7: fhir-domain-reference.md 2.4) live
# in fhir_profiles.terminology.assessments.
SEVERITY_BANDS: Final[Mapping[str, tuple[tuple[int, str], ...]]] = assessments.SEVERITY_BANDS


def _item_codes(instrument: Instrument) -> tuple[str, ...]:
    return tuple(item.code for item, _ in instrument.scored_items)


@dataclass(frozen=True, slots=True)
class _Tables:
    """One instrument's lookups, built once: every item of every response sent or read uses
    them. Each keeps the first option of a score or code, as a linear search would find it."""

    instrument: Instrument  # the very object they were built from
    item_codes: tuple[str, ...]
    answer_by_score: tuple[Mapping[int, Code], ...]
    score_by_code: tuple[Mapping[str, int], ...]


def _tables(instrument: Instrument) -> _Tables:
    answers: list[dict[int, Code]] = []
    scores: list[dict[str, int]] = []
    for _, options in instrument.scored_items:
        answers.append({})
        scores.append({})
        for option in options:
            answers[-1].setdefault(option.score, option.answer)
            scores[-1].setdefault(option.answer.code, option.score)
    return _Tables(instrument, _item_codes(instrument), tuple(answers), tuple(scores))


# Used only for the instrument objects they were built from (checked with ``is``).
_TABLES: Final[Mapping[str, _Tables]] = {i.key: _tables(i) for i in assessments.INSTRUMENTS}


def item_codes(instrument: Instrument) -> tuple[str, ...]:
    """The LOINC codes (and linkIds) of the scored items, in questionnaire order."""
    tables = _TABLES.get(instrument.key)
    if tables is not None and tables.instrument is instrument:
        return tables.item_codes
    return _item_codes(instrument)


def answer_for(instrument: Instrument, item_index: int, score: int) -> Code:
    """The LOINC answer that scores ``score`` on the item at ``item_index``."""
    tables = _TABLES.get(instrument.key)
    if tables is not None and tables.instrument is instrument and type(score) is int:
        answer = tables.answer_by_score[item_index].get(score)
        if answer is not None:
            return answer
    _, options = instrument.scored_items[item_index]
    return next(option.answer for option in options if option.score == score)


def score_of(instrument: Instrument, item_index: int, answer_code: str) -> int | None:
    """The score of an answer code on one item, or None if the item does not offer it."""
    tables = _TABLES.get(instrument.key)
    if tables is not None and tables.instrument is instrument and type(answer_code) is str:
        return tables.score_by_code[item_index].get(answer_code)
    _, options = instrument.scored_items[item_index]
    return next((o.score for o in options if o.answer.code == answer_code), None)


def total(scores: Sequence[int]) -> int:
    """The instrument total: the sum of the item scores (PHQ-9 difficulty is not an item)."""
    return sum(scores)


def severity(instrument_key: str, total_score: int) -> str:
    """The severity band of a total, e.g. ``moderately severe`` for a PHQ-9 of 17."""
    for lowest, label in SEVERITY_BANDS[instrument_key]:
        if total_score >= lowest:
            return label
    raise ValueError(f"{instrument_key}: a total cannot be negative, got {total_score}")
