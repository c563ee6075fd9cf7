"""The audit trail: one row per disclosure, state change and denied access (issue 5, item 5).

Who acted comes from the current ``Actor`` (a context variable: the API sets it per request from
the caller's Principal, the CLI may set its own; otherwise the service itself, ``iop-bridge``),
so the workflow services record an event with one line and no extra parameter.

State changes are recorded in the caller's transaction (``record``): the event exists exactly
when the change does. A *refusal* is recorded in a transaction of its own
(``record_independently``): the refused work rolls back, its audit event must not.

Every value is an id or a code, never PHI: ``mappers.audit_event.AuditRecord.problems`` refuses
anything else before a row is written.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from integration.db import models
from integration.db.audit_table import AuditEventRecord
from integration.db.base import utcnow
from integration.db.inbound_table import ReferralLink
from integration.db.store import session_scope
from mappers import audit_event
from mappers.audit_event import AuditRecord
from mappers.errors import raise_if_problems

log = logging.getLogger(__name__)

# Actions (mappers.audit_event.ACTIONS) and outcomes, as constants for the one-line calls.
DISCLOSE, ACCEPT, DECLINE = "disclose", "accept", "decline"
SCHEDULE_INTAKE, RECORD_SESSION, RECONCILE = "schedule-intake", "record-session", "reconcile"
DISCHARGE, AUTHENTICATE, ACCESS = "discharge", "authenticate", "access"
TASK_CHANGE = "task-change"
RECORD_CONSENT = "record-consent"
SUCCESS, DENIED, FAILURE = "success", "denied", "failure"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a principal's subject, role and organization (tenant key)."""

    subject: str
    role: str | None = None
    organization: str | None = None


SYSTEM = Actor(audit_event.OBSERVER)
_ACTOR: ContextVar[Actor] = ContextVar("iop_bridge_audit_actor", default=SYSTEM)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Attribute every event recorded inside the block to ``actor``."""
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)


def set_actor(actor: Actor) -> Token[Actor]:
    """Attribute this context's events (one request) to ``actor`` until ``reset_actor``."""
    return _ACTOR.set(actor)


def reset_actor(token: Token[Actor]) -> None:
    """Undo the ``set_actor`` that returned ``token``."""
    _ACTOR.reset(token)


def current_actor() -> Actor:
    """Who the events recorded now are attributed to."""
    return _ACTOR.get()


@dataclass(frozen=True, slots=True)
class Entity:
    """The record acted on: resource type, identifier system and business identifier."""

    type: str
    value: str
    system: str | None = None


def event(
    action: str,
    entity: Entity,
    *,
    outcome: str = SUCCESS,
    organization: str | None = None,
    reason: str | None = None,
    recipient: str | None = None,
    purpose: str | None = None,
    consent: str | None = None,
    at: datetime | None = None,
) -> AuditRecord:
    """An AuditRecord by the current actor; refused (ValueError-like) when it is not ids/codes."""
    actor = current_actor()
    record = AuditRecord(
        action=action, outcome=outcome, recorded=at or utcnow(), agent_subject=actor.subject,
        entity_type=entity.type, entity_id=entity.value, entity_system=entity.system,
        agent_role=actor.role, agent_organization=actor.organization,
        organization=organization, reason_code=reason, recipient=recipient, purpose=purpose,
        consent=consent,
    )  # fmt: skip
    raise_if_problems("AuditRecord", record.problems())
    return record


def record(session: Session, audited: AuditRecord) -> AuditEventRecord:
    """Write the event in the caller's transaction (flushes, never commits)."""
    row = _row(audited)
    session.add(row)
    session.flush()
    return row


def record_independently(bind: Session | Engine, audited: AuditRecord) -> None:
    """Write the event in a transaction of its own, so it survives the caller's rollback.

    With a session bound to a connection (a test's outer transaction) there is no second
    transaction to open: the event joins the caller's. A failure to write is logged (codes
    only) and swallowed: it must not replace the refusal the caller is about to raise."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    try:
        if isinstance(engine, Engine):
            with session_scope(engine) as own:
                record(own, audited)
        elif isinstance(bind, Session):
            record(bind, audited)
    except SQLAlchemyError as exc:
        log.error("audit event %s/%s not recorded (%s)", audited.action, audited.outcome,
                  type(exc).__name__)  # fmt: skip


def changed(session: Session, action: str, entity: Entity, *, organization: str | None) -> None:
    """Record a successful state change of ``entity`` in the caller's transaction."""
    record(session, event(action, entity, organization=organization))


