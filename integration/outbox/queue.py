"""The transactional outbox: enqueue with the domain change, claim under a lease, then settle.

``enqueue`` writes in the caller's transaction, so the domain change and its message commit
together or not at all. Workers claim due messages in short transactions of their own:

- PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks rows no other worker holds, and the
  same transaction marks them in-flight with a lease, so concurrent workers never share a row.
- SQLite (one process): one ``UPDATE ... WHERE id IN (SELECT ...) RETURNING`` statement, atomic
  because SQLite runs one writer at a time.

A lease that runs out (the worker was killed) makes the message due again. Redelivery is safe
because every FHIR write is conditional on a business identifier. Settling is fenced by
(claimed_by, attempts): a worker whose lease was taken over cannot overwrite the new claim.
Messages of one aggregate are delivered in the order they were enqueued; a dead message holds
its aggregate's later ones until it is requeued (``requeue_dead``) after the cause is fixed.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    String,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from integration.db.base import UtcDateTime, utcnow
from integration.db.outbox_table import OutboxMessage, OutboxStatus
from integration.outbox import doorbell as outbox_doorbell

DEFAULT_MAX_ATTEMPTS = 8
# A claimed message's lease must outlast one delivery, including the FHIR client's own retries
# (up to retry_max_attempts requests, each up to http_timeout_seconds, plus backoff waits).
DEFAULT_LEASE_SECONDS = 600.0
MAX_ERROR_LENGTH = 200

Backoff = Callable[[int], float]


class MessageKind(StrEnum):
    """How a payload is sent: a whole transaction Bundle, or one Bundle.entry-shaped write."""

    TRANSACTION = "transaction"  # payload: Bundle of type transaction -> POST [base]
    RESOURCE = "resource"  # payload: {"resource", "request": {method, url, ifNoneExist}}
    # payload: {"resourceType", "identifier": {system, value}, "set": {element: value},
    #           "remove": [element], "add": {element: [item]}} -> read the one match, change only
    #           these elements (``add`` appends items not already there, for elements both sides
    #           write, such as Task.note), PUT with If-Match; on a version conflict re-read and
    #           re-apply (integration.fhir.concurrency)
    OWNED_FIELDS = "owned-fields"


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message a worker holds under a lease: what to send, and the claim that fences it."""

    id: int
    aggregate_type: str
    aggregate_key: str
    kind: str
    # not in the repr: a payload holds PHI, and reprs end up in tracebacks and error texts
    payload: dict[str, Any] = field(repr=False)
    attempts: int
    max_attempts: int
    claimed_by: str


