from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given

from mappers import asam_intake, assessment, scoring
from mappers.asam_intake import DimensionRating, IntakeAssessment
from mappers.assessment import Assessment
from mappers.errors import MappingError
from tests.builders.sessions import (
    ASSESSMENT_SYSTEM,
    SUBJECT,
    make_gad7,
    make_intake,
    make_phq9,
)
from tests.strategies.assessment import assessments, intake_assessments
from tests.strategies.encounter import corrupted

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
PHQ9_ITEMS = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]


def _fhir(value: Assessment | None = None) -> dict[str, Any]:
    return assessment.to_fhir(
        value or make_phq9(), id_system=ASSESSMENT_SYSTEM, subject_reference=SUBJECT
    )


def _intake_fhir(value: IntakeAssessment | None = None) -> dict[str, Any]:
    return asam_intake.to_fhir(
        value or make_intake(), id_system=ASSESSMENT_SYSTEM, subject_reference=SUBJECT
    )


def _problems(resource: Any, mapper: Any = assessment) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        mapper.from_fhir(resource, id_system=ASSESSMENT_SYSTEM)
    return {p.path: p.message for p in caught.value.problems}


# --- PHQ-9 / GAD-7: content ---------------------------------------------------------------------


def test_to_fhir__phq9_header_items_difficulty_and_recomputed_total() -> None:
    resource = _fhir()
    assert resource["meta"] == {
        "profile": ["http://iop-bridge.example/fhir/StructureDefinition/iop-phq9-response"]
    }
    assert resource["questionnaire"] == "http://iop-bridge.example/fhir/Questionnaire/phq-9"
    assert resource["identifier"] == {"system": ASSESSMENT_SYSTEM, "value": "PHQ9-TEST-0001"}
    assert resource["status"] == "completed"
    assert resource["subject"] == {"reference": SUBJECT}
    assert resource["authored"] == "2024-10-07T17:30:00-04:00"
    assert [item["linkId"] for item in resource["item"]] == [*PHQ9_ITEMS, "69722-7", "44261-6"]
    assert resource["item"][2]["answer"] == [
        {"valueCoding": {"system": LOINC, "code": "LA6571-9", "display": "Nearly every day"}}
    ]
    assert resource["item"][9]["answer"][0]["valueCoding"]["code"] == "LA6573-5"
    assert resource["item"][10]["answer"] == [{"valueInteger": 14}]


def test_to_fhir__gad7_worry_item_uses_loincs_more_days_than_not() -> None:
    resource = _fhir(make_gad7())
    assert resource["questionnaire"] == "http://iop-bridge.example/fhir/Questionnaire/gad-7"
    assert resource["item"][1]["linkId"] == "68509-9"
    assert resource["item"][1]["answer"][0]["valueCoding"]["code"] == "LA18938-3"
    assert resource["item"][0]["answer"][0]["valueCoding"]["code"] == "LA6570-1"
    assert resource["item"][-1] == {"linkId": "70274-6", "answer": [{"valueInteger": 11}]}


@pytest.mark.parametrize(
    ("instrument", "total", "band"),
    [
        ("phq-9", 0, "minimal"),
        ("phq-9", 4, "minimal"),
        ("phq-9", 5, "mild"),
        ("phq-9", 9, "mild"),
        ("phq-9", 10, "moderate"),
        ("phq-9", 14, "moderate"),
        ("phq-9", 15, "moderately severe"),
        ("phq-9", 19, "moderately severe"),
        ("phq-9", 20, "severe"),
        ("phq-9", 27, "severe"),
        ("gad-7", 4, "minimal"),
        ("gad-7", 5, "mild"),
        ("gad-7", 9, "mild"),
        ("gad-7", 10, "moderate"),
        ("gad-7", 14, "moderate"),
        ("gad-7", 15, "severe"),
        ("gad-7", 21, "severe"),
    ],
)
def test_severity__band_edges(instrument: str, total: int, band: str) -> None:
    assert scoring.severity(instrument, total) == band


