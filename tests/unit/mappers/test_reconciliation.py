from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given

from mappers import reconciliation
from mappers.errors import MappingError
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from mappers.reconciliation import Change, MatchedBy, Reconciliation, reconcile
from tests.builders.referrals import (
    EASTERN,
    MED_LIST_SYSTEM,
    SUBJECT,
    make_buprenorphine,
    make_medication_list,
    make_sertraline,
    make_text_only_medication,
)
from tests.strategies.reconciliation import reconcilable_pairs

AT = datetime(2024, 10, 8, 9, 0, tzinfo=EASTERN)
FLAG_SYSTEM = "urn:oid:1.2.36.1.2001.1001.101.104.16592"
NALTREXONE = MedicationEntry(
    "MED-TEST-0004", "naltrexone hydrochloride 50 MG Oral Tablet", "1483744"
)


def _intake(*entries: MedicationEntry) -> MedicationList:
    return make_medication_list(
        identifier="MEDLIST-TEST-0002",
        title="IOP intake medications",
        source=ListSource.IOP_INTAKE,
        entries=entries,
    )


def _reconcile(discharge: MedicationList, intake: MedicationList) -> Reconciliation:
    return reconcile(discharge, intake, reconciled_identifier="MEDLIST-TEST-0003", at=AT)


def _refs(med_list: MedicationList, side: str) -> tuple[str, ...]:
    return tuple(f"MedicationStatement/{side}-{i}" for i in range(len(med_list.entries)))


def _changes(result: Reconciliation) -> dict[str, Any]:
    return reconciliation.changes_to_fhir(
        result,
        id_system=MED_LIST_SYSTEM,
        identifier="MEDCHANGES-TEST-0001",
        subject_reference=SUBJECT,
        discharge_references=_refs(result.discharge, "d"),
        intake_references=_refs(result.intake, "i"),
    )


def _problem_paths(discharge: MedicationList, intake: MedicationList) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        _reconcile(discharge, intake)
    return {p.path: p.message for p in caught.value.problems}


# --- Example-based ------------------------------------------------------------------------------


def test_reconcile__each_kind_of_change() -> None:
    higher = make_buprenorphine(identifier="MED-I-2", dose=Dose(1, "film"), times_per_day=3)
    intake = _intake(make_sertraline(identifier="MED-I-1"), higher, NALTREXONE)
    discharge = make_medication_list(
        entries=(make_sertraline(), make_buprenorphine(), make_text_only_medication())
    )
    result = _reconcile(discharge, intake)
    assert [(line.change, line.matched_by) for line in result.lines] == [
        (Change.CONTINUED, MatchedBy.RXNORM),
        (Change.DOSE_CHANGED, MatchedBy.RXNORM),
        (Change.STOPPED, None),
        (Change.NEW, None),
    ]
    changed = result.lines[1]
    assert changed.discharge_entry is not None and changed.discharge_entry.times_per_day == 2
    assert changed.intake_entry is not None and changed.intake_entry.times_per_day == 3


def test_reconcile__reconciled_list_is_what_the_client_takes_now() -> None:
    higher = make_buprenorphine(identifier="MED-I-2", times_per_day=3)
    discharge = make_medication_list(
        entries=(make_sertraline(), make_buprenorphine(), make_text_only_medication())
    )
    result = _reconcile(
        discharge, _intake(make_sertraline(identifier="MED-I-1"), higher, NALTREXONE)
    )
    reconciled = result.reconciled
    assert reconciled.identifier == "MEDLIST-TEST-0003"
    assert reconciled.source is ListSource.RECONCILED
    assert reconciled.date == AT
    assert [e.identifier for e in reconciled.entries] == ["MED-I-1", "MED-I-2", "MED-TEST-0004"]
    assert reconciled.entries[1].times_per_day == 3  # the intake dose
    assert result.count(Change.STOPPED) == 1


def test_reconcile__uncoded_entries_match_by_normalised_text_and_say_so() -> None:
    discharge = make_medication_list(entries=(make_text_only_medication(),))
    shouted = make_text_only_medication(
        identifier="MED-I-9", medication="  OMEGA-3 fish   oil (patient reported) "
    )
    result = _reconcile(discharge, _intake(shouted))
    assert [(line.change, line.matched_by) for line in result.lines] == [
        (Change.CONTINUED, MatchedBy.TEXT)
    ]


