from __future__ import annotations

import copy

import pytest

from mappers import patient
from mappers.errors import MappingError
from tests.builders import MRN_SYSTEM, make_client


def test_to_fhir__fills_identifier_name_gender_birthdate() -> None:
    resource = patient.to_fhir(make_client(), mrn_system=MRN_SYSTEM)
    assert resource["identifier"] == [
        {"use": "usual", "system": MRN_SYSTEM, "value": "IOP-TEST-0001"}
    ]
    assert resource["name"] == [{"use": "official", "family": "Rivera", "given": ["Alex", "J"]}]
    assert resource["gender"] == "female"
    assert resource["birthDate"] == "1991-04-12"


def test_round_trip__is_identity_with_no_losses() -> None:
    client = make_client()
    mapped = patient.from_fhir(
        patient.to_fhir(client, mrn_system=MRN_SYSTEM), mrn_system=MRN_SYSTEM
    )
    assert mapped.value == client
    assert mapped.losses == ()


def test_from_fhir__foreign_content_is_reported_not_dropped() -> None:
    resource = patient.to_fhir(make_client(), mrn_system=MRN_SYSTEM)
    foreign = copy.deepcopy(resource)
    foreign["identifier"].append(
        {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "000-00-0000"}
    )
    foreign["name"].append({"use": "nickname", "given": ["AJ"]})
    foreign["telecom"] = [{"system": "phone", "value": "555-0100"}]
    foreign["extension"] = [{"url": "http://example.org/x", "valueString": "y"}]
    mapped = patient.from_fhir(foreign, mrn_system=MRN_SYSTEM)
    assert mapped.value == make_client()
    assert {loss.path for loss in mapped.losses} == {
        "Patient.identifier[1]",
        "Patient.name[1]",
        "Patient.telecom",
        "Patient.extension",
    }


def test_from_fhir__gathers_every_problem_with_its_path() -> None:
    bad = {
        "resourceType": "Patient",
        "name": [{"given": ["A"]}],
        "gender": "f",
        "birthDate": "1991-13-40",
    }
    with pytest.raises(MappingError) as caught:
        patient.from_fhir(bad, mrn_system=MRN_SYSTEM)
    paths = {p.path for p in caught.value.problems}
    assert paths == {
        "Patient.identifier",
        "Patient.name[0].family",
        "Patient.gender",
        "Patient.birthDate",
    }


def test_from_fhir__wrong_resource_type_is_named() -> None:
    with pytest.raises(MappingError) as caught:
        patient.from_fhir({"resourceType": "Observation"}, mrn_system=MRN_SYSTEM)
    assert any(
        p.path == "Patient.resourceType" and "Observation" in p.message
        for p in caught.value.problems
    )


def test_to_fhir__rejects_unknown_gender() -> None:
    with pytest.raises(MappingError, match=r"Client\.gender"):
        patient.to_fhir(make_client(gender="f"), mrn_system=MRN_SYSTEM)


def test_from_fhir__unknown_modifier_extension_is_refused_not_reported_as_a_loss() -> None:
    # FHIR R4 extensibility.html#modifierExtension: it may change the meaning of the whole
    # Patient (e.g. "this record is a test patient"); a reader that does not know it must refuse.
    resource = patient.to_fhir(make_client(), mrn_system=MRN_SYSTEM)
    resource["modifierExtension"] = [
        {"url": "http://x.example/ext/not-a-person", "valueBoolean": True}
    ]
    with pytest.raises(MappingError) as caught:
        patient.from_fhir(resource, mrn_system=MRN_SYSTEM)
    assert [p.path for p in caught.value.problems] == ["Patient.modifierExtension[0]"]


def test_preferred_language__round_trips_as_a_bcp47_communication() -> None:
    client = make_client(preferred_language="es")
    resource = patient.to_fhir(client, mrn_system=MRN_SYSTEM)
    assert resource["communication"] == [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": True}
    ]
    assert patient.from_fhir(resource, mrn_system=MRN_SYSTEM).value == client


def test_preferred_language__the_preferred_one_is_kept_the_others_reported() -> None:
    resource = patient.to_fhir(make_client(), mrn_system=MRN_SYSTEM)
    resource["communication"] = [
        {"language": {"text": "Vietnamese"}},
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "pt-BR"}]},
         "preferred": True},
    ]  # fmt: skip
    mapped = patient.from_fhir(resource, mrn_system=MRN_SYSTEM)
    assert mapped.value.preferred_language == "pt-BR"
    assert [loss.path for loss in mapped.losses] == ["Patient.communication[0]"]
    resource["communication"] = [{"language": {"text": "Vietnamese"}}]  # text only: kept
    assert patient.from_fhir(resource, mrn_system=MRN_SYSTEM).value.preferred_language == (
        "Vietnamese"
    )
