from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given

from fhir_profiles.terminology.categories import CAREPLAN_ASSESS_PLAN
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
from tests.unit.mappers.care_plan_support import plan_to_fhir, read_plan


def _refused(plan: TreatmentPlan) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        plan_to_fhir(plan)
    return {p.path: p.message for p in caught.value.problems}


def test_to_fhir__fills_plan_level_elements() -> None:
    plan = make_plan()
    resource = plan_to_fhir(plan, condition_references=CONDITION_REFERENCES)
    assert resource["meta"]["profile"] == [
        "http://iop-bridge.example/fhir/StructureDefinition/iop-careplan"
    ]
    assert resource["extension"][0]["url"] == (
        "http://iop-bridge.example/fhir/StructureDefinition/iop-level-of-care"
    )
    assert resource["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "2.1"
    assert resource["identifier"] == [{"system": PLAN_SYSTEM, "value": "PLAN-TEST-0001"}]
    assert (resource["status"], resource["intent"]) == ("active", "plan")
    # US Core 6.1 CarePlan: category assess-plan and a narrative
    assert resource["category"] == [
        {"coding": [CAREPLAN_ASSESS_PLAN.coding()], "text": "IOP treatment plan"}
    ]
    assert resource["text"]["status"] == "generated"
    assert resource["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    assert f"{plan.start.isoformat()} to {plan.end.isoformat()}" in resource["text"]["div"]
    assert resource["subject"] == {"reference": SUBJECT}
    # 12 weeks from Thursday 2026-10-01 end on Wednesday 2026-12-23: Period.end is inclusive.
    assert resource["period"] == {"start": "2026-10-01", "end": "2026-12-23"}
    assert resource["addresses"] == [{"reference": r} for r in CONDITION_REFERENCES]
    assert resource["goal"] == [{"reference": r} for r in goal_references(plan)]
    assert resource["note"] == [{"text": plan.preferences}]


def test_to_fhir__each_modality_is_an_activity_with_weekly_timing() -> None:
    group, cbt = plan_to_fhir(make_plan())["activity"][:2]
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
    codings = plan_to_fhir(plan)["activity"][0]["detail"]["code"]["coding"]
    assert [c["system"] for c in codings] == [
        "http://iop-bridge.example/fhir/CodeSystem/iop-modality"
    ]


def test_to_fhir__review_cadence_and_family_involvement_are_activities() -> None:
    review, family = plan_to_fhir(make_plan())["activity"][2:]
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
    activities = plan_to_fhir(make_plan(status="draft"))["activity"]
    assert [a["detail"]["status"] for a in activities[2:]] == ["not-started", "not-started"]


def test_totals__sessions_and_hours_per_week() -> None:
    plan = make_plan()
    assert plan.total_sessions_per_week == 4
    assert plan.total_hours_per_week == 10.0


def test_round_trip__with_the_goals_is_identity_with_no_losses() -> None:
    plan = make_plan()
    mapped = read_plan(plan_to_fhir(plan, condition_references=CONDITION_REFERENCES), plan)
    assert mapped.value == plan
    assert mapped.losses == ()
    assert references_in(mapped.links, "goal") == goal_references(plan)
    assert references_in(mapped.links, "addresses") == CONDITION_REFERENCES
    assert mapped.links["subject"] == SUBJECT


@given(treatment_plans())
def test_round_trip__property_identity_for_any_valid_plan(plan: TreatmentPlan) -> None:
    mapped = read_plan(plan_to_fhir(plan), plan)
    assert mapped.value == plan
    assert mapped.losses == ()


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
        plan_to_fhir(plan)["activity"][0]["detail"]["scheduledTiming"]["repeat"]["frequency"]
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
    assert plan_to_fhir(residential)["status"] == "active"
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
        plan_to_fhir(make_plan(), goal_references=("Goal/only-one",))


def test_warnings__name_doubts_without_refusing() -> None:
    assert make_plan().warnings() == []
    php = make_plan(level_of_care="2.5")
    assert [w.path for w in php.warnings()] == ["TreatmentPlan.total_hours_per_week"]
    assert [w.path for w in make_plan(level_of_care=None).warnings()] == [
        "TreatmentPlan.level_of_care"
    ]
    assert [w.path for w in make_plan(weeks=20).warnings()] == ["TreatmentPlan.weeks"]
    assert all(w.code == "informational" for w in php.warnings())
