"""Workflow 1, the step-down referral: take in the residential program's Task and package, and
close the loop on that Task (SDOHCC Task pattern, BSeR businessStatus; reference 1.1-1.2).

Inbound, in two steps so that no database transaction waits on the network:
``package_fetch.prepare`` (async) reads and maps the package of a new ``requested`` Task owned by
the IOP; ``on_task_changed`` (one transaction, with the inbound de-duplication row) stores the
referral with its intake, assessments and discharge medication list. A package that fails to map
is stored as a ``requested`` referral listing its problems (referral_link.problems): the case
manager sees it and can only decline it, with those problems as the reason.

Case-manager actions (accept, decline, schedule_intake, record_session) each change the referral
and enqueue the Task change in the caller's one transaction (the caller owns it: session_scope).
Only the performer's elements of the Task are sent (status, statusReason, businessStatus,
lastModified, output: SDOHCC), merged onto the newest version by the worker (OWNED_FIELDS).
All messages of a referral share its aggregate key (its row key), so they reach the server
in order.

The first attended session completes the Task with Task.output pointing at the session's
Encounter. The Encounter's server id is a pure function of its business identifier
(``task_outbox.encounter_id``) and it is written by PUT to that id (create-or-update,
idempotent), so the Task's output can name it when both messages are enqueued, and the
Encounter message is delivered first (same aggregate). A conditional create cannot do this: its
id is only known after delivery, and HAPI ignores the body id of a conditional update that
creates (checked on 8.8.0).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_profiles.terminology import workflow
from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.fhir.client import FhirClient
from integration.privacy import audit
from integration.referrals.package import (
    TaskChange,
    copy_task,
    settle_references,
    store_referral,
    task_version,
)
from integration.referrals.package_fetch import prepare
from integration.referrals.task_outbox import enqueue_encounter, enqueue_task_change
from integration.workflow_errors import ReferralActionRefused, ReferralNotFound
from mappers import encounter, task_trust
from mappers.errors import InvalidInputError, Problem, raise_if_problems
from mappers.referral_task import (
    IllegalTransitionError,
    ReferralTask,
    allowed_next,
    intake_scheduled_note,
    reason_problems,
    transition,
)
from mappers.registry import MappingContext

log = logging.getLogger(__name__)

ACTIVE = frozenset({"accepted", "in-progress"})
# What accept names when the package gave no residential discharge date (R4: the residential
# Encounter's period.end) and no case manager recorded it.
NO_DISCHARGE_DATE_PATH = "Encounter.period.end"
NO_DISCHARGE_DATE = (
    "the residential discharge date is missing: the 7- and 30-day follow-up windows cannot be "
    "computed; record the date the client left residential care (residential_discharge_date) "
    "to accept, or decline"
)

Apply = Callable[[Session, datetime], str | None]  # returns a refusal's reason code


def task_handler(
    fhir: FhirClient, context: MappingContext, organization: str
) -> Callable[[Mapping[str, Any]], Awaitable[Apply]]:
    """The inbound handler of workflow 1: prepare (I/O), then a step for the inbound transaction."""

    async def handle(task: Mapping[str, Any]) -> Apply:
        change = await prepare(fhir, context, organization, task)
        return lambda session, now: on_task_changed(session, change, now=now, context=context)

    return handle


def on_task_changed(
    session: Session, change: TaskChange, *, now: datetime, context: MappingContext | None = None
) -> str | None:
    """Store a new referral, or take over the requester's change of a known one (flushes).
    Returns the reason code when the change was refused (the caller keeps it on the event)."""
    if change.identifier is None:
        log.warning("Task/%s has no business identifier: ignored", change.task.get("id"))
        return None
    system, value = change.identifier
    query = select(ReferralLink).where(
        ReferralLink.task_identifier_system == system, ReferralLink.task_identifier_value == value
    )
    if change.mapped is not None:  # the sender's identifier is the sender's (its requester)
        query = query.where(ReferralLink.requester == change.mapped.requester)
    link = session.scalar(query.order_by(ReferralLink.id).limit(1))
    if link is not None:
        return _take_remote_change(session, link, change, now, context or MappingContext())
    if change.refused is not None:
        return change.refused  # not addressed to the IOP (package_fetch logged why)
    if change.fetched:
        store_referral(session, change, now)
    return None


def _take_remote_change(
    session: Session, link: ReferralLink, change: TaskChange, now: datetime, context: MappingContext
) -> str | None:
    """Follow the requester's cancel on the referral's own Task (mappers.task_trust decides);
    ignore echoes of our own writes and stale versions; keep and audit anything refused."""
    referral = session.get(models.Referral, link.referral_id)
    assert referral is not None
    # An API submission learns its Task's server id from the server's answer to our delivery.
    settle_references(session, referral, link, context)
    server_id = change.task.get("id")
    verdict = task_trust.judge(
        _known_task(referral, link), str(server_id) if server_id else None, change.mapped
    )
    if verdict.reason is not None:
        _audit_refusal(session, referral, link, change, verdict.reason)
        return verdict.reason.value
    version = task_version(change.task)
    if _older(version, referral.task_version_id):
        return None  # a late notification of a version we have already seen past
    repo.record_task_version(
        session, referral, server_id=referral.task_server_id or "", version_id=version
    )
    remote = change.mapped
    if verdict.decision is not task_trust.Decision.TAKE or remote is None:
        return None
    try:
        _move(
            referral,
            link,
            remote.status,
            at=max(now, link.last_modified or now),
            reason=remote.status_reason,
            business=remote.business_status,
        )
    except InvalidInputError:
        log.warning("referral %s: remote %s -> %s not taken over", referral.id,
                    referral.status, remote.status)  # fmt: skip
        return None
    session.flush()
    log.info("referral %s: %s by the referring program", referral.id, remote.status)
    return None


def _known_task(referral: models.Referral, link: ReferralLink) -> task_trust.KnownTask:
    """What the trust rule compares an inbound Task with: the referral's own Task."""
    return task_trust.KnownTask(
        server_id=referral.task_server_id or None,
        focus=link.service_request,
        requester=link.requester,
        owner=link.owner,
        status=referral.status,
        ours=task_trust.Party.OWNER,  # a step-down referral is owned by the IOP
    )


