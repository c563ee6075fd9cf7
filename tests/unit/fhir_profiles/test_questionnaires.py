"""PHQ-9 and GAD-7 Questionnaires (LOINC-coded, scored by ordinalValue, totals 27 and 21) and
the text-only ASAM intake Questionnaire (six dimension groups, risk 0-4)."""

from typing import Any

import pytest

from fhir_profiles.canonical import questionnaire_url
from fhir_profiles.registry import conformance_resource
from fhir_profiles.terminology import assessments
from fhir_profiles.terminology.systems import (
    LOINC,
    MAX_VALUE_EXTENSION,
    MIN_VALUE_EXTENSION,
    ORDINAL_VALUE_EXTENSION,
)
from mappers import asam_intake

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


# --- ASAM intake ----------------------------------------------------------------------------
ASAM = conformance_resource(questionnaire_url("asam-intake"))
DIMENSION_TEXTS = (
    "Acute intoxication and/or withdrawal potential",
    "Biomedical conditions and complications",
    "Emotional, behavioral, or cognitive conditions and complications",
    "Readiness to change",
    "Relapse, continued use, or continued problem potential",
    "Recovery/living environment",
)


def _bound(item: dict[str, Any], url: str) -> list[int]:
    return [e["valueInteger"] for e in item.get("extension", []) if e["url"] == url]


def test_questionnaire_asam__one_required_group_per_dimension_in_order() -> None:
    groups = ASAM["item"]
    assert [g["linkId"] for g in groups] == [f"dimension-{n}" for n in range(1, 7)]
    assert tuple(g["text"] for g in groups) == DIMENSION_TEXTS
    assert [g["prefix"] for g in groups] == [str(n) for n in range(1, 7)]
    assert all(g["type"] == "group" and g["required"] is True for g in groups)


def test_questionnaire_asam__texts_and_link_ids_match_the_intake_mapper() -> None:
    # mappers/asam_intake.py names the dimensions and the 0-4 range; HAPI rejects a response
    # whose item text differs from the Questionnaire's, so the two must never drift apart.
    assert tuple(g["text"] for g in ASAM["item"]) == asam_intake.ASAM_DIMENSIONS
    risk = ASAM["item"][0]["item"][0]
    bounds = (_bound(risk, MIN_VALUE_EXTENSION), _bound(risk, MAX_VALUE_EXTENSION))
    assert bounds == ([asam_intake.RISK_MIN], [asam_intake.RISK_MAX])


@pytest.mark.parametrize("number", range(1, 7))
def test_questionnaire_asam__group_holds_required_risk_and_optional_note(number: int) -> None:
    risk, note = ASAM["item"][number - 1]["item"]
    assert (risk["linkId"], risk["type"], risk["required"]) == (
        f"dimension-{number}-risk",
        "integer",
        True,
    )
    assert (_bound(risk, MIN_VALUE_EXTENSION), _bound(risk, MAX_VALUE_EXTENSION)) == ([0], [4])
    assert (note["linkId"], note["type"], note["required"]) == (
        f"dimension-{number}-note",
        "text",
        False,
    )


def test_questionnaire_asam__is_text_only_and_says_so() -> None:
    def coded(items: list[dict[str, Any]]) -> bool:
        return any("code" in i or coded(i.get("item", [])) for i in items)

    assert "code" not in ASAM and not coded(ASAM["item"])
    assert "no verified LOINC or SNOMED CT code" in ASAM["description"]
