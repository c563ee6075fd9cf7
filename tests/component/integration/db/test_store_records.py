"""Domain records on SQLite and PostgreSQL: unique business ids, list filters, lines in order."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, StatementError

from integration.db import repositories as repo
from integration.db.models import Attendance, Decision, ListSource, MedicationChange
from integration.db.referral_lookup import ReferralName
from integration.db.store import session_scope
from integration.referrals.actions import owned_referral
from integration.workflow_errors import ReferralAmbiguous
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

RECEIVED = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def _referral(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "business_id": "SD-0001",
        "client_mrn": "IOP-TEST-0001",
        "iop_organization": "IOP-DEMO-ORG",
        "residential_discharge_date": date(2026, 3, 1),
        "received_at": RECEIVED,
    }
    return {**fields, **overrides}


def test_referral__business_id_is_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        repo.add_referral(session, **_referral())
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        repo.add_referral(session, **_referral(client_mrn="IOP-TEST-0002"))


def test_referral__status_outside_task_status_is_refused(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        repo.add_referral(session, **_referral(status="maybe"))


def test_list_referrals__filters_by_organization_and_status_newest_first(engine: Engine) -> None:
    with session_scope(engine) as session:
        for n in range(4):
            repo.add_referral(
                session,
                **_referral(
                    business_id=f"SD-{n}",
                    received_at=RECEIVED + timedelta(hours=n),
                    status="accepted" if n % 2 else "requested",
                ),
            )
        repo.add_referral(session, **_referral(business_id="OTHER", iop_organization="ELSEWHERE"))
    with session_scope(engine) as session:
        mine = repo.list_referrals(session, organization="IOP-DEMO-ORG")
        accepted = repo.list_referrals(session, organization="IOP-DEMO-ORG", status="accepted")
    assert [r.business_id for r in mine] == ["SD-3", "SD-2", "SD-1", "SD-0"]
    assert [r.business_id for r in accepted] == ["SD-3", "SD-1"]
    assert mine[0].received_at == RECEIVED + timedelta(hours=3)  # aware UTC on both backends


def test_record_decision__declining_needs_a_reason(engine: Engine) -> None:
    with session_scope(engine) as session:
        referral = repo.add_referral(session, **_referral())
        with pytest.raises(ValueError, match="reason"):
            repo.record_decision(
                session, referral, decision=Decision.DECLINED, reason=" ", at=RECEIVED
            )
        repo.record_decision(
            session, referral, decision=Decision.DECLINED, reason="needs residential", at=RECEIVED
        )
    with session_scope(engine) as session:
        stored = repo.get_referral(session, "SD-0001")
        assert stored is not None
        assert (stored.status, stored.decision) == ("rejected", "declined")


def test_record_session__first_attended_session_dates_the_intake(engine: Engine) -> None:
    with session_scope(engine) as session:
        referral = repo.add_referral(session, **_referral())
        intake = repo.schedule_intake(session, referral, on=date(2026, 3, 4))
        for day, attendance in ((4, Attendance.NO_SHOW), (6, Attendance.ATTENDED)):
            repo.record_session(
                session,
                referral,
                business_id=f"S-{day}",
                starts_at=datetime(2026, 3, day, 18, tzinfo=UTC),
                attendance=attendance,
                intake=intake,
            )
        assert intake.first_attended_date == date(2026, 3, 6)


def test_medication_list__lines_keep_their_order_and_change(engine: Engine) -> None:
    lines = [
        repo.LineInput("Sertraline 50 MG Oral Tablet", "active", "312940", "50 mg daily"),
        repo.LineInput("Trazodone", "stopped", change=MedicationChange.STOPPED),
    ]
    with session_scope(engine) as session:
        referral = repo.add_referral(session, **_referral())
        repo.add_medication_list(
            session,
            referral,
            business_id="ML-1",
            source=ListSource.RECONCILED,
            recorded_at=RECEIVED,
            lines=lines,
        )
    with session_scope(engine) as session:
        med_list = repo.get_medication_list(session, referral, "ML-1")
        assert med_list is not None
        assert med_list.referral_id == referral.id
        assert [(li.display, li.change) for li in med_list.lines] == [
            ("Sertraline 50 MG Oral Tablet", None),
            ("Trazodone", "stopped"),
        ]


def test_plan_and_discharge__round_trip(engine: Engine) -> None:
    with session_scope(engine) as session:
        referral = repo.add_referral(session, **_referral())
        repo.save_plan(session, referral, business_id="PLAN-1", plan={"hours": 9})
        repo.save_plan(session, referral, business_id="PLAN-1", plan={"hours": 12})
        record = repo.record_discharge(
            session, referral, discharged_at=RECEIVED, next_provider="Outpatient clinic"
        )
        repo.record_aftercare_task(session, record, task_id="task-9")
        repo.acknowledge_discharge(session, record, at=RECEIVED + timedelta(days=2))
        repo.add_assessment(
            session,
            referral,
            business_id="PHQ-1",
            instrument="phq-9",
            total=14,
            severity="moderate",
            authored=RECEIVED,
        )
    with session_scope(engine) as session:
        plan = repo.get_plan(session, "PLAN-1")
        assert plan is not None
        assert plan.plan == {"hours": 12}
        trend = repo.assessment_trend(session, referral, instrument="phq-9")
        assert [a.total for a in trend] == [14]


def test_utc_datetime__naive_datetimes_are_refused(engine: Engine) -> None:
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as session:
        repo.add_referral(session, **_referral(received_at=datetime(2026, 3, 2, 14, 30)))


def test_get_referral__two_senders_one_identifier_is_refused_not_guessed(engine: Engine) -> None:
    """Two referrers may use the same identifier value (issue 13); a lookup that does not say
    which sender it means must not act on whichever was stored first (a wrong client)."""
    with session_scope(engine) as session:
        repo.add_referral(session, **_referral(sender="Organization/res-a"))
        repo.add_referral(session, **_referral(sender="Organization/res-b", client_mrn="B-1"))
    with session_scope(engine) as session:
        found = repo.get_referral(session, "SD-0001", sender="Organization/res-b")
        assert found is not None and found.client_mrn == "B-1"
        with pytest.raises(ReferralAmbiguous, match="more than one sender"):
            repo.get_referral(session, "SD-0001")
        with pytest.raises(ReferralAmbiguous):
            owned_referral(session, ReferralName("SD-0001"), ("IOP-DEMO-ORG",))
        named = ReferralName("SD-0001", "Organization/res-b")
        assert owned_referral(session, named, ("IOP-DEMO-ORG",)).client_mrn == "B-1"