def _audit_refusal(
    session: Session,
    referral: models.Referral,
    link: ReferralLink,
    change: TaskChange,
    reason: task_trust.Refusal,
) -> None:
    """Audit the refusal in the inbound transaction (the inbound engine keeps its reason on
    the version's event row)."""
    entity = audit.Entity("Task", link.task_identifier_value, link.task_identifier_system)
    denied = audit.event(audit.TASK_CHANGE, entity, outcome=audit.DENIED,
                         organization=referral.iop_organization, reason=reason.value)  # fmt: skip
    audit.record(session, denied)
    # ids and the reason code only: the Task's text may quote the client (PHI)
    log.warning("referral %s: Task/%s refused (%s)", referral.id, change.task.get("id"), reason)


# --- Case-manager actions: each changes the referral and enqueues the Task change -------------


def accept(session: Session, referral_key: int, *, at: datetime) -> models.Referral:
    """Accept: Task accepted, businessStatus 3.0 (the owner stays the IOP). ``referral_key`` is
    the database id (Referral.id). Refused without the residential discharge date: the HEDIS
    FUI 7- and 30-day follow-up windows the IOP is accepting to meet start from it (a case
    manager can record it with the accept: ``referrals.actions``)."""
    referral, link = _load(session, referral_key)
    if link.problems:
        detail = f"its package has {len(link.problems)} mapping problems: decline it with them"
        raise ReferralActionRefused(
            "the referral cannot be accepted", problems=[Problem("referral", detail)]
        )
    if referral.residential_discharge_date is None:
        raise ReferralActionRefused(
            "the referral cannot be accepted without the residential discharge date",
            problems=[Problem(NO_DISCHARGE_DATE_PATH, NO_DISCHARGE_DATE, "required")],
        )
    _move(referral, link, "accepted", at=at, business=workflow.BSER_ACCEPTED.code)
    repo.record_decision(session, referral, decision=models.Decision.ACCEPTED, reason=None, at=at)
    enqueue_task_change(session, referral, link)
    audit.referral_changed(session, referral, audit.ACCEPT)
    return referral


def decline(
    session: Session, referral_key: int, reason: str | None, *, at: datetime
) -> models.Referral:
    """Decline: Task rejected with statusReason.text = ``reason`` (required), businessStatus 4.0.
    ``referral_key`` is the database id (Referral.id)."""
    if reason is None or not reason.strip():
        problem = Problem("reason", "is required to decline a referral", "required")
        raise InvalidInputError("a decline needs a reason", problems=[problem])
    referral, link = _load(session, referral_key)
    _move(referral, link, "rejected", at=at, reason=reason, business=workflow.BSER_DECLINED.code)
    repo.record_decision(session, referral, decision=models.Decision.DECLINED, reason=reason, at=at)
    enqueue_task_change(session, referral, link)
    audit.referral_changed(session, referral, audit.DECLINE)
    return referral


def schedule_intake(
    session: Session,
    referral_key: int,
    when: date,
    *,
    at: datetime,
    at_time: time | None = None,
    delivery: str | None = None,
) -> models.Intake:
    """The intake appointment is set: intake.scheduled_date (and its program-local time and
    delivery when given), Task businessStatus 5.1.1. ``referral_key`` is the database id."""
    referral, link = _load(session, referral_key)
    _require_active(referral, "scheduling the intake")
    _move(referral, link, referral.status, at=at, business=workflow.BSER_EVENT_SCHEDULED.code)
    intake = repo.schedule_intake(session, referral, on=when, at_time=at_time, delivery=delivery)
    # BSeR 5.1.1 says that the event is scheduled; the dated note says when.
    enqueue_task_change(session, referral, link, note=intake_scheduled_note(when, at=at))
    audit.referral_changed(session, referral, audit.SCHEDULE_INTAKE)
    return intake


