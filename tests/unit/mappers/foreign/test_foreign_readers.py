"""Tolerant readers of other systems' FHIR, each on a literal-JSON fixture written the way one
kind of sender writes (tests/data/foreign: from the sandbox senders, which share no code with
iop-bridge; the US Core corpus has its own test in tests/corpus)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mappers import registry
from mappers.assessment import Assessment
from mappers.condition import Diagnosis
from mappers.errors import MappingError
from mappers.foreign import package_reader, screening_observations
from mappers.foreign.labels import marks_part2, security_labels
from mappers.registry import MappingContext

DATA = Path(__file__).resolve().parents[3] / "data" / "foreign"
CONTEXT = MappingContext()


def fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"{name}.json").read_text()))


def read(name: str) -> Any:
    return registry.from_fhir(fixture(name), CONTEXT)


def reasons(mapped: Any) -> dict[str, str]:
    return {loss.path: loss.reason for loss in mapped.losses}


# --- identity: the sender's identifiers, any system ---------------------------------------------


def test_patient__the_senders_mrn_system_and_value_are_the_clients_identity() -> None:
    mapped = read("us-core-ehr-patient")
    assert (mapped.value.mrn_system, mapped.value.mrn) == (
        "http://cedar-ridge.example/fhir/sid/mrn",
        "CR-000007",
    )
    assert "partial date" in reasons(mapped)["Patient.birthDate"]


def test_patient__mr_typed_identifier_is_chosen_over_others() -> None:
    patient = fixture("us-core-ehr-patient")
    patient["identifier"].insert(0, {"system": "http://ssa.example/ssn", "value": "000-00-0000"})
    mapped = registry.from_fhir(patient, CONTEXT)
    assert mapped.value.mrn == "CR-000007"
    assert "another identifier" in reasons(mapped)["Patient.identifier[0]"]


# --- Conditions ----------------------------------------------------------------------------------


def test_condition__icd10cm_written_as_its_oid_is_icd10cm() -> None:
    value = read("us-core-ehr-condition-icd-oid").value
    assert (value.icd10_code, value.is_substance_use) == ("F10.20", True)
    assert value.verification_status == ""  # not stated, not guessed


def test_condition__text_only_health_concern_is_kept_and_its_kind_recognised() -> None:
    value = read("us-core-ehr-condition-text-only").value
    assert isinstance(value, Diagnosis)
    assert (value.icd10_code, value.category, value.clinical_status) == ("", "health-concern", "")
    assert value.is_mental_health and not value.is_substance_use


# --- PHQ-9 / GAD-7 by LOINC wherever it is ------------------------------------------------------


def test_phq9__loinc_canonical_prefixed_linkids__recomputed_total_disagreement_kept() -> None:
    mapped = read("us-core-ehr-qr-phq9-loinc-canonical")
    value: Assessment = mapped.value
    assert (value.instrument, value.total, value.sender_total) == ("phq-9", 10, 12)
    assert value.total_disagrees


def test_gad7__nested_group_is_read() -> None:
    value = read("us-core-ehr-qr-gad7-nested").value
    assert (value.instrument, value.total, value.total_disagrees) == ("gad-7", 8, False)


def test_phq9__an_answer_the_instrument_does_not_offer_is_refused_at_the_senders_path() -> None:
    response = fixture("us-core-ehr-qr-phq9-loinc-canonical")
    response["item"][3]["answer"][0]["valueCoding"]["code"] = "LA9999-9"
    with pytest.raises(MappingError) as caught:
        registry.from_fhir(response, CONTEXT)
    assert [p.path for p in caught.value.problems] == [
        "QuestionnaireResponse.item[3].answer[0].valueCoding.code"
    ]


def test_phq9_observation_panel__members_read_total_recomputed() -> None:
    bundle = fixture("gravity-phq9-panel-with-members")
    resources = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    results = package_reader.read_all(resources, CONTEXT)
    assert all(r.ok for r in results), [r.problems for r in results]
    # the nine item Observations are read as the panel's answers, not on their own
    assert sorted((r.value.instrument, r.value.total) for r in results) == [
        ("gad-7", 6),
        ("phq-9", 13),
    ]


def test_phq9_observation_panel__without_its_members_names_each_missing_member() -> None:
    with pytest.raises(MappingError) as caught:
        screening_observations.from_fhir(fixture("gravity-observation-phq9-panel"))
    assert caught.value.problems[0].path == "Observation.hasMember[0]"


def test_gad7_observation_components__sender_total_compared() -> None:
    panel = fixture("gravity-observation-gad7-components")
    assert read("gravity-observation-gad7-components").value.total == 6
    panel["component"][-1]["valueInteger"] = 9
    value = registry.from_fhir(panel, CONTEXT).value
    assert (value.total, value.sender_total, value.total_disagrees) == (6, 9, True)


# --- MedicationRequest ---------------------------------------------------------------------------


def test_medication_request__contained_medication_rxnorm() -> None:
    value = read("us-core-ehr-medicationrequest-contained").value
    assert (value.rxnorm_code, value.times_per_day) == ("312941", 1)


def test_medication_request__text_only_keeps_the_sig() -> None:
    value = read("us-core-ehr-medicationrequest-text").value
    assert (value.medication, value.rxnorm_code) == ("Trazodone 50 mg tablet", None)
    assert value.dose_text == "50 mg at bedtime as needed for sleep"


# --- residential stay ----------------------------------------------------------------------------


def test_residential_stay__imp_class_asam_level_from_text_date_only_period() -> None:
    mapped = read("us-core-ehr-encounter-imp-asam-text")
    assert mapped.value.asam_level == "3.5"
    assert mapped.value.discharged.date().isoformat() == "2026-12-04"
    assert "date only" in reasons(mapped)["Encounter.period.end"]


def test_residential_stay__acute_class_level_from_service_type() -> None:
    assert read("gravity-encounter-acute-servicetype").value.asam_level == "3.7"


# --- parties, references, CarePlan, Consent -----------------------------------------------------


def test_task__practitioner_role_requester_and_absolute_owner() -> None:
    value = read("gravity-task").value
    assert value.requester == "PractitionerRole/role-1"
    assert value.owner == "https://fhir.example.org/r4/Organization/iop-1"


def test_service_request__practitioner_requester_level_from_text() -> None:
    value = read("us-core-ehr-servicerequest-practitioner").value
    assert (value.requester, value.level_of_care) == ("Practitioner/dr-1", "2.1")
    assert value.note and "evening" in value.note


def test_care_plan__proposal_without_end_date_is_kept_length_unknown() -> None:
    mapped = read("careplan-proposal-no-end")
    assert mapped.value.weeks == 0
    assert "no end date" in reasons(mapped)["CarePlan.period.end"]


def test_consent__loinc_category_policy_uri_read_as_part2_disclosure() -> None:
    mapped = read("us-core-ehr-consent-loinc-policy-uri")
    assert mapped.value.recipients == ("Organization/iop-1",)
    assert "42 CFR Part 2" in reasons(mapped)["Consent.policy[0]"]


def test_consent__practitioner_role_recipient_and_absolute_reference() -> None:
    value = read("gravity-consent").value
    assert "PractitionerRole/role-1" in value.recipients


def test_consent__without_any_part2_policy_is_refused() -> None:
    consent = fixture("us-core-ehr-consent-loinc-policy-uri")
    consent["policy"] = [{"uri": "https://example.org/hipaa-authorization"}]
    with pytest.raises(MappingError, match="policyRule"):
        registry.from_fhir(consent, CONTEXT)


# --- document Bundles and security labels -------------------------------------------------------


def test_transfer_summary_document__entries_read_composition_reported() -> None:
    resources, notes = package_reader.expand_documents(
        {"Bundle/ts": fixture("pacio-transfer-summary")}
    )
    kinds = sorted(r["resourceType"] for r in resources.values())
    assert kinds == ["Condition", "Condition", "Encounter", "MedicationRequest",
                     "MedicationRequest", "Patient", "QuestionnaireResponse"]  # fmt: skip
    assert any("Composition" in loss.reason for _, loss in notes)
    results = package_reader.read_all(resources, CONTEXT)
    assert all(r.ok for r in results), [r.problems for r in results if not r.ok]


def test_meta_security__part2_label_is_read_and_marks_part2() -> None:
    labels = security_labels(fixture("us-core-ehr-patient"))
    assert marks_part2(labels)
    unlabelled = copy.deepcopy(fixture("us-core-ehr-patient"))
    del unlabelled["meta"]
    assert not marks_part2(security_labels(unlabelled))
