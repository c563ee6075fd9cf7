"""The intake list a case manager states line by line against the discharge list (the tracker's
reconciliation form and the API's body): every wrong field named, a changed dose structured."""

from __future__ import annotations

from dataclasses import replace

import pytest

from integration.medications import lists as medication_lists
from integration.medications.reconcile_form import parse_reconcile
from mappers import medication
from mappers.errors import InvalidInputError
from mappers.medication import Dose
from tests.builders.referrals import make_medication_list

DISCHARGE = make_medication_list()  # sertraline 50 mg, then buprenorphine


def paths(fields: dict[str, str | None]) -> list[str]:
    with pytest.raises(InvalidInputError) as refused:
        parse_reconcile(fields, DISCHARGE, "INTAKE")
    return [p.path for p in refused.value.problems]


def test_nothing_said__every_line_continues() -> None:
    stated = parse_reconcile({}, DISCHARGE, "INTAKE")
    assert [e.medication for e in stated.kept] == [e.medication for e in DISCHARGE.entries]
    assert [e.identifier for e in stated.kept] == ["INTAKE-0", "INTAKE-1"]


def test_change_stop_and_new__make_the_intake_list() -> None:
    stated = parse_reconcile(
        {"line-0": "change-dose", "dose-0": "100 mg", "times-0": "1", "line-1": "stop",
         "new-1-medication": "Naltrexone 50 MG Oral Tablet", "new-1-rxnorm": "1483744",
         "new-1-dose": "50 mg"},
        DISCHARGE, "INTAKE",
    )  # fmt: skip
    changed, new = stated.kept
    assert (changed.dose, changed.times_per_day, changed.dose_text) == (
        Dose(100.0, "mg"), 1, "100 mg 1 times a day",
    )  # fmt: skip
    assert (new.identifier, new.rxnorm_code, new.dose) == ("INTAKE-N1", "1483744", Dose(50, "mg"))


def test_every_wrong_field_is_named() -> None:
    assert paths(
        {"line-0": "change-dose", "line-1": "halve", "new-1-dose": "5 mg",
         "new-2-medication": "x", "new-2-rxnorm": "RX-1", "new-2-times": "30"}
    ) == ["dose-0", "line-1", "new-1-medication", "new-2-rxnorm", "new-2-times"]  # fmt: skip
    assert paths({"line-0": "change-dose", "dose-0": "a lot"}) == ["dose-0"]


def test_a_discharge_line_with_an_ndc__stored_and_continued__keeps_it() -> None:
    # the sender's NDC (sertraline 50 mg tablets, NDC 68533-056-12) survives the stored list
    # (entry_json) and a continued line, so our reconciled MedicationStatement sends it on
    coded = replace(DISCHARGE.entries[0], ndc_code="68533-056-12")
    stored = medication_lists.entry_from_json(medication_lists.entry_json(coded))
    discharge = replace(DISCHARGE, entries=(stored, *DISCHARGE.entries[1:]))
    kept = parse_reconcile({}, discharge, "INTAKE").kept[0]
    sent = medication.to_fhir(kept, id_system="urn:test", subject_reference="Patient/p1")
    codings = sent["medicationCodeableConcept"]["coding"]
    assert ("http://hl7.org/fhir/sid/ndc", "68533-056-12") in [
        (c["system"], c["code"]) for c in codings
    ]
