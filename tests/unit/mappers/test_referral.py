from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given

from mappers import referral
from mappers.errors import MappingError
from mappers.referral import Referral
from tests.builders.referrals import (
    IOP_ORGANIZATION,
    PACKAGE,
    REFERRAL_SYSTEM,
    make_referral,
)
from tests.strategies.encounter import corrupted
from tests.strategies.referral import referrals

ASAM = "http://bha.colorado.gov/fhir/bha-ig/CodeSystem/bha-asam-level-of-care-cs"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
PLAC = {
    "coding": [{"system": V2_0203, "code": "PLAC", "display": "Placer Identifier"}],
    "text": "Placer Identifier",
}


def _sr(value: Referral | None = None) -> dict[str, Any]:
    return referral.to_fhir(value or make_referral(), id_system=REFERRAL_SYSTEM)


def _sr_problems(resource: Any) -> set[str]:
    with pytest.raises(MappingError) as caught:
        referral.from_fhir(resource, id_system=REFERRAL_SYSTEM)
    return {p.path for p in caught.value.problems}


# --- ServiceRequest -----------------------------------------------------------------------------


def test_to_fhir__step_down_service_request_content() -> None:
    resource = _sr()
    assert resource["identifier"] == [
        {"type": PLAC, "system": REFERRAL_SYSTEM, "value": "REF-TEST-0001"}
    ]
    assert (resource["status"], resource["intent"]) == ("active", "order")
    # US Core ServiceRequest: required-binding category (SNOMED CT Counselling), profile claimed
    assert resource["category"] == [
        {
            "coding": [
                {"system": "http://snomed.info/sct", "code": "409063005", "display": "Counseling"}
            ],
            "text": "Behavioral health",
        }
    ]
    assert resource["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest"
    ]
    assert resource["code"] == {
        "coding": [{"system": ASAM, "code": "2.1", "display": "Intensive Outpatient"}],
        "text": "Intensive Outpatient",
    }
    assert resource["occurrenceDateTime"] == "2024-10-07"
    assert resource["authoredOn"] == "2024-10-03T15:00:00-04:00"
    assert resource["requester"] == {"reference": "Organization/residential-program"}
    assert resource["performer"] == [{"reference": IOP_ORGANIZATION}]
    assert [r["reference"] for r in resource["reasonReference"]] == [
        "Condition/dx-alcohol",
        "Condition/dx-mdd",
    ]
    assert [r["reference"] for r in resource["supportingInfo"]] == list(PACKAGE)
    assert resource["note"] == [{"text": "Evening track preferred (works days)."}]


def test_to_fhir__aftercare_referral_to_outpatient_without_optional_parts() -> None:
    resource = _sr(make_referral(level_of_care="1.0", requested_start=None, note=None, reasons=()))
    assert resource["code"]["coding"][0]["code"] == "1.0"
    assert not {"occurrenceDateTime", "note", "reasonReference"} & resource.keys()


def test_to_fhir__bad_referral_names_every_field() -> None:
    bad = make_referral(
        identifier="",
        status="open",
        level_of_care="2",
        requester="Practitioner/p1",
        authored_on=datetime(2024, 10, 3, 15, 0),
        supporting_info=("Coverage/c1",),
    )
    with pytest.raises(MappingError) as caught:
        _sr(bad)
    assert {p.path for p in caught.value.problems} == {
        "Referral.identifier",
        "Referral.status",
        "Referral.level_of_care",
        "Referral.requester",
        "Referral.authored_on",
        "Referral.supporting_info[0]",
    }


def test_round_trip__referral_builder_is_identity() -> None:
    mapped = referral.from_fhir(_sr(), id_system=REFERRAL_SYSTEM)
    assert mapped.value == make_referral()
    assert mapped.losses == ()


@given(referrals())
def test_round_trip__any_valid_referral_is_identity(value: Referral) -> None:
    mapped = referral.from_fhir(_sr(value), id_system=REFERRAL_SYSTEM)
    assert mapped.value == value
    assert mapped.losses == ()


def test_from_fhir__foreign_service_request_content_is_reported_not_dropped() -> None:
    foreign = _sr()
    foreign["identifier"].append({"type": {"text": "FILL"}, "system": "http://iop.example/id"})
    foreign["category"].append({"coding": [{"system": "http://snomed.info/sct", "code": "x"}]})
    foreign["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "y"})
    foreign["performer"].append({"reference": "Organization/other"})
    foreign["supportingInfo"].append({"reference": "Coverage/c1"})
    foreign["note"].append({"text": "second"})
    foreign["occurrenceDateTime"] = "2024-10-07T18:00:00-04:00"
    foreign["priority"] = "urgent"
    mapped = referral.from_fhir(foreign, id_system=REFERRAL_SYSTEM)
    assert mapped.value == make_referral()
    assert {loss.path for loss in mapped.losses} == {
        "ServiceRequest.identifier[1]",
        "ServiceRequest.category[1]",
        "ServiceRequest.code.coding[1]",
        "ServiceRequest.performer[1]",
        "ServiceRequest.supportingInfo[4]",
        "ServiceRequest.note[1]",
        "ServiceRequest.occurrenceDateTime",
        "ServiceRequest.priority",
    }


def test_from_fhir__outpatient_alias_1_reads_as_1_0() -> None:
    foreign = _sr(make_referral(level_of_care="1.0"))
    foreign["code"] = {"coding": [{"system": ASAM, "code": "1"}]}
    assert referral.from_fhir(foreign, id_system=REFERRAL_SYSTEM).value.level_of_care == "1.0"


def test_from_fhir__wrong_resource_type_is_named() -> None:
    assert "ServiceRequest.resourceType" in _sr_problems({"resourceType": "Task"})


def test_from_fhir__bare_service_request_names_every_missing_element() -> None:
    assert _sr_problems({"resourceType": "ServiceRequest"}) == {
        "ServiceRequest.identifier",
        "ServiceRequest.status",
        "ServiceRequest.intent",
        "ServiceRequest.code",
        "ServiceRequest.subject",
        "ServiceRequest.requester",
        "ServiceRequest.performer",
        "ServiceRequest.authoredOn",
    }


@pytest.mark.parametrize(
    ("element", "value", "path"),
    [
        ("intent", "proposal", "ServiceRequest.intent"),
        ("status", "requested", "ServiceRequest.status"),
        (
            "code",
            {"coding": [{"system": ASAM, "code": "9.9"}]},
            "ServiceRequest.code.coding[0].code",
        ),
        ("code", {"text": "IOP"}, "ServiceRequest.code"),
        ("performer", [{"reference": "Location/p"}], "ServiceRequest.performer[0].reference"),
        ("reasonReference", [{"display": "x"}], "ServiceRequest.reasonReference[0].reference"),
    ],
)
def test_from_fhir__unmappable_values_are_named(element: str, value: Any, path: str) -> None:
    resource = _sr()
    resource[element] = value
    assert _sr_problems(resource) == {path}


@given(corrupted(_sr()))
def test_from_fhir__any_corrupted_service_request_maps_or_raises(resource: Any) -> None:
    try:
        mapped = referral.from_fhir(resource, id_system=REFERRAL_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []
