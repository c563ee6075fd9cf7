"""PHQ-9 and GAD-7 Questionnaires: LOINC-coded, scored by ordinalValue, totals 27 and 21."""

from typing import Any

import pytest

from fhir_profiles.canonical import questionnaire_url
from fhir_profiles.registry import conformance_resource
from fhir_profiles.terminology import assessments
from fhir_profiles.terminology.systems import LOINC, ORDINAL_VALUE_EXTENSION

PHQ9 = conformance_resource(questionnaire_url("phq-9"))
GAD7 = conformance_resource(questionnaire_url("gad-7"))
UNSCORED_CHOICE_ITEMS = {assessments.PHQ9_DIFFICULTY.code}


def _ordinal(option: dict[str, Any]) -> float | None:
    values = [
        e["valueDecimal"]
        for e in option.get("extension", [])
        if e["url"] == ORDINAL_VALUE_EXTENSION
    ]
    assert len(values) <= 1
    return values[0] if values else None


def _scored_items(q: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        i for i in q["item"] if i["type"] == "choice" and i["linkId"] not in UNSCORED_CHOICE_ITEMS
    ]


def _max_total(q: dict[str, Any]) -> float:
    return sum(max(_ordinal(o) or 0 for o in item["answerOption"]) for item in _scored_items(q))


def test_questionnaire_phq9__max_total_is_27() -> None:
    assert _max_total(PHQ9) == 27


def test_questionnaire_gad7__max_total_is_21() -> None:
    assert _max_total(GAD7) == 21


@pytest.mark.parametrize("q", [PHQ9, GAD7], ids=["phq-9", "gad-7"])
def test_questionnaire__every_scored_answer_option_has_ordinal_value(q: dict[str, Any]) -> None:
    for item in _scored_items(q):
        assert [_ordinal(o) for o in item["answerOption"]] == [0, 1, 2, 3], item["linkId"]


def test_questionnaire_phq9__difficulty_item_is_asked_but_unscored() -> None:
    item = next(i for i in PHQ9["item"] if i["linkId"] == "69722-7")
    assert item["required"] is False
    assert all(_ordinal(o) is None for o in item["answerOption"])
    assert [o["valueCoding"]["code"] for o in item["answerOption"]] == [
        "LA6572-7",
        "LA6573-5",
        "LA6575-0",
        "LA6574-3",
    ]


@pytest.mark.parametrize(
    ("q", "instrument"),
    [(PHQ9, assessments.PHQ9), (GAD7, assessments.GAD7)],
    ids=["phq-9", "gad-7"],
)
def test_questionnaire__coded_with_panel_and_matches_instrument(
    q: dict[str, Any], instrument: assessments.Instrument
) -> None:
    assert q["url"] == questionnaire_url(instrument.key)
    assert q["code"] == [instrument.panel.coding()]
    scored = _scored_items(q)
    assert [i["linkId"] for i in scored] == [item.code for item, _ in instrument.scored_items]
    for item_json, (item, answers) in zip(scored, instrument.scored_items, strict=True):
        assert item_json["code"] == [item.coding()]
        assert item_json["required"] is True
        assert [(o["valueCoding"], _ordinal(o)) for o in item_json["answerOption"]] == [
            (a.answer.coding(), a.score) for a in answers
        ]


@pytest.mark.parametrize("q", [PHQ9, GAD7], ids=["phq-9", "gad-7"])
def test_questionnaire__link_id_is_the_item_loinc_code(q: dict[str, Any]) -> None:
    for item in q["item"]:
        assert item["code"][0]["system"] == LOINC
        assert item["linkId"] == item["code"][0]["code"]


@pytest.mark.parametrize(
    ("q", "total"), [(PHQ9, "44261-6"), (GAD7, "70274-6")], ids=["phq-9", "gad-7"]
)
def test_questionnaire__total_item_is_read_only_integer(q: dict[str, Any], total: str) -> None:
    item = next(i for i in q["item"] if i["linkId"] == total)
    assert item["type"] == "integer"
    assert item["readOnly"] is True
    assert "answerOption" not in item
