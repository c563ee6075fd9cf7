"""42 CFR Part 2 security labels: which resources are SUD-derived, and the DS4P label sets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_profiles.terminology.systems import ICD_10_CM, SNOMED_CT, V3_ACT_CODE, V3_CONFIDENTIALITY
from mappers import bundle, condition, patient, security_labels
from mappers.security_labels import contains_sud, is_labelled, is_sud_code, is_sud_condition, label
from sandbox.step_down_package import make_package, to_transaction
from tests.builders import CONDITION_SYSTEM, make_client, make_diagnosis

PART2 = [
    (V3_CONFIDENTIALITY, "R"),
    (V3_ACT_CODE, "ETH"),
    (V3_ACT_CODE, "42CFRPart2"),
    (V3_ACT_CODE, "NORDSCLCD"),
]
HIGH_WATER_MARK = [(V3_CONFIDENTIALITY, "R"), (V3_ACT_CODE, "ETH")]


def _codes(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for c in resource.get("meta", {}).get("security", [])]


def _condition(icd10: str) -> dict[str, Any]:
    return condition.to_fhir(
        make_diagnosis(icd10_code=icd10), id_system=CONDITION_SYSTEM, subject_reference="Patient/1"
    )


def _patient() -> dict[str, Any]:
    return patient.to_fhir(make_client(), mrn_system="http://example.org/mrn")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("F10.20", True),  # alcohol dependence
        ("F1120", True),  # opioid dependence, written without the dot
        ("f19.10", True),
        ("F19", True),
        ("F20.9", False),  # schizophrenia: mental health, not substance use
        ("F33.1", False),
        ("F43.10", False),
        ("F1", False),
        ("Z71.41", False),  # counselling for alcohol use: outside F10-F19
    ],
)
def test_is_sud_code__icd10_cm_block_f10_f19(code: str, expected: bool) -> None:
    assert is_sud_code(code) is expected
    assert make_diagnosis(icd10_code=code).is_substance_use is expected  # the same rule


def test_is_sud_condition__only_an_icd10_cm_coding_counts() -> None:
    snomed_only = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": SNOMED_CT, "code": "F10.20"}]},
    }
    assert is_sud_condition(_condition("F10.20"))
    assert not is_sud_condition(_condition("F33.1"))
    assert not is_sud_condition(snomed_only)
    assert not is_sud_condition({"resourceType": "Observation", "code": _condition("F10.20")})
    assert not is_sud_condition({"resourceType": "Condition", "code": "F10.20"})  # malformed


def test_label__sud_derived_resource_gets_the_part2_set_and_keeps_its_meta() -> None:
    given = _patient()
    before = copy.deepcopy(given)
    labelled = label(given, sud_derived=True)
    assert _codes(labelled) == PART2
    assert labelled["meta"]["profile"] == given["meta"]["profile"]
    assert given == before  # the input is not changed
    assert is_labelled(labelled) and not is_labelled(given)


def test_label__not_sud_derived_is_left_alone() -> None:
    given = _patient()
    assert label(given, sud_derived=False) == given
    assert label(_condition("F33.1"), sud_derived=False) == _condition("F33.1")


def test_label__an_sud_condition_is_labelled_whatever_the_caller_says() -> None:
    assert _codes(label(_condition("F10.20"), sud_derived=False)) == PART2


@pytest.mark.parametrize("kind", ["Organization", "Practitioner", "Location", "Medication"])
def test_label__resources_about_no_patient_are_never_labelled(kind: str) -> None:
    assert "meta" not in label({"resourceType": kind, "name": "Harbor Street"}, sud_derived=True)


def test_label__twice_is_the_same_as_once() -> None:
    once = label(_patient(), sud_derived=True)
    assert label(once, sud_derived=True) == once


@pytest.mark.parametrize(
    ("present", "kept"),
    [("N", "R"), ("L", "R"), ("R", "R"), ("V", "V")],
)
def test_label__one_confidentiality_code_never_weakened(present: str, kept: str) -> None:
    given = {"resourceType": "Encounter", "meta": {"security": [
        {"system": V3_ACT_CODE, "code": "PSY"},
        {"system": V3_CONFIDENTIALITY, "code": present},
    ]}}  # fmt: skip
    codes = _codes(label(given, sud_derived=True))
    assert [c for s, c in codes if s == V3_CONFIDENTIALITY] == [kept]
    assert codes[0] == (V3_ACT_CODE, "PSY")  # what was there stays, in its place
    assert codes[1] == (V3_CONFIDENTIALITY, kept)


def test_label__transaction_bundle_labels_its_entries_not_itself() -> None:
    transaction = bundle.transaction(
        bundle.conditional_create_entry(r, full_url=f"urn:uuid:{i}", if_none_exist="x=y")
        for i, r in enumerate([_patient(), {"resourceType": "Organization"}])
    )
    labelled = label(transaction, sud_derived=True)
    assert "meta" not in labelled
    assert _codes(labelled["entry"][0]["resource"]) == PART2
    assert "meta" not in labelled["entry"][1]["resource"]
    assert labelled["entry"][0]["request"] == transaction["entry"][0]["request"]


def test_label__document_bundle_carries_only_the_high_water_mark() -> None:
    document = {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Composition"}}],
    }
    inside = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": document}]}
    labelled = label(inside, sud_derived=True)["entry"][0]["resource"]
    assert _codes(labelled) == HIGH_WATER_MARK  # no refrain tag on a Bundle (DS4P)
    assert _codes(labelled["entry"][0]["resource"]) == PART2
    reference = {"resourceType": "DocumentReference"}
    assert _codes(label(reference, sud_derived=True)) == HIGH_WATER_MARK


def test_contains_sud__the_synthetic_step_down_package_is_part2() -> None:
    package = to_transaction(make_package(1))
    assert contains_sud([package])
    only_mental_health = [_condition("F33.1"), _patient()]
    assert not contains_sud(only_mental_health)
    assert contains_sud([*only_mental_health, _condition("F11.20")])


def test_label__the_whole_step_down_package_when_it_holds_an_sud_diagnosis() -> None:
    package = label(to_transaction(make_package(2)), sud_derived=contains_sud([]))
    by_itself = {
        e["resource"]["resourceType"] for e in package["entry"] if is_labelled(e["resource"])
    }
    # only the Conditions and the MOUD medications (buprenorphine/naloxone in the synthetic
    # package) name an SUD by themselves; the caller decides for the rest
    assert by_itself == {"Condition", "MedicationStatement"}
    everything = label(to_transaction(make_package(2)), sud_derived=True)
    patient_data = [
        e["resource"]
        for e in everything["entry"]
        if e["resource"]["resourceType"] not in security_labels.NOT_PATIENT_DATA
    ]
    assert patient_data and all(is_labelled(r) for r in patient_data)


def test_label__codes_are_the_verified_privacy_terminology() -> None:
    labelled = label(_condition("F10.20"), sud_derived=True)
    displays = {c["code"]: c["display"] for c in labelled["meta"]["security"]}
    assert displays == {
        "R": "restricted",
        "ETH": "substance abuse information sensitivity",
        "42CFRPart2": "42 CFR Part2",
        "NORDSCLCD": "no redisclosure without consent directive",
    }
    assert ICD_10_CM == "http://hl7.org/fhir/sid/icd-10-cm"