def test_reconcile__coded_on_one_side_only_matches_by_text() -> None:
    uncoded = make_sertraline(identifier="MED-I-1", rxnorm_code=None)
    result = _reconcile(make_medication_list(entries=(make_sertraline(),)), _intake(uncoded))
    assert result.lines[0].matched_by is MatchedBy.TEXT
    assert result.lines[0].change is Change.CONTINUED


def test_reconcile__different_rxnorm_codes_are_different_drugs() -> None:
    other = make_sertraline(identifier="MED-I-1", rxnorm_code="312938")
    result = _reconcile(make_medication_list(entries=(make_sertraline(),)), _intake(other))
    assert [line.change for line in result.lines] == [Change.STOPPED, Change.NEW]


def test_reconcile__missing_structured_dose_on_one_side_is_a_dose_change() -> None:
    unstructured = make_sertraline(identifier="MED-I-1", dose=None)
    result = _reconcile(make_medication_list(entries=(make_sertraline(),)), _intake(unstructured))
    assert result.lines[0].change is Change.DOSE_CHANGED


def test_reconcile__same_rxnorm_code_twice_names_list_and_index() -> None:
    twice = (make_sertraline(), make_sertraline(identifier="MED-TEST-0009"))
    paths = _problem_paths(make_medication_list(entries=twice), _intake())
    assert list(paths) == ["discharge.entries[1].rxnorm_code"]
    assert "entries[0]" in paths["discharge.entries[1].rxnorm_code"]


def test_reconcile__same_uncoded_text_twice_on_intake_is_named() -> None:
    twice = (make_text_only_medication(identifier="A"), make_text_only_medication(identifier="B"))
    paths = _problem_paths(make_medication_list(entries=()), _intake(*twice))
    assert list(paths) == ["intake.entries[1].medication"]


def test_reconcile__text_matching_two_candidates_is_a_problem_not_a_guess() -> None:
    # A coded and an uncoded intake entry share the text of one uncoded discharge entry.
    coded = make_sertraline(identifier="I-1")
    uncoded = make_sertraline(
        identifier="I-2", rxnorm_code=None, medication="Sertraline 50 mg Oral Tablet"
    )
    discharge = make_medication_list(entries=(make_sertraline(rxnorm_code=None),))
    paths = _problem_paths(discharge, _intake(coded, uncoded))
    assert "discharge.entries[0].medication" in paths
    assert "intake.entries[0]" in paths["discharge.entries[0].medication"]


def test_reconcile__invalid_inputs_are_named_by_list() -> None:
    bad = make_medication_list(entries=(make_sertraline(status="taken"),))
    paths = _problem_paths(bad, _intake())
    assert "discharge.entries[0].status" in paths


# --- FHIR renderings ----------------------------------------------------------------------------


def _example() -> Reconciliation:
    higher = make_buprenorphine(identifier="MED-I-2", times_per_day=3)
    discharge = make_medication_list(
        entries=(make_sertraline(), make_buprenorphine(), make_text_only_medication())
    )
    intake = _intake(make_sertraline(identifier="MED-I-1"), higher, NALTREXONE)
    return _reconcile(discharge, intake)


def test_to_fhir__reconciled_snapshot_lists_current_intake_statements() -> None:
    result = _example()
    resource = reconciliation.to_fhir(
        result,
        id_system=MED_LIST_SYSTEM,
        subject_reference=SUBJECT,
        discharge_references=_refs(result.discharge, "d"),
        intake_references=_refs(result.intake, "i"),
    )
    assert resource["mode"] == "snapshot"
    assert resource["title"] == "Reconciled medication list"
    assert resource["code"]["text"] == "Reconciled medication list"
    items = [e["item"]["reference"] for e in resource["entry"]]
    assert items == [
        "MedicationStatement/i-0",
        "MedicationStatement/i-1",
        "MedicationStatement/i-2",
    ]
    assert all("deleted" not in e and "flag" not in e for e in resource["entry"])


