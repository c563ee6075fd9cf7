"""LOINC codes for the PHQ-9 and GAD-7 instruments, the score of every answer, severity bands.

Item displays are the LOINC names as HL7 IGs carry them. Scores ride on answers through the
ordinalValue extension (see systems.ORDINAL_VALUE_EXTENSION). Totals are recomputed from the
item answers, never trusted from the sender (DESIGN.md, "Assessment" row).
"""

from dataclasses import dataclass
from typing import Final

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import LOINC

# US Core 7.0.0 PHQ-9 examples: Observation-PHQ9-panel-example-44249-1 and the SDC Questionnaire
# HL7/US-Core input/examples/Questionnaire-phq-9-example.json (panel, items, total, the four
# frequency answers with ordinalValue 0-3, and the difficulty answers without scores).
_SRC_PHQ9: Final = (
    "US Core 7.0.0 https://hl7.org/fhir/us/core/Observation-PHQ9-panel-example-44249-1.html and "
    "Questionnaire-phq-9-example; fhir-domain-reference.md 2.4"
)
# HL7 Patient-Centered Outcomes IG, LOINC-published GAD-7 form (Regenstrief):
# HL7/pco-ig input/resources/questionnaire/Questionnaire-GAD7.json, rendered at
# https://build.fhir.org/ig/HL7/pco-ig/branches/1.0.0/en/Questionnaire-69737-5.xml
_SRC_GAD7: Final = (
    "HL7 PCO IG Questionnaire 69737-5 "
    "(https://build.fhir.org/ig/HL7/pco-ig/branches/1.0.0/en/Questionnaire-69737-5.xml); "
    "fhir-domain-reference.md 2.4"
)
# The GAD-7 total's LOINC name as an HL7 IG publishes it (MII IG PRO, build.fhir.org).
_SRC_GAD7_TOTAL: Final = (
    "MII IG PRO Observation for 70274-6 (build.fhir.org/ig/medizininformatik-initiative/"
    "kerndatensatzmodul-proms); fhir-domain-reference.md 2.4"
)
# The difficulty answers: US Core Questionnaire-phq-9-example, confirmed by a tx.fhir.org LOINC
# 2.82 expansion in MII IG PRO ValueSet mii-vs-pro-phq-9-answer-list-ll359-1. Both say
# LA6575-0 = "Very difficult" and LA6574-3 = "Extremely difficult"; the [CODE]-only rows in
# fhir-domain-reference.md 2.4 have these two swapped, so the reference is corrected here.
_SRC_DIFFICULTY: Final = (
    "US Core Questionnaire-phq-9-example item 69722-7; MII IG PRO "
    "https://build.fhir.org/ig/medizininformatik-initiative/kerndatensatzmodul-proms/"
    "ValueSet-mii-vs-pro-phq-9-answer-list-ll359-1.html"
)


def _loinc(code: str, display: str, source: str) -> Code:
    """Return a LOINC Code backed by an HL7 IG source."""
    return Code(LOINC, code, display, source, Evidence.IG)


@dataclass(frozen=True, slots=True)
class ScoredAnswer:
    """An answer option and the score it adds to the instrument total."""

    answer: Code
    score: int


@dataclass(frozen=True, slots=True)
class Instrument:
    """A scored screening instrument: panel, scored items with their answers, and total."""

    key: str
    panel: Code
    scored_items: tuple[tuple[Code, tuple[ScoredAnswer, ...]], ...]
    total: Code
    max_total: int

    def answers_for(self, item_code: str) -> tuple[ScoredAnswer, ...]:
        """Return the scored answers of one item, or raise KeyError for an unknown item."""
        for item, answers in self.scored_items:
            if item.code == item_code:
                return answers
        raise KeyError(f"{self.key}: no scored item {item_code!r}")

    def score_of(self, item_code: str, answer_code: str) -> int:
        """Return the score of one answer to one item, or raise KeyError if it is not listed."""
        for option in self.answers_for(item_code):
            if option.answer.code == answer_code:
                return option.score
        raise KeyError(f"{self.key}: item {item_code!r} has no answer {answer_code!r}")


