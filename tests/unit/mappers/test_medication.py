from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given

from mappers import medication, medication_reader
from mappers.errors import MappingError
from mappers.medication import Dose, MedicationEntry
from tests.builders.referrals import (
    DIAGNOSES,
    MEDICATION_SYSTEM,
    SUBJECT,
    make_buprenorphine,
    make_sertraline,
    make_text_only_medication,
)
from tests.strategies.encounter import corrupted
from tests.strategies.medication import medication_entries

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"


def _statement(entry: MedicationEntry | None = None, **kwargs: Any) -> dict[str, Any]:
    return medication.to_fhir(
        entry or make_sertraline(), id_system=MEDICATION_SYSTEM, subject_reference=SUBJECT, **kwargs
    )


def _statement_problems(resource: Any) -> set[str]:
    with pytest.raises(MappingError) as caught:
        medication_reader.from_fhir(resource, id_system=MEDICATION_SYSTEM)
    return {p.path for p in caught.value.problems}


# --- MedicationStatement: content ---------------------------------------------------------------


def test_to_fhir__sertraline_statement_content() -> None:
    resource = _statement(reason_references=DIAGNOSES[1:])
    assert "meta" not in resource  # no fhir_profiles profile: validated against base R4
    assert resource["identifier"] == [{"system": MEDICATION_SYSTEM, "value": "MED-TEST-0001"}]
    assert resource["status"] == "active"
    assert resource["medicationCodeableConcept"] == {
        "coding": [{"system": RXNORM, "code": "312941", "display": "sertraline 50 MG Oral Tablet"}],
        "text": "sertraline 50 MG Oral Tablet",
    }
    assert resource["effectivePeriod"] == {"start": "2024-09-12"}
    assert resource["subject"] == {"reference": SUBJECT}
    assert resource["reasonReference"] == [{"reference": "Condition/dx-mdd"}]
    assert resource["dosage"] == [
        {
            "text": "50 mg by mouth once daily",
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [
                {"doseQuantity": {"value": 50, "unit": "mg", "system": UCUM, "code": "mg"}}
            ],
        }
    ]


def test_to_fhir__count_unit_is_sent_as_text_without_ucum_code() -> None:
    quantity = _statement(make_buprenorphine())["dosage"][0]["doseAndRate"][0]["doseQuantity"]
    assert quantity == {"value": 1, "unit": "film"}


def test_to_fhir__drug_without_verified_code_is_text_only_without_dosage() -> None:
    resource = _statement(make_text_only_medication())
    assert resource["medicationCodeableConcept"] == {"text": "Omega-3 fish oil (patient reported)"}
    assert "dosage" not in resource and "effectivePeriod" not in resource


def test_to_fhir__stopped_medication_has_period_end() -> None:
    entry = make_sertraline(status="stopped", end=date(2024, 10, 1))
    resource = _statement(entry)
    assert resource["status"] == "stopped"
    assert resource["effectivePeriod"] == {"start": "2024-09-12", "end": "2024-10-01"}


def test_to_fhir__bad_entry_names_every_field() -> None:
    entry = MedicationEntry(
        " ", " ", "31x", "taking", dose=Dose(0, ""), times_per_day=0,
        start=date(2024, 9, 2), end=date(2024, 9, 1),
    )  # fmt: skip
    with pytest.raises(MappingError) as caught:
        _statement(entry, reason_references=("Observation/o1",))
    assert {p.path for p in caught.value.problems} == {
        "MedicationEntry.identifier",
        "MedicationEntry.medication",
        "MedicationEntry.rxnorm_code",
        "MedicationEntry.status",
        "MedicationEntry.dose.value",
        "MedicationEntry.dose.unit",
        "MedicationEntry.times_per_day",
        "MedicationEntry.end",
        "reason_references[0]",
    }


# --- MedicationStatement: round trip ------------------------------------------------------------


@pytest.mark.parametrize(
    "entry", [make_sertraline(), make_buprenorphine(), make_text_only_medication()]
)
def test_round_trip__builders_are_identity_with_links(entry: MedicationEntry) -> None:
    mapped = medication_reader.from_fhir(
        _statement(entry, reason_references=DIAGNOSES), id_system=MEDICATION_SYSTEM
    )
    assert mapped.value == entry
    assert mapped.links == {
        "subject": SUBJECT,
        "reasonReference[0]": DIAGNOSES[0],
        "reasonReference[1]": DIAGNOSES[1],
    }
    assert mapped.losses == ()


@given(medication_entries())
def test_round_trip__any_valid_entry_is_identity(entry: MedicationEntry) -> None:
    mapped = medication_reader.from_fhir(_statement(entry), id_system=MEDICATION_SYSTEM)
    assert mapped.value == entry
    assert mapped.losses == ()


# --- MedicationStatement: foreign input ---------------------------------------------------------