def referral_changed(session: Session, referral: models.Referral, action: str) -> None:
    """Record a case-manager action on a referral (its Task, by the Task's business id)."""
    system = session.scalar(
        select(ReferralLink.task_identifier_system).where(ReferralLink.referral_id == referral.id)
    )
    changed(
        session,
        action,
        Entity("Task", referral.business_id, system),
        organization=referral.iop_organization,
    )


def _row(audited: AuditRecord) -> AuditEventRecord:
    return AuditEventRecord(
        recorded_at=audited.recorded, action=audited.action, outcome=audited.outcome,
        reason_code=audited.reason_code, agent_subject=audited.agent_subject,
        agent_role=audited.agent_role, agent_organization=audited.agent_organization,
        organization=audited.organization, entity_type=audited.entity_type,
        entity_system=audited.entity_system, entity_id=audited.entity_id,
        recipient=audited.recipient, purpose=audited.purpose, consent=audited.consent,
    )  # fmt: skip


def as_record(row: AuditEventRecord) -> AuditRecord:
    """The stored row as the pure AuditRecord (for the FHIR AuditEvent export)."""
    return AuditRecord(
        action=row.action, outcome=row.outcome, recorded=row.recorded_at,
        agent_subject=row.agent_subject, entity_type=row.entity_type, entity_id=row.entity_id,
        entity_system=row.entity_system, agent_role=row.agent_role,
        agent_organization=row.agent_organization, organization=row.organization,
        reason_code=row.reason_code, recipient=row.recipient, purpose=row.purpose,
        consent=row.consent,
    )  # fmt: skip


# --- the admin's query -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What to look for; None matches anything."""

    action: str | None = None
    outcome: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    agent_subject: str | None = None
    since: datetime | None = None  # recorded at or after
    until: datetime | None = None  # recorded before


def list_events(
    session: Session,
    *,
    organizations: Collection[str],
    where: AuditFilter = AuditFilter(),
    include_unscoped: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEventRecord], int]:
    """One page of the events of ``organizations`` (whose records, or whose principal acted;
    with ``include_unscoped`` also those of nobody's, e.g. a call without credentials), newest
    first, and how many match in all."""
    scope = (organizations, include_unscoped)
    query = _scoped(select(AuditEventRecord), scope, where)
    total = session.scalar(_scoped(select(func.count(AuditEventRecord.id)), scope, where))
    page = query.order_by(AuditEventRecord.recorded_at.desc(), AuditEventRecord.id.desc())
    rows = list(session.scalars(page.limit(limit).offset(offset)))
    return rows, int(total or 0)


def _scoped(
    query: Select[Any], scope: tuple[Collection[str], bool], where: AuditFilter
) -> Select[Any]:
    table = AuditEventRecord
    organizations, include_unscoped = list(scope[0]), scope[1]
    visible: list[ColumnElement[bool]] = [
        table.organization.in_(organizations),
        table.agent_organization.in_(organizations),
    ]
    if include_unscoped:
        visible.append(and_(table.organization.is_(None), table.agent_organization.is_(None)))
    query = query.where(or_(*visible))
    for column, value in (
        (table.action, where.action),
        (table.outcome, where.outcome),
        (table.entity_type, where.entity_type),
        (table.entity_id, where.entity_id),
        (table.agent_subject, where.agent_subject),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(table.recorded_at >= where.since)
    if where.until is not None:
        query = query.where(table.recorded_at < where.until)
    return query


def to_fhir_bundle(rows: Sequence[AuditEventRecord], total: int) -> dict[str, Any]:
    """A searchset Bundle of AuditEvents (ids ``audit-<row id>``) for export."""
    entries = [
        {"resource": audit_event.to_fhir(as_record(row), resource_id=f"audit-{row.id}")}
        for row in rows
    ]
    return {"resourceType": "Bundle", "type": "searchset", "total": total, "entry": entries}