def exponential_backoff(attempt: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before retry number ``attempt``: doubling from ``base``, capped, half-jittered."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    # jitter spreads retries of many messages failing together (e.g. a HAPI restart)
    return random.uniform(ceiling / 2, ceiling)


def enqueue(
    session: Session,
    *,
    aggregate_type: str,
    aggregate_key: str,
    kind: MessageKind,
    payload: Mapping[str, Any],
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    now: datetime | None = None,
) -> OutboxMessage:
    """Add a pending message in the caller's transaction (flushes, never commits)."""
    _check_payload(kind, payload)
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    moment = now or utcnow()
    message = OutboxMessage(
        aggregate_type=aggregate_type,
        aggregate_key=aggregate_key,
        kind=str(kind),
        payload=dict(payload),
        status=OutboxStatus.PENDING,
        attempts=0,
        max_attempts=max_attempts,
        next_attempt_at=moment,
        created_at=moment,
    )
    session.add(message)
    session.flush()
    outbox_doorbell.mark(session)  # its commit wakes a worker of this process (if any)
    return message


def claim_batch(
    engine: Engine,
    worker_id: str,
    limit: int,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    *,
    now: datetime | None = None,
) -> list[ClaimedMessage]:
    """Claim up to ``limit`` due messages for ``worker_id`` and commit the claim at once."""
    moment = now or utcnow()
    lease_end = moment + timedelta(seconds=lease_seconds)
    params = {"now": moment, "limit": limit, "worker": worker_id, "lease_end": lease_end}
    with engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        connection.execute(_statements(postgres).bury, {"now": moment})
        if postgres:
            rows = _claim_locked_rows(connection, params)
        else:
            rows = connection.execute(_statements(postgres).claim, params).all()
    claimed = [_claimed(row, worker_id) for row in rows]
    return sorted(claimed, key=lambda m: m.id)


def mark_delivered(
    session: Session, message: ClaimedMessage, *, now: datetime | None = None
) -> bool:
    """Settle as delivered; False when the lease was lost to another worker (flushes)."""
    return _settle(
        session,
        message,
        status=OutboxStatus.DELIVERED,
        delivered_at=now or utcnow(),
        last_error=None,
    )


def mark_failed(
    session: Session,
    message: ClaimedMessage,
    *,
    error: str,
    retryable: bool,
    backoff: Backoff = exponential_backoff,
    retry_after: float | None = None,
    now: datetime | None = None,
) -> OutboxStatus | None:
    """Reschedule with backoff, or dead-letter when not retryable or out of attempts.

    ``error`` must hold no PHI (status code, HAPI code, error class). Returns the new status,
    or None when the lease was lost to another worker.
    """
    moment = now or utcnow()
    if not retryable or message.attempts >= message.max_attempts:
        status = OutboxStatus.DEAD
        next_attempt_at = moment
    else:
        status = OutboxStatus.PENDING
        delay = max(backoff(message.attempts), retry_after or 0.0)
        next_attempt_at = moment + timedelta(seconds=delay)
    settled = _settle(
        session,
        message,
        status=status,
        next_attempt_at=next_attempt_at,
        last_error=error[:MAX_ERROR_LENGTH],
    )
    return status if settled else None


def release(session: Session, message: ClaimedMessage) -> bool:
    """Hand an unattempted claim back (worker stopping): pending again, the attempt not counted."""
    return _settle(
        session,
        message,
        status=OutboxStatus.PENDING,
        attempts=message.attempts - 1,
        next_attempt_at=utcnow(),
    )


def requeue_dead(session: Session, message_id: int, *, now: datetime | None = None) -> bool:
    """Give a dead message a fresh set of attempts (after the cause was fixed); flushes."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.DEAD)
        .values(status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return _rowcount(result) == 1


def count_by_status(session: Session) -> dict[str, int]:
    """How many messages are in each status (for health pages and tests)."""
    query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    return {status: count for status, count in session.execute(query)}


def _check_payload(kind: MessageKind, payload: Mapping[str, Any]) -> None:
    # Fail inside the caller's transaction, so a malformed message is never stored.
    if kind is MessageKind.TRANSACTION:
        if payload.get("resourceType") != "Bundle" or payload.get("type") != "transaction":
            raise ValueError("a transaction message needs a Bundle of type transaction")
    elif kind is MessageKind.RESOURCE:
        request = payload.get("request")
        if not isinstance(payload.get("resource"), Mapping) or not isinstance(request, Mapping):
            raise ValueError("a resource message needs 'resource' and 'request' (Bundle.entry)")
    elif kind is MessageKind.OWNED_FIELDS:
        identifier = payload.get("identifier")
        if not isinstance(payload.get("resourceType"), str) or not isinstance(identifier, Mapping):
            raise ValueError("an owned-fields message needs 'resourceType' and 'identifier'")
        if not isinstance(payload.get("set", {}), Mapping) or not isinstance(
            payload.get("remove", []), list
        ):
            raise ValueError("an owned-fields message needs 'set' (object) and 'remove' (list)")
        added = payload.get("add", {})
        if not isinstance(added, Mapping) or not all(isinstance(v, list) for v in added.values()):
            raise ValueError("an owned-fields message's 'add' maps elements to lists")
    else:
        raise ValueError(f"unknown outbox message kind {kind!r}")


def _due(now: ColumnElement[datetime]) -> ColumnElement[bool]:
    """Pending and due, or in-flight with a lease that ran out and attempts left."""
    m = OutboxMessage
    return or_(
        and_(m.status == OutboxStatus.PENDING, m.next_attempt_at <= now),
        and_(
            m.status == OutboxStatus.IN_FLIGHT,
            m.claimed_until < now,
            m.attempts < m.max_attempts,
        ),
    )


def _first_of_its_aggregate() -> ColumnElement[bool]:
    """Every earlier message of the same aggregate was delivered.

    A dead one holds the later ones back too: delivering them first and requeueing it later
    would write an older state over a newer one (e.g. a Task back to "accepted").
    """
    earlier = aliased(OutboxMessage)
    return ~exists().where(
        earlier.aggregate_type == OutboxMessage.aggregate_type,
        earlier.aggregate_key == OutboxMessage.aggregate_key,
        earlier.id < OutboxMessage.id,
        earlier.status != OutboxStatus.DELIVERED,
    )


def _claim_values() -> dict[str, Any]:
    return {
        "status": OutboxStatus.IN_FLIGHT,
        "claimed_by": bindparam("worker", type_=String),
        "claimed_until": bindparam("lease_end", type_=UtcDateTime()),
        "attempts": OutboxMessage.attempts + 1,
    }


@dataclass(frozen=True, slots=True)
class _Statements:
    """The claim's statements, built once per dialect and run with bound parameters: building
    them anew on every claim cost more CPU than running them (measured 4.6 ms a claim, most of
    it statement construction and cache-key generation), CPU the FHIR server shares."""

    bury: Any  # UPDATE: dead-letter exhausted leases
    pick: Any  # SELECT the due ids (PostgreSQL, locked)
    claim: Any  # UPDATE ... RETURNING (SQLite: select and mark in one statement)


@functools.cache
def _statements(postgres: bool) -> _Statements:
    now = bindparam("now", type_=UtcDateTime())
    due_ids = (
        select(OutboxMessage.id)
        .where(_due(now), _first_of_its_aggregate())
        .order_by(OutboxMessage.id)
        .limit(bindparam("limit", type_=Integer))
    )
    if postgres:
        # SKIP LOCKED: never wait on, or deadlock with, a peer's claim.
        due_ids = due_ids.with_for_update(skip_locked=True, of=OutboxMessage)
    claim = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due_ids.scalar_subquery()))
        .values(_claim_values())
        .returning(*_RETURNED)
    )
    return _Statements(bury=_bury_exhausted_leases(now, postgres), pick=due_ids, claim=claim)


_RETURNED = (
    OutboxMessage.id,
    OutboxMessage.aggregate_type,
    OutboxMessage.aggregate_key,
    OutboxMessage.kind,
    OutboxMessage.payload,
    OutboxMessage.attempts,
    OutboxMessage.max_attempts,
)


def _claimed(row: Any, worker_id: str) -> ClaimedMessage:
    return ClaimedMessage(
        id=row.id,
        aggregate_type=row.aggregate_type,
        aggregate_key=row.aggregate_key,
        kind=row.kind,
        payload=row.payload,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        claimed_by=worker_id,
    )


def _claim_locked_rows(connection: Connection, params: Mapping[str, Any]) -> Sequence[Any]:
    """PostgreSQL: lock due rows nobody else holds (SKIP LOCKED), then mark them in-flight."""
    ids = list(connection.scalars(_statements(True).pick, params))
    if not ids:
        return []
    claim = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(_claim_values())
        .returning(*_RETURNED)
    )
    return connection.execute(claim, params).all()


def _bury_exhausted_leases(now: ColumnElement[datetime], postgres: bool) -> Any:
    """Dead-letter messages whose last attempt's worker never came back (a crash loop)."""
    m = OutboxMessage
    exhausted = and_(
        m.status == OutboxStatus.IN_FLIGHT, m.claimed_until < now, m.attempts >= m.max_attempts
    )
    ids = select(m.id).where(exhausted)
    if postgres:
        ids = ids.with_for_update(skip_locked=True)  # never wait on, or deadlock with, a peer
    return (
        update(m)
        .where(m.id.in_(ids.scalar_subquery()))
        .values(status=OutboxStatus.DEAD, last_error="lease expired on the last attempt")
    )


def _settle(session: Session, message: ClaimedMessage, **values: Any) -> bool:
    """Apply ``values`` to the message if this claim still holds it (flushes)."""
    params = {f"v_{name}": value for name, value in values.items()}
    params |= {"m_id": message.id, "m_worker": message.claimed_by, "m_attempts": message.attempts}
    result = session.execute(_fenced_update(tuple(sorted(values))), params)
    session.flush()
    return _rowcount(result) == 1


@functools.cache
def _fenced_update(names: tuple[str, ...]) -> Any:
    """UPDATE of ``names`` fenced by the claim (id, in flight, same worker, same attempt), built
    once per set of names: a settle runs for every message, like a claim."""
    m, columns = OutboxMessage, OutboxMessage.__table__.c
    values = {name: bindparam(f"v_{name}", type_=columns[name].type) for name in names}
    return (
        update(m)
        .where(
            m.id == bindparam("m_id", type_=columns["id"].type),
            m.status == OutboxStatus.IN_FLIGHT,
            m.claimed_by == bindparam("m_worker", type_=columns["claimed_by"].type),
            m.attempts == bindparam("m_attempts", type_=columns["attempts"].type),
        )
        .values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )


def _rowcount(result: Any) -> int:
    # Session.execute is typed as Result; an UPDATE's result is a CursorResult with rowcount.
    return int(result.rowcount)