def test_from_fhir__foreign_statement_content_is_reported_not_dropped() -> None:
    foreign = _statement()
    foreign["identifier"].append({"system": "http://ehr.example/med", "value": "9"})
    foreign["medicationCodeableConcept"]["coding"].insert(
        0, {"system": "http://ehr.example/formulary", "code": "F-118"}
    )
    foreign["dosage"][0]["route"] = {"text": "oral"}
    foreign["dosage"].append({"text": "extra"})
    foreign["dosage"][0]["doseAndRate"][0]["type"] = {"text": "ordered"}
    foreign["reasonReference"] = [{"reference": "Observation/o1"}]
    foreign["informationSource"] = {"reference": "Patient/x"}
    foreign["contained"] = [{"resourceType": "Medication", "id": "m"}]
    mapped = medication_reader.from_fhir(foreign, id_system=MEDICATION_SYSTEM)
    assert mapped.value == make_sertraline()
    assert {loss.path for loss in mapped.losses} == {
        "MedicationStatement.identifier[1]",
        "MedicationStatement.medicationCodeableConcept.coding[0]",
        "MedicationStatement.dosage[0].route",
        "MedicationStatement.dosage[1]",
        "MedicationStatement.dosage[0].doseAndRate[0].type",
        "MedicationStatement.reasonReference[0]",
        "MedicationStatement.informationSource",
        "MedicationStatement.contained",
    }


def test_from_fhir__timing_other_than_n_a_day_is_a_loss_and_text_stays() -> None:
    foreign = _statement()
    foreign["dosage"][0]["timing"] = {"repeat": {"frequency": 1, "period": 12, "periodUnit": "h"}}
    mapped = medication_reader.from_fhir(foreign, id_system=MEDICATION_SYSTEM)
    assert mapped.value == make_sertraline(times_per_day=None)
    assert [loss.path for loss in mapped.losses] == ["MedicationStatement.dosage[0].timing"]


def test_from_fhir__unit_code_that_is_not_regenerated_is_a_loss() -> None:
    foreign = _statement(make_buprenorphine())
    quantity = foreign["dosage"][0]["doseAndRate"][0]["doseQuantity"]
    quantity |= {"system": UCUM, "code": "{film}"}
    mapped = medication_reader.from_fhir(foreign, id_system=MEDICATION_SYSTEM)
    assert mapped.value == make_buprenorphine()
    assert [loss.path for loss in mapped.losses] == [
        "MedicationStatement.dosage[0].doseAndRate[0].doseQuantity.code"
    ]


def test_from_fhir__brand_text_beside_rxnorm_display_keeps_text() -> None:
    foreign = _statement()
    foreign["medicationCodeableConcept"]["text"] = "Zoloft 50 mg"
    mapped = medication_reader.from_fhir(foreign, id_system=MEDICATION_SYSTEM)
    assert mapped.value == make_sertraline(medication="Zoloft 50 mg")
    assert [loss.path for loss in mapped.losses] == [
        "MedicationStatement.medicationCodeableConcept.coding[0].display"
    ]


# --- MedicationStatement: bad input -------------------------------------------------------------


def test_from_fhir__wrong_resource_type_is_named() -> None:
    with pytest.raises(MappingError) as caught:
        medication_reader.from_fhir(
            {"resourceType": "MedicationRequest"}, id_system=MEDICATION_SYSTEM
        )
    assert any(
        p.path == "MedicationStatement.resourceType" and "MedicationRequest" in p.message
        for p in caught.value.problems
    )


def test_from_fhir__bare_statement_names_every_missing_element() -> None:
    assert _statement_problems({"resourceType": "MedicationStatement"}) == {
        "MedicationStatement.identifier",
        "MedicationStatement.status",
        "MedicationStatement.medicationCodeableConcept",
        "MedicationStatement.subject",
    }


@pytest.mark.parametrize(
    ("element", "value", "path"),
    [
        ("status", "taking", "MedicationStatement.status"),
        ("subject", {"reference": "Group/g"}, "MedicationStatement.subject.reference"),
        (
            "medicationCodeableConcept",
            {"coding": [{"system": RXNORM}]},
            "MedicationStatement.medicationCodeableConcept.coding[0].code",
        ),
        (
            "effectivePeriod",
            {"start": "2024-09-12", "end": "2024-09-01"},
            "MedicationStatement.effectivePeriod.end",
        ),
        (
            "modifierExtension",
            [{"url": "http://x.example/m"}],
            "MedicationStatement.modifierExtension[0]",
        ),
        (
            "dosage",
            [{"doseAndRate": [{"doseQuantity": {"value": 0, "unit": "mg"}}]}],
            "MedicationStatement.dosage[0].doseAndRate[0].doseQuantity.value",
        ),
        ("dosage", [{"timing": ["daily"]}], "MedicationStatement.dosage[0].timing"),
    ],
)
def test_from_fhir__unmappable_values_are_named(element: str, value: Any, path: str) -> None:
    resource = _statement()
    resource[element] = value
    assert path in _statement_problems(resource)


def test_from_fhir__medication_reference_is_named_as_missing_concept() -> None:
    resource = _statement()
    del resource["medicationCodeableConcept"]
    resource["medicationReference"] = {"reference": "Medication/m1"}
    assert _statement_problems(resource) == {"MedicationStatement.medicationCodeableConcept"}


@given(corrupted(_statement(reason_references=DIAGNOSES)))
def test_from_fhir__any_corrupted_statement_maps_or_raises(resource: Any) -> None:
    try:
        mapped = medication_reader.from_fhir(resource, id_system=MEDICATION_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []
