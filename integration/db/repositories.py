"""Small repository functions over the domain records: each flushes, none commits.

The caller (a workflow step) owns the transaction, so a domain change and the outbox message
announcing it commit together (integration.outbox.queue.enqueue in the same session).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db.models import (
    AssessmentRecord,
    Attendance,
    Decision,
    DischargeRecord,
    Intake,
    ListSource,
    MedicationChange,
    MedicationLine,
    MedicationListRecord,
    PlanRecord,
    Referral,
    SessionRecord,
)
from integration.workflow_errors import ReferralAmbiguous
from mappers.follow_up import follow_up_within

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LineInput:
    """One medication line to store (MedicationStatement essentials)."""

    display: str
    status: str
    rxnorm_code: str | None = None
    dose_text: str | None = None
    change: MedicationChange | None = None


def add_referral(session: Session, **fields: Any) -> Referral:
    """Store a newly received referral (status defaults to ``requested``)."""
    referral = Referral(**{"status": "requested", **fields})
    session.add(referral)
    session.flush()
    return referral


def get_referral(
    session: Session, business_id: str, *, sender: str | None = None
) -> Referral | None:
    """The referral with this business identifier from ``sender``. Without a sender (the IOP's
    own views, which see every sender) the one referral under that identifier; when two
    senders use it, ReferralAmbiguous rather than a guess."""
    query = select(Referral).where(Referral.business_id == business_id)
    if sender is not None:
        query = query.where(Referral.sender == sender)
    return only_match(session.scalars(query.order_by(Referral.id).limit(2)).all(), business_id)


def only_match(found: Sequence[T], named: object) -> T | None:
    """The single referral (or row about one) of a lookup by business identifier, which may
    match referrals of several senders; ask for two rows, give the result here."""
    if len(found) > 1:
        raise ReferralAmbiguous(
            f"referral {named!r} names referrals of more than one sender: open it from the"
            " tracker (its own page), or name its sender (the API's referrer=Organization/<id>)"
        )
    return found[0] if found else None


def list_referrals(
    session: Session, *, organization: str, status: str | None = None, limit: int = 100
) -> list[Referral]:
    """One organization's referrals, newest received first, optionally in one status."""
    query = select(Referral).where(Referral.iop_organization == organization)
    if status is not None:
        query = query.where(Referral.status == status)
    query = query.order_by(Referral.received_at.desc(), Referral.id.desc()).limit(limit)
    return list(session.scalars(query))


def record_decision(
    session: Session, referral: Referral, *, decision: Decision, reason: str | None, at: datetime
) -> Referral:
    """Accept or decline; a decline needs its reason (Task.statusReason on the server)."""
    if decision is Decision.DECLINED and not (reason and reason.strip()):
        raise ValueError("declining a referral needs a reason")
    referral.decision = decision
    referral.decision_reason = reason
    referral.decided_at = at
    referral.status = "accepted" if decision is Decision.ACCEPTED else "rejected"
    session.flush()
    return referral


def record_task_version(
    session: Session, referral: Referral, *, server_id: str, version_id: str | None
) -> Referral:
    """Remember which Task (id, versionId) on the server the referral's loop is."""
    referral.task_server_id = server_id
    referral.task_version_id = version_id
    session.flush()
    return referral


def schedule_intake(
    session: Session,
    referral: Referral,
    *,
    on: date,
    at_time: time | None = None,
    delivery: str | None = None,
) -> Intake:
    """Create or move the referral's one intake appointment (its time and delivery when known)."""
    intake = _intake_of(session, referral)
    intake.scheduled_date = on
    intake.scheduled_time, intake.scheduled_delivery = at_time, delivery
    session.flush()
    return intake


def _intake_of(session: Session, referral: Referral) -> Intake:
    """The referral's one intake row, created (and flushed) when it does not exist yet."""
    intake = session.scalar(select(Intake).where(Intake.referral_id == referral.id))
    if intake is None:
        intake = Intake(referral_id=referral.id)
        session.add(intake)
        session.flush()
    return intake


