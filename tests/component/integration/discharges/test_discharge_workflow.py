"""Workflow 3 in the store (SQLite and PostgreSQL): the course counted from sessions, the Part 2
refusal that stores nothing, and the document + aftercare transaction enqueued with the
discharge."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures and discharge_support are test
# parameters here)

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from fhir_profiles import canonical
from integration.db import models
from integration.db import repositories as repo
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import referral_key_of
from integration.db.store import session_scope
from integration.discharges import clinical_record, workflow
from integration.privacy import disclosure
from integration.workflow_errors import AlreadyDischarged, DisclosureRefused, WorkflowNotReady
from mappers.discharge_reader import discharge_from_document
from tests.builders.discharge import make_aftercare
from tests.builders.referrals import make_medication_list, make_sertraline
from tests.builders.sessions import make_session
from tests.component.integration.discharges.discharge_support import (
    AT,
    DEPRESSION,
    DISCHARGED,
    IOP,
    NEXT,
    PATIENT,
    REFERRAL,
    START,
    discharge_now,
    make_discharge_consent,
    make_record,
    store_ready_referral,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio


def _stored(engine: Engine) -> tuple[int, list[dict[str, Any]]]:
    """How many discharge records, and the payloads of the discharge messages."""
    with session_scope(engine) as session:
        records = session.scalar(select(func.count()).select_from(models.DischargeRecord))
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.aggregate_type == "discharge")
        )
        return int(records or 0), [r.payload for r in rows]


def test_discharge_client__enqueues_document_request_and_task_with_the_record(
    engine: Engine,
) -> None:
    store_ready_referral(engine)
    result = discharge_now(engine, course_summary="Completed the program.")
    records, [payload] = _stored(engine)
    assert records == 1 and result.consent == "Consent/c1" and result.has_substance_use
    document, request, task, offered, role = (e["resource"] for e in payload["entry"])
    conditions = [e["request"].get("ifNoneExist") for e in payload["entry"]]
    role_value = role["identifier"][0]["value"]
    assert conditions == [
        f"identifier=urn:ietf:rfc:3986|{result.document_identifier}",
        f"identifier={canonical.REFERRAL_ID_SYSTEM}|{REFERRAL}-AFTERCARE",
        f"identifier={canonical.TASK_ID_SYSTEM}|{REFERRAL}-AFTERCARE",
        f"identifier=urn:ietf:rfc:3986|{result.document_identifier}",
        f"identifier={canonical.PRACTITIONER_ROLE_ID_SYSTEM}|{role_value}",
    ]
    # the document offered as a DocumentReference too (PACIO TOC), pointing at the Bundle
    assert offered["resourceType"] == "DocumentReference"
    assert offered["masterIdentifier"] == document["identifier"]
    assert offered["context"]["related"] == [{"reference": payload["entry"][0]["fullUrl"]}]
    assert request["supportingInfo"] == [{"reference": payload["entry"][0]["fullUrl"]}]
    assert (request["subject"], request["performer"]) == (
        {"reference": PATIENT},
        [{"reference": NEXT}],
    )
    assert [r["reference"] for r in request["reasonReference"]] == [
        "Condition/dx1",
        "Condition/dx2",
    ]
    assert task["focus"] == {"reference": payload["entry"][1]["fullUrl"]}
    # BSeR: the IOP's PractitionerRole (of the IOP Organization) requests; PACIO TOC: it authors.
    author = {"reference": payload["entry"][4]["fullUrl"]}
    assert (task["status"], task["owner"], task["requester"]) == (
        "requested",
        {"reference": NEXT},
        author,
    )
    assert request["requester"] == offered["author"][0] == author
    assert role["resourceType"] == "PractitionerRole"
    assert role["organization"]["reference"] == IOP
    [in_document] = [
        e["resource"]
        for e in document["entry"]
        if e["fullUrl"] == document["entry"][0]["resource"]["author"][0]["reference"]
    ]
    assert in_document["resourceType"] == "PractitionerRole"
    assert {c["code"] for c in document["meta"]["security"]} == {"R", "ETH"}  # Part 2 labels
    summary = discharge_from_document(document).value
    assert (
        summary.course.weeks,
        summary.course.sessions_attended,
        summary.course.sessions_missed,
    ) == (12, 34, 2)
    assert summary.course.summary == "Completed the program."
    assert summary.medications.medication_list.entries == make_medication_list().entries


def test_discharge_client__same_summary_builds_the_same_document(engine: Engine) -> None:
    store_ready_referral(engine)
    first = discharge_now(engine)
    with session_scope(engine) as session:
        session.execute(models.DischargeRecord.__table__.delete())
    second = discharge_now(engine)
    assert first.document_identifier == second.document_identifier
    _, (one, two) = _stored(engine)
    assert one == two  # stable urn:uuids: a rebuilt document matches the one sent


@pytest.mark.parametrize(
    ("consents", "reason"),
    [
        ((("Consent/c1", make_discharge_consent()),), f"recipient {NEXT} is not named"),
        (
            (("Consent/c1", make_discharge_consent(recipients=(NEXT,), end=date(2026, 3, 1))),),
            "expired on 2026-03-01",
        ),
        (
            (("Consent/c1", make_discharge_consent(recipients=(NEXT,), purposes=("HPAYMT",))),),
            "purpose TREAT is not permitted",
        ),
        ((), "the referral carries no Consent"),
    ],
)
def test_discharge_client__sud_without_a_covering_consent_stores_nothing(
    engine: Engine, consents: tuple[Any, ...], reason: str
) -> None:
    store_ready_referral(engine)
    with pytest.raises(DisclosureRefused) as refused:
        discharge_now(engine, make_record(consents=consents))
    assert refused.value.http_status == 403 and "42 CFR Part 2" in str(refused.value)
    assert any(reason in p.message for p in refused.value.problems), refused.value.problems
    assert _stored(engine) == (0, [])


def _classified(engine: Engine, *, part2: bool) -> None:
    """What the intake remembered of the referral's package (unclassified counts as Part 2)."""
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        disclosure.remember_part2(session, referral.id, part2=part2)