def record_session(
    session: Session,
    referral_key: int,
    iop_session: encounter.Session,
    *,
    at: datetime,
    context: MappingContext | None = None,
) -> models.SessionRecord:
    """Store a session and send its Encounter; a no-show is businessStatus 5.1.2, the first
    attended session completes the Task (7.0) with Task.output -> that Encounter.
    ``referral_key`` is the database id (Referral.id)."""
    context = context or MappingContext()
    referral, link = _load(session, referral_key)
    completed = referral.status == "completed"  # later sessions are kept; the loop is closed
    if not completed:
        _require_active(referral, "recording a session")
    _refuse_duplicate_session(session, iop_session.identifier)
    intake = session.scalar(select(models.Intake).where(models.Intake.referral_id == referral.id))
    first_attended = intake is None or intake.first_attended_date is None
    record = repo.record_session(
        session,
        referral,
        business_id=iop_session.identifier,
        starts_at=iop_session.start,
        ends_at=iop_session.end,
        attendance=models.Attendance(iop_session.attendance.value),
        intake=intake,
    )
    target = enqueue_encounter(session, referral, link, iop_session, context)
    if not completed and _session_moves_task(
        referral, link, iop_session, first_attended, target, at
    ):
        enqueue_task_change(session, referral, link)
    held = audit.Entity("Encounter", iop_session.identifier, context.session_id_system)
    audit.changed(session, audit.RECORD_SESSION, held, organization=referral.iop_organization)
    return record


def _session_moves_task(
    referral: models.Referral,
    link: ReferralLink,
    iop_session: encounter.Session,
    first_attended: bool,
    target: str,
    at: datetime,
) -> bool:
    """No-show: 5.1.2, the Task stays open. First attendance: in-progress (5.1.4), then
    completed (7.0) with Task.output -> the Encounter. True when the Task changed."""
    if iop_session.attendance is encounter.Attendance.NO_SHOW:
        _move(referral, link, referral.status, at=at, business=workflow.BSER_EVENT_UNATTENDED.code)
        return True
    if iop_session.attendance is not encounter.Attendance.ATTENDED or not first_attended:
        return False
    if referral.status == "accepted":  # the service started; one message carries the end state
        _move(referral, link, "in-progress", at=at, business=workflow.BSER_EVENT_COMPLETED.code)
    done = workflow.BSER_FULFILLMENT_COMPLETED.code
    _move(referral, link, "completed", at=at, activity=target, business=done)
    return True


# --- Steps ----------------------------------------------------------------------------------------


def _load(session: Session, referral_key: int) -> tuple[models.Referral, ReferralLink]:
    referral = session.get(models.Referral, referral_key)
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral_key))
    if referral is None or link is None:
        raise ReferralNotFound(f"no referral {referral_key}")
    return referral, link


def _require_active(referral: models.Referral, action: str) -> None:
    if referral.status not in ACTIVE:
        detail = f"{action} needs an accepted referral; it is {referral.status}"
        raise ReferralActionRefused(detail, problems=[Problem("Task.status", detail)])


def _refuse_duplicate_session(session: Session, business_id: str) -> None:
    query = select(models.SessionRecord.id).where(models.SessionRecord.business_id == business_id)
    if session.scalar(query) is not None:
        problem = Problem("Session.identifier", "this session is already recorded")
        raise ReferralActionRefused("duplicate session", problems=[problem])


def _move(
    referral: models.Referral,
    link: ReferralLink,
    status: str,
    *,
    at: datetime,
    reason: str | None = None,
    business: str | None = None,
    activity: str | None = None,
) -> None:
    """Validate a Task.status change with the referral state machine, then record it."""
    current = _task_of(referral, link)
    if current is not None:
        moved = transition(
            current,
            status,
            at=at,
            reason=reason,
            business_status=business,
            resulting_activity=activity,
        )
        copy_task(link, moved)
    else:
        # The Task itself did not map (only declining is possible): the same table, by status.
        if status not in allowed_next(referral.status):
            detail = f"{referral.status} -> {status} is not allowed"
            raise IllegalTransitionError(
                f"illegal Task.status transition {referral.status} -> {status}",
                problems=[Problem("Task.status", detail, "business-rule")],
            )
        raise_if_problems("Task change", reason_problems(status, reason, "reason"))
        link.status_reason, link.business_status, link.last_modified = reason, business, at
    referral.status = status


def _task_of(referral: models.Referral, link: ReferralLink) -> ReferralTask | None:
    """The referral's Task as the state machine sees it; None when the Task did not map."""
    if not (link.service_request and link.patient and link.requester and link.authored_on):
        return None
    return ReferralTask(
        link.task_identifier_value,
        referral.status,
        link.service_request,
        link.patient,
        link.requester,
        link.authored_on,
        link.last_modified,
        link.owner,
        link.status_reason,
        link.business_status,
        link.resulting_activity,
    )


def _older(version: str | None, known: str | None) -> bool:
    # HAPI's versionIds count up from 1; compare as numbers when both are.
    if version is None or known is None or not (version.isdigit() and known.isdigit()):
        return False
    return int(version) <= int(known)
