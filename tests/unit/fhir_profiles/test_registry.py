"""Registry: cached loading that hands out copies, and profile lookup by type or name."""

import pytest

import fhir_profiles
from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.registry import (
    UnknownProfileError,
    conformance_resource,
    conformance_resources,
    example_resources,
    profile_url_for,
)


def test_conformance_resources__returns_independent_copies() -> None:
    first = conformance_resources()
    first[0]["id"] = "tampered"
    first[0]["concept"] = []
    again = conformance_resources()
    assert again[0]["id"] != "tampered"
    assert again[0].get("concept") != []


def test_example_resources__returns_independent_copies() -> None:
    example_resources()[0]["identifier"] = []
    assert example_resources()[0]["identifier"] != []


def test_conformance_resources__start_with_code_systems_end_with_questionnaires() -> None:
    kinds = [r["resourceType"] for r in conformance_resources()]
    assert kinds[0] == "CodeSystem"
    assert kinds[-1] == "Questionnaire"
    extension_positions = [
        i for i, r in enumerate(conformance_resources()) if r.get("type") == "Extension"
    ]
    first_profile = next(
        i for i, r in enumerate(conformance_resources()) if r.get("kind") == "resource"
    )
    assert max(extension_positions) < first_profile


def test_example_resources__patient_first() -> None:
    assert example_resources()[0]["resourceType"] == "Patient"


@pytest.mark.parametrize(
    ("query", "profile_id"),
    [
        ("Patient", "iop-patient"),
        ("Encounter", "iop-session-encounter"),
        ("CarePlan", "iop-careplan"),
        ("iop-phq9-response", "iop-phq9-response"),
        ("IopGad7Response", "iop-gad7-response"),
        ("IopCondition", "iop-condition"),
        ("iop-residential-encounter", "iop-residential-encounter"),
        ("IopAsamIntakeResponse", "iop-asam-intake-response"),
    ],
)
def test_profile_url_for__resolves_type_id_or_name(query: str, profile_id: str) -> None:
    assert profile_url_for(query) == structure_definition_url(profile_id)


def test_profile_url_for__questionnaire_response_needs_instrument() -> None:
    expected = "iop-phq9-response, iop-gad7-response or iop-asam-intake-response"
    with pytest.raises(UnknownProfileError, match=expected):
        profile_url_for("QuestionnaireResponse")


@pytest.mark.parametrize("query", ["Observation", "iop-diagnosis-role", "IopDiagnosisRole", ""])
def test_profile_url_for__unknown_or_extension_raises(query: str) -> None:
    with pytest.raises(UnknownProfileError):
        profile_url_for(query)


def test_conformance_resource__unknown_url_raises_lookup_error() -> None:
    with pytest.raises(LookupError, match="no shipped conformance resource"):
        conformance_resource("http://iop-bridge.example/fhir/ValueSet/nope")


def test_package__reexports_registry_api() -> None:
    assert fhir_profiles.profile_url_for is profile_url_for
    assert fhir_profiles.CANONICAL_BASE == "http://iop-bridge.example/fhir"
