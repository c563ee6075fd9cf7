"""What a case manager sees of each handoff: status, age and the HEDIS FUI follow-up windows.

The windows themselves are pure rules in ``mappers.follow_up``; this module queries the rows
they are applied to (one query per page, no N+1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from integration.db import models
from mappers.follow_up import WindowState, window_state


@dataclass(frozen=True, slots=True)
class HandoffView:
    """One row of the tracker and of ``iop-bridge handoffs``."""

    referral_key: int
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
    # who the client is, for the case managers' tracker (never logged)
    client_mrn: str | None = None
    client_name: str | None = None
    client_age: int | None = None
    client_language: str | None = None


def list_handoffs(
    session: Session,
    *,
    today: date,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[HandoffView]:
    """Handoffs newest first, one page; every count comes from one query (no N+1)."""
    rows = session.execute(handoff_query(status).limit(limit).offset(offset)).all()
    return [handoff_view(row, today) for row in rows]


def count_handoffs(session: Session, *, status: str | None = None) -> int:
    """How many handoffs match (for paging)."""
    query = select(func.count(models.Referral.id))
    if status is not None:
        query = query.where(models.Referral.status == status)
    return int(session.scalar(query) or 0)


def handoff_query(
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


def handoff_view(
    row: Row[models.Referral, date | None, date | None, int | None], today: date
) -> HandoffView:
    referral, scheduled, attended, no_shows = row
    discharged = referral.residential_discharge_date
    return HandoffView(
        referral_key=referral.id,
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
        client_mrn=referral.client_mrn or None,
        client_name=referral.client_name,
        client_age=age_on(referral.client_birth_date, today),
        client_language=referral.client_language,
    )


def age_on(born: date | None, today: date) -> int | None:
    """Whole years from ``born`` to ``today``; None without a birth date."""
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
