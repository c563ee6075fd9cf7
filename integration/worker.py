"""Outbox worker: claim due messages, deliver each to the FHIR server, settle, record sync state.

Several workers (in one process or many) may share one PostgreSQL database: claiming is
exclusive (integration.outbox). A worker killed mid-delivery leaves its messages in flight until
their lease ends; another worker then delivers them again, which is safe because every payload
is a conditional write keyed on a business identifier (integration.delivery). A message is
settled only after its delivery attempt, and only while its claim is still this worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from integration.db.outbox_table import OutboxStatus
from integration.delivery import (
    Deliver,
    DeliveredEntry,
    MalformedMessage,
    business_identifier,
    deliver_message,
)
from integration.errors import FhirError, FhirRateLimited
from integration.fhir_client import FhirClient
from integration.logging_setup import Safe
from integration.outbox import (
    DEFAULT_LEASE_SECONDS,
    Backoff,
    ClaimedMessage,
    claim_batch,
    exponential_backoff,
    mark_delivered,
    mark_failed,
    release,
)
from integration.store import SyncUpdate, record_syncs, session_scope

__all__ = [  # delivery's names stay importable from here, where callers have found them
    "Deliver",
    "DeliveredEntry",
    "MalformedMessage",
    "WorkerStats",
    "business_identifier",
    "deliver_message",
    "describe_error",
    "run_worker",
]

log = logging.getLogger(__name__)

# A claim may take about this share of the time spent sending what it claimed: bigger claims
# for quick sends (fewer transactions), single ones for slow sends (nothing held idle).
CLAIM_SHARE = 0.1
MOVING_AVERAGE_WEIGHT = 0.3  # of the newest send or claim duration


@dataclass(slots=True)
class WorkerStats:
    """What one run of a worker did, for logs and tests."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    lease_lost: int = 0


async def run_worker(
    engine: Engine,
    fhir_client: FhirClient,
    *,
    worker_id: str,
    stop_event: asyncio.Event,
    batch_size: int = 10,
    poll_interval: float = 1.0,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    deliver: Deliver | None = None,
    backoff: Backoff = exponential_backoff,
) -> WorkerStats:
    """Deliver outbox messages until ``stop_event`` is set; returns what was done.

    The worker's one request in flight is its throughput, so the database work happens beside
    it: a sent message is settled in the background while the next one is sent, and the next
    claim is made while the last claimed message is being sent. At most ``batch_size``
    messages are held at once (claimed and waiting, being sent, or sent and not yet settled).
    """
    send = deliver or deliver_message
    stats = WorkerStats()
    settler = _Settler(engine, backoff, stats)
    claims = _Claims(engine, worker_id, batch_size, lease_seconds, settler, stop_event)
    try:
        while not stop_event.is_set():
            message = await claims.next()
            if message is None:
                await _wait(stop_event, poll_interval)
                continue
            started = time.perf_counter()
            attempt = await _attempt(fhir_client, message, send)
            claims.sent(time.perf_counter() - started)
            settler.submit(attempt)
    finally:
        try:
            await claims.close()  # hands back what was claimed and not started
        finally:
            await settler.close()  # settles what was sent
    return stats


def describe_error(exc: Exception) -> Safe:
    """Status code, HAPI codes and the error class: never the server's text, which may hold PHI.

    The class's docstring is ours; the codes are ``HAPI-nnnn`` tokens matched by a pattern
    (integration.errors). So the result is logged as is (``Safe``) and stored as last_error.
    """
    summary = (type(exc).__doc__ or "").strip().splitlines()
    text = f"{type(exc).__name__}: {summary[0]}" if summary else type(exc).__name__
    if isinstance(exc, FhirError):
        codes = " ".join(exc.hapi_codes)
        text = " ".join(part for part in (str(exc.status or "-"), codes, text) if part)
    return Safe(text)


async def _attempt(fhir: FhirClient, message: ClaimedMessage, send: Deliver) -> _Attempt:
    """Send one message; any failure is kept for its settle, none ends the worker."""
    try:
        return _Attempt(message, await send(fhir, message), None)
    except Exception as exc:  # every failure is settled on the message; none ends the loop
        return _Attempt(message, (), exc)


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One sent message and how it went, waiting to be settled."""

    message: ClaimedMessage
    delivered: Sequence[DeliveredEntry]
    failure: Exception | None


@dataclass(frozen=True, slots=True)
class _Settled:
    """What settling did: the new status, or None when the lease had been taken over."""

    attempt: _Attempt
    status: OutboxStatus | None
    error: Safe | None


class _Claims:
    """The worker's claimed messages not started yet, and the claim of the next ones.

    The next claim starts about two claims' time before the send in progress is expected to
    end, so the worker does not wait for it and, when the outbox runs low, the last messages go
    to whichever worker is about to be free. A claim takes as many messages as keep the
    database's time at about a tenth of the time spent sending them, never more than brings the
    worker to ``batch_size`` held. A claim runs as a task that is awaited shielded, so a worker
    cancelled meanwhile still gets its messages and hands them back (``close``).
    """

    def __init__(
        self,
        engine: Engine,
        worker_id: str,
        batch_size: int,
        lease_seconds: float,
        settler: _Settler,
        stop_event: asyncio.Event,
    ) -> None:
        self._engine, self._worker_id, self._settler = engine, worker_id, settler
        self._stop_event = stop_event
        self._batch_size, self._lease_seconds = batch_size, lease_seconds
        self._queue: deque[ClaimedMessage] = deque()
        self._next: asyncio.Task[list[ClaimedMessage]] | None = None
        self._due_now = asyncio.Event()  # the next claim is needed at once (or not at all)
        self._closing = False
        self._send_s: float | None = None  # moving averages of a send and of a claim
        self._claim_s: float | None = None

    def sent(self, seconds: float) -> None:
        """Note how long a send took (for when and how much to claim next)."""
        self._send_s = _moving_average(self._send_s, seconds)

    async def next(self) -> ClaimedMessage | None:
        """The next message to send, claiming if need be; None when none is due."""
        if not self._queue and self._next is not None:
            self._queue.extend(await self._take_next())
        if not self._queue:
            # Our own settles first: a delivered message makes its aggregate's next one due.
            await self._settler.drain()
            self._next = asyncio.create_task(self._claim(sending=0))
            self._queue.extend(await self._take_next())
        if not self._queue:
            return None
        message = self._queue.popleft()
        if not self._queue:
            self._due_now.clear()
            self._next = asyncio.create_task(self._claim_later())
        return message

    async def close(self) -> None:
        """Hand back every claimed message not started (the worker is stopping)."""
        self._closing = True
        self._due_now.set()
        if self._next is not None:
            next_batch, self._next = self._next, None
            self._queue.extend(await next_batch)
        if self._queue:
            await asyncio.to_thread(_release_all, self._engine, list(self._queue))
            self._queue.clear()

    async def _take_next(self) -> list[ClaimedMessage]:
        assert self._next is not None
        self._due_now.set()  # needed now: a claim still waiting for its time starts at once
        batch = await asyncio.shield(self._next)
        self._next = None
        return batch

    async def _claim_later(self) -> list[ClaimedMessage]:
        if self._send_s is not None and self._claim_s is not None:
            with contextlib.suppress(TimeoutError):
                lead = self._send_s - 2 * self._claim_s
                await asyncio.wait_for(self._due_now.wait(), timeout=max(lead, 0.0))
        if self._closing or self._stop_event.is_set():
            return []  # stopping: claim nothing that would only be handed back
        return await self._claim(sending=1)

    async def _claim(self, *, sending: int) -> list[ClaimedMessage]:
        room = self._batch_size - len(self._queue) - sending - self._settler.held
        limit = min(room, self._claim_size())
        if limit < 1:
            return []
        started = time.perf_counter()
        try:
            batch = await asyncio.to_thread(
                claim_batch, self._engine, self._worker_id, limit, self._lease_seconds
            )
        except SQLAlchemyError as exc:
            # The database is briefly unavailable or busy (SQLite "database is locked").
            log.warning("worker %s: claim failed (%s)", self._worker_id, type(exc).__name__)
            return []
        self._claim_s = _moving_average(self._claim_s, time.perf_counter() - started)
        return batch

    def _claim_size(self) -> int:
        if self._send_s is None or self._claim_s is None:
            return 1  # nothing measured yet: hold as little as possible
        return max(1, math.ceil(self._claim_s / (CLAIM_SHARE * max(self._send_s, 1e-6))))


class _Settler:
    """Settles sent messages in the background: all that are waiting in one transaction."""

    def __init__(self, engine: Engine, backoff: Backoff, stats: WorkerStats) -> None:
        self._engine, self._backoff, self._stats = engine, backoff, stats
        self._waiting: list[_Attempt] = []
        self._committing = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """Messages sent and not settled yet."""
        return len(self._waiting) + self._committing

    def submit(self, attempt: _Attempt) -> None:
        """Queue ``attempt`` for settling; raises what made an earlier settle fail."""
        if self._task is not None and self._task.done():
            self._task.result()  # a bug, not a database error: surface it, as a crash would
            self._task = None
        self._waiting.append(attempt)
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def drain(self) -> None:
        """Wait until everything submitted is settled."""
        if self._task is not None:
            # shielded: a cancelled worker still commits the settles of what it delivered
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Settle everything submitted; the worker is stopping."""
        await self.drain()

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            self._committing = len(batch)
            try:
                await asyncio.to_thread(
                    _settle_all, self._engine, batch, self._backoff, self._stats
                )
            finally:
                self._committing = 0


