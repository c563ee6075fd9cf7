"""A case manager's actions on a step-down referral, as one service for the tracker's forms, the
API (the IOP's EHR) and the CLI: the same parsing, the same rules, the same audit.

Callers give the action's fields as strings (a form, a JSON body, command-line options) and get
either a change (applied in their one transaction, the Task change queued in the outbox) or one
``InvalidInputError`` naming every field that is wrong. Which actions a referral offers follows
from its state (``offered``): what the workflows would refuse is not offered.

Accept needs the residential discharge date: the HEDIS FUI 7- and 30-day follow-up windows the
IOP takes on start from it. A package without one (no residential Encounter.period.end) is
refused at accept, naming the element, unless the case manager records the date with the accept
(``residential_discharge_date``); a date the sender gave is never overwritten. Decline stays.

Decline reasons: neither SDOHCC nor BSeR defines a code system for why a referral is declined
(BSeR's TaskBusinessStatusCS has 4.0 "Service Request Declined" and no reason codes), so the
reasons here are a short text-only list (Task.statusReason.text), with the case manager's note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.referral_lookup import ReferralName, named
from integration.db.store import dialect_insert
from integration.db.tracker_tables import TrackerSubmission
from integration.medications import reconcile_form as reconcile_actions
from integration.medications.workflow import current_list
from integration.referrals import step_down
from integration.workflow_errors import ReferralActionRefused, ReferralNotFound
from mappers import encounter
from mappers.errors import InvalidInputError, Problem
from mappers.medication import ListSource
from mappers.referral_package.summary import NO_DISCHARGE_DATE as NO_DATE_ATTENTION
from mappers.registry import MappingContext

ACCEPT, DECLINE, SCHEDULE, SESSION = "accept", "decline", "schedule", "session"
DISCHARGE_DATE = "residential_discharge_date"  # the accept's one optional field
RECONCILE, DISCHARGE = "reconcile", "discharge"
# Text-only decline reasons (see the module docstring): key -> Task.statusReason.text
DECLINE_REASONS: Mapping[str, str] = {
    "no-capacity": "No program capacity",
    "level-of-care": "IOP is not the appropriate level of care",
    "client-declined": "The client declined the program",
    "package-incomplete": "The referral package is incomplete",
    "out-of-area": "The client lives outside the program's area",
    "other": "Other",
}
MAX_NOTE = 500
E = TypeVar("E", bound=StrEnum)
MAX_SESSION_MINUTES = 8 * 60


@dataclass(frozen=True, slots=True)
class Accept:
    """Accept, recording the residential discharge date the package did not give."""

    discharged: date


@dataclass(frozen=True, slots=True)
class Decline:
    """Why: a reason key of DECLINE_REASONS and the case manager's note."""

    reason: str
    note: str | None

    def status_reason(self) -> str:
        """Task.statusReason.text: the reason, then the note."""
        label = DECLINE_REASONS[self.reason]
        return f"{label}: {self.note}" if self.note else label


@dataclass(frozen=True, slots=True)
class ScheduleIntake:
    """The intake appointment: day, program-local time, in person or virtual."""

    on: date
    at_time: time | None
    delivery: encounter.Delivery


@dataclass(frozen=True, slots=True)
class RecordSession:
    """One session as the case manager states it."""

    kind: encounter.SessionKind
    delivery: encounter.Delivery
    attendance: encounter.Attendance
    start: datetime  # aware
    minutes: int
    identifier: str | None = None  # the caller's own id of the session; None: one is made


@dataclass(frozen=True, slots=True)
class ReconcileFields:
    """The reconciliation's fields, checked against the discharge list when it is performed
    (``medications.reconcile_form``: which lines there are is known only then)."""

    fields: Mapping[str, str | None]


# None: accept as it stands
Command = Accept | Decline | ScheduleIntake | RecordSession | ReconcileFields | None


def parse(action: str, fields: Mapping[str, str | None], zone: ZoneInfo) -> Command:
    """The action's fields checked; InvalidInputError naming each field that is wrong."""
    problems: list[Problem] = []
    command: Command = None
    if action == DECLINE:
        command = _decline(fields, problems)
    elif action == SCHEDULE:
        command = _schedule(fields, problems)
    elif action == SESSION:
        command = _session(fields, zone, problems)
    elif action == RECONCILE:
        command = ReconcileFields(dict(fields))
    elif action == ACCEPT:
        discharged = _date(fields, DISCHARGE_DATE, problems, required=False)
        command = None if discharged is None else Accept(discharged)
    else:
        problems.append(Problem("action", f"{action!r} is not an action on a referral"))
    if problems:
        raise InvalidInputError.from_problems(f"the {action}", problems)
    return command


