from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from hypothesis import given

from mappers import goal, goal_reader
from mappers.errors import MappingError
from mappers.goal import Goal, GoalTarget, Measure, TargetQuantity
from tests.builders.plans import (
    CONDITION_REFERENCES,
    GOAL_SYSTEM,
    SUBJECT,
    make_meetings_goal,
    make_phq9_goal,
)
from tests.strategies.goal import goals


def _to_fhir(value: Goal, **kwargs: Any) -> dict[str, Any]:
    return goal.to_fhir(value, goal_id_system=GOAL_SYSTEM, subject_reference=SUBJECT, **kwargs)


def _problem_paths(resource: Any) -> set[str]:
    with pytest.raises(MappingError) as caught:
        goal_reader.from_fhir(resource, goal_id_system=GOAL_SYSTEM)
    return {p.path for p in caught.value.problems}


def test_to_fhir__fills_every_goal_element() -> None:
    resource = _to_fhir(make_phq9_goal(), condition_references=CONDITION_REFERENCES)
    assert resource["meta"] == {
        "profile": ["http://iop-bridge.example/fhir/StructureDefinition/iop-goal"]
    }
    assert resource["identifier"] == [{"system": GOAL_SYSTEM, "value": "GOAL-TEST-0001"}]
    assert resource["lifecycleStatus"] == "active"
    assert resource["achievementStatus"] == {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                "code": "in-progress",
                "display": "In Progress",
            }
        ]
    }
    assert resource["category"][0]["coding"][0] == {
        "system": "http://iop-bridge.example/fhir/CodeSystem/iop-goal-area",
        "code": "mental-health",
        "display": "Mental health",
    }
    assert resource["description"] == {
        "text": "Bring the PHQ-9 total score under 10 within 60 days"
    }
    assert resource["subject"] == {"reference": SUBJECT}
    assert resource["startDate"] == "2026-10-01"
    assert resource["addresses"] == [{"reference": ref} for ref in CONDITION_REFERENCES]
    assert resource["note"] == [{"time": "2026-10-15", "text": "PHQ-9 down from 17 to 13."}]


def test_to_fhir__phq9_target_is_loinc_measure_with_comparator_quantity() -> None:
    (target,) = _to_fhir(make_phq9_goal())["target"]
    assert target["measure"]["coding"][0]["system"] == "http://loinc.org"
    assert target["measure"]["coding"][0]["code"] == "44261-6"
    assert target["measure"]["text"] == "PHQ-9 total score"
    assert target["detailQuantity"] == {"value": 10, "comparator": "<", "unit": "score"}
    assert target["dueDate"] == "2026-11-30"


def test_to_fhir__meetings_target_is_text_measure_with_integer_count() -> None:
    (target,) = _to_fhir(make_meetings_goal())["target"]
    assert target == {
        "measure": {"text": "Meetings attended"},
        "detailInteger": 12,
        "dueDate": "2026-10-31",
    }


def test_to_fhir__ucum_unit_code_carries_its_system() -> None:
    target = GoalTarget(Measure("Weight"), TargetQuantity(72.5, ">=", "kg", "kg"))
    resource = _to_fhir(make_phq9_goal(targets=(target,)))
    assert resource["target"][0]["detailQuantity"] == {
        "value": 72.5,
        "comparator": ">=",
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }


def test_to_fhir__string_detail_is_detail_string() -> None:
    target = GoalTarget(Measure("Daily meditation"), "practised at least 5 days a week")
    resource = _to_fhir(make_phq9_goal(targets=(target,)))
    assert resource["target"][0]["detailString"] == "practised at least 5 days a week"


@pytest.mark.parametrize("build", [make_phq9_goal, make_meetings_goal])
def test_round_trip__is_identity_with_no_losses(build: Any) -> None:
    value = build()
    resource = _to_fhir(value, condition_references=CONDITION_REFERENCES)
    mapped = goal_reader.from_fhir(resource, goal_id_system=GOAL_SYSTEM)
    assert mapped.value == value
    assert mapped.losses == ()
    assert mapped.links == {
        "subject": SUBJECT,
        "addresses[0]": CONDITION_REFERENCES[0],
        "addresses[1]": CONDITION_REFERENCES[1],
    }


