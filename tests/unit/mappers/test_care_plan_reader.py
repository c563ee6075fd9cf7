from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mappers import registry
from mappers.errors import MappingError
from mappers.fhir_reference import references_in
from tests.builders.plans import (
    PLAN_SYSTEM,
    goal_references,
    make_group_therapy,
    make_plan,
)
from tests.unit.mappers.care_plan_support import plan_to_fhir, read_plan

EXAMPLE = Path(__file__).parents[3] / "fhir_profiles/examples/CarePlan-iop-ex-careplan.json"


def _problems(resource: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        read_plan(resource)
    return {p.path: p.message for p in caught.value.problems}


def test_from_fhir__without_goals_returns_goal_references_in_links() -> None:
    plan = make_plan()
    mapped = read_plan(plan_to_fhir(plan))
    assert mapped.value == replace(plan, goals=())
    assert references_in(mapped.links, "goal") == goal_references(plan)


def test_from_fhir__foreign_content_is_reported_not_dropped() -> None:
    foreign = copy.deepcopy(plan_to_fhir(make_plan()))
    # a narrative that says more than the structured data ("additional") is reported
    foreign["text"] = {"status": "additional", "div": "<div>plan</div>"}
    foreign["contained"] = [{"resourceType": "Location", "id": "clinic"}]
    foreign["title"] = "Intensive outpatient treatment plan"
    foreign["extension"].append({"url": "http://example.org/fhir/x", "valueString": "y"})
    foreign["identifier"].insert(0, {"system": "urn:oid:1.2.3", "value": "CP-7"})
    foreign["category"].append({"coding": [{"system": "http://example.org/c", "code": "x"}]})
    foreign["subject"]["display"] = "Alex Rivera"
    group = foreign["activity"][0]
    group["detail"]["kind"] = "Appointment"
    group["detail"]["code"]["text"] = "Evening process group"
    group["detail"]["code"]["coding"].append({"system": "http://example.org/m", "code": "g"})
    group["detail"]["scheduledTiming"]["repeat"]["timeOfDay"] = ["18:00:00"]
    group["progress"] = [{"text": "attending"}]
    foreign["activity"].append({"reference": {"reference": "Appointment/a1"}})
    foreign["note"].append({"text": "Called to reschedule"})
    mapped = read_plan(foreign, make_plan())
    assert mapped.value == make_plan()
    assert {loss.path for loss in mapped.losses} == {
        "CarePlan.text",
        "CarePlan.contained",
        "CarePlan.title",
        "CarePlan.extension[1]",
        "CarePlan.identifier[0]",
        "CarePlan.category[1]",
        "CarePlan.subject.display",
        "CarePlan.activity[0].detail.kind",
        "CarePlan.activity[0].detail.code.text",
        "CarePlan.activity[0].detail.code.coding[2]",
        "CarePlan.activity[0].detail.scheduledTiming.repeat.timeOfDay",
        "CarePlan.activity[0].progress",
        "CarePlan.activity[4]",
        "CarePlan.note[1]",
    }


def test_from_fhir__mismatched_snomed_coding_is_reported() -> None:
    foreign = plan_to_fhir(make_plan())
    # CBT's SNOMED CT code next to the group-therapy code is not what to_fhir writes.
    foreign["activity"][0]["detail"]["code"]["coding"][1]["code"] = "228557008"
    mapped = read_plan(foreign, make_plan())
    assert [loss.path for loss in mapped.losses] == ["CarePlan.activity[0].detail.code.coding[1]"]


def test_from_fhir__other_location_and_block_are_reported() -> None:
    foreign = plan_to_fhir(make_plan())
    detail = foreign["activity"][0]["detail"]
    detail["location"] = {"reference": "Location/clinic-2"}
    detail["scheduledTiming"]["repeat"]["when"] = ["AFT", "EVE"]
    mapped = read_plan(foreign, make_plan())
    assert mapped.value.modalities[0] == make_group_therapy(delivery=None)
    assert {loss.path for loss in mapped.losses} == {
        "CarePlan.activity[0].detail.location",
        "CarePlan.activity[0].detail.scheduledTiming.repeat.when[0]",
    }


def test_from_fhir__minutes_and_day_list_schedules_are_understood() -> None:
    foreign = plan_to_fhir(make_plan())
    repeat = foreign["activity"][0]["detail"]["scheduledTiming"]["repeat"]
    for key in ("frequency", "period", "periodUnit"):
        del repeat[key]
    repeat.update({"duration": 180, "durationUnit": "min"})
    mapped = read_plan(foreign, make_plan())
    assert mapped.value == make_plan()
    assert mapped.losses == ()


def test_from_fhir__fhir_profiles_example_reads_with_its_extras_reported() -> None:
    example = json.loads(EXAMPLE.read_text())
    example["identifier"] = [{"system": PLAN_SYSTEM, "value": "PLAN-EX"}]
    mapped = read_plan(example)
    plan = mapped.value
    assert (plan.level_of_care, plan.weeks, plan.total_hours_per_week) == ("2.1", 12, 10.0)
    assert [m.modality for m in plan.modalities] == ["group-therapy", "relapse-prevention", "cbt"]
    assert "CarePlan.activity[0].detail.scheduledTiming.repeat.timeOfDay" in {
        loss.path for loss in mapped.losses
    }


def test_from_fhir__wrong_resource_type_is_named() -> None:
    problems = _problems({"resourceType": "Goal"})
    assert "Goal" in problems["CarePlan.resourceType"]


def test_from_fhir__gathers_every_missing_required_element() -> None:
    assert set(_problems({"resourceType": "CarePlan"})) == {
        "CarePlan.identifier",
        "CarePlan.status",
        "CarePlan.intent",
        "CarePlan.period",
        "CarePlan.subject",
    }


def test_from_fhir__unknown_codes_are_named_by_fhir_path() -> None:
    bad = plan_to_fhir(make_plan())
    bad["status"] = "approved"
    bad["intent"] = "order"
    bad["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "9.9"
    detail = bad["activity"][0]["detail"]
    detail["code"]["coding"][0]["code"] = "yoga"
    detail["status"] = "planned"
    detail["scheduledTiming"]["repeat"]["dayOfWeek"] = ["mon", "funday"]
    assert set(_problems(bad)) == {
        "CarePlan.status",
        "CarePlan.intent",
        "CarePlan.extension[0].valueCodeableConcept",
        "CarePlan.activity[0].detail.code",
        "CarePlan.activity[0].detail.status",
        "CarePlan.activity[0].detail.scheduledTiming.repeat.dayOfWeek",
    }


def test_from_fhir__forty_hours_a_week_iop_plan_is_refused() -> None:
    bad = plan_to_fhir(make_plan())
    repeat = bad["activity"][0]["detail"]["scheduledTiming"]["repeat"]
    repeat.update({"frequency": 5, "duration": 7.8})
    problems = _problems(bad)
    assert set(problems) == {"CarePlan.activity"}
    assert "40 hours a week" in problems["CarePlan.activity"]
    assert "9-19" in problems["CarePlan.activity"]


def test_from_fhir__negative_sessions_name_the_frequency() -> None:
    bad = plan_to_fhir(make_plan())
    bad["activity"][1]["detail"]["scheduledTiming"]["repeat"]["frequency"] = -2
    problems = _problems(bad)
    assert set(problems) == {"CarePlan.activity[1].detail.scheduledTiming.repeat.frequency"}
    assert "-2" in problems["CarePlan.activity[1].detail.scheduledTiming.repeat.frequency"]


def test_from_fhir__impossible_schedules_are_named() -> None:
    bad = plan_to_fhir(make_plan())
    bad["activity"][0]["detail"]["scheduledTiming"]["repeat"]["duration"] = 30
    bad["activity"][1]["detail"]["scheduledTiming"]["repeat"]["periodUnit"] = "mo"
    bad["activity"][2]["detail"]["scheduledTiming"]["repeat"]["period"] = 0
    assert set(_problems(bad)) == {
        "CarePlan.activity[0].detail.scheduledTiming.repeat.duration",
        "CarePlan.activity[1].detail.scheduledTiming.repeat",
        "CarePlan.activity[2].detail.scheduledTiming.repeat.period",
    }


def test_from_fhir__duplicate_modality_names_the_second_activity() -> None:
    bad = plan_to_fhir(make_plan())
    bad["activity"][1] = copy.deepcopy(bad["activity"][0])
    problems = _problems(bad)
    assert "already planned" in problems["CarePlan.activity[1].detail.code"]


@pytest.mark.parametrize(
    ("period", "path"),
    [
        ({"start": "2026-10-01", "end": "2026-09-01"}, "CarePlan.period.end"),
        ({"start": "2026-10-01", "end": "2026-12-25"}, "CarePlan.period.end"),
        ({"start": "2026-10-01"}, "CarePlan.period.end"),
        ({"start": "01/10/2026", "end": "2026-12-23"}, "CarePlan.period.start"),
    ],
)
def test_from_fhir__bad_period_is_named(period: dict[str, str], path: str) -> None:
    bad = plan_to_fhir(make_plan())
    bad["period"] = period
    assert set(_problems(bad)) == {path}


def test_from_fhir__goal_without_a_given_goal_is_named() -> None:
    plan = make_plan()
    resource = plan_to_fhir(plan)
    resource["goal"].append({"reference": "Goal/unknown"})
    with pytest.raises(MappingError) as caught:
        read_plan(resource, plan)
    assert [p.path for p in caught.value.problems] == ["CarePlan.goal[2]"]


def test_from_fhir__unknown_modifier_extension_is_refused() -> None:
    bad = plan_to_fhir(make_plan())
    modifier = [{"url": "http://example.org/not-done", "valueBoolean": True}]
    bad["activity"][0]["detail"]["modifierExtension"] = modifier
    bad["activity"][2]["detail"]["modifierExtension"] = modifier
    assert set(_problems(bad)) == {
        "CarePlan.activity[0].detail.modifierExtension[0]",
        "CarePlan.activity[2].detail.modifierExtension[0]",
    }


def test_from_fhir__another_systems_forty_hour_plan_is_read_with_a_band_warning() -> None:
    foreign = plan_to_fhir(make_plan())
    foreign["identifier"] = [{"system": "http://cedar-ridge.example/fhir/sid/plan", "value": "P9"}]
    repeat = foreign["activity"][0]["detail"]["scheduledTiming"]["repeat"]
    repeat.update({"frequency": 5, "duration": 7.8})
    mapped = registry.from_fhir(foreign, registry.MappingContext())
    assert mapped.value.identifier == "P9"
    warnings = [x for x in mapped.losses if x.reason.startswith("warning:")]
    assert [w.path for w in warnings] == ["CarePlan.activity"]
    assert "9-19" in warnings[0].reason