def test_discharge_client__without_sud_needs_no_consent(engine: Engine) -> None:
    # no SUD diagnosis and no MOUD medication (buprenorphine alone would make it Part 2)
    store_ready_referral(engine, meds=make_medication_list(entries=(make_sertraline(),)))
    _classified(engine, part2=False)
    result = discharge_now(
        engine, make_record(diagnoses=(("Condition/dx2", DEPRESSION),), consents=())
    )
    _, [payload] = _stored(engine)
    assert result.consent is None and not result.has_substance_use
    assert "meta" not in payload["entry"][0]["resource"]  # the document: no Part 2 labels


def test_discharge_client__a_part2_package_needs_consent_whatever_the_diagnoses(
    engine: Engine,
) -> None:
    # the sender labelled its package 42CFRPart2 (remembered at intake); the diagnoses the
    # summary lists name no SUD, but the document may hold the sender's labelled resources
    store_ready_referral(engine, meds=make_medication_list(entries=(make_sertraline(),)))
    _classified(engine, part2=True)
    with pytest.raises(DisclosureRefused):
        discharge_now(engine, make_record(diagnoses=(("Condition/dx2", DEPRESSION),), consents=()))
    assert _stored(engine) == (0, [])


def test_discharge_client__rolled_back_leaves_neither_record_nor_message(engine: Engine) -> None:
    store_ready_referral(engine)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        workflow.discharge_client(
            session, referral_key_of(session, REFERRAL), record=make_record(),
            discharged_at=DISCHARGED, aftercare=make_aftercare(next_provider=NEXT), at=AT,
        )  # fmt: skip
        raise RuntimeError("the caller's transaction fails after the step")
    assert _stored(engine) == (0, [])


def test_discharge_client__twice_is_refused(engine: Engine) -> None:
    store_ready_referral(engine)
    discharge_now(engine)
    with pytest.raises(AlreadyDischarged):
        discharge_now(engine)
    assert _stored(engine)[0] == 1


def test_discharge_client__needs_the_reconciled_list(engine: Engine) -> None:
    store_ready_referral(engine, reconciled=False)
    with pytest.raises(WorkflowNotReady, match="reconcile"):
        discharge_now(engine)
    assert _stored(engine) == (0, [])


def test_course_of_treatment__counts_held_sessions_until_discharge(engine: Engine) -> None:
    store_ready_referral(engine)
    with session_scope(engine) as session:
        referral = repo.get_referral(session, REFERRAL)
        assert referral is not None
        course = workflow.course_of_treatment(session, referral, DISCHARGED, None)
        early = workflow.course_of_treatment(session, referral, START + timedelta(days=2), None)
        none_yet = workflow.course_of_treatment(session, referral, START - timedelta(days=1), None)
    assert (course.weeks, course.sessions_attended, course.sessions_missed) == (12, 34, 2)
    assert (early.weeks, early.sessions_attended) == (1, 2)  # the Wednesday session counts
    assert (none_yet.weeks, none_yet.sessions_attended, none_yet.sessions_missed) == (1, 0, 0)


def test_discharge_client__a_moud_medication_alone_makes_it_part2(engine: Engine) -> None:
    store_ready_referral(engine)  # buprenorphine/naloxone on the list, depression only
    with pytest.raises(DisclosureRefused):
        discharge_now(engine, make_record(diagnoses=(("Condition/dx2", DEPRESSION),), consents=()))
    assert _stored(engine) == (0, [])


def test_discharge_client__the_last_attended_session_is_the_documents_encounter(
    engine: Engine,
) -> None:
    # PACIO TOC: Composition.encounter (US Core Encounter), held by the document.
    store_ready_referral(engine)
    with session_scope(engine) as session:
        facts = clinical_record.store_facts(session, referral_key_of(session, REFERRAL))
    assert facts.session == "S-35"  # week 12's last attended; not the one scheduled later
    last = make_session(identifier=str(facts.session))
    discharge_now(engine, make_record(encounter=("Encounter/s9", last)))
    _, [payload] = _stored(engine)
    document = payload["entry"][0]["resource"]
    composition = document["entry"][0]["resource"]
    [held] = [e["resource"] for e in document["entry"]
              if e["fullUrl"] == composition["encounter"]["reference"]]  # fmt: skip
    assert held["resourceType"] == "Encounter"
    assert held["identifier"] == [{"system": canonical.SESSION_ID_SYSTEM, "value": facts.session}]
    summary = discharge_from_document(document).value
    assert summary.encounter == composition["encounter"]["reference"]