@given(goals())
def test_round_trip__property_identity_for_any_valid_goal(value: Goal) -> None:
    mapped = goal_reader.from_fhir(_to_fhir(value), goal_id_system=GOAL_SYSTEM)
    assert mapped.value == value
    assert mapped.losses == ()


def test_from_fhir__foreign_content_is_reported_not_dropped() -> None:
    foreign = copy.deepcopy(_to_fhir(make_phq9_goal()))
    foreign["text"] = {"status": "generated", "div": "<div>PHQ-9 under 10</div>"}
    foreign["contained"] = [{"resourceType": "Observation", "id": "phq"}]
    foreign["extension"] = [{"url": "http://example.org/fhir/x", "valueString": "y"}]
    foreign["priority"] = {"text": "high"}
    foreign["identifier"].append({"system": "urn:oid:1.2.3", "value": "G-9"})
    foreign["category"].append({"coding": [{"system": "http://example.org/cat", "code": "x"}]})
    foreign["description"]["coding"] = [{"system": "http://snomed.info/sct", "code": "1"}]
    foreign["subject"]["display"] = "Alex Rivera"
    target = foreign["target"][0]
    target["measure"]["coding"].append({"system": "http://example.org/m", "code": "phq"})
    target["detailQuantity"].update({"system": "http://example.org/units", "code": "pts"})
    target["extension"] = [{"url": "http://example.org/fhir/t", "valueBoolean": True}]
    foreign["note"][0]["authorString"] = "Case manager"
    foreign["note"].append({"text": "undated remark"})
    mapped = goal_reader.from_fhir(foreign, goal_id_system=GOAL_SYSTEM)
    assert mapped.value == make_phq9_goal()
    assert {loss.path for loss in mapped.losses} == {
        "Goal.text",
        "Goal.contained",
        "Goal.extension",
        "Goal.priority",
        "Goal.identifier[1]",
        "Goal.category[1]",
        "Goal.description.coding",
        "Goal.subject.display",
        "Goal.target[0].measure.coding[1]",
        "Goal.target[0].detailQuantity.system",
        "Goal.target[0].detailQuantity.code",
        "Goal.target[0].extension",
        "Goal.note[0].authorString",
        "Goal.note[1]",
    }


def test_from_fhir__unmodelled_detail_and_due_duration_are_reported() -> None:
    foreign = _to_fhir(make_meetings_goal())
    target = foreign["target"][0]
    del target["detailInteger"], target["dueDate"]
    target["detailRange"] = {"low": {"value": 10}, "high": {"value": 12}}
    target["dueDuration"] = {"value": 30, "unit": "d"}
    mapped = goal_reader.from_fhir(foreign, goal_id_system=GOAL_SYSTEM)
    assert mapped.value.targets == (GoalTarget(Measure("Meetings attended")),)
    assert {loss.path for loss in mapped.losses} == {
        "Goal.target[0].detailRange",
        "Goal.target[0].dueDuration",
    }


def test_from_fhir__unit_system_without_code_is_reported() -> None:
    foreign = _to_fhir(make_phq9_goal())
    foreign["target"][0]["detailQuantity"]["system"] = "http://unitsofmeasure.org"
    mapped = goal_reader.from_fhir(foreign, goal_id_system=GOAL_SYSTEM)
    assert mapped.value == make_phq9_goal()
    assert [loss.path for loss in mapped.losses] == ["Goal.target[0].detailQuantity.system"]


def test_from_fhir__time_of_day_in_note_is_reported_and_date_kept() -> None:
    foreign = _to_fhir(make_phq9_goal())
    foreign["note"][0]["time"] = "2026-10-15T14:30:00-05:00"
    mapped = goal_reader.from_fhir(foreign, goal_id_system=GOAL_SYSTEM)
    assert mapped.value.notes[0].on == date(2026, 10, 15)
    assert [loss.path for loss in mapped.losses] == ["Goal.note[0].time"]