def test_changes_to_fhir__flags_and_deleted_per_change() -> None:
    resource = _changes(_example())
    assert resource["mode"] == "changes"
    rows = [
        (e["item"]["reference"], e["flag"]["coding"][0]["code"], e.get("deleted", False))
        for e in resource["entry"]
    ]
    assert rows == [
        ("MedicationStatement/i-0", "01", False),  # continued: Unchanged
        ("MedicationStatement/d-1", "02", True),  # dose-changed: old dose removed
        ("MedicationStatement/i-1", "02", False),  # ... and the intake dose
        ("MedicationStatement/d-2", "05", True),  # stopped: Ceased
        ("MedicationStatement/i-2", "04", False),  # new: Prescribed
    ]
    assert {e["flag"]["coding"][0]["system"] for e in resource["entry"]} == {FLAG_SYSTEM}
    assert "note" not in resource


def test_changes_to_fhir__text_matches_are_noted() -> None:
    discharge = make_medication_list(entries=(make_text_only_medication(),))
    result = _reconcile(discharge, _intake(make_text_only_medication(identifier="I-1")))
    notes = _changes(result)["note"]
    assert len(notes) == 1 and "Matched by medication text" in notes[0]["text"]


def test_changes_to_fhir__reference_count_mismatch_is_named() -> None:
    result = _example()
    with pytest.raises(MappingError) as caught:
        reconciliation.changes_to_fhir(
            result,
            id_system=MED_LIST_SYSTEM,
            identifier="X-1",
            subject_reference=SUBJECT,
            discharge_references=("MedicationStatement/d-0",),
            intake_references=_refs(result.intake, "i"),
        )
    assert [p.path for p in caught.value.problems] == ["discharge_references"]


def test_changes_to_fhir__empty_lists_give_a_list_without_entries() -> None:
    resource = _changes(_reconcile(make_medication_list(entries=()), _intake()))
    assert "entry" not in resource and resource["mode"] == "changes"


# --- Properties ---------------------------------------------------------------------------------


@given(reconcilable_pairs())
def test_reconcile__every_entry_of_either_list_is_in_exactly_one_line(
    pair: tuple[MedicationList, MedicationList],
) -> None:
    discharge, intake = pair
    result = _reconcile(discharge, intake)
    seen_discharge = Counter(
        id(line.discharge_entry) for line in result.lines if line.discharge_entry
    )
    seen_intake = Counter(id(line.intake_entry) for line in result.lines if line.intake_entry)
    assert seen_discharge == Counter(id(e) for e in discharge.entries)
    assert seen_intake == Counter(id(e) for e in intake.entries)


@given(reconcilable_pairs())
def test_reconcile__a_list_with_itself_is_all_continued(
    pair: tuple[MedicationList, MedicationList],
) -> None:
    discharge, _ = pair
    result = _reconcile(discharge, discharge)
    assert {line.change for line in result.lines} <= {Change.CONTINUED}
    assert result.reconciled.entries == discharge.entries


@given(reconcilable_pairs())
def test_reconcile__swapping_inputs_swaps_new_and_stopped(
    pair: tuple[MedicationList, MedicationList],
) -> None:
    discharge, intake = pair
    forward, backward = _reconcile(discharge, intake), _reconcile(intake, discharge)
    swap = {Change.NEW: Change.STOPPED, Change.STOPPED: Change.NEW}
    mirrored = Counter(
        (swap.get(line.change, line.change), line.intake_entry, line.discharge_entry)
        for line in forward.lines
    )
    assert mirrored == Counter(
        (line.change, line.discharge_entry, line.intake_entry) for line in backward.lines
    )


@given(reconcilable_pairs())
def test_changes_to_fhir__one_entry_per_line_and_two_per_dose_change(
    pair: tuple[MedicationList, MedicationList],
) -> None:
    result = _reconcile(*pair)
    entries = _changes(result).get("entry", [])
    assert len(entries) == len(result.lines) + result.count(Change.DOSE_CHANGED)
    deleted = sum(1 for e in entries if e.get("deleted"))
    assert deleted == result.count(Change.STOPPED) + result.count(Change.DOSE_CHANGED)


@given(reconcilable_pairs())
def test_reconcile__reconciled_list_holds_intake_entries_of_lines_not_stopped(
    pair: tuple[MedicationList, MedicationList],
) -> None:
    discharge, intake = pair
    result = _reconcile(discharge, intake)
    assert sorted(e.identifier for e in result.reconciled.entries) == sorted(
        e.identifier for e in intake.entries
    )
    assert result.reconciled.problems() == []