def perform(
    session: Session,
    referral: models.Referral,
    action: str,
    command: Command,
    *,
    at: datetime,
    session_ids: str,
    context: MappingContext | None = None,
) -> models.Referral:
    """Run the parsed action through the step-down workflow (audited as the current actor),
    in the caller's transaction; refused when the referral's state does not offer it.
    ``session_ids`` makes a recorded session's business identifier unique (one per submit)."""
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral.id))
    if action not in offered(session, referral, mapped=link is not None and not link.problems):
        detail = f"a {referral.status} referral does not offer {action!r}"
        raise ReferralActionRefused(detail, problems=[Problem("action", detail, "business-rule")])
    if action == ACCEPT:
        if isinstance(command, Accept):
            _record_discharge_date(referral, link, command.discharged, at)
        return step_down.accept(session, referral.id, at=at)
    if isinstance(command, Decline):
        return step_down.decline(session, referral.id, command.status_reason(), at=at)
    if isinstance(command, ReconcileFields):
        reconcile_actions.reconcile(
            session, referral, command.fields, at=at, context=context or MappingContext()
        )
        return referral
    if isinstance(command, ScheduleIntake):
        step_down.schedule_intake(
            session, referral.id, command.on, at=at,
            at_time=command.at_time, delivery=command.delivery.value,
        )  # fmt: skip
        return referral
    assert isinstance(command, RecordSession)
    end = command.start + timedelta(minutes=command.minutes)
    identifier = command.identifier or f"{referral.business_id}-S-{session_ids}"[:64]
    stated = encounter.Session(
        identifier, command.kind, command.delivery, command.attendance, command.start, end
    )
    step_down.record_session(session, referral.id, stated, at=at)
    return referral


def owned_referral(
    session: Session, referral: ReferralName, organizations: tuple[str, ...]
) -> models.Referral:
    """The referral one of ``organizations`` owns, as the API names it (its business id, and
    its sender where two senders use that id: ReferralAmbiguous else); ReferralNotFound
    otherwise (another organization's referral is not disclosed to exist)."""
    return _owned(session, named(referral), str(referral), organizations)


def owned_referral_by_key(
    session: Session, referral_key: int, organizations: tuple[str, ...]
) -> models.Referral:
    """The same by the referral's row key (``Referral.id``, the number in the tracker's URLs)."""
    return _owned(session, named(referral_key), str(referral_key), organizations)


def _owned(
    session: Session, by: ColumnElement[bool], name: str, organizations: tuple[str, ...]
) -> models.Referral:
    query = select(models.Referral).where(by, models.Referral.iop_organization.in_(organizations))
    referral = repo.only_match(session.scalars(query.limit(2)).all(), name)
    if referral is None:
        raise ReferralNotFound(f"no referral {name!r} of your organization")
    return referral


def claim_form(session: Session, form_id: str, referral: models.Referral, action: str) -> bool:
    """Record a form's one-time id in the caller's transaction; False when that form was
    already submitted (a double click): the caller then acts no more.

    One INSERT ... ON CONFLICT DO NOTHING, not a SAVEPOINT: with pysqlite a SAVEPOINT that is
    the transaction's first write runs outside any BEGIN, and releasing it committed the form
    id even when the action was then refused and rolled back. A concurrent twin's insert
    waits for the first one's transaction and then finds the id there (no row inserted).
    """
    insert = dialect_insert(session.get_bind().dialect.name)(TrackerSubmission)
    claimed = session.connection().execute(
        insert.values(form_id=form_id, referral_id=referral.id, action=action)
        .on_conflict_do_nothing(index_elements=["form_id"])
        .returning(TrackerSubmission.form_id)
    )
    return claimed.first() is not None


@dataclass(frozen=True, slots=True)
class Offered:
    """What the referral's state allows now."""

    actions: frozenset[str]

    def __contains__(self, action: object) -> bool:
        return action in self.actions


def offered(session: Session, referral: models.Referral, *, mapped: bool) -> Offered:
    """Accept/decline while requested (only decline when its package did not map); schedule
    and sessions while accepted or in progress (sessions also after completion); reconcile
    while active or completed; discharge once reconciled; neither after the discharge."""
    status, found = referral.status, set()
    if status == "requested":
        found |= {ACCEPT, DECLINE} if mapped else {DECLINE}
    if status in step_down.ACTIVE:
        found |= {SCHEDULE, SESSION}
    if status == "completed":
        found.add(SESSION)
    if mapped and status in (*step_down.ACTIVE, "completed"):
        discharged = session.scalar(
            select(models.DischargeRecord.id).where(
                models.DischargeRecord.referral_id == referral.id
            )
        )
        if discharged is None:
            found.add(RECONCILE)
            if current_list(session, referral, ListSource.RECONCILED) is not None:
                found.add(DISCHARGE)  # the discharge summary carries the reconciled list
    return Offered(frozenset(found))


