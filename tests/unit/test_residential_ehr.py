"""The simulated residential EHR writes our own dialect as literal FHIR JSON: what it states in
plain values (the discharge, the referral time, the client's name) is what the JSON says, and
our readers map every resource of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mappers import registry
from tests.residential import CONTEXT, read_back, residential_ehr

DISCHARGED = datetime(2026, 12, 1, 15, 45, 10, tzinfo=UTC)


def test_package__every_resource_maps_with_our_readers() -> None:
    package = residential_ehr.package(3, discharged=DISCHARGED)
    kinds = [e["resource"]["resourceType"] for e in package.bundle["entry"]]
    assert len(kinds) == 25 and kinds.count("MedicationStatement") == 8
    for entry in package.bundle["entry"]:
        assert registry.from_fhir(entry["resource"], CONTEXT).value is not None


def test_package__plain_values_are_what_the_json_says() -> None:
    package = residential_ehr.package(3, discharged=DISCHARGED)
    [stay] = package.resources("Encounter")
    [task] = package.resources("Task")
    [patient] = package.resources("Patient")
    assert stay["period"]["end"] == "2026-12-01T15:45:10Z" and package.discharged == DISCHARGED
    assert task["authoredOn"] == "2026-11-30T15:45:10Z"
    assert package.referred == DISCHARGED - timedelta(days=1)
    name = patient["name"][0]
    assert package.client_name == f"{name['given'][0]} {name['family']}"
    assert task["identifier"][0]["value"] == package.identifier == "SD-000003"
    read = read_back(package)
    assert read.plan_identifier == "SD-000003-PLAN"
    assert [a.total for a in read.assessments] == [14, 11]
    assert len(read.medications.entries) == 8


def test_package__two_clients_in_a_row_have_different_names() -> None:
    first, second = residential_ehr.package(41), residential_ehr.package(42)
    assert first.client_name != second.client_name


def test_package__language_and_extra_consent_recipient() -> None:
    package = residential_ehr.package(
        5, iop="Organization/iop", language="es", also_disclose_to=("Organization/after",)
    )
    [patient] = package.resources("Patient")
    [consent] = package.resources("Consent")
    assert patient["communication"][0]["language"]["coding"][0]["code"] == "es"
    actors = [a["reference"]["reference"] for a in consent["provision"]["actor"]]
    assert actors == ["Organization/iop", "Organization/after"]
    assert read_back(package).client.preferred_language == "es"
