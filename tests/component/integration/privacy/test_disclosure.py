"""The Part 2 disclosure gate in the store (SQLite and PostgreSQL): consent rules, the audit
event either way (a refusal's survives the rollback), labels on the outbound paths, and the
discharge workflow going through the gate."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.audit_table import AuditEventRecord
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.discharges import workflow as discharge
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from integration.privacy import audit, disclosure
from integration.referrals import step_down
from integration.workflow_errors import DisclosureRefused
from mappers import security_labels
from mappers.consent import DisclosureConsent
from mappers.discharge import PART2_SECTION_TEXT
from mappers.medication import MedicationList
from tests.builders import make_client, make_diagnosis
from tests.builders.discharge import make_aftercare, organization
from tests.builders.referrals import make_consent, make_medication_list, make_sertraline
from tests.builders.sessions import make_session
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

REFERRAL = "SD-PART2-0001"
IOP = "Organization/iop-program"
NEXT = "Organization/harbor-street"
PATIENT = "Patient/p1"
AT = datetime(2026, 4, 3, 19, 0, tzinfo=UTC)
DOCUMENT = audit.Entity("Composition", f"{REFERRAL}-DISCHARGE", "urn:example:summary")
ALCOHOL = make_diagnosis(identifier="DX-1")
DEPRESSION = make_diagnosis(identifier="DX-2", icd10_code="F33.1", display="MDD, recurrent")


def _consent(**overrides: Any) -> DisclosureConsent:
    fields: dict[str, Any] = {
        "start": date(2026, 1, 1),
        "end": date(2026, 12, 31),
        "recipients": (IOP, NEXT),
    }
    return make_consent(patient=PATIENT, **(fields | overrides))


def _disclosure(part2: bool = True, **overrides: Any) -> disclosure.Disclosure:
    base = disclosure.Disclosure(DOCUMENT, NEXT, AT, part2=part2, organization="IOP-DEMO-ORG")
    return replace(base, **overrides)


def _events(engine: Engine) -> list[AuditEventRecord]:
    with session_scope(engine) as session:
        return list(session.scalars(select(AuditEventRecord).order_by(AuditEventRecord.id)))


def _authorize(engine: Engine, request: disclosure.Disclosure, consents: Any) -> str | None:
    actor = audit.Actor("cm-17", "case-manager", "IOP-DEMO-ORG")
    with audit.acting_as(actor), session_scope(engine) as session:
        return disclosure.authorize(session, request, consents)


# --- the rules ------------------------------------------------------------------------------------


def test_authorize__records_without_part2_content_need_no_consent(engine: Engine) -> None:
    assert _authorize(engine, _disclosure(part2=False), ()) is None
    [event] = _events(engine)
    assert (event.action, event.outcome, event.reason_code) == ("disclose", "success", "not-part2")
    assert (event.recipient, event.purpose, event.consent) == (NEXT, "TREAT", None)


def test_authorize__a_covering_consent_permits_and_is_named(engine: Engine) -> None:
    consents = [("Consent/old", _consent(status="inactive")), ("Consent/c1", _consent())]
    assert _authorize(engine, _disclosure(), consents) == "Consent/c1"
    [event] = _events(engine)
    assert (event.outcome, event.reason_code, event.consent) == (
        "success",
        "consent-permits",
        "Consent/c1",
    )
    assert (event.agent_subject, event.agent_role, event.agent_organization) == (
        "cm-17",
        "case-manager",
        "IOP-DEMO-ORG",
    )
    assert (event.entity_type, event.entity_id) == ("Composition", f"{REFERRAL}-DISCHARGE")


def test_authorize__a_specialised_purpose_is_covered_by_its_parent(engine: Engine) -> None:
    assert _authorize(engine, _disclosure(purpose="COC"), [("Consent/c1", _consent())])


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (_consent(recipients=(IOP,)), f"recipient {NEXT} is not named"),
        (_consent(end=date(2026, 3, 1)), "consent expired on 2026-03-01"),
        (_consent(start=date(2026, 5, 1)), "consent period starts on 2026-05-01"),
        (_consent(status="rejected"), "consent is rejected, not active"),
        (_consent(purposes=("HPAYMT",)), "purpose TREAT is not permitted"),
        (_consent(data_classes=("PSY",)), "consent covers PSY records, not substance use"),
    ],
)
def test_authorize__refused_with_the_reason_and_audited_after_the_rollback(
    engine: Engine, given: DisclosureConsent, reason: str
) -> None:
    with pytest.raises(DisclosureRefused) as refused:
        _authorize(engine, _disclosure(), [("Consent/c1", given)])
    assert refused.value.http_status == 403 and "42 CFR Part 2" in str(refused.value)
    assert [p.path for p in refused.value.problems] == ["Consent/c1"]
    assert reason in refused.value.problems[0].message
    [event] = _events(engine)  # the caller's transaction rolled back; the refusal's did not
    assert (event.outcome, event.reason_code, event.consent) == (
        "denied",
        "no-covering-consent",
        None,
    )
    assert event.agent_subject == "cm-17"


def test_authorize__no_consent_at_all_and_unreadable_ones_are_named(engine: Engine) -> None:
    with pytest.raises(DisclosureRefused) as none:
        _authorize(engine, _disclosure(), [])
    assert none.value.problems[0].message == "the referral carries no Consent"
    with session_scope(engine) as session, pytest.raises(DisclosureRefused) as unreadable:
        disclosure.authorize(session, _disclosure(), [], [("Consent/x", "no provision")])
    assert unreadable.value.problems[0].path == "Consent/x"
    assert [e.outcome for e in _events(engine)] == ["denied", "denied"]


def test_notice__only_for_part2_records() -> None:
    assert disclosure.notice(True) == disclosure.REDISCLOSURE_NOTICE
    assert disclosure.notice(True, "custom") == "custom"
    assert disclosure.notice(False) is None


# --- which referrals are Part 2, and labels on the store-only outbound paths -----------------


def _referral(session: Session, business_id: str = REFERRAL, status: str = "accepted") -> int:
    referral = repo.add_referral(
        session, business_id=business_id, status=status, client_mrn="MRN-1",
        iop_organization=IOP, received_at=AT - timedelta(days=30),
    )  # fmt: skip
    session.add(
        ReferralLink(
            referral_id=referral.id, task_identifier_system="urn:example:task",
            task_identifier_value=business_id, service_request="ServiceRequest/sr1",
            patient=PATIENT, requester="Organization/res-1", owner=IOP,
            authored_on=AT - timedelta(days=31),
        )
    )  # fmt: skip
    session.flush()
    return referral.id


def test_is_part2__unknown_counts_as_part2_and_once_part2_stays(engine: Engine) -> None:
    with session_scope(engine) as session:
        referral_key = _referral(session)
        assert disclosure.is_part2(session, referral_key)
        disclosure.remember_part2(session, referral_key, part2=False)
        assert not disclosure.is_part2(session, referral_key)
        disclosure.remember_part2(session, referral_key, part2=True)
        disclosure.remember_part2(session, referral_key, part2=False)
        assert disclosure.is_part2(session, referral_key)


def test_remember_package__from_the_package_resources(engine: Engine) -> None:
    from sandbox.step_down_package import make_package, to_transaction

    with session_scope(engine) as session:
        referral_key = _referral(session)
        assert disclosure.remember_package(session, referral_key, [to_transaction(make_package(1))])
        assert disclosure.is_part2(session, referral_key)


def _payloads(engine: Engine, aggregate: str) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.aggregate_type == aggregate)
        )
        return [r.payload for r in rows]


@pytest.mark.parametrize("part2", [None, True, False])
def test_record_session__the_encounter_is_labelled_unless_known_not_part2(
    engine: Engine, part2: bool | None
) -> None:
    with session_scope(engine) as session:
        referral_key = _referral(session)
        if part2 is not None:
            disclosure.remember_part2(session, referral_key, part2=part2)
        step_down.record_session(session, referral_key, make_session(), at=AT)
    [encounter] = [p["resource"] for p in _payloads(engine, "referral") if "resource" in p]
    assert security_labels.is_labelled(encounter) is (part2 is not False)


@pytest.mark.parametrize("part2", [True, False])
def test_reconcile__the_transaction_entries_are_labelled_for_a_part2_referral(
    engine: Engine, part2: bool
) -> None:
    # sertraline only: a MOUD (buprenorphine) would label its own entries whatever the flag
    meds = make_medication_list(entries=(make_sertraline(),))
    with session_scope(engine) as session:
        referral_key = _referral(session)
        disclosure.remember_part2(session, referral_key, part2=part2)
        medication_lists.record_discharge_list(session, referral_key, meds, AT)
        intake = replace(meds, identifier="IN", source=None)
        medication_lists.record_intake_list(session, referral_key, intake, AT)
        medications.reconcile_referral(session, referral_key, at=AT)
    [payload] = _payloads(engine, medications.AGGREGATE_TYPE)
    assert "meta" not in payload  # a transaction is a request: its entries carry the labels
    assert {security_labels.is_labelled(e["resource"]) for e in payload["entry"]} == {part2}


# --- the discharge workflow goes through the gate ---------------------------------------------


def _record(**overrides: Any) -> discharge.ClinicalRecord:
    base = discharge.ClinicalRecord(
        patient=PATIENT, client=make_client(), iop_organization=IOP,
        organizations={IOP: organization("Riverside IOP", "ORG-IOP"),
                       NEXT: organization("Harbor Street", "ORG-NEXT")},
        diagnoses=(("Condition/dx1", ALCOHOL), ("Condition/dx2", DEPRESSION)),
        consents=(("Consent/c1", _consent()),),
    )  # fmt: skip
    return replace(base, **overrides)


def _discharged(
    engine: Engine,
    record: discharge.ClinicalRecord,
    meds: MedicationList | None = None,
    *,
    part2: bool | None = None,
) -> discharge.DischargeResult:
    """``part2``: what the intake remembered of the package (None: unclassified, Part 2)."""
    meds = meds or make_medication_list()
    with session_scope(engine) as session:
        referral_key = _referral(session, status="completed")
        if part2 is not None:
            disclosure.remember_part2(session, referral_key, part2=part2)
        medication_lists.record_discharge_list(session, referral_key, meds, AT)
        medication_lists.record_intake_list(
            session, referral_key, replace(meds, identifier="IN", source=None), AT
        )
        medications.reconcile_referral(session, referral_key, at=AT)
    with session_scope(engine) as session:
        return discharge.discharge_client(
            session, referral_key, record=record, discharged_at=AT, at=AT + timedelta(hours=1),
            aftercare=make_aftercare(next_provider=NEXT),
        )  # fmt: skip


def test_discharge__labels_every_patient_resource_and_carries_the_notice(engine: Engine) -> None:
    result = _discharged(engine, _record())
    assert result.consent == "Consent/c1"
    [payload] = _payloads(engine, discharge.AGGREGATE_TYPE)
    document, request, task, offered, role = (e["resource"] for e in payload["entry"])
    assert not security_labels.is_labelled(role)  # the IOP's PractitionerRole: no patient data
    assert security_labels.is_labelled(document)  # R + ETH: the high-water mark only
    assert {c["code"] for c in document["meta"]["security"]} == {"R", "ETH"}
    # the DocumentReference offering it carries the same high-water mark
    assert {c["code"] for c in offered["meta"]["security"]} == {"R", "ETH"}
    inside = [e["resource"] for e in document["entry"]]
    for resource in [*inside, request, task]:
        labelled = security_labels.is_labelled(resource)
        parties = ("Organization", "PractitionerRole")
        assert labelled is (resource["resourceType"] not in parties), resource["resourceType"]
    composition = inside[0]
    notices = [s for s in composition["section"] if s.get("title") == PART2_SECTION_TEXT]
    assert notices and disclosure.REDISCLOSURE_NOTICE in notices[0]["text"]["div"]
    actions = [(e.action, e.outcome, e.reason_code) for e in _events(engine)]
    assert ("disclose", "success", "consent-permits") in actions
    assert actions[-1] == ("discharge", "success", None)


def test_discharge__refused_stores_nothing_but_the_audit_event(engine: Engine) -> None:
    with pytest.raises(DisclosureRefused):
        _discharged(engine, _record(consents=(("Consent/c1", _consent(recipients=(IOP,))),)))
    assert _payloads(engine, discharge.AGGREGATE_TYPE) == []
    assert [(e.action, e.outcome) for e in _events(engine)][-1] == ("disclose", "denied")
    with session_scope(engine) as session:
        assert session.scalar(select(models.DischargeRecord.id)) is None


def test_discharge__without_sud_no_labels_no_notice_still_audited(engine: Engine) -> None:
    record = _record(diagnoses=(("Condition/dx2", DEPRESSION),), consents=())
    no_moud = make_medication_list(entries=(make_sertraline(),))
    # a package without SUD records, as the intake classified it
    assert _discharged(engine, record, no_moud, part2=False).consent is None
    [payload] = _payloads(engine, discharge.AGGREGATE_TYPE)
    assert not any(security_labels.is_labelled(e["resource"]) for e in payload["entry"])
    disclosed = [e for e in _events(engine) if e.action == "disclose"]
    assert [(e.outcome, e.reason_code) for e in disclosed] == [("success", "not-part2")]
