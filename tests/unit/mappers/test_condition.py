from __future__ import annotations

import pytest

from mappers import condition
from mappers.errors import MappingError
from tests.builders import CONDITION_SYSTEM, make_diagnosis


def _fhir(**overrides: object) -> dict[str, object]:
    return condition.to_fhir(
        make_diagnosis(**overrides), id_system=CONDITION_SYSTEM, subject_reference="Patient/p1"
    )


def test_to_fhir__codes_icd10cm_statuses_and_subject() -> None:
    resource = _fhir()
    assert resource["code"]["coding"] == [  # type: ignore[index]
        {
            "system": condition.ICD10CM_SYSTEM,
            "code": "F10.20",
            "display": "Alcohol dependence, uncomplicated",
        }
    ]
    assert resource["clinicalStatus"] == {
        "coding": [{"system": condition.CLINICAL_STATUS_SYSTEM, "code": "active"}]
    }
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert resource["onsetDateTime"] == "2024-09-01"


def test_round_trip__is_identity_and_keeps_subject_link() -> None:
    mapped = condition.from_fhir(_fhir(), id_system=CONDITION_SYSTEM)
    assert mapped.value == make_diagnosis()
    assert mapped.links == {"subject": "Patient/p1"}
    assert mapped.losses == ()


def test_round_trip__role_and_snomed_coding_are_kept() -> None:
    diagnosis = make_diagnosis(
        role="co-occurring", snomed_code="7200002", snomed_display="Alcoholism"
    )
    resource = condition.to_fhir(
        diagnosis, id_system=CONDITION_SYSTEM, subject_reference="Patient/p1"
    )
    assert resource["extension"] == [{"url": condition.ROLE_EXTENSION, "valueCode": "co-occurring"}]
    assert condition.from_fhir(resource, id_system=CONDITION_SYSTEM).value == diagnosis


def test_from_fhir__other_codings_extensions_and_note_are_reported_as_losses() -> None:
    resource = _fhir()
    resource["code"]["coding"].append(  # type: ignore[index]
        {"system": "http://hl7.org/fhir/sid/icd-9-cm", "code": "303.90"}
    )
    resource["extension"] = [{"url": "http://other.example/ext", "valueString": "x"}]
    resource["note"] = [{"text": "free text"}]
    mapped = condition.from_fhir(resource, id_system=CONDITION_SYSTEM)
    assert {loss.path for loss in mapped.losses} == {
        "Condition.code.coding[1]",
        "Condition.note",
        "Condition.extension[0]",
    }


def test_from_fhir__missing_statuses_and_category_are_each_named() -> None:
    resource = _fhir()
    for element in ("clinicalStatus", "verificationStatus", "category"):
        del resource[element]
    with pytest.raises(MappingError) as caught:
        condition.from_fhir(resource, id_system=CONDITION_SYSTEM)
    assert {p.path for p in caught.value.problems} == {
        "Condition.clinicalStatus",
        "Condition.verificationStatus",
        "Condition.category",
    }


def test_from_fhir__missing_icd10_coding_is_named() -> None:
    resource = _fhir()
    resource["code"] = {"text": "depression"}
    with pytest.raises(MappingError) as caught:
        condition.from_fhir(resource, id_system=CONDITION_SYSTEM)
    assert [p.path for p in caught.value.problems] == ["Condition.code.coding"]


def test_to_fhir__unknown_clinical_status_is_refused() -> None:
    with pytest.raises(MappingError, match=r"Diagnosis\.clinical_status"):
        _fhir(clinical_status="better")


@pytest.mark.parametrize(
    ("code", "expected"), [("F10.20", True), ("F11.20", True), ("F33.1", False), ("F41.1", False)]
)
def test_is_substance_use__follows_icd10_block_f10_f19(code: str, expected: bool) -> None:
    assert make_diagnosis(icd10_code=code).is_substance_use is expected


def test_from_fhir__unknown_modifier_extension_is_refused_not_reported_as_a_loss() -> None:
    resource = _fhir()
    resource["modifierExtension"] = [
        {"url": "http://x.example/ext/ruled-out", "valueBoolean": True}
    ]
    with pytest.raises(MappingError) as caught:
        condition.from_fhir(resource, id_system=CONDITION_SYSTEM)
    assert [p.path for p in caught.value.problems] == ["Condition.modifierExtension[0]"]