def _record_discharge_date(
    referral: models.Referral, link: ReferralLink | None, given: date, at: datetime
) -> None:
    """The case manager's residential discharge date, where the package gave none."""
    known = referral.residential_discharge_date
    if known is not None and known != given:
        detail = f"the package states {known.isoformat()}: the sender's date is kept"
        raise InvalidInputError.from_problems("the accept", [Problem(DISCHARGE_DATE, detail)])
    # a day of slack: the program's calendar may run ahead of UTC
    if given > at.date() + timedelta(days=1):
        detail = "must not be in the future: the date the client left residential care"
        raise InvalidInputError.from_problems("the accept", [Problem(DISCHARGE_DATE, detail)])
    referral.residential_discharge_date = given
    if link is not None and link.package_summary:  # the page's "needs attention" is answered
        attention = [a for a in link.package_summary.get("attention", []) if a != NO_DATE_ATTENTION]
        link.package_summary = {**link.package_summary, "attention": attention}


# --- parsing ----------------------------------------------------------------------------------


def _decline(fields: Mapping[str, str | None], problems: list[Problem]) -> Decline | None:
    reason = _text(fields, "reason")
    note = _text(fields, "note")
    if reason is None:
        problems.append(Problem("reason", "choose why the referral is declined", "required"))
    elif reason not in DECLINE_REASONS:
        problems.append(Problem("reason", f"{reason!r} is not one of {', '.join(DECLINE_REASONS)}"))
    if reason == "other" and note is None:
        problems.append(Problem("note", "say why when the reason is 'other'", "required"))
    if note is not None and len(note) > MAX_NOTE:
        problems.append(Problem("note", f"at most {MAX_NOTE} characters"))
    return Decline(reason, note) if reason is not None and reason in DECLINE_REASONS else None


def _schedule(fields: Mapping[str, str | None], problems: list[Problem]) -> ScheduleIntake | None:
    on = _date(fields, "date", problems, required=True)
    at_time = _time(fields, "time", problems, required=False)
    delivery = _choice(fields, "delivery", encounter.Delivery, problems)
    if on is None or delivery is None:
        return None
    return ScheduleIntake(on, at_time, delivery)


def _session(
    fields: Mapping[str, str | None], zone: ZoneInfo, problems: list[Problem]
) -> RecordSession | None:
    on = _date(fields, "date", problems, required=True)
    start = _time(fields, "time", problems, required=True)
    kind = _choice(fields, "kind", encounter.SessionKind, problems)
    delivery = _choice(fields, "delivery", encounter.Delivery, problems)
    attendance = _choice(fields, "attendance", encounter.Attendance, problems)
    if attendance is encounter.Attendance.SCHEDULED:
        problems.append(Problem("attendance", "record a session that took place or was missed"))
    minutes = _minutes(fields, problems)
    if None in (on, start, kind, delivery, attendance, minutes) or problems:
        return None
    assert on and start and kind and delivery and attendance and minutes
    return RecordSession(
        kind, delivery, attendance, datetime.combine(on, start, tzinfo=zone), minutes
    )


def _text(fields: Mapping[str, str | None], name: str) -> str | None:
    value = fields.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _date(
    fields: Mapping[str, str | None], name: str, problems: list[Problem], *, required: bool
) -> date | None:
    text = _text(fields, name)
    if text is None:
        if required:
            problems.append(Problem(name, "is required (YYYY-MM-DD)", "required"))
        return None
    try:
        found = date.fromisoformat(text)
    except ValueError:
        problems.append(Problem(name, f"{text[:40]!r} is not a date (YYYY-MM-DD)"))
        return None
    if not date(2000, 1, 1) <= found <= date(2100, 12, 31):
        problems.append(Problem(name, "must be between 2000-01-01 and 2100-12-31"))
        return None
    return found


def _time(
    fields: Mapping[str, str | None], name: str, problems: list[Problem], *, required: bool
) -> time | None:
    text = _text(fields, name)
    if text is None:
        if required:
            problems.append(Problem(name, "is required (HH:MM)", "required"))
        return None
    try:
        return time.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        problems.append(Problem(name, f"{text[:40]!r} is not a time of day (HH:MM)"))
        return None


def _choice(
    fields: Mapping[str, str | None], name: str, kind: type[E], problems: list[Problem]
) -> E | None:
    text = _text(fields, name)
    allowed = ", ".join(member.value for member in kind)
    if text is None:
        problems.append(Problem(name, f"is required (one of {allowed})", "required"))
        return None
    try:
        return kind(text)
    except ValueError:
        problems.append(Problem(name, f"{text[:40]!r} is not one of {allowed}"))
        return None


def _minutes(fields: Mapping[str, str | None], problems: list[Problem]) -> int | None:
    text = _text(fields, "minutes")
    if text is None or not text.isdigit() or not 1 <= int(text) <= MAX_SESSION_MINUTES:
        problems.append(
            Problem("minutes", f"must be a whole number from 1 to {MAX_SESSION_MINUTES}")
        )
        return None
    return int(text)
