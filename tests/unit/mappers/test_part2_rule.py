"""42 CFR Part 2 labelling by the rule: one table of records that were over-labelled (tobacco,
pain medication, mental health only) and one of records that were under-labelled (SNOMED-only
SUD diagnoses, MOUD medications, a sender's own labels). Literal FHIR JSON, as a sender writes it.

Codes in the tables are inputs: the SUD and MOUD ones are the verified constants of
``fhir_profiles.terminology.part2``; the others are what a sender may well send (F17.210
nicotine dependence, cigarettes; RxNorm 904882 BuTrans, buprenorphine for pain, listed in the
CDC buprenorphine-and-methadone value set beside the OUD products; 312941 sertraline, reference
2.6).
"""

from __future__ import annotations

from typing import Any

import pytest

from fhir_profiles.terminology import part2
from fhir_profiles.terminology.systems import (
    ICD_10_CM,
    RXNORM,
    SNOMED_CT,
    V3_ACT_CODE,
    V3_CONFIDENTIALITY,
)
from mappers.security_labels import contains_sud, is_labelled, is_sud_resource, label
from tests.builders import make_diagnosis


def _condition(system: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
    }


def _medication(kind: str, rxcui: str) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "status": "active",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]},
        "subject": {"reference": "Patient/p1"},
    }


def _labelled_by_sender(kind: str, system: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "meta": {"security": [{"system": system, "code": code}]},
        "status": "finished",
        "subject": {"reference": "Patient/p1"},
    }


def _service_request(**concepts: Any) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order", **concepts}


UNDER_LABELLED = {
    "ICD-10-CM alcohol dependence (still)": _condition(ICD_10_CM, "F10.20"),
    "ICD-10-CM opioid dependence without the dot": _condition(ICD_10_CM, "F1120"),
    "SNOMED-only opioid dependence": _condition(SNOMED_CT, "75544000"),
    "SNOMED-only alcohol dependence": _condition(SNOMED_CT, "66590003"),
    "SNOMED-only opioid abuse": _condition(SNOMED_CT, "5602001"),
    "SNOMED-only cannabis dependence": _condition(SNOMED_CT, "85005007"),
    "methadone oral solution (MedicationStatement)": _medication("MedicationStatement", "991149"),
    "methadone 10 mg tablet (MedicationRequest)": _medication("MedicationRequest", "864708"),
    "extended-release buprenorphine injection": _medication("MedicationRequest", "1996189"),
    "buprenorphine/naloxone film": _medication("MedicationStatement", "1010604"),
    "naltrexone tablet": _medication("MedicationStatement", "1483744"),
    "naltrexone extended-release injection": _medication("MedicationRequest", "637213"),
    "methadone MAT as the ServiceRequest code": _service_request(
        code={"coding": [{"system": SNOMED_CT, "code": "310653000"}]}
    ),
    "an SUD diagnosis as the ServiceRequest reason": _service_request(
        reasonCode=[{"coding": [{"system": ICD_10_CM, "code": "F11.20"}]}]
    ),
    "sender's 42CFRPart2 policy label": _labelled_by_sender("Encounter", V3_ACT_CODE, "42CFRPart2"),
    "sender's ETH sensitivity label": _labelled_by_sender("Encounter", V3_ACT_CODE, "ETH"),
    "sender's SUD sensitivity label": _labelled_by_sender("Observation", V3_ACT_CODE, "SUD"),
}

OVER_LABELLED = {
    "nicotine dependence, cigarettes (42 CFR 2.11: no tobacco)": _condition(ICD_10_CM, "F17.210"),
    "nicotine dependence without the dot": _condition(ICD_10_CM, "F17210"),
    "nicotine category alone": _condition(ICD_10_CM, "F17"),
    "depression only": _condition(ICD_10_CM, "F33.1"),
    "an SUD-looking code in the wrong system": _condition(SNOMED_CT, "F10.20"),
    "a SNOMED SUD code under ICD-10-CM": _condition(ICD_10_CM, "75544000"),
    "buprenorphine transdermal system for pain": _medication("MedicationStatement", "904882"),
    "sertraline": _medication("MedicationStatement", "312941"),
    "sender's label that is not Part 2 (confidentiality N)": _labelled_by_sender(
        "Encounter", V3_CONFIDENTIALITY, "N"
    ),
    "sender's Part 2 label on directory data": _labelled_by_sender(
        "Organization", V3_ACT_CODE, "42CFRPart2"
    ),
    "tobacco as the ServiceRequest reason": _service_request(
        reasonCode=[{"coding": [{"system": ICD_10_CM, "code": "F17.210"}]}]
    ),
}


@pytest.mark.parametrize("resource", UNDER_LABELLED.values(), ids=UNDER_LABELLED.keys())
def test_part2_rule__labels_what_was_under_labelled(resource: dict[str, Any]) -> None:
    assert is_sud_resource(resource)
    assert contains_sud([{"resourceType": "Patient"}, resource])
    assert is_labelled(label(resource, sud_derived=False))


@pytest.mark.parametrize("resource", OVER_LABELLED.values(), ids=OVER_LABELLED.keys())
def test_part2_rule__leaves_alone_what_was_over_labelled(resource: dict[str, Any]) -> None:
    assert not is_sud_resource(resource)
    assert not contains_sud([{"resourceType": "Patient"}, resource])
    assert not is_labelled(label(resource, sud_derived=False))


@pytest.mark.parametrize(
    ("icd10", "snomed", "expected"),
    [
        ("F10.20", None, True),
        ("F17.210", None, False),  # tobacco only
        ("F17.210", "75544000", True),  # a smoker whose SNOMED coding says opioid dependence
        ("F43.10", "66590003", True),  # the SNOMED coding names the SUD
        ("F33.1", None, False),
        ("F33.1", "35489007", False),  # a SNOMED code that is no SUD we know
    ],
)
def test_diagnosis__is_substance_use_follows_the_same_rule(
    icd10: str, snomed: str | None, expected: bool
) -> None:
    diagnosis = make_diagnosis(icd10_code=icd10, snomed_code=snomed)
    assert diagnosis.is_substance_use is expected


def test_sender_labels__carried_forward_onto_the_whole_package() -> None:
    sender = _labelled_by_sender("Encounter", V3_ACT_CODE, "42CFRPart2")
    sender["meta"]["security"].append({"system": V3_CONFIDENTIALITY, "code": "V"})
    package = [sender, {"resourceType": "Patient"}, _condition(ICD_10_CM, "F33.1")]
    assert contains_sud(package)
    labelled = [label(r, sud_derived=contains_sud(package)) for r in package]
    assert all(is_labelled(r) for r in labelled)
    kept = labelled[0]["meta"]["security"]
    # the sender's stricter confidentiality (V) is kept, never weakened to our R
    assert {"system": V3_CONFIDENTIALITY, "code": "V"} in kept
    assert not any(c.get("code") == "R" for c in kept)


def test_part2_terminology__no_tobacco_and_every_code_sourced() -> None:
    codes = [*part2.SNOMED_SUD_DISORDERS, *part2.MOUD_MEDICATIONS, *part2.SNOMED_MOUD_TREATMENTS]
    assert all(c.source.strip() for c in codes)
    assert not any("tobacco" in c.display.lower() or "nicotine" in c.display.lower() for c in codes)
    assert part2.ICD10_TOBACCO_CATEGORY == "F17" and "2.11" in part2.TOBACCO_EXCLUSION_SOURCE
    assert len(part2.SUD_CODES) == len(codes)
