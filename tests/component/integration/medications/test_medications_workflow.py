"""Workflow 2 in the store, on SQLite and PostgreSQL: lists kept whole, the reconciliation stored
with each line's change, its outbox message in the same transaction, re-runs in place."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from fhir_profiles import canonical
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.models import ListSource as StoredSource
from integration.db.models import MedicationListRecord
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import referral_key_of
from integration.db.store import session_scope
from integration.medications import lists as medication_lists
from integration.medications import reconcile_form
from integration.medications import workflow as medications
from integration.workflow_errors import ReferralNotFound, WorkflowNotReady
from mappers.errors import MappingError, Problem
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from mappers.registry import MappingContext
from tests.builders import MRN_SYSTEM
from tests.builders.referrals import (
    make_buprenorphine,
    make_medication_list,
    make_sertraline,
    make_text_only_medication,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

REFERRAL = "SD-MEDS-0001"
MRN = "IOP-TEST-0001"
AT = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
PATIENT_MATCH = f"Patient?identifier={MRN_SYSTEM}|{MRN}"


def _discharge() -> MedicationList:
    return make_medication_list(
        entries=(make_sertraline(), make_buprenorphine(), make_text_only_medication())
    )


def _intake(**overrides: Any) -> MedicationList:
    """Sertraline as before, buprenorphine three times a day, melatonin new; fish oil gone."""
    base = MedicationList(
        "INTAKE-0001",
        "IOP intake medications",
        ListSource.IOP_INTAKE,
        AT,
        (
            make_sertraline(identifier="IN-1"),
            make_buprenorphine(identifier="IN-2", times_per_day=3, dose_text="1 film three times"),
            MedicationEntry("IN-3", "Melatonin 3 mg (patient reported)", times_per_day=1),
        ),
    )
    return replace(base, **overrides)


def _referral_with_lists(engine: Engine, intake: MedicationList | None = None) -> None:
    with session_scope(engine) as session:
        repo.add_referral(
            session, business_id=REFERRAL, client_mrn=MRN, iop_organization="IOP-DEMO-ORG",
            received_at=AT - timedelta(days=7),
        )  # fmt: skip
        medication_lists.record_discharge_list(
            session, referral_key_of(session, REFERRAL), _discharge(), AT - timedelta(days=7)
        )
        if intake is not None:
            key = referral_key_of(session, REFERRAL)
            medication_lists.record_intake_list(session, key, intake, AT)


def _reconcile(engine: Engine, at: datetime = AT) -> None:
    with session_scope(engine) as session:
        medications.reconcile_referral(session, referral_key_of(session, REFERRAL), at=at)


def _messages(engine: Engine) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [r.payload for r in rows if r.aggregate_type == medications.AGGREGATE_TYPE]


def _reconciled_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(MedicationListRecord)
        return int(session.scalar(query.where(MedicationListRecord.source == "reconciled")) or 0)


def test_reconcile_referral__stores_each_line_with_its_change(engine: Engine) -> None:
    _referral_with_lists(engine, _intake())
    _reconcile(engine)
    with session_scope(engine) as session:
        view = medications.medication_differences(session, referral_key_of(session, REFERRAL))
    assert view is not None and view.reconciled_at == AT
    changes = [d.change for d in view.differences]
    assert changes == ["continued", "dose-changed", "stopped", "new"]
    assert view.differences[1].describe() == (
        "dose changed: buprenorphine 8 MG / naloxone 2 MG Sublingual Film: "
        "1 film under the tongue twice daily -> 1 film three times"
    )
    assert view.differences[2].describe() == "stopped: Omega-3 fish oil (patient reported)"
    assert view.differences[3].after == "1 times a day"
    assert (view.count("continued"), view.count("new")) == (1, 1)


def test_reconcile_referral__enqueues_one_transaction_of_conditional_writes(
    engine: Engine,
) -> None:
    _referral_with_lists(engine, _intake())
    _reconcile(engine)
    [payload] = _messages(engine)
    assert payload["type"] == "transaction"
    requests = [(e["request"]["method"], e["request"]["url"]) for e in payload["entry"]]
    statement = f"identifier={canonical.MEDICATION_REQUEST_ID_SYSTEM}|"
    lists = f"List?identifier={canonical.MEDICATION_LIST_ID_SYSTEM}|{REFERRAL}"
    assert requests == [
        *[("POST", "MedicationRequest")] * 3,  # the residential program's: create if absent
        *[("PUT", f"MedicationRequest?{statement}IN-{n}") for n in (1, 2, 3)],
        ("PUT", f"{lists}-RECONCILED"),
        ("PUT", f"{lists}-RECONCILED-CHANGES"),
    ]
    creates = [e["request"]["ifNoneExist"] for e in payload["entry"][:3]]
    assert creates == [f"{statement}MED-TEST-000{n}" for n in (1, 2, 3)]
    assert {e["resource"]["subject"]["reference"] for e in payload["entry"]} == {PATIENT_MATCH}
    reconciled = payload["entry"][6]["resource"]
    intake_urls = [e["fullUrl"] for e in payload["entry"][3:6]]
    assert [e["item"]["reference"] for e in reconciled["entry"]] == intake_urls
    # US Core MedicationRequest: reported medications (intent plan), discharge vs at home.
    written = [e["resource"] for e in payload["entry"][:6]]
    assert {(r["intent"], r["reportedBoolean"]) for r in written} == {("plan", True)}
    categories = [r["category"][0]["coding"][0]["code"] for r in written]
    assert categories == ["discharge"] * 3 + ["community"] * 3


def test_reconcile_referral__rolled_back_leaves_neither_list_nor_message(engine: Engine) -> None:
    _referral_with_lists(engine, _intake())
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        medications.reconcile_referral(session, referral_key_of(session, REFERRAL), at=AT)
        raise RuntimeError("the caller's transaction fails after the step")
    assert _messages(engine) == []
    assert _reconciled_count(engine) == 0


def test_reconcile_referral__rerun_updates_in_place_under_the_same_identifiers(
    engine: Engine,
) -> None:
    _referral_with_lists(engine, _intake())
    _reconcile(engine)
    with session_scope(engine) as session:  # the intake list is corrected: same identifier
        entries = _intake().entries[:2]
        corrected = _intake(entries=(replace(entries[1], times_per_day=2), entries[0]))
        key = referral_key_of(session, REFERRAL)
        medication_lists.record_intake_list(session, key, corrected, AT + timedelta(hours=1))
    _reconcile(engine, AT + timedelta(hours=1))
    first, second = _messages(engine)
    puts = [
        {e["request"]["url"] for e in message["entry"] if e["request"]["method"] == "PUT"}
        for message in (first, second)
    ]
    assert puts[1] < puts[0]  # the same conditional updates, one intake statement fewer
    assert _reconciled_count(engine) == 1
    with session_scope(engine) as session:
        view = medications.medication_differences(session, referral_key_of(session, REFERRAL))
    assert view is not None and view.reconciled_at == AT + timedelta(hours=1)
    assert [d.change for d in view.differences] == ["continued", "continued", "stopped"]


def test_reconcile_referral__without_an_intake_list_is_not_ready(engine: Engine) -> None:
    _referral_with_lists(engine)
    with pytest.raises(WorkflowNotReady, match="no iop-intake list"):
        _reconcile(engine)
    assert _messages(engine) == []


def test_reconcile_referral__unknown_referral(engine: Engine) -> None:
    with pytest.raises(ReferralNotFound, match="no referral 999"), session_scope(engine) as session:
        medications.reconcile_referral(session, 999, at=AT)


def test_reconcile_referral__ambiguous_intake_is_refused_and_nothing_stored(
    engine: Engine,
) -> None:
    twice = _intake(
        entries=(make_sertraline(identifier="IN-1"), make_sertraline(identifier="IN-9"))
    )
    _referral_with_lists(engine, twice)
    with pytest.raises(MappingError) as refused:
        _reconcile(engine)
    assert [p.path for p in refused.value.problems] == ["intake.entries[1].rxnorm_code"]
    assert (_messages(engine), _reconciled_count(engine)) == ([], 0)


def test_record_intake_list__same_identifier_replaces_its_lines(engine: Engine) -> None:
    _referral_with_lists(engine, _intake())
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        medication_lists.record_intake_list(session, referral.id, _intake(entries=()), AT)
        record = repo.get_medication_list(session, referral, "INTAKE-0001")
        assert record is not None and record.lines == []


def test_record_intake_list__identifier_of_another_list_is_refused(engine: Engine) -> None:
    _referral_with_lists(engine)
    taken = _intake(identifier=_discharge().identifier)
    with pytest.raises(MappingError) as refused, session_scope(engine) as session:
        medication_lists.record_intake_list(session, referral_key_of(session, REFERRAL), taken, AT)
    assert refused.value.problems[0].path == "MedicationList.identifier"


def test_record_intake_list__a_discharge_list_is_not_an_intake_list(engine: Engine) -> None:
    _referral_with_lists(engine)
    with pytest.raises(MappingError) as refused, session_scope(engine) as session:
        medication_lists.record_intake_list(
            session, referral_key_of(session, REFERRAL), _intake(source=ListSource.RECONCILED), AT
        )
    assert refused.value.problems == (
        Problem("MedicationList.source", "expected iop-intake, not reconciled"),
    )


def test_load_list__keeps_every_field_of_each_entry(engine: Engine) -> None:
    full = make_sertraline(end=date(2026, 4, 1), dose=Dose(37.5, "mg"), status="on-hold")
    _referral_with_lists(engine, _intake(entries=(full,)))
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        record = repo.get_medication_list(session, referral, "INTAKE-0001")
        assert record is not None
        assert medication_lists.load_list(record).entries == (full,)


def test_load_list__a_line_without_detail_is_rebuilt_from_its_columns(engine: Engine) -> None:
    _referral_with_lists(engine)
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        line = repo.LineInput("Sertraline 50 MG", "active", "312941", "50 mg daily")
        record = repo.add_medication_list(
            session, referral, business_id="LEGACY", source=StoredSource.IOP_INTAKE,
            recorded_at=AT, lines=[line],
        )  # fmt: skip
        entries = medication_lists.load_list(record).entries
    assert entries == (
        MedicationEntry("LEGACY-0", "Sertraline 50 MG", "312941", "active", "50 mg daily"),
    )


def test_reconcile_referral__a_list_stored_without_its_entries_is_refused(engine: Engine) -> None:
    _referral_with_lists(engine, _intake())
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        line = repo.LineInput("Sertraline 50 MG", "active", "312941", "50 mg daily")
        repo.add_medication_list(
            session, referral, business_id="LEGACY", source=StoredSource.IOP_INTAKE,
            recorded_at=AT + timedelta(hours=1), lines=[line],
        )  # fmt: skip
    with pytest.raises(WorkflowNotReady) as refused:
        _reconcile(engine)
    assert [p.path for p in refused.value.problems] == ["LEGACY.lines[0]"]
    assert (_messages(engine), _reconciled_count(engine)) == ([], 0)


def test_reconcile_referral__the_subject_is_the_packages_patient_on_the_server(
    engine: Engine,
) -> None:
    # A sender's client carries the sender's MRN system: a conditional reference by our MRN
    # system and the sender's value matches nothing on the server (HAPI-1091, the message died)
    _referral_with_lists(engine, _intake())
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        link = ReferralLink(referral_id=referral.id, task_identifier_system="urn:sender",
                            task_identifier_value=REFERRAL, patient="Patient/p77")  # fmt: skip
        session.add(link)
    _reconcile(engine)
    [payload] = _messages(engine)
    assert {e["resource"]["subject"]["reference"] for e in payload["entry"]} == {"Patient/p77"}


def test_reconcile__a_referral_without_a_medication_list_against_an_empty_one(
    engine: Engine,
) -> None:
    # A BSeR referral carries no medication list: what the case manager states is all new
    with session_scope(engine) as session:
        repo.add_referral(
            session, business_id=REFERRAL, client_mrn=MRN, iop_organization="IOP-DEMO-ORG",
            received_at=AT - timedelta(days=7),
        )  # fmt: skip
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        fields = {"new-1-medication": "Naltrexone 50 MG Oral Tablet", "new-1-dose": "50 mg"}
        reconcile_form.reconcile(session, referral, fields, at=AT, context=MappingContext())
    with session_scope(engine) as session:
        view = medications.medication_differences(session, referral_key_of(session, REFERRAL))
    assert view is not None and [d.change for d in view.differences] == ["new"]