# --- Shared frequency answers (LOINC answer list used by PHQ-9 and GAD-7 items) -------------
NOT_AT_ALL: Final = _loinc("LA6568-5", "Not at all", _SRC_PHQ9)
SEVERAL_DAYS: Final = _loinc("LA6569-3", "Several days", _SRC_PHQ9)
MORE_THAN_HALF_THE_DAYS: Final = _loinc("LA6570-1", "More than half the days", _SRC_PHQ9)
NEARLY_EVERY_DAY: Final = _loinc("LA6571-9", "Nearly every day", _SRC_PHQ9)
# LOINC's own GAD-7 form answers item 68509-9 with "More days than not" in the score-2 slot
# instead of LA6570-1 (PCO IG Questionnaire-GAD7.json; LHC-Forms exports give it optionPrefix
# and ordinalValue 2). We follow LOINC so that LOINC-generated responses validate.
MORE_DAYS_THAN_NOT: Final = _loinc("LA18938-3", "More days than not", _SRC_GAD7)

FREQUENCY_ANSWERS: Final = (
    ScoredAnswer(NOT_AT_ALL, 0),
    ScoredAnswer(SEVERAL_DAYS, 1),
    ScoredAnswer(MORE_THAN_HALF_THE_DAYS, 2),
    ScoredAnswer(NEARLY_EVERY_DAY, 3),
)
GAD7_WORRY_ANSWERS: Final = (
    ScoredAnswer(NOT_AT_ALL, 0),
    ScoredAnswer(SEVERAL_DAYS, 1),
    ScoredAnswer(MORE_DAYS_THAN_NOT, 2),
    ScoredAnswer(NEARLY_EVERY_DAY, 3),
)

# --- PHQ-9 --------------------------------------------------------------------------------------
PHQ9_PANEL: Final = _loinc(
    "44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]", _SRC_PHQ9
)
PHQ9_ITEMS: Final = (
    _loinc("44250-9", "Little interest or pleasure in doing things in last 2 weeks", _SRC_PHQ9),
    _loinc("44255-8", "Feeling down, depressed, or hopeless in last 2 weeks", _SRC_PHQ9),
    _loinc(
        "44259-0",
        "Trouble falling or staying asleep, or sleeping too much in last 2 weeks [Reported.PHQ]",
        _SRC_PHQ9,
    ),
    _loinc(
        "44254-1", "Feeling tired or having little energy in last 2 weeks [Reported.PHQ]", _SRC_PHQ9
    ),
    _loinc("44251-7", "Poor appetite or overeating in last 2 weeks [Reported.PHQ]", _SRC_PHQ9),
    _loinc(
        "44258-2",
        "Feeling bad about yourself - or that you are a failure or have let yourself or your "
        "family down in last 2 weeks [Reported.PHQ]",
        _SRC_PHQ9,
    ),
    _loinc(
        "44252-5",
        "Trouble concentrating on things, such as reading the newspaper or watching television "
        "in last 2 weeks [Reported.PHQ]",
        _SRC_PHQ9,
    ),
    _loinc(
        "44253-3",
        "Moving or speaking so slowly that other people could have noticed. Or the opposite - "
        "being so fidgety or restless that you have been moving around a lot more than usual "
        "in last 2 weeks [Reported.PHQ]",
        _SRC_PHQ9,
    ),
    _loinc(
        "44260-8",
        "Thoughts that you would be better off dead, or of hurting yourself in some way in last "
        "2 weeks [Reported.PHQ]",
        _SRC_PHQ9,
    ),
)
PHQ9_TOTAL: Final = _loinc(
    "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]", _SRC_PHQ9
)
# The functional-difficulty question is asked after the nine items but is NOT part of the
# 0-27 total (fhir-domain-reference.md 2.4); its answers therefore carry no score.
PHQ9_DIFFICULTY: Final = _loinc(
    "69722-7",
    "How difficult have these made it for you to do your work, take care of things at home, or "
    "get along with other people [Reported.PHQ]",
    _SRC_PHQ9,
)
NOT_DIFFICULT_AT_ALL: Final = _loinc("LA6572-7", "Not difficult at all", _SRC_DIFFICULTY)
SOMEWHAT_DIFFICULT: Final = _loinc("LA6573-5", "Somewhat difficult", _SRC_DIFFICULTY)
VERY_DIFFICULT: Final = _loinc("LA6575-0", "Very difficult", _SRC_DIFFICULTY)
EXTREMELY_DIFFICULT: Final = _loinc("LA6574-3", "Extremely difficult", _SRC_DIFFICULTY)
DIFFICULTY_ANSWERS: Final = (
    NOT_DIFFICULT_AT_ALL,
    SOMEWHAT_DIFFICULT,
    VERY_DIFFICULT,
    EXTREMELY_DIFFICULT,
)

