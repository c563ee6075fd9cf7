"""Example instances against the project's mappers: each carries a business identifier in its
concept's namespace and maps with no MappingError, so the examples double as mapper fixtures."""

from collections.abc import Callable
from typing import Any

import pytest

from fhir_profiles import canonical
from fhir_profiles.registry import example_resources
from mappers import (
    asam_intake,
    assessment,
    care_plan_reader,
    condition,
    encounter,
    goal_reader,
    medication_request,
    patient,
    residential,
)
from mappers.loss import Mapped

EXAMPLES = example_resources()
BY_REFERENCE = {f"{e['resourceType']}/{e['id']}": e for e in EXAMPLES}
PATIENT_REFERENCE = "Patient/iop-ex-patient"


def _profile_id(example: dict[str, Any]) -> str:
    url: str = example["meta"]["profile"][0]
    return url.rsplit("/", 1)[1]


# Profile id -> (identifier system, how the project reads that profile's resources).
READERS: dict[str, tuple[str, Callable[[dict[str, Any]], Mapped[Any]]]] = {
    "iop-patient": (
        canonical.MRN_SYSTEM,
        lambda r: patient.from_fhir(r, mrn_system=canonical.MRN_SYSTEM),
    ),
    "iop-condition": (
        canonical.CONDITION_ID_SYSTEM,
        lambda r: condition.from_fhir(r, id_system=canonical.CONDITION_ID_SYSTEM),
    ),
    "iop-goal": (
        canonical.GOAL_ID_SYSTEM,
        lambda r: goal_reader.from_fhir(r, goal_id_system=canonical.GOAL_ID_SYSTEM),
    ),
    "iop-careplan": (
        canonical.CARE_PLAN_ID_SYSTEM,
        lambda r: care_plan_reader.from_fhir(r, plan_id_system=canonical.CARE_PLAN_ID_SYSTEM),
    ),
    "iop-session-encounter": (
        canonical.SESSION_ID_SYSTEM,
        lambda r: encounter.from_fhir(r, id_system=canonical.SESSION_ID_SYSTEM),
    ),
    "iop-residential-encounter": (
        canonical.RESIDENTIAL_STAY_ID_SYSTEM,
        lambda r: residential.from_fhir(r, id_system=canonical.RESIDENTIAL_STAY_ID_SYSTEM),
    ),
    "iop-phq9-response": (
        canonical.ASSESSMENT_ID_SYSTEM,
        lambda r: assessment.from_fhir(r, id_system=canonical.ASSESSMENT_ID_SYSTEM),
    ),
    "iop-gad7-response": (
        canonical.ASSESSMENT_ID_SYSTEM,
        lambda r: assessment.from_fhir(r, id_system=canonical.ASSESSMENT_ID_SYSTEM),
    ),
    "iop-asam-intake-response": (
        canonical.INTAKE_ID_SYSTEM,
        lambda r: asam_intake.from_fhir(r, id_system=canonical.INTAKE_ID_SYSTEM),
    ),
    "iop-medicationrequest": (
        canonical.MEDICATION_REQUEST_ID_SYSTEM,
        lambda r: medication_request.from_fhir(r, id_system=canonical.MEDICATION_REQUEST_ID_SYSTEM),
    ),
}


def _ids(resources: list[dict[str, Any]]) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in resources]


def _identifiers(example: dict[str, Any]) -> list[dict[str, Any]]:
    # QuestionnaireResponse.identifier is 0..1 in R4; every other resource here repeats it.
    value = example.get("identifier", [])
    return value if isinstance(value, list) else [value]


def test_readers__cover_every_example_profile() -> None:
    assert {_profile_id(e) for e in EXAMPLES} == set(READERS)


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example__has_one_identifier_in_its_concept_system(example: dict[str, Any]) -> None:
    system, _ = READERS[_profile_id(example)]
    assert [i["system"] for i in _identifiers(example)] == [system]


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example__maps_with_the_project_mapper(example: dict[str, Any]) -> None:
    _, read = READERS[_profile_id(example)]
    mapped = read(example)  # a MappingError here fails the test
    if example["resourceType"] == "Patient":
        assert mapped.value.mrn == _identifiers(example)[0]["value"]
    else:
        assert mapped.value.identifier == _identifiers(example)[0]["value"]
        assert mapped.links["subject"] == PATIENT_REFERENCE


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example__losses_are_only_narrative_and_unmodelled_extras(
    example: dict[str, Any],
) -> None:
    _, read = READERS[_profile_id(example)]
    lost = {loss.path.split(".")[1] for loss in read(example).losses}
    # What the mappers may drop from an example: narrative and display text, and elements no
    # domain type models (never an identifier, status, code, subject or period).
    assert lost.isdisjoint({"identifier", "status", "code", "class", "type", "period", "item"})


def test_example_careplan__maps_with_its_goal_and_condition() -> None:
    goal_value = goal_reader.from_fhir(
        BY_REFERENCE["Goal/iop-ex-goal"], goal_id_system=canonical.GOAL_ID_SYSTEM
    ).value
    mapped = care_plan_reader.from_fhir(
        BY_REFERENCE["CarePlan/iop-ex-careplan"],
        plan_id_system=canonical.CARE_PLAN_ID_SYSTEM,
        goals={"Goal/iop-ex-goal": goal_value},
    )
    plan = mapped.value
    assert plan.goals == (goal_value,)
    assert mapped.links["addresses[0]"] == "Condition/iop-ex-condition"
    # period 2026-10-01..2026-12-23 (inclusive) is the whole 12 weeks the mapper requires, and
    # the IOP hours sit inside the ASAM 2.1 band, so the plan raises no warning either.
    assert (plan.start.isoformat(), plan.weeks, plan.end.isoformat()) == (
        "2026-10-01",
        12,
        "2026-12-23",
    )
    assert plan.warnings() == []


def test_example_residential__is_a_finished_step_down_stay() -> None:
    stay = residential.from_fhir(
        BY_REFERENCE["Encounter/iop-ex-residential"],
        id_system=canonical.RESIDENTIAL_STAY_ID_SYSTEM,
    ).value
    assert (stay.asam_level, stay.discharge_disposition) == ("3.5", "home")
    assert stay.discharged is not None and stay.discharged > stay.admitted


def test_example_intake__rates_all_six_dimensions() -> None:
    intake = asam_intake.from_fhir(
        BY_REFERENCE["QuestionnaireResponse/iop-ex-asam-intake"],
        id_system=canonical.INTAKE_ID_SYSTEM,
    ).value
    assert [r.risk for r in intake.ratings] == [0, 1, 2, 1, 2, 2]
    assert intake.ratings[1].note is None
