"""Which resources a package is made of, read from its references (pure)."""

from __future__ import annotations

from mappers.referral_package.mapping import PackageProblem
from mappers.referral_package.references import (
    localized,
    nested_targets,
    relative_reference,
    request_targets,
)

BASE = "https://fhir.example/r4/"


def test_relative_reference__same_server_absolute_or_relative_only() -> None:
    assert relative_reference({"reference": "Patient/p1"}) == "Patient/p1"
    assert relative_reference("Patient/p1/_history/2") == "Patient/p1"
    assert relative_reference(f"{BASE}Patient/p1", BASE) == "Patient/p1"
    assert relative_reference("https://elsewhere.example/Patient/p1", BASE) is None
    assert relative_reference("urn:uuid:5b1c1d52-0a5e-4a0c-8f5e-3f7a2d9b6c41") is None
    assert relative_reference(None) is None


def test_localized__absolute_references_to_this_server_become_relative() -> None:
    request = {"resourceType": "ServiceRequest", "subject": {"reference": f"{BASE}Patient/p1"}}
    assert localized(request, BASE)["subject"] == {"reference": "Patient/p1"}
    untouched = {"resourceType": "ServiceRequest", "subject": {"reference": "Patient/p1"}}
    assert localized(untouched, BASE) is untouched


def test_request_targets__each_once_and_a_problem_for_a_foreign_reference() -> None:
    task = {"for": {"reference": "Patient/p1"}}
    request = {
        "subject": {"reference": "Patient/p1"},
        "reasonReference": [{"reference": "Condition/c1"}, {"reference": "Condition/c1"}],
        "supportingInfo": [{"reference": "https://elsewhere.example/Consent/x"}],
    }
    problems: list[PackageProblem] = []
    assert request_targets(task, request, problems, BASE) == ["Patient/p1", "Condition/c1"]
    assert [p.path for p in problems] == ["ServiceRequest.supportingInfo[0]"]


def test_nested_targets__list_items_medications_and_panel_members() -> None:
    problems: list[PackageProblem] = []
    listed = {"resourceType": "List", "entry": [{"item": {"reference": "MedicationStatement/m1"}},
                                                {"item": {"display": "no reference"}}]}  # fmt: skip
    assert nested_targets(listed, "List/l1", problems, BASE) == ["MedicationStatement/m1"]
    assert [(p.resource, p.path) for p in problems] == [("List/l1", "List.entry[1].item")]
    request = {
        "resourceType": "MedicationRequest",
        "medicationReference": {"reference": "Medication/7"},
    }
    assert nested_targets(request, "MedicationRequest/r1", problems, BASE) == ["Medication/7"]
    panel = {"resourceType": "Observation", "hasMember": [{"reference": "Observation/o2"}]}
    assert nested_targets(panel, "Observation/o1", problems, BASE) == ["Observation/o2"]
    assert nested_targets({"resourceType": "Patient"}, "Patient/p1", problems, BASE) == []
