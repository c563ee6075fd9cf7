from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from mappers import care_plan, care_plan_reader
from mappers.care_plan import TreatmentPlan
from mappers.errors import MappingError
from mappers.fhir_reference import references_in
from tests.builders.plans import (
    CONDITION_REFERENCES,
    PLAN_SYSTEM,
    SUBJECT,
    goal_references,
    make_cbt,
    make_group_therapy,
    make_plan,
)
from tests.strategies.care_plan import treatment_plans

EXAMPLE = Path(__file__).parents[3] / "fhir_profiles/examples/CarePlan-iop-ex-careplan.json"


def _to_fhir(plan: TreatmentPlan, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("goal_references", goal_references(plan))
    return care_plan.to_fhir(plan, plan_id_system=PLAN_SYSTEM, subject_reference=SUBJECT, **kwargs)


def _read(resource: Any, plan: TreatmentPlan | None = None) -> care_plan.Mapped[TreatmentPlan]:
    goals = None if plan is None else dict(zip(goal_references(plan), plan.goals, strict=True))
    return care_plan_reader.from_fhir(resource, plan_id_system=PLAN_SYSTEM, goals=goals)


def _problems(resource: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        _read(resource)
    return {p.path: p.message for p in caught.value.problems}


def _refused(plan: TreatmentPlan) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        _to_fhir(plan)
    return {p.path: p.message for p in caught.value.problems}


def test_to_fhir__fills_plan_level_elements() -> None:
    plan = make_plan()
    resource = _to_fhir(plan, condition_references=CONDITION_REFERENCES)
    assert resource["meta"]["profile"] == [
        "http://iop-bridge.example/fhir/StructureDefinition/iop-careplan"
    ]
    assert resource["extension"][0]["url"] == (
        "http://iop-bridge.example/fhir/StructureDefinition/iop-level-of-care"
    )
    assert resource["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "2.1"
    assert resource["identifier"] == [{"system": PLAN_SYSTEM, "value": "PLAN-TEST-0001"}]
    assert (resource["status"], resource["intent"]) == ("active", "plan")
    assert resource["category"] == [{"text": "IOP treatment plan"}]
    assert resource["subject"] == {"reference": SUBJECT}
    # 12 weeks from Thursday 2026-10-01 end on Wednesday 2026-12-23: Period.end is inclusive.
    assert resource["period"] == {"start": "2026-10-01", "end": "2026-12-23"}
    assert resource["addresses"] == [{"reference": r} for r in CONDITION_REFERENCES]
    assert resource["goal"] == [{"reference": r} for r in goal_references(plan)]
    assert resource["note"] == [{"text": plan.preferences}]


def test_to_fhir__each_modality_is_an_activity_with_weekly_timing() -> None:
    group, cbt = _to_fhir(make_plan())["activity"][:2]
    assert [c["code"] for c in group["detail"]["code"]["coding"]] == ["group-therapy", "76168009"]
    assert group["detail"]["status"] == "scheduled"
    assert group["detail"]["scheduledTiming"] == {
        "repeat": {
            "frequency": 3,
            "period": 1,
            "periodUnit": "wk",
            "dayOfWeek": ["mon", "wed", "thu"],
            "when": ["EVE"],
            "duration": 3,
            "durationUnit": "h",
        }
    }
    assert group["detail"]["location"] == {"display": "In person"}
    assert cbt["detail"]["location"] == {"display": "Telehealth"}


def test_to_fhir__text_only_modality_has_no_snomed_coding() -> None:
    plan = make_plan(
        modalities=(make_group_therapy(modality="relapse-prevention", sessions_per_week=4),)
    )
    codings = _to_fhir(plan)["activity"][0]["detail"]["code"]["coding"]
    assert [c["system"] for c in codings] == [
        "http://iop-bridge.example/fhir/CodeSystem/iop-modality"
    ]


def test_to_fhir__review_cadence_and_family_involvement_are_activities() -> None:
    review, family = _to_fhir(make_plan())["activity"][2:]
    assert review == {
        "detail": {
            "code": {"text": "Progress review"},
            "status": "scheduled",
            "scheduledTiming": {"repeat": {"frequency": 1, "period": 30, "periodUnit": "d"}},
        }
    }
    assert family == {
        "detail": {
            "code": {"text": "Family involvement"},
            "status": "scheduled",
            "description": "Partner joins the monthly family session",
        }
    }


def test_to_fhir__draft_plan_activities_are_not_started() -> None:
    activities = _to_fhir(make_plan(status="draft"))["activity"]
    assert [a["detail"]["status"] for a in activities[2:]] == ["not-started", "not-started"]


def test_totals__sessions_and_hours_per_week() -> None:
    plan = make_plan()
    assert plan.total_sessions_per_week == 4
    assert plan.total_hours_per_week == 10.0


def test_round_trip__with_the_goals_is_identity_with_no_losses() -> None:
    plan = make_plan()
    mapped = _read(_to_fhir(plan, condition_references=CONDITION_REFERENCES), plan)
    assert mapped.value == plan
    assert mapped.losses == ()
    assert references_in(mapped.links, "goal") == goal_references(plan)
    assert references_in(mapped.links, "addresses") == CONDITION_REFERENCES
    assert mapped.links["subject"] == SUBJECT


def test_from_fhir__without_goals_returns_goal_references_in_links() -> None:
    plan = make_plan()
    mapped = _read(_to_fhir(plan))
    assert mapped.value == replace(plan, goals=())
    assert references_in(mapped.links, "goal") == goal_references(plan)


@given(treatment_plans())
def test_round_trip__property_identity_for_any_valid_plan(plan: TreatmentPlan) -> None:
    mapped = _read(_to_fhir(plan), plan)
    assert mapped.value == plan
    assert mapped.losses == ()


def test_from_fhir__foreign_content_is_reported_not_dropped() -> None:
    foreign = copy.deepcopy(_to_fhir(make_plan()))
    foreign["text"] = {"status": "generated", "div": "<div>plan</div>"}
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
    mapped = _read(foreign, make_plan())
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
    foreign = _to_fhir(make_plan())
    # CBT's SNOMED CT code next to the group-therapy code is not what to_fhir writes.
    foreign["activity"][0]["detail"]["code"]["coding"][1]["code"] = "228557008"
    mapped = _read(foreign, make_plan())
    assert [loss.path for loss in mapped.losses] == ["CarePlan.activity[0].detail.code.coding[1]"]


def test_from_fhir__other_location_and_block_are_reported() -> None:
    foreign = _to_fhir(make_plan())
    detail = foreign["activity"][0]["detail"]
    detail["location"] = {"reference": "Location/clinic-2"}
    detail["scheduledTiming"]["repeat"]["when"] = ["AFT", "EVE"]
    mapped = _read(foreign, make_plan())
    assert mapped.value.modalities[0] == make_group_therapy(delivery=None)
    assert {loss.path for loss in mapped.losses} == {
        "CarePlan.activity[0].detail.location",
        "CarePlan.activity[0].detail.scheduledTiming.repeat.when[0]",
    }


def test_from_fhir__minutes_and_day_list_schedules_are_understood() -> None:
    foreign = _to_fhir(make_plan())
    repeat = foreign["activity"][0]["detail"]["scheduledTiming"]["repeat"]
    for key in ("frequency", "period", "periodUnit"):
        del repeat[key]
    repeat.update({"duration": 180, "durationUnit": "min"})
    mapped = _read(foreign, make_plan())
    assert mapped.value == make_plan()
    assert mapped.losses == ()


def test_from_fhir__fhir_profiles_example_reads_with_its_extras_reported() -> None:
    example = json.loads(EXAMPLE.read_text())
    example["identifier"] = [{"system": PLAN_SYSTEM, "value": "PLAN-EX"}]
    mapped = _read(example)
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
    bad = _to_fhir(make_plan())
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
    bad = _to_fhir(make_plan())
    repeat = bad["activity"][0]["detail"]["scheduledTiming"]["repeat"]
    repeat.update({"frequency": 5, "duration": 7.8})
    problems = _problems(bad)
    assert set(problems) == {"CarePlan.activity"}
    assert "40 hours a week" in problems["CarePlan.activity"]
    assert "9-19" in problems["CarePlan.activity"]


def test_from_fhir__negative_sessions_name_the_frequency() -> None:
    bad = _to_fhir(make_plan())
    bad["activity"][1]["detail"]["scheduledTiming"]["repeat"]["frequency"] = -2
    problems = _problems(bad)
    assert set(problems) == {"CarePlan.activity[1].detail.scheduledTiming.repeat.frequency"}
    assert "-2" in problems["CarePlan.activity[1].detail.scheduledTiming.repeat.frequency"]


def test_from_fhir__impossible_schedules_are_named() -> None:
    bad = _to_fhir(make_plan())
    bad["activity"][0]["detail"]["scheduledTiming"]["repeat"]["duration"] = 30
    bad["activity"][1]["detail"]["scheduledTiming"]["repeat"]["periodUnit"] = "mo"
    bad["activity"][2]["detail"]["scheduledTiming"]["repeat"]["period"] = 0
    assert set(_problems(bad)) == {
        "CarePlan.activity[0].detail.scheduledTiming.repeat.duration",
        "CarePlan.activity[1].detail.scheduledTiming.repeat",
        "CarePlan.activity[2].detail.scheduledTiming.repeat.period",
    }


def test_from_fhir__duplicate_modality_names_the_second_activity() -> None:
    bad = _to_fhir(make_plan())
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
    bad = _to_fhir(make_plan())
    bad["period"] = period
    assert set(_problems(bad)) == {path}


def test_from_fhir__goal_without_a_given_goal_is_named() -> None:
    plan = make_plan()
    resource = _to_fhir(plan)
    resource["goal"].append({"reference": "Goal/unknown"})
    with pytest.raises(MappingError) as caught:
        _read(resource, plan)
    assert [p.path for p in caught.value.problems] == ["CarePlan.goal[2]"]


def test_from_fhir__unknown_modifier_extension_is_refused() -> None:
    bad = _to_fhir(make_plan())
    modifier = [{"url": "http://example.org/not-done", "valueBoolean": True}]
    bad["activity"][0]["detail"]["modifierExtension"] = modifier
    bad["activity"][2]["detail"]["modifierExtension"] = modifier
    assert set(_problems(bad)) == {
        "CarePlan.activity[0].detail.modifierExtension[0]",
        "CarePlan.activity[2].detail.modifierExtension[0]",
    }


def test_to_fhir__forty_hours_a_week_iop_plan_is_refused() -> None:
    plan = make_plan(modalities=(make_group_therapy(sessions_per_week=5, hours_per_session=8.0),))
    problems = _refused(plan)
    assert set(problems) == {"TreatmentPlan.total_hours_per_week"}
    assert "40 hours a week" in problems["TreatmentPlan.total_hours_per_week"]


@pytest.mark.parametrize(("sessions", "hours"), [(3, 3.0), (1, 9.0), (19, 1.0), (5, 3.8)])
def test_to_fhir__iop_band_edges_are_accepted(sessions: int, hours: float) -> None:
    plan = make_plan(
        modalities=(make_group_therapy(sessions_per_week=sessions, hours_per_session=hours),)
    )
    assert (
        _to_fhir(plan)["activity"][0]["detail"]["scheduledTiming"]["repeat"]["frequency"]
        == sessions
    )


@pytest.mark.parametrize("hours", [2.75, 6.5])
def test_to_fhir__iop_below_9_or_above_19_hours_is_refused(hours: float) -> None:
    plan = make_plan(modalities=(make_group_therapy(hours_per_session=hours),))
    assert set(_refused(plan)) == {"TreatmentPlan.total_hours_per_week"}


def test_to_fhir__other_levels_have_no_band_but_a_week_has_168_hours() -> None:
    residential = make_plan(
        level_of_care="3.5",
        modalities=(make_group_therapy(sessions_per_week=5, hours_per_session=8.0),),
    )
    assert _to_fhir(residential)["status"] == "active"
    impossible = replace(
        residential, modalities=(make_group_therapy(sessions_per_week=8, hours_per_session=24.0),)
    )
    assert set(_refused(impossible)) == {"TreatmentPlan.total_hours_per_week"}


def test_to_fhir__impossible_modalities_are_named() -> None:
    plan = make_plan(
        modalities=(
            make_group_therapy(sessions_per_week=-1),
            make_cbt(hours_per_session=25.0, days_of_week=("tue", "tue")),
            make_cbt(time_block="night", delivery="carrier pigeon"),
        )
    )
    assert set(_refused(plan)) == {
        "TreatmentPlan.modalities[0].sessions_per_week",
        "TreatmentPlan.modalities[1].hours_per_session",
        "TreatmentPlan.modalities[1].days_of_week",
        "TreatmentPlan.modalities[2].modality",
        "TreatmentPlan.modalities[2].time_block",
        "TreatmentPlan.modalities[2].delivery",
    }


def test_to_fhir__plan_fields_and_goal_references_are_checked() -> None:
    plan = make_plan(
        identifier="", status="approved", level_of_care="9.9", weeks=0, review_every_days=0
    )
    problems = _refused(replace(plan, preferences=" "))
    assert set(problems) == {
        "TreatmentPlan.identifier",
        "TreatmentPlan.status",
        "TreatmentPlan.level_of_care",
        "TreatmentPlan.weeks",
        "TreatmentPlan.review_every_days",
        "TreatmentPlan.preferences",
    }
    with pytest.raises(MappingError, match="goal_references"):
        _to_fhir(make_plan(), goal_references=("Goal/only-one",))


def test_warnings__name_doubts_without_refusing() -> None:
    assert make_plan().warnings() == []
    php = make_plan(level_of_care="2.5")
    assert [w.path for w in php.warnings()] == ["TreatmentPlan.total_hours_per_week"]
    assert [w.path for w in make_plan(level_of_care=None).warnings()] == [
        "TreatmentPlan.level_of_care"
    ]
    assert [w.path for w in make_plan(weeks=20).warnings()] == ["TreatmentPlan.weeks"]
    assert all(w.code == "informational" for w in php.warnings())