def _settle_all(
    engine: Engine, attempts: Sequence[_Attempt], backoff: Backoff, stats: WorkerStats
) -> None:
    """Settle sent messages in one transaction; if that fails, each in its own."""
    try:
        with session_scope(engine) as session:
            updates = [u for a in attempts if a.failure is None for u in _sync_updates(a)]
            record_syncs(session, updates)
            settled = [_settle(session, attempt, backoff) for attempt in attempts]
    except SQLAlchemyError as exc:
        if len(attempts) > 1:
            for attempt in attempts:  # one bad message does not cost the others their settle
                _settle_all(engine, [attempt], backoff, stats)
            return
        # Not settled: the lease runs out and the message is delivered again (idempotently).
        message = attempts[0].message
        log.warning("outbox message %s: settling failed (%s)", message.id, type(exc).__name__)
        return
    for outcome in settled:
        _count(outcome, stats)


def _sync_updates(attempt: _Attempt) -> list[SyncUpdate]:
    return [
        SyncUpdate(
            resource_type=entry.outcome.resource_type,
            identifier=entry.identifier,
            server_id=entry.outcome.resource_id,
            version_id=entry.outcome.version_id,
            outcome=entry.label,
        )
        for entry in attempt.delivered
        if entry.identifier is not None
    ]


def _settle(session: Session, attempt: _Attempt, backoff: Backoff) -> _Settled:
    """Mark one sent message delivered, or failed with backoff or dead (flushes)."""
    message, exc = attempt.message, attempt.failure
    if exc is None:
        delivered = mark_delivered(session, message)
        return _Settled(attempt, OutboxStatus.DELIVERED if delivered else None, None)
    error = describe_error(exc)
    status = mark_failed(
        session,
        message,
        error=error,
        retryable=isinstance(exc, FhirError) and exc.retryable,
        backoff=backoff,
        retry_after=exc.retry_after if isinstance(exc, FhirRateLimited) else None,
    )
    return _Settled(attempt, status, error)


def _count(settled: _Settled, stats: WorkerStats) -> None:
    """Count and log one committed settle (ids, codes and the PHI-free error only)."""
    message = settled.attempt.message
    if settled.status is None:
        stats.lease_lost += 1
        if settled.attempt.failure is None:
            log.warning("outbox message %s: delivered after its lease was taken over", message.id)
    elif settled.status == OutboxStatus.DELIVERED:
        stats.delivered += 1
    elif settled.status == OutboxStatus.DEAD:
        stats.dead += 1
        log.error("outbox message %s (%s) is dead: %s", message.id, message.kind, settled.error)
    else:
        stats.retried += 1
        log.info(
            "outbox message %s: attempt %s failed: %s", message.id, message.attempts, settled.error
        )


def _moving_average(average: float | None, sample: float) -> float:
    return sample if average is None else average + MOVING_AVERAGE_WEIGHT * (sample - average)


def _release_all(engine: Engine, messages: Sequence[ClaimedMessage]) -> None:
    try:
        with session_scope(engine) as session:
            for message in messages:
                release(session, message)
    except SQLAlchemyError as exc:
        # Not released: their leases run out and another worker delivers them.
        log.warning("releasing %s claims failed (%s)", len(messages), type(exc).__name__)


async def _wait(stop_event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_event.wait(), timeout=seconds)