def test_from_fhir__wrong_resource_type_is_named() -> None:
    with pytest.raises(MappingError) as caught:
        goal_reader.from_fhir({"resourceType": "CarePlan"}, goal_id_system=GOAL_SYSTEM)
    assert any(
        p.path == "Goal.resourceType" and "CarePlan" in p.message for p in caught.value.problems
    )


def test_from_fhir__gathers_every_missing_required_element() -> None:
    assert _problem_paths({"resourceType": "Goal"}) == {
        "Goal.identifier",
        "Goal.lifecycleStatus",
        "Goal.description",
        "Goal.subject",
    }


def test_from_fhir__unknown_codes_are_named_by_fhir_path() -> None:
    bad = _to_fhir(make_phq9_goal())
    bad["lifecycleStatus"] = "done"
    bad["achievementStatus"]["coding"][0]["code"] = "nearly"
    bad["category"][0]["coding"][0]["code"] = "hobbies"
    bad["target"][0]["detailQuantity"]["comparator"] = "~"
    assert _problem_paths(bad) == {
        "Goal.lifecycleStatus",
        "Goal.achievementStatus",
        "Goal.category[0]",
        "Goal.target[0].detailQuantity.comparator",
    }


def test_from_fhir__malformed_values_are_named() -> None:
    bad = _to_fhir(make_meetings_goal())
    bad["target"][0]["detailInteger"] = "twelve"
    bad["startDate"] = "2026-13-01"
    bad["subject"] = {"reference": "Group/alcoholics"}
    assert _problem_paths(bad) == {
        "Goal.target[0].detailInteger",
        "Goal.startDate",
        "Goal.subject.reference",
    }


def test_from_fhir__due_before_start_names_due_date() -> None:
    bad = _to_fhir(make_meetings_goal())
    bad["target"][0]["dueDate"] = "2026-09-01"
    assert _problem_paths(bad) == {"Goal.target[0].dueDate"}


def test_from_fhir__unknown_modifier_extension_is_refused() -> None:
    bad = _to_fhir(make_meetings_goal())
    modifier = [{"url": "http://example.org/not", "valueBoolean": True}]
    bad["modifierExtension"] = modifier
    bad["target"][0]["modifierExtension"] = modifier
    assert _problem_paths(bad) == {
        "Goal.modifierExtension[0]",
        "Goal.target[0].modifierExtension[0]",
    }


def test_to_fhir__empty_target_is_refused() -> None:
    with pytest.raises(MappingError, match=r"Goal\.targets\[0\]: needs a measure"):
        _to_fhir(make_meetings_goal(targets=(GoalTarget(None),)))


def test_from_fhir__empty_target_names_the_target() -> None:
    bad = _to_fhir(make_meetings_goal())
    bad["target"].append({})
    assert _problem_paths(bad) == {"Goal.target[1]"}


def test_to_fhir__detail_without_measure_is_refused() -> None:
    value = make_meetings_goal(targets=(GoalTarget(None, 12),))
    with pytest.raises(MappingError, match=r"Goal\.targets\[0\]\.measure"):
        _to_fhir(value)


def test_to_fhir__gathers_every_domain_problem() -> None:
    value = Goal(
        identifier=" ",
        description="",
        lifecycle_status="finished",
        area="hobbies",
        achievement_status="nearly",
        start=date(2026, 10, 1),
        targets=(GoalTarget(Measure(None), TargetQuantity(float("nan")), date(2026, 9, 1)),),
    )
    with pytest.raises(MappingError) as caught:
        _to_fhir(value)
    assert {p.path for p in caught.value.problems} == {
        "Goal.identifier",
        "Goal.description",
        "Goal.lifecycle_status",
        "Goal.area",
        "Goal.achievement_status",
        "Goal.targets[0].measure",
        "Goal.targets[0].detail.value",
        "Goal.targets[0].due",
    }


def test_to_fhir__subject_must_reference_a_patient() -> None:
    with pytest.raises(MappingError, match="subject_reference"):
        goal.to_fhir(make_meetings_goal(), goal_id_system=GOAL_SYSTEM, subject_reference="Group/g1")
