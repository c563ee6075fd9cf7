"""What a case manager sees of each handoff: status, age and the HEDIS FUI follow-up windows.

The FUI measure counts a follow-up visit within 7 and within 30 days after discharge from
residential/inpatient care (DESIGN.md; fhir-domain-reference.md section 4). For each window a
handoff is ``met`` (an attended IOP session on or before the deadline), ``open`` (deadline not
reached yet) or ``overdue`` (deadline passed with no attended session).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from integration.db import models

FOLLOW_UP_WINDOWS = (7, 30)


class WindowState(StrEnum):
    """Where a handoff stands against one follow-up window."""

    MET = "met"
    OPEN = "open"
    OVERDUE = "overdue"
    UNKNOWN = "unknown"  # no residential discharge date on the referral


@dataclass(frozen=True, slots=True)
class HandoffView:
    """One row of the tracker and of ``iop-bridge handoffs``."""

    referral_id: int
    business_id: str
    status: str
    received_on: date
    residential_discharge: date | None
    days_since_discharge: int | None
    intake_scheduled: date | None
    first_attended: date | None
    no_shows: int
    follow_up_7: WindowState
    follow_up_30: WindowState


def window_state(
    discharged: date | None, first_attended: date | None, days: int, today: date
) -> WindowState:
    """State of one follow-up window (7 or 30 days after the residential discharge)."""
    if discharged is None:
        return WindowState.UNKNOWN
    deadline = discharged + timedelta(days=days)
    if first_attended is not None and first_attended <= deadline:
        return WindowState.MET
    return WindowState.OPEN if today <= deadline else WindowState.OVERDUE


def follow_up_within(discharged: date | None, first_attended: date | None) -> int | None:
    """The shortest window (7 or 30 days) the first attended session met; None if neither.

    What ``referral.follow_up_within`` stores: with it, :func:`window_state` is ``met`` for a
    window of ``days`` exactly when the stored value is at most ``days``.
    """
    if discharged is None or first_attended is None:
        return None
    return next(
        (days for days in FOLLOW_UP_WINDOWS if first_attended <= discharged + timedelta(days=days)),
        None,
    )


def list_handoffs(
    session: Session,
    *,
    today: date,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[HandoffView]:
    """Handoffs newest first, one page; every count comes from one query (no N+1)."""
    rows = session.execute(_handoff_query(status).limit(limit).offset(offset)).all()
    return [_view(row, today) for row in rows]


def count_handoffs(session: Session, *, status: str | None = None) -> int:
    """How many handoffs match (for paging)."""
    query = select(func.count(models.Referral.id))
    if status is not None:
        query = query.where(models.Referral.status == status)
    return int(session.scalar(query) or 0)


def _handoff_query(
    status: str | None,
) -> Select[models.Referral, date | None, date | None, int | None]:
    no_shows = (
        select(func.count(models.SessionRecord.id))
        .where(
            models.SessionRecord.referral_id == models.Referral.id,
            models.SessionRecord.attendance == models.Attendance.NO_SHOW,
        )
        .correlate(models.Referral)
        .scalar_subquery()
    )
    query = (
        select(models.Referral, models.Intake.scheduled_date, models.Intake.first_attended_date,
               no_shows.label("no_shows"))
        .outerjoin(models.Intake, models.Intake.referral_id == models.Referral.id)
        .order_by(models.Referral.received_at.desc(), models.Referral.id.desc())
    )  # fmt: skip
    if status is not None:
        query = query.where(models.Referral.status == status)
    return query


def _view(
    row: Row[models.Referral, date | None, date | None, int | None], today: date
) -> HandoffView:
    referral, scheduled, attended, no_shows = row
    discharged = referral.residential_discharge_date
    return HandoffView(
        referral_id=referral.id,
        business_id=referral.business_id,
        status=referral.status,
        received_on=referral.received_at.date(),
        residential_discharge=discharged,
        days_since_discharge=(today - discharged).days if discharged else None,
        intake_scheduled=scheduled,
        first_attended=attended,
        no_shows=int(no_shows or 0),
        follow_up_7=window_state(discharged, attended, 7, today),
        follow_up_30=window_state(discharged, attended, 30, today),
    )