def record_session(
    session: Session,
    referral: Referral,
    *,
    business_id: str,
    starts_at: datetime,
    attendance: Attendance,
    ends_at: datetime | None = None,
    intake: Intake | None = None,
) -> SessionRecord:
    """Store one session; the first attended one dates the intake's first attendance."""
    if intake is None and attendance is Attendance.ATTENDED:
        # A client can attend before an intake date was ever entered; the FUI windows still
        # count that session, so the referral's intake row is created to carry the date.
        intake = _intake_of(session, referral)
    record = SessionRecord(
        business_id=business_id,
        referral_id=referral.id,
        intake_id=intake.id if intake else None,
        starts_at=starts_at,
        ends_at=ends_at,
        attendance=attendance,
    )
    session.add(record)
    attended_on = starts_at.date()
    if intake is not None and attendance is Attendance.ATTENDED:
        first = intake.first_attended_date
        intake.first_attended_date = attended_on if first is None else min(first, attended_on)
        # the tracker's flag counts read this instead of comparing dates row by row
        referral.follow_up_within = follow_up_within(
            referral.residential_discharge_date, intake.first_attended_date
        )
    session.flush()
    return record


def save_plan(
    session: Session, referral: Referral, *, business_id: str, plan: dict[str, Any]
) -> PlanRecord:
    """Insert or replace the treatment plan stored under ``business_id``."""
    record = get_plan(session, business_id)
    if record is None:
        record = PlanRecord(business_id=business_id, referral_id=referral.id, plan=plan)
        session.add(record)
    record.plan = plan
    session.flush()
    return record


def get_plan(session: Session, business_id: str) -> PlanRecord | None:
    """The plan stored under this business identifier, if any."""
    return session.scalar(select(PlanRecord).where(PlanRecord.business_id == business_id))


def add_assessment(session: Session, referral: Referral, **fields: Any) -> AssessmentRecord:
    """Store one scored assessment (instrument, total, severity, authored, business_id)."""
    record = AssessmentRecord(referral_id=referral.id, **fields)
    session.add(record)
    session.flush()
    return record


def add_medication_list(
    session: Session,
    referral: Referral,
    *,
    business_id: str,
    source: ListSource,
    recorded_at: datetime,
    lines: Sequence[LineInput],
) -> MedicationListRecord:
    """Store a medication list with its lines in order."""
    record = MedicationListRecord(
        business_id=business_id, referral_id=referral.id, source=source, recorded_at=recorded_at
    )
    record.lines = [
        MedicationLine(
            position=index,
            display=line.display,
            status=line.status,
            rxnorm_code=line.rxnorm_code,
            dose_text=line.dose_text,
            change=line.change,
        )
        for index, line in enumerate(lines)
    ]
    session.add(record)
    session.flush()
    return record


def get_medication_list(
    session: Session, referral: Referral, business_id: str
) -> MedicationListRecord | None:
    """The referral's medication list with this business identifier (its lines load in order).
    Per referral: another sender's list may carry the same identifier value."""
    query = select(MedicationListRecord).where(
        MedicationListRecord.referral_id == referral.id,
        MedicationListRecord.business_id == business_id,
    )
    return session.scalar(query)


def record_discharge(
    session: Session, referral: Referral, *, discharged_at: datetime, next_provider: str
) -> DischargeRecord:
    """Store the IOP discharge and who takes over the client's care."""
    record = DischargeRecord(
        referral_id=referral.id, discharged_at=discharged_at, next_provider=next_provider
    )
    session.add(record)
    session.flush()
    return record


def record_aftercare_task(
    session: Session, record: DischargeRecord, *, task_id: str
) -> DischargeRecord:
    """Remember the server id of the aftercare Task sent to the next provider."""
    record.aftercare_task_id = task_id
    session.flush()
    return record


def acknowledge_discharge(
    session: Session, record: DischargeRecord, *, at: datetime
) -> DischargeRecord:
    """The next provider acknowledged the aftercare Task: the handoff loop is closed."""
    record.acknowledged_at = at
    session.flush()
    return record


def assessment_trend(
    session: Session, referral: Referral, *, instrument: str
) -> list[AssessmentRecord]:
    """One instrument's scores for a referral, oldest first (the PHQ-9/GAD-7 trend)."""
    query = (
        select(AssessmentRecord)
        .where(
            AssessmentRecord.referral_id == referral.id,
            AssessmentRecord.instrument == instrument,
        )
        .order_by(AssessmentRecord.authored)
    )
    return list(session.scalars(query))