def test_assessment__total_and_severity_come_from_the_items() -> None:
    assert make_phq9().total == 14 and make_phq9().severity == "moderate"
    assert make_gad7(item_scores=(3,) * 7).severity == "severe"


# --- PHQ-9 / GAD-7: round trip ------------------------------------------------------------------


@pytest.mark.parametrize("value", [make_phq9(), make_phq9(difficulty=None), make_gad7()])
def test_round_trip__is_identity_with_subject_link(value: Assessment) -> None:
    mapped = assessment.from_fhir(_fhir(value), id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == value
    # PHQ-9 and GAD-7 are self-reported: the author is the subject (US Core author, must support)
    assert mapped.links == {"subject": SUBJECT, "author": SUBJECT}
    assert mapped.losses == ()


@given(assessments())
def test_round_trip__any_valid_assessment_is_identity(value: Assessment) -> None:
    mapped = assessment.from_fhir(_fhir(value), id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == value
    assert mapped.losses == ()


# --- PHQ-9 / GAD-7: foreign input and the sender's total ---------------------------------------


def test_from_fhir__forged_total_is_recomputed_and_reported() -> None:
    forged = _fhir()
    forged["item"][10]["answer"][0]["valueInteger"] = 4
    mapped = assessment.from_fhir(forged, id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == make_phq9() and mapped.value.total == 14
    [loss] = mapped.losses
    assert loss.path == "QuestionnaireResponse.item[10].answer[0].valueInteger"
    assert "4" in loss.reason and "14" in loss.reason


def test_from_fhir__missing_total_is_fine() -> None:
    resource = _fhir()
    del resource["item"][10]
    mapped = assessment.from_fhir(resource, id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == make_phq9() and mapped.losses == ()


def test_from_fhir__foreign_content_is_reported_not_dropped() -> None:
    foreign = _fhir()
    foreign["extension"] = [{"url": "http://ehr.example/ext/device", "valueString": "kiosk"}]
    foreign["contained"] = [{"resourceType": "Practitioner", "id": "pr1"}]
    foreign["encounter"] = {"reference": "Encounter/e1"}
    foreign["questionnaire"] += "|0.1.0"
    foreign["item"][0]["text"] = "Little interest or pleasure in doing things"  # echo: kept
    foreign["item"][0]["answer"][0]["valueCoding"]["extension"] = [
        {"url": ORDINAL, "valueDecimal": 1}
    ]
    foreign["item"][1]["answer"][0]["valueCoding"]["extension"] = [
        {"url": ORDINAL, "valueDecimal": 2}  # agrees with the Questionnaire: not a loss
    ]
    foreign["item"][2]["answer"][0]["valueCoding"]["version"] = "2.78"
    foreign["item"][3]["extension"] = [{"url": "http://ehr.example/ext/t", "valueString": "y"}]
    foreign["item"].append({"linkId": "ehr-comment", "answer": [{"valueString": "tired"}]})
    mapped = assessment.from_fhir(foreign, id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == make_phq9()
    assert {loss.path for loss in mapped.losses} == {
        "QuestionnaireResponse.extension",
        "QuestionnaireResponse.contained",
        "QuestionnaireResponse.encounter",
        "QuestionnaireResponse.questionnaire",
        "QuestionnaireResponse.item[0].answer[0].valueCoding.extension[0]",
        "QuestionnaireResponse.item[2].answer[0].valueCoding.version",
        "QuestionnaireResponse.item[3].extension",
        "QuestionnaireResponse.item[11]",
    }


# --- PHQ-9 / GAD-7: bad input -------------------------------------------------------------------


@given(corrupted(_fhir()))
def test_from_fhir__any_corrupted_element_maps_or_raises_mapping_error(resource: Any) -> None:
    try:
        mapped = assessment.from_fhir(resource, id_system=ASSESSMENT_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []


def test_from_fhir__wrong_resource_type_is_named() -> None:
    problems = _problems({"resourceType": "Observation"})
    assert "Observation" in problems["QuestionnaireResponse.resourceType"]


def test_from_fhir__phq9_answer_of_4_is_named() -> None:
    resource = _fhir()
    resource["item"][3]["answer"] = [{"valueInteger": 4}]
    problems = _problems(resource)
    assert list(problems) == ["QuestionnaireResponse.item[3].answer[0]"]
    assert "valueInteger=4" in problems["QuestionnaireResponse.item[3].answer[0]"]


def test_from_fhir__unknown_and_unoffered_answer_codes_are_named() -> None:
    resource = _fhir()
    resource["item"][3]["answer"][0]["valueCoding"]["code"] = "LA9999-9"
    resource["item"][4]["answer"][0]["valueCoding"]["code"] = "LA18938-3"  # GAD-7's, not PHQ-9's
    resource["item"][9]["answer"][0]["valueCoding"]["code"] = "LA6568-5"  # not a difficulty
    assert set(_problems(resource)) == {
        "QuestionnaireResponse.item[3].answer[0].valueCoding.code",
        "QuestionnaireResponse.item[4].answer[0].valueCoding.code",
        "QuestionnaireResponse.item[9].answer[0].valueCoding.code",
    }


def test_from_fhir__missing_item_names_its_link_id() -> None:
    resource = _fhir()
    del resource["item"][2]
    problems = _problems(resource)
    assert "44259-0" in problems["QuestionnaireResponse.item"]


def test_from_fhir__gathers_every_problem_with_its_path() -> None:
    resource = _fhir()
    resource["status"] = "done"
    resource["authored"] = "2024-10-07T17:30:00"
    del resource["subject"]
    resource["identifier"]["system"] = "http://other.example/sid"
    resource["item"][0]["answer"].append(resource["item"][0]["answer"][0])
    resource["item"][1]["answer"][0]["valueCoding"]["system"] = "http://snomed.info/sct"
    resource["item"][5]["linkId"] = "44250-9"
    resource["item"][6]["modifierExtension"] = [{"url": "http://x.example/m"}]
    assert set(_problems(resource)) == {
        "QuestionnaireResponse.status",
        "QuestionnaireResponse.authored",
        "QuestionnaireResponse.subject",
        "QuestionnaireResponse.identifier",
        "QuestionnaireResponse.item[0].answer",
        "QuestionnaireResponse.item[1].answer[0].valueCoding",
        "QuestionnaireResponse.item[5].linkId",
        "QuestionnaireResponse.item",
        "QuestionnaireResponse.item[6].modifierExtension[0]",
    }


def test_from_fhir__unknown_questionnaire_is_named() -> None:
    resource = _fhir()
    resource["questionnaire"] = "http://loinc.org/q/44249-1"
    assert set(_problems(resource)) == {"QuestionnaireResponse.questionnaire"}


def test_to_fhir__refuses_out_of_range_scores_and_misplaced_difficulty() -> None:
    with pytest.raises(MappingError) as caught:
        _fhir(make_gad7(item_scores=(0, 1, 2, 4, 0, 1), difficulty="LA6573-5"))
    assert [p.path for p in caught.value.problems] == [
        "Assessment.item_scores",
        "Assessment.item_scores[3]",
        "Assessment.difficulty",
    ]


def test_to_fhir__refuses_unknown_instrument_and_naive_authored() -> None:
    with pytest.raises(MappingError) as caught:
        _fhir(make_phq9(instrument="phq-2", authored=datetime(2024, 10, 7)))
    assert [p.path for p in caught.value.problems] == ["Assessment.instrument"]
    with pytest.raises(MappingError, match=r"Assessment\.authored"):
        _fhir(make_phq9(authored=datetime(2024, 10, 7)))


# --- ASAM intake --------------------------------------------------------------------------------


def test_to_fhir__intake_has_a_group_per_dimension() -> None:
    resource = _intake_fhir()
    assert resource["meta"] == {
        "profile": ["http://iop-bridge.example/fhir/StructureDefinition/iop-asam-intake-response"]
    }
    assert resource["questionnaire"] == "http://iop-bridge.example/fhir/Questionnaire/asam-intake"
    assert [group["linkId"] for group in resource["item"]] == [
        f"dimension-{n}" for n in range(1, 7)
    ]
    assert resource["item"][0]["item"] == [
        {"linkId": "dimension-1-risk", "answer": [{"valueInteger": 0}]},
        {
            "linkId": "dimension-1-note",
            "answer": [{"valueString": "No withdrawal signs; last use 40 days ago."}],
        },
    ]
    assert resource["item"][1]["item"] == [
        {"linkId": "dimension-2-risk", "answer": [{"valueInteger": 1}]}
    ]


def test_round_trip__intake_is_identity_with_subject_link() -> None:
    mapped = asam_intake.from_fhir(_intake_fhir(), id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == make_intake()
    assert mapped.links == {"subject": SUBJECT}
    assert mapped.losses == ()


@given(intake_assessments())
def test_round_trip__any_valid_intake_is_identity(value: IntakeAssessment) -> None:
    mapped = asam_intake.from_fhir(_intake_fhir(value), id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == value
    assert mapped.losses == ()


def test_from_fhir__foreign_intake_content_is_reported() -> None:
    foreign = _intake_fhir()
    foreign["item"][0]["text"] = "Dimension 1"  # question text: not the client's data
    foreign["item"][0]["extension"] = [{"url": "http://ehr.example/ext", "valueString": "x"}]
    foreign["item"][2]["item"].append(
        {"linkId": "dimension-3-cows", "answer": [{"valueInteger": 4}]}
    )
    foreign["item"].append({"linkId": "dimension-7", "item": []})
    foreign["author"] = {"reference": "Practitioner/pr1"}  # mapped: a link, not a loss
    mapped = asam_intake.from_fhir(foreign, id_system=ASSESSMENT_SYSTEM)
    assert mapped.value == make_intake()
    assert mapped.links["author"] == "Practitioner/pr1"
    assert {loss.path for loss in mapped.losses} == {
        "QuestionnaireResponse.item[0].extension",
        "QuestionnaireResponse.item[2].item[2]",
        "QuestionnaireResponse.item[6]",
    }


def test_from_fhir__intake_problems_name_their_paths() -> None:
    resource = _intake_fhir()
    resource["item"][0]["item"][0]["answer"][0]["valueInteger"] = 5
    resource["item"][1]["item"][0]["answer"][0] = {"valueString": "high"}
    del resource["item"][3]["item"][0]
    resource["item"][5]["item"][1]["answer"][0]["valueString"] = "   "
    del resource["item"][4]
    assert set(_problems(resource, asam_intake)) == {
        "QuestionnaireResponse.item[0].item[0].answer[0].valueInteger",
        "QuestionnaireResponse.item[1].item[0].answer[0]",
        "QuestionnaireResponse.item[3].item",
        "QuestionnaireResponse.item[4].item[1].answer[0].valueString",
        "QuestionnaireResponse.item",
    }


@given(corrupted(_intake_fhir()))
def test_from_fhir__any_corrupted_intake_maps_or_raises_mapping_error(resource: Any) -> None:
    try:
        mapped = asam_intake.from_fhir(resource, id_system=ASSESSMENT_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []


def test_from_fhir__intake_against_another_questionnaire_is_refused() -> None:
    resource = _intake_fhir()
    resource["questionnaire"] = "http://iop-bridge.example/fhir/Questionnaire/phq-9"
    assert set(_problems(resource, asam_intake)) == {"QuestionnaireResponse.questionnaire"}


def test_to_fhir__intake_problems_are_gathered() -> None:
    ratings = (DimensionRating(5), DimensionRating(1, "  "))
    with pytest.raises(MappingError) as caught:
        _intake_fhir(make_intake(ratings=ratings, status="final"))
    assert [p.path for p in caught.value.problems] == [
        "IntakeAssessment.ratings",
        "IntakeAssessment.ratings[0].risk",
        "IntakeAssessment.ratings[1].note",
        "IntakeAssessment.status",
    ]
