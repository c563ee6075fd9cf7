from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given

from mappers import medication, medication_reader
from mappers.errors import MappingError
from mappers.fhir_reference import references_in
from mappers.medication import ListSource, MedicationEntry, MedicationList
from tests.builders.referrals import (
    MED_LIST_SYSTEM,
    SUBJECT,
    make_buprenorphine,
    make_medication_list,
    make_sertraline,
    statement_references,
)
from tests.strategies.medication import medication_lists

LIST_CODES = "http://terminology.hl7.org/CodeSystem/list-example-use-codes"


def _list(med_list: MedicationList | None = None, **kwargs: Any) -> dict[str, Any]:
    med_list = med_list or make_medication_list()
    kwargs.setdefault("entry_references", statement_references(med_list))
    return medication.list_to_fhir(
        med_list, id_system=MED_LIST_SYSTEM, subject_reference=SUBJECT, **kwargs
    )


def _statements(med_list: MedicationList) -> dict[str, MedicationEntry]:
    return dict(zip(statement_references(med_list), med_list.entries, strict=True))


def _list_problems(resource: Any, med_list: MedicationList | None = None) -> set[str]:
    statements = None if med_list is None else _statements(med_list)
    with pytest.raises(MappingError) as caught:
        medication_reader.list_from_fhir(resource, id_system=MED_LIST_SYSTEM, statements=statements)
    return {p.path for p in caught.value.problems}


def test_list_to_fhir__discharge_list_content() -> None:
    resource = _list()
    assert resource["status"] == "current" and resource["mode"] == "snapshot"
    assert resource["title"] == "Residential discharge medications"
    assert resource["code"] == {
        "coding": [{"system": LIST_CODES, "code": "medications", "display": "Medication List"}],
        "text": "Residential discharge medication list",
    }
    assert resource["date"] == "2024-10-04T11:30:00-04:00"
    assert resource["entry"] == [
        {"item": {"reference": "MedicationStatement/med-test-0001"}},
        {"item": {"reference": "MedicationStatement/med-test-0002"}},
    ]


@pytest.mark.parametrize("source", [*ListSource, None])
def test_list_round_trip__each_source_is_identity_with_links(source: ListSource | None) -> None:
    med_list = make_medication_list(source=source)
    mapped = medication_reader.list_from_fhir(
        _list(med_list), id_system=MED_LIST_SYSTEM, statements=_statements(med_list)
    )
    assert mapped.value == med_list
    assert references_in(mapped.links, "entry") == statement_references(med_list)
    assert mapped.links["subject"] == SUBJECT
    assert mapped.losses == ()


def test_list_from_fhir__without_statements_entries_stay_empty_but_linked() -> None:
    mapped = medication_reader.list_from_fhir(_list(), id_system=MED_LIST_SYSTEM)
    assert mapped.value == make_medication_list(entries=())
    assert references_in(mapped.links, "entry") == statement_references(make_medication_list())


@given(medication_lists())
def test_list_round_trip__any_valid_list_is_identity(med_list: MedicationList) -> None:
    mapped = medication_reader.list_from_fhir(
        _list(med_list), id_system=MED_LIST_SYSTEM, statements=_statements(med_list)
    )
    assert mapped.value == med_list
    assert mapped.losses == ()


def test_list_from_fhir__foreign_list_content_is_reported_not_dropped() -> None:
    foreign = _list()
    foreign["code"] = {
        "coding": [{"system": "http://loinc.org", "code": "10160-0"}],
        "text": "Home meds",
    }
    foreign["entry"][0]["flag"] = {"text": "changed"}
    foreign["source"] = {"reference": "Practitioner/p1"}
    foreign["note"] = [{"text": "Reviewed with client"}]
    mapped = medication_reader.list_from_fhir(foreign, id_system=MED_LIST_SYSTEM)
    assert mapped.value.source is None
    assert {loss.path for loss in mapped.losses} == {
        "List.code.coding[0]",
        "List.code.text",
        "List.entry[0].flag",
        "List.source",
        "List.note",
    }


def test_list_from_fhir__bare_list_names_every_missing_element() -> None:
    assert _list_problems({"resourceType": "List"}) == {
        "List.identifier",
        "List.status",
        "List.mode",
        "List.title",
        "List.subject",
        "List.date",
    }


def test_list_from_fhir__bad_entries_and_mode_are_named() -> None:
    resource = _list()
    resource["mode"] = "changes"
    resource["entry"].append({"item": {"reference": "MedicationRequest/mr1"}})
    resource["entry"].append({"item": copy.deepcopy(resource["entry"][0]["item"])})
    resource["entry"].append({"flag": {"text": "no item"}})
    assert _list_problems(resource, make_medication_list()) == {
        "List.mode",
        "List.entry[2].item.reference",
        "List.entry[3].item",
        "List.entry[4].item",
    }


def test_list_from_fhir__entry_not_among_statements_passed_in_is_named() -> None:
    med_list = make_medication_list()
    partial = replace(med_list, entries=med_list.entries[:1])
    resource = _list(med_list)
    with pytest.raises(MappingError, match=r"List\.entry\[1\]\.item\.reference"):
        medication_reader.list_from_fhir(
            resource, id_system=MED_LIST_SYSTEM, statements=_statements(partial)
        )


def test_list_to_fhir__references_must_match_entries() -> None:
    with pytest.raises(MappingError) as caught:
        _list(entry_references=("MedicationStatement/a",))
    assert [p.path for p in caught.value.problems] == ["entry_references"]
    with pytest.raises(MappingError, match=r"entry_references\[1\]"):
        _list(entry_references=("MedicationStatement/a", "Condition/c"))


def test_list_to_fhir__entry_problems_are_named_by_position() -> None:
    bad = make_medication_list(
        entries=(make_sertraline(), make_buprenorphine(identifier="MED-TEST-0001", status="x")),
        date=datetime(2024, 10, 4, 11, 30),
    )
    with pytest.raises(MappingError) as caught:
        _list(bad, entry_references=("MedicationStatement/a", "MedicationStatement/b"))
    assert {p.path for p in caught.value.problems} == {
        "MedicationList.date",
        "MedicationList.entries[1].status",
        "MedicationList.entries",
    }