PHQ9: Final = Instrument(
    key="phq-9",
    panel=PHQ9_PANEL,
    scored_items=tuple((item, FREQUENCY_ANSWERS) for item in PHQ9_ITEMS),
    total=PHQ9_TOTAL,
    max_total=27,
)

# --- GAD-7 --------------------------------------------------------------------------------------
GAD7_PANEL: Final = _loinc("69737-5", "Generalized anxiety disorder 7 item (GAD-7)", _SRC_GAD7)
GAD7_ITEMS: Final = (
    _loinc("69725-0", "Feeling nervous, anxious or on edge", _SRC_GAD7),
    _loinc(
        "68509-9",
        "Over the past 2 weeks have you not been able to stop or control worrying",
        _SRC_GAD7,
    ),
    _loinc("69733-4", "Worrying too much about different things", _SRC_GAD7),
    _loinc("69734-2", "Trouble relaxing", _SRC_GAD7),
    _loinc("69735-9", "Being so restless that it is hard to sit still", _SRC_GAD7),
    _loinc("69689-8", "Becoming easily annoyed or irritable.", _SRC_GAD7),
    _loinc("69736-7", "Feeling afraid as if something awful might happen", _SRC_GAD7),
)
GAD7_TOTAL: Final = _loinc(
    "70274-6",
    "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]",
    _SRC_GAD7_TOTAL,
)

GAD7: Final = Instrument(
    key="gad-7",
    panel=GAD7_PANEL,
    scored_items=tuple(
        (item, GAD7_WORRY_ANSWERS if item.code == "68509-9" else FREQUENCY_ANSWERS)
        for item in GAD7_ITEMS
    ),
    total=GAD7_TOTAL,
    max_total=21,
)

INSTRUMENTS: Final = (PHQ9, GAD7)

# --- Severity bands -----------------------------------------------------------------------------
# (lowest total, label) pairs, highest band first, so that the first band whose lowest total the
# score reaches is its band. Labels only: no verified LOINC answer codes the bands.
# PHQ-9: the reference (2.4) left these UNVERIFIED. They were verified against the HL7 MII IG PRO
# PHQ-9 page (0-4 none/minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20+ severe),
# which agrees with Kroenke & Spitzer, Psychiatric Annals 2002;32:509-521, Table 4 (the Kroenke
# 2001 cut points 5, 10, 15 and 20).
SRC_PHQ9_SEVERITY: Final = (
    "https://build.fhir.org/ig/medizininformatik-initiative/kerndatensatzmodul-proms/en/"
    "phq-9.html; Kroenke & Spitzer, Psychiatric Annals 2002;32:509-521, Table 4"
)
PHQ9_SEVERITY_BANDS: Final = (
    (20, "severe"),
    (15, "moderately severe"),
    (10, "moderate"),
    (5, "mild"),
    (0, "minimal"),
)
# GAD-7: fhir-domain-reference.md 2.4 (0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe).
SRC_GAD7_SEVERITY: Final = "fhir-domain-reference.md 2.4"
GAD7_SEVERITY_BANDS: Final = ((15, "severe"), (10, "moderate"), (5, "mild"), (0, "minimal"))

SEVERITY_BANDS: Final[dict[str, tuple[tuple[int, str], ...]]] = {
    PHQ9.key: PHQ9_SEVERITY_BANDS,
    GAD7.key: GAD7_SEVERITY_BANDS,
}


# --- Substance-use screenings read but not scored ------------------------------------------------
# US Core 9.0.0 (HL7/US-Core input/examples, CC0; ../shared/corpus/us-core-9.0.0):
# Questionnaire-AUDIT-C.json (code 72109-2; items 68517-2, 68519-8, 68520-6; total 75626-2) and
# Questionnaire-TAPS.json (code 96841-2; items 96842-0, 88037-7 / 75889-6, 96843-8, 96844-6).
@dataclass(frozen=True)
class UnscoredScreening:
    """A screening recognised by its LOINC item codes, kept as answered, not scored."""

    key: str
    panel: str
    items: frozenset[str]  # the items that must all be present to recognise it
    total: str | None


AUDIT_C: Final = UnscoredScreening(
    "audit-c", "72109-2", frozenset({"68517-2", "68519-8", "68520-6"}), "75626-2"
)
TAPS: Final = UnscoredScreening(
    "taps", "96841-2", frozenset({"96842-0", "96843-8", "96844-6"}), None
)
UNSCORED_SCREENINGS: Final = (AUDIT_C, TAPS)
