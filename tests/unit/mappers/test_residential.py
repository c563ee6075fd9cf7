from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given

from mappers import residential
from mappers.errors import MappingError
from mappers.residential import ResidentialStay
from tests.builders.sessions import (
    RESIDENTIAL_ORGANIZATION,
    STAY_SYSTEM,
    SUBJECT,
    make_residential_stay,
)
from tests.strategies.encounter import corrupted, residential_stays

SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ASAM = "http://bha.colorado.gov/fhir/bha-ig/CodeSystem/bha-asam-level-of-care-cs"
DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"


def _stay_fhir(stay: ResidentialStay | None = None) -> dict[str, Any]:
    return residential.to_fhir(
        stay or make_residential_stay(),
        id_system=STAY_SYSTEM,
        subject_reference=SUBJECT,
        service_provider_reference=RESIDENTIAL_ORGANIZATION,
    )


def _problem_paths(resource: Any, mapper: Any, system: str) -> set[str]:
    with pytest.raises(MappingError) as caught:
        mapper.from_fhir(resource, id_system=system)
    return {p.path for p in caught.value.problems}


def test_to_fhir__residential_stay_content() -> None:
    resource = _stay_fhir()
    assert resource["meta"] == {
        "profile": ["http://iop-bridge.example/fhir/StructureDefinition/iop-residential-encounter"]
    }
    assert resource["status"] == "finished"
    assert resource["class"] == {
        "system": ACT_CODE,
        "code": "NONAC",
        "display": "inpatient non-acute",
    }
    assert resource["type"][0]["coding"] == [
        {
            "system": ASAM,
            "code": "3.5",
            "display": "Clinically Managed High-Intensity Residential Services",
        }
    ]
    assert resource["period"] == {
        "start": "2024-09-06T10:00:00-04:00",
        "end": "2024-10-04T11:30:00-04:00",
    }
    assert resource["hospitalization"] == {
        "dischargeDisposition": {
            "coding": [{"system": DISPOSITION, "code": "home", "display": "Home"}],
            "text": "Home",
        }
    }
    assert resource["serviceProvider"] == {"reference": RESIDENTIAL_ORGANIZATION}


def test_to_fhir__stay_in_progress_has_no_end_or_disposition() -> None:
    resource = _stay_fhir(make_residential_stay(discharged=None, discharge_disposition=None))
    assert resource["status"] == "in-progress"
    assert resource["period"] == {"start": "2024-09-06T10:00:00-04:00"}
    assert "hospitalization" not in resource


def test_round_trip__residential_stay_is_identity_with_links() -> None:
    mapped = residential.from_fhir(_stay_fhir(), id_system=STAY_SYSTEM)
    assert mapped.value == make_residential_stay()
    assert mapped.links == {"subject": SUBJECT, "serviceProvider": RESIDENTIAL_ORGANIZATION}
    assert mapped.losses == ()


@given(residential_stays())
def test_round_trip__any_valid_stay_is_identity(stay: ResidentialStay) -> None:
    mapped = residential.from_fhir(_stay_fhir(stay), id_system=STAY_SYSTEM)
    assert mapped.value == stay
    assert mapped.losses == ()


def test_from_fhir__foreign_stay_content_is_reported_not_dropped() -> None:
    foreign = _stay_fhir()
    foreign["class"] = {"system": ACT_CODE, "code": "IMP"}
    foreign["type"][0]["coding"].insert(0, {"system": SNOMED, "code": "11111111"})
    foreign["hospitalization"]["admitSource"] = {"text": "Referral"}
    foreign["hospitalization"]["dischargeDisposition"]["coding"].append(
        {"system": "http://ehr.example/dispo", "code": "IOP"}
    )
    foreign["diagnosis"] = [{"condition": {"reference": "Condition/c1"}}]
    mapped = residential.from_fhir(foreign, id_system=STAY_SYSTEM)
    assert mapped.value == make_residential_stay()
    assert {loss.path for loss in mapped.losses} == {
        "Encounter.class",
        "Encounter.type[0].coding[0]",
        "Encounter.hospitalization.admitSource",
        "Encounter.hospitalization.dischargeDisposition.coding[1]",
        "Encounter.diagnosis",
    }


def test_from_fhir__disposition_in_a_foreign_system_only_is_a_loss() -> None:
    foreign = _stay_fhir()
    foreign["hospitalization"]["dischargeDisposition"] = {"text": "Stepped down to IOP"}
    mapped = residential.from_fhir(foreign, id_system=STAY_SYSTEM)
    assert mapped.value == make_residential_stay(discharge_disposition=None)
    assert [loss.path for loss in mapped.losses] == [
        "Encounter.hospitalization.dischargeDisposition"
    ]


def test_from_fhir__planned_end_of_a_stay_in_progress_is_a_loss() -> None:
    foreign = _stay_fhir()
    foreign["status"] = "in-progress"
    mapped = residential.from_fhir(foreign, id_system=STAY_SYSTEM)
    assert mapped.value == make_residential_stay(discharged=None, discharge_disposition=None)
    assert {loss.path for loss in mapped.losses} == {
        "Encounter.period.end",
        "Encounter.hospitalization.dischargeDisposition",
    }


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"status": "planned"}, "Encounter.status"),
        (
            {"type": [{"coding": [{"system": ASAM, "code": "2.1"}]}]},
            "Encounter.type[0].coding[0].code",
        ),
        ({"type": [{"text": "Residential"}]}, "Encounter.type"),
        (
            {
                "hospitalization": {
                    "dischargeDisposition": {"coding": [{"system": DISPOSITION, "code": "iop"}]}
                }
            },
            "Encounter.hospitalization.dischargeDisposition.coding[0].code",
        ),
        ({"period": {"start": "2024-09-06T10:00:00-04:00"}}, "Encounter.period.end"),
        ({"serviceProvider": {"reference": "Patient/p2"}}, "Encounter.serviceProvider.reference"),
    ],
)
def test_from_fhir__unmappable_stay_values_are_named(change: dict[str, Any], path: str) -> None:
    resource = copy.deepcopy(_stay_fhir())
    resource.update(change)
    assert _problem_paths(resource, residential, STAY_SYSTEM) == {path}


@given(corrupted(_stay_fhir()))
def test_from_fhir__any_corrupted_stay_maps_or_raises_mapping_error(resource: Any) -> None:
    try:
        mapped = residential.from_fhir(resource, id_system=STAY_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []


def test_from_fhir__discharge_before_admission_is_named() -> None:
    resource = _stay_fhir()
    resource["period"]["end"] = "2024-09-01T10:00:00-04:00"
    assert _problem_paths(resource, residential, STAY_SYSTEM) == {"Encounter.period.end"}


def test_to_fhir__stay_problems_are_gathered() -> None:
    stay = make_residential_stay(
        asam_level="2.1", discharged=None, discharge_disposition="discharged-to-iop"
    )
    with pytest.raises(MappingError) as caught:
        _stay_fhir(stay)
    assert [p.path for p in caught.value.problems] == [
        "ResidentialStay.asam_level",
        "ResidentialStay.discharge_disposition",
        "ResidentialStay.discharge_disposition",
    ]
