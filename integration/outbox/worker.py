"""Outbox worker: claim due messages, deliver them to the FHIR server, settle, record sync state.

One worker runs ``concurrency`` senders that share one feed of claimed messages and one settler,
so a process keeps that many requests in flight while its database work (claims, settles) is
batched across them. Several workers (in one process or many) may share one PostgreSQL database:
claiming is exclusive (integration.outbox.queue), and a claim never holds two messages of one
aggregate, so concurrent senders keep each aggregate's order. A worker killed mid-delivery leaves
its messages in flight until their lease ends; another worker then delivers them again, which is
safe because every payload is a conditional write keyed on a business identifier
(integration.outbox.delivery). A message is settled only after its delivery attempt, and only
while its claim is still this worker's. A worker polls for due messages, and one in the process that
enqueues is also woken by each enqueue's commit (integration.outbox.doorbell).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from integration.db.outbox_table import OutboxStatus
from integration.db.store import SyncUpdate, record_syncs, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirError, FhirRateLimited
from integration.outbox import doorbell as outbox_doorbell
from integration.outbox.delivery import (
    Deliver,
    DeliveredEntry,
    MalformedMessage,
    business_identifier,
    deliver_message,
)
from integration.outbox.queue import (
    DEFAULT_LEASE_SECONDS,
    Backoff,
    ClaimedMessage,
    claim_batch,
    exponential_backoff,
    mark_delivered,
    mark_failed,
    release,
)
from integration.privacy.logging_setup import Safe

# Called in a settle's transaction with the messages it marked delivered.
OnDelivered = Callable[[Session, Sequence[ClaimedMessage]], None]

__all__ = [  # delivery's names stay importable from here, where callers have found them
    "Deliver",
    "DeliveredEntry",
    "MalformedMessage",
    "OnDelivered",
    "WorkerStats",
    "business_identifier",
    "deliver_message",
    "describe_error",
    "run_worker",
]

log = logging.getLogger(__name__)

# How long a settle waits for more answers to commit with (see _Settler); short beside a
# request to a FHIR server, and the held messages stay within the batch size meanwhile.
SETTLE_LINGER_SECONDS = 0.03


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
    concurrency: int = 1,
    batch_size: int = 10,
    poll_interval: float = 1.0,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    deliver: Deliver | None = None,
    backoff: Backoff = exponential_backoff,
    on_delivered: OnDelivered | None = None,
) -> WorkerStats:
    """Deliver outbox messages until ``stop_event`` is set; returns what was done.

    ``concurrency`` senders each keep one request in flight; that is the worker's throughput, so
    the database work happens beside them: sent messages are settled in the background, several
    per transaction, and the next messages are claimed before a sender needs one. At most
    ``batch_size`` messages are held at once (claimed and waiting, being sent, or sent and not
    yet settled), so ``batch_size`` must be at least ``concurrency``. ``on_delivered`` runs in
    each settle's transaction with the messages it marked delivered (the features above the
    outbox record what the server's answers told them, such as a referral's server ids).
    """
    if concurrency < 1 or batch_size < concurrency:
        raise ValueError(
            f"worker concurrency must be at least 1 and at most the batch size, got "
            f"concurrency={concurrency}, batch_size={batch_size}"
        )
    send = deliver or deliver_message
    stats = WorkerStats()
    settler = _Settler(
        engine, backoff, stats, on_settled=lambda: feed.wake(), on_delivered=on_delivered,
        answers_due=lambda: feed.sending, gather=math.ceil(concurrency / 2),
        linger=SETTLE_LINGER_SECONDS,
    )  # fmt: skip
    feed = _Feed(
        engine, worker_id, settler, stop_event, concurrency=concurrency, batch_size=batch_size,
        lease_seconds=lease_seconds, poll_interval=poll_interval,
    )  # fmt: skip
    loop = asyncio.get_running_loop()

    def ring() -> None:  # called in the thread that committed an enqueue
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to wake
            loop.call_soon_threadsafe(feed.wake)

    hang_up = outbox_doorbell.listen(engine, ring)
    tasks = [asyncio.create_task(feed.run())]
    tasks += [
        asyncio.create_task(_send_until_stopped(feed, settler, fhir_client, send))
        for _ in range(concurrency)
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:  # after a failure or a cancellation: nothing keeps running
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hang_up()
        try:
            await feed.close()  # hands back what was claimed and not started
        finally:
            await settler.close()  # settles what was sent
    return stats


def describe_error(exc: Exception) -> Safe:
    """Status code, HAPI codes and the error class: never the server's text, which may hold PHI.

    The class's docstring is ours; the codes are ``HAPI-nnnn`` tokens matched by a pattern
    (integration.fhir.errors). So the result is logged as is (``Safe``) and stored as last_error.
    """
    summary = (type(exc).__doc__ or "").strip().splitlines()
    text = f"{type(exc).__name__}: {summary[0]}" if summary else type(exc).__name__
    if isinstance(exc, FhirError):
        codes = " ".join(exc.hapi_codes)
        text = " ".join(part for part in (str(exc.status or "-"), codes, text) if part)
    return Safe(text)


async def _send_until_stopped(
    feed: _Feed, settler: _Settler, fhir: FhirClient, send: Deliver
) -> None:
    """One sender: take a claimed message, send it, hand it to the settler; until stopped."""
    while (message := await feed.take()) is not None:
        try:
            attempt = _Attempt(message, await send(fhir, message), None)
        except Exception as exc:  # every failure is settled on the message; none ends the loop
            attempt = _Attempt(message, (), exc)
        feed.sent()  # first: the settler asks the feed how many other answers are due
        settler.submit(attempt)


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


class _Feed:
    """Claimed messages waiting for a sender, and the one loop that claims them.

    The loop claims when senders wait, or when fewer messages are ready than half the senders
    (so a sender that finishes finds its next message without waiting for a claim), enough to
    give each sender one, within ``batch_size`` held. So a worker with many senders claims
    several messages per transaction, and one with a single sender claims one message ahead.
    Nothing due: it claims again after ``poll_interval``, or as soon as one of its own settles
    commits (a delivered message makes its aggregate's next one due). A claim runs as a task
    awaited shielded, so a worker cancelled meanwhile still gets its messages and hands them
    back (``close``).
    """

    def __init__(
        self,
        engine: Engine,
        worker_id: str,
        settler: _Settler,
        stop_event: asyncio.Event,
        *,
        concurrency: int,
        batch_size: int,
        lease_seconds: float,
        poll_interval: float,
    ) -> None:
        self._engine, self._worker_id, self._settler = engine, worker_id, settler
        self._stop_event = stop_event
        self._concurrency, self._batch_size = concurrency, batch_size
        self._lease_seconds, self._poll_interval = lease_seconds, poll_interval
        self._ready: deque[ClaimedMessage] = deque()
        self._takers: deque[asyncio.Future[ClaimedMessage | None]] = deque()
        self._sending = 0
        self._changed = asyncio.Event()  # a sender took or sent a message, a settle committed
        self._claiming: asyncio.Task[list[ClaimedMessage]] | None = None
        self._stopped = False

    def wake(self) -> None:
        """Something changed that may call for a claim."""
        self._changed.set()

    async def take(self) -> ClaimedMessage | None:
        """The next message for a sender to send; None once the worker is stopping."""
        if self._stopped or self._stop_event.is_set():
            return None
        if self._ready:
            self._sending += 1
            self._changed.set()
            return self._ready.popleft()
        taker: asyncio.Future[ClaimedMessage | None] = asyncio.get_running_loop().create_future()
        self._takers.append(taker)
        self._changed.set()
        try:
            return await taker  # _give took it off _takers and counted it as sending
        except asyncio.CancelledError:
            if taker in self._takers:  # (deque.remove of a missing item would repr it)
                self._takers.remove(taker)
            given = taker.result() if taker.done() and not taker.cancelled() else None
            if given is not None:  # given a message just as the sender was cancelled: unsent
                self._sending -= 1
                self._ready.appendleft(given)
            raise

    @property
    def sending(self) -> int:
        """Messages a sender has taken and not finished."""
        return self._sending

    def sent(self) -> None:
        """A sender finished its message (it goes to the settler next)."""
        self._sending -= 1
        self._changed.set()

    async def run(self) -> None:
        """Claim as senders need messages until the worker stops; then wake the waiting senders."""
        stop_event = self._stop_event
        stopping = asyncio.create_task(stop_event.wait())
        stopping.add_done_callback(lambda _: self._changed.set())
        try:
            while not stop_event.is_set():
                self._changed.clear()
                wanted = self._wanted()
                if wanted and await self._claim(wanted):
                    continue
                # Nothing claimed (or nothing needed): wait for a change, and when senders are
                # waiting for work, at most the poll interval.
                timeout = self._poll_interval if wanted else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
        finally:
            stopping.cancel()
            self._stopped = True
            while self._takers:
                self._takers.popleft().set_result(None)

    async def close(self) -> None:
        """Hand back every claimed message not started (the worker is stopping)."""
        self._stopped = True
        if self._claiming is not None:
            claiming, self._claiming = self._claiming, None
            with contextlib.suppress(SQLAlchemyError):
                self._ready.extend(await claiming)
        if self._ready:
            await asyncio.to_thread(_release_all, self._engine, list(self._ready))
            self._ready.clear()

    def _wanted(self) -> int:
        """How many messages to claim now: 0 while enough are ready."""
        if not self._takers and len(self._ready) >= math.ceil(self._concurrency / 2):
            return 0
        held = len(self._ready) + self._sending + self._settler.held
        room = self._batch_size - held
        return max(0, min(room, len(self._takers) + self._concurrency - len(self._ready)))

    async def _claim(self, limit: int) -> bool:
        """Claim up to ``limit`` messages into the feed; False when none was due (or on error)."""
        self._claiming = asyncio.create_task(
            asyncio.to_thread(
                claim_batch, self._engine, self._worker_id, limit, self._lease_seconds
            )
        )
        try:
            batch = await asyncio.shield(self._claiming)
        except SQLAlchemyError as exc:
            # The database is briefly unavailable or busy (SQLite "database is locked").
            self._claiming = None
            log.warning("worker %s: claim failed (%s)", self._worker_id, type(exc).__name__)
            return False
        # (cancelled meanwhile: the claim stays in _claiming, for close to hand back)
        self._claiming = None
        self._give(batch)
        return bool(batch)

    def _give(self, batch: Sequence[ClaimedMessage]) -> None:
        """Claimed messages go to the waiting senders first, the rest waits in order."""
        for message in batch:
            while self._takers and self._takers[0].done():
                self._takers.popleft()  # its sender was cancelled
            if self._takers:
                self._sending += 1
                self._takers.popleft().set_result(message)
            else:
                self._ready.append(message)


class _Settler:
    """Settles sent messages in the background: all that are waiting in one transaction.

    With several senders, answers come back spread out, so a settle would mostly hold one
    message: it waits up to ``linger`` seconds for ``gather`` of them (half the senders), and
    one commit settles them all. A settle costs about as much CPU for one message as for two,
    CPU the FHIR server shares when it runs on the same machine. It waits only while other
    sends are out (``answers_due``): the last answer of a burst is settled at once.
    """

    def __init__(
        self,
        engine: Engine,
        backoff: Backoff,
        stats: WorkerStats,
        *,
        on_settled: Callable[[], None],
        answers_due: Callable[[], int],
        on_delivered: OnDelivered | None = None,
        gather: int = 1,
        linger: float = SETTLE_LINGER_SECONDS,
    ) -> None:
        self._engine, self._backoff, self._stats = engine, backoff, stats
        self._on_settled = on_settled  # after each commit: room is freed, and maybe work due
        self._on_delivered = on_delivered
        self._answers_due = answers_due  # messages being sent now, whose answers may join
        self._gather, self._linger = gather, linger
        self._waiting: list[_Attempt] = []
        self._enough = asyncio.Event()  # gather are waiting, or the worker is stopping
        self._closing = False
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
        if not self._worth_waiting():
            self._enough.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Wait until everything submitted is settled; the worker is stopping."""
        self._closing = True
        self._enough.set()  # no lingering now
        if self._task is not None:
            # shielded: a cancelled worker still commits the settles of what it delivered
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._waiting:
            if self._worth_waiting() and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._enough.wait(), self._linger)
            self._enough.clear()
            batch, self._waiting = self._waiting, []
            self._committing = len(batch)
            try:
                await asyncio.to_thread(
                    _settle_all,
                    self._engine,
                    batch,
                    self._backoff,
                    self._stats,
                    self._on_delivered,
                )
            finally:
                self._committing = 0
                self._on_settled()

    def _worth_waiting(self) -> bool:
        """Fewer than ``gather`` are waiting, and some answer that could join them is due."""
        return len(self._waiting) < self._gather and self._answers_due() > 0


def _settle_all(
    engine: Engine,
    attempts: Sequence[_Attempt],
    backoff: Backoff,
    stats: WorkerStats,
    on_delivered: OnDelivered | None = None,
) -> None:
    """Settle sent messages in one transaction; if that fails, each in its own."""
    try:
        with session_scope(engine) as session:
            updates = [u for a in attempts if a.failure is None for u in _sync_updates(a)]
            record_syncs(session, updates)
            settled = [_settle(session, attempt, backoff) for attempt in attempts]
            delivered = [s.attempt.message for s in settled if s.status == OutboxStatus.DELIVERED]
            if on_delivered is not None and delivered:
                on_delivered(session, delivered)
    except SQLAlchemyError as exc:
        if len(attempts) > 1:
            for attempt in attempts:  # one bad message does not cost the others their settle
                _settle_all(engine, [attempt], backoff, stats, on_delivered)
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


def _release_all(engine: Engine, messages: Sequence[ClaimedMessage]) -> None:
    try:
        with session_scope(engine) as session:
            for message in messages:
                release(session, message)
    except SQLAlchemyError as exc:
        # Not released: their leases run out and another worker delivers them.
        log.warning("releasing %s claims failed (%s)", len(messages), type(exc).__name__)
