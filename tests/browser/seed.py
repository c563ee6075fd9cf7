"""A small tracker scenario in the store, dated relative to today, shared by the tracker's
component and browser tests. Synthetic data only.

Handoffs of one IOP (``organization``), by residential discharge and first attended session:

| referral      | status    | discharged | sessions                            | 7-day   | 30-day  |
|---------------|-----------|------------|-------------------------------------|---------|---------|
| SD-ONTIME     | completed | day -20    | attended day 4; IOP discharge       | met     | met     |
| SD-LATE       | completed | day -25    | no-show day 5, attended day 12      | overdue | met     |
| SD-NOSHOW     | accepted  | day -40    | no-shows days 3 and 9               | overdue | overdue |
| SD-NEW        | requested | day -2     | none                                | open    | open    |
| SD-NODATE     | requested | unknown    | none                                | unknown | unknown |
| SD-DECLINED   | rejected  | day -10    | none (not active)                   | overdue | open    |
| SD-ELSEWHERE  | accepted  | day -30    | none; ANOTHER organization's        | overdue | overdue |

SD-LATE also has its medication reconciliation, three PHQ-9 and GAD-7 scores and a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.store import session_scope
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from mappers.medication import ListSource, MedicationEntry, MedicationList
from tests.builders.referrals import (
    make_buprenorphine,
    make_medication_list,
    make_sertraline,
    make_text_only_medication,
)

OTHER_ORGANIZATION = "OTHER-IOP"
# The plan of SD-LATE: group therapy 3 x 3 h and CBT 1 x 1 h a week, ASAM 2.1 (10 h a week).
PLAN = {
    "identifier": "SD-LATE-PLAN",
    "status": "active",
    "level_of_care": "2.1",
    "modalities": [
        {"modality": "group-therapy", "sessions_per_week": 3, "hours_per_session": 3.0},
        {"modality": "cbt", "sessions_per_week": 1, "hours_per_session": 1.0},
    ],
}
PHQ9 = ((18, "moderately severe"), (12, "moderate"), (8, "mild"))
GAD7 = ((15, "severe"), (11, "moderate"), (6, "mild"))


@dataclass(frozen=True, slots=True)
class Seeded:
    """Store ids of the scenario's referrals, by business identifier."""

    ids: dict[str, int]


def seed_tracker(engine: Engine, *, organization: str, today: date) -> Seeded:
    """Store the scenario above; the dates count from ``today``."""
    ids: dict[str, int] = {}
    with session_scope(engine) as session:
        for business_id, status, discharged_day, org in (
            ("SD-ONTIME", "completed", -20, organization),
            ("SD-LATE", "completed", -25, organization),
            ("SD-NOSHOW", "accepted", -40, organization),
            ("SD-NEW", "requested", -2, organization),
            ("SD-NODATE", "requested", None, organization),
            ("SD-DECLINED", "rejected", -10, organization),
            ("SD-ELSEWHERE", "accepted", -30, OTHER_ORGANIZATION),
        ):
            discharged = None if discharged_day is None else today + timedelta(discharged_day)
            received = _at(discharged or today - timedelta(days=1), 15)
            referral = repo.add_referral(
                session,
                business_id=business_id,
                status=status,
                client_mrn=f"MRN-{business_id}",
                iop_organization=org,
                residential_discharge_date=discharged,
                received_at=received,
            )
            ids[business_id] = referral.id
            if status in ("completed", "accepted"):
                repo.record_decision(
                    session,
                    referral,
                    decision=models.Decision.ACCEPTED,
                    reason=None,
                    at=received + timedelta(hours=2),
                )
            if status == "rejected":
                repo.record_decision(
                    session,
                    referral,
                    decision=models.Decision.DECLINED,
                    reason="needs a higher level of care",
                    at=received + timedelta(hours=3),
                )
            referral.status = status  # the decision set "accepted"; the sessions moved it on
        _sessions(session, ids, today)
    _late_details(engine, today)
    return Seeded(ids)


def _sessions(session: Session, ids: dict[str, int], today: date) -> None:
    plan = (
        ("SD-ONTIME", -20, ((4, models.Attendance.ATTENDED),)),
        ("SD-LATE", -25, ((5, models.Attendance.NO_SHOW), (12, models.Attendance.ATTENDED))),
        ("SD-NOSHOW", -40, ((3, models.Attendance.NO_SHOW), (9, models.Attendance.NO_SHOW))),
    )
    for business_id, discharged_day, sessions in plan:
        referral = _referral(session, ids[business_id])
        discharged = today + timedelta(discharged_day)
        repo.schedule_intake(session, referral, on=discharged + timedelta(days=sessions[0][0]))
        for n, (day, attendance) in enumerate(sessions, start=1):
            repo.record_session(
                session,
                referral,
                business_id=f"{business_id}-S{n}",
                starts_at=_at(discharged + timedelta(days=day), 17),
                attendance=attendance,
            )
    record = repo.record_discharge(
        session,
        _referral(session, ids["SD-ONTIME"]),
        discharged_at=_at(today - timedelta(days=1), 16),
        next_provider="Organization/aftercare-clinic",
    )
    repo.acknowledge_discharge(session, record, at=_at(today, 9))


def _referral(session: Session, referral_key: int) -> models.Referral:
    referral = session.get(models.Referral, referral_key)
    assert referral is not None
    return referral


def _late_details(engine: Engine, today: date) -> None:
    """SD-LATE: discharge and intake medication lists reconciled, scores, and the plan."""
    discharged = today - timedelta(days=25)
    with session_scope(engine) as session:
        referral = repo.get_referral(session, "SD-LATE")
        assert referral is not None
        discharge = make_medication_list(
            entries=(make_sertraline(), make_buprenorphine(), make_text_only_medication())
        )
        key = referral.id
        medication_lists.record_discharge_list(session, key, discharge, _at(discharged, 11))
        medication_lists.record_intake_list(session, key, _intake(discharged), _at(discharged, 12))
        medications.reconcile_referral(session, key, at=_at(discharged + timedelta(5), 18))
        for instrument, scores in (("phq-9", PHQ9), ("gad-7", GAD7)):
            for week, (total, severity) in enumerate(scores):
                repo.add_assessment(
                    session,
                    referral,
                    business_id=f"SD-LATE-{instrument}-{week}",
                    instrument=instrument,
                    total=total,
                    severity=severity,
                    authored=_at(discharged + timedelta(days=7 * week), 10),
                )
        repo.save_plan(session, referral, business_id="SD-LATE-PLAN", plan=PLAN)


def _intake(discharged: date) -> MedicationList:
    """Sertraline as before, buprenorphine three times a day, melatonin new; fish oil gone."""
    return MedicationList(
        "SD-LATE-INTAKE",
        "IOP intake medications",
        ListSource.IOP_INTAKE,
        _at(discharged + timedelta(days=5), 12),
        (
            make_sertraline(identifier="SD-LATE-IN-1"),
            make_buprenorphine(
                identifier="SD-LATE-IN-2", times_per_day=3, dose_text="1 film three times daily"
            ),
            MedicationEntry("SD-LATE-IN-3", "Melatonin 3 mg (patient reported)", times_per_day=1),
        ),
    )


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)
