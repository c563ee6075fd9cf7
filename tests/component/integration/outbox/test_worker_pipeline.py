"""The worker's pipeline: sends go on while earlier messages settle, claims stay bounded.

The guarantees under test are the outbox's: a message is settled only after it was sent, never
by a worker whose lease was taken over, a worker holds at most ``batch_size`` messages, and an
aggregate's messages go out in order; on SQLite and PostgreSQL.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import OperationalError

from integration.db.outbox_table import OutboxMessage
from integration.db.store import SyncRecord, SyncUpdate, record_syncs, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy
from integration.outbox import worker
from integration.outbox.queue import ClaimedMessage
from integration.outbox.worker import DeliveredEntry, WorkerStats, deliver_message, run_worker
from integration.privacy import logging_setup
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401
from tests.db.messages import enqueue_referral_transactions

BASE = "http://fhir.test/fhir"
pytestmark = pytest.mark.anyio
FakeSend = Callable[[FhirClient, ClaimedMessage], Any]


@pytest.fixture
async def fhir() -> AsyncIterator[FhirClient]:
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(1))
    yield client
    await client.aclose()


_enqueue = enqueue_referral_transactions


def _rows(engine: Engine) -> list[tuple[int, str, str | None]]:
    with session_scope(engine) as session:
        query = select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.claimed_by)
        return [tuple(row) for row in session.execute(query.order_by(OutboxMessage.id))]


def _held_settles(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[int]]:
    """Settles wait until the event is set; returns it and the sizes of the settle batches."""
    go, sizes = threading.Event(), []
    settle_all = worker._settle_all

    def held(engine: Engine, attempts: Sequence[Any], *args: Any) -> None:
        assert go.wait(10), "settles were never let through"
        sizes.append(len(attempts))
        settle_all(engine, attempts, *args)

    monkeypatch.setattr(worker, "_settle_all", held)
    return go, sizes


async def _run(engine: Engine, fhir: FhirClient, send: FakeSend, **kw: Any) -> WorkerStats:
    kw = {"poll_interval": 0.01, "backoff": lambda attempt: 60.0} | kw
    stop = kw.pop("stop")
    job = run_worker(engine, fhir, worker_id="w1", stop_event=stop, deliver=send, **kw)
    return await asyncio.wait_for(job, timeout=30)


async def test_sends_go_on_while_earlier_settles_wait_then_settle_together(
    engine: Engine, fhir: FhirClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _enqueue(engine, ["A", "B", "C"])
    go, sizes = _held_settles(monkeypatch)
    stop, sent = asyncio.Event(), []

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        sent.append(message.id)
        assert _rows(engine)[len(sent) - 1][1] == "in-flight"  # not settled before its send
        if len(sent) == 3:  # all three went out while the first settle was held
            go.set()
            stop.set()
        return []

    stats = await _run(engine, fhir, send, stop=stop)
    assert (sent, stats.delivered) == (ids, 3)
    assert sizes == [1, 2]  # the two waiting settles in one transaction
    assert [status for _, status, _ in _rows(engine)] == ["delivered"] * 3


async def test_a_worker_never_holds_more_than_its_batch_size(
    engine: Engine, fhir: FhirClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _enqueue(engine, [f"K{n}" for n in range(6)])
    go, _ = _held_settles(monkeypatch)
    stop, held = asyncio.Event(), []

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        with session_scope(engine) as session:
            query = select(func.count()).where(OutboxMessage.status == "in-flight")
            held.append(session.scalar(query))
        if len(held) == 1:
            asyncio.get_running_loop().call_later(0.3, go.set)  # settles blocked for a while
        if len(held) == len(ids):
            stop.set()
        return []

    stats = await _run(engine, fhir, send, stop=stop, batch_size=2)
    assert stats.delivered == len(ids)
    assert max(held) <= 2, held


async def test_lease_taken_over_during_the_send__the_old_worker_settles_nothing(
    engine: Engine, fhir: FhirClient
) -> None:
    delivered_id, failed_id = _enqueue(engine, ["L1", "L2"])
    stop = asyncio.Event()

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        # as if the lease ran out and another worker claimed the message meanwhile
        with session_scope(engine) as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id)
                .values(claimed_by="w2", attempts=OutboxMessage.attempts + 1)
            )
        if message.id == failed_id:
            stop.set()
            raise OSError("the answer was lost")
        return []

    stats = await _run(engine, fhir, send, stop=stop)
    assert (stats.delivered, stats.retried, stats.lease_lost) == (0, 0, 2)
    assert _rows(engine) == [(delivered_id, "in-flight", "w2"), (failed_id, "in-flight", "w2")]


async def test_an_aggregates_messages_go_out_in_order_without_waiting_for_a_poll(
    engine: Engine, fhir: FhirClient
) -> None:
    ids = _enqueue(engine, ["SD-1", "SD-1", "SD-2", "SD-1"])
    stop, sent = asyncio.Event(), []

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        sent.append(message.id)
        if len(sent) == len(ids):
            stop.set()
        return []

    # a poll interval longer than the timeout: a message made due by our own settle is claimed
    # at once, not at the next poll
    stats = await _run(engine, fhir, send, stop=stop, poll_interval=60.0)
    assert stats.delivered == len(ids)
    of_sd1 = [i for i in sent if i != ids[2]]
    assert of_sd1 == [ids[0], ids[1], ids[3]]


async def test_stop_as_a_send_starts__nothing_more_is_claimed(
    engine: Engine, fhir: FhirClient
) -> None:
    ids = _enqueue(engine, [f"S{n}" for n in range(4)])
    stop, sent = asyncio.Event(), []

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        sent.append(message.id)
        if len(sent) == 2:
            stop.set()  # the feed, woken by this take to claim ahead, sees the stop first
        await asyncio.sleep(0.3)
        return []

    stats = await _run(engine, fhir, send, stop=stop)
    assert stats.delivered == 2
    assert [(s, c) for _, s, c in _rows(engine)][2:] == [("pending", None), ("pending", None)]
    with session_scope(engine) as session:
        attempts = session.scalars(select(OutboxMessage.attempts).where(OutboxMessage.id > ids[1]))
        assert list(attempts) == [0, 0]


async def test_a_failing_settle_of_several__the_others_are_settled_alone(
    engine: Engine,
    fhir: FhirClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    *_, third = _enqueue(engine, ["F1", "F2", "F3"])
    go, sizes = _held_settles(monkeypatch)
    mark_delivered = worker.mark_delivered

    def failing(session: Any, message: ClaimedMessage, **kw: Any) -> bool:
        if message.id == third:
            raise OperationalError("UPDATE outbox_message", {}, Exception("disk I/O error"))
        return mark_delivered(session, message, **kw)

    monkeypatch.setattr(worker, "mark_delivered", failing)
    stop, sent = asyncio.Event(), []

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        sent.append(message.id)
        if len(sent) == 3:
            go.set()
            stop.set()
        return []

    stats = await _run(engine, fhir, send, stop=stop)
    assert sizes == [1, 2, 1, 1]  # the batch of two failed, then each alone
    assert stats.delivered == 2
    assert [s for _, s, _ in _rows(engine)] == ["delivered", "delivered", "in-flight"]
    assert f"outbox message {third}: settling failed (OperationalError)" in caplog.text


@respx.mock
async def test_failure_logs_carry_the_described_error_and_no_server_text(
    engine: Engine, fhir: FhirClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Jane Doe 1980-02-03"  # stands for PHI quoted in a server's diagnostics
    _enqueue(engine, ["P1"])
    issue = {"severity": "error", "code": "transient", "diagnostics": f"HAPI-0389: {secret}"}
    respx.post(BASE + "/").respond(503, json={"resourceType": "OperationOutcome", "issue": [issue]})
    stop = asyncio.Event()

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        stop.set()
        return await deliver_message(client, message)

    caplog.set_level(logging.INFO, logger="integration.outbox.worker")
    stats = await _run(engine, fhir, send, stop=stop)
    assert stats.retried == 1
    (record,) = [r for r in caplog.records if "failed" in str(r.msg)]
    logged = logging_setup.sanitize(record).getMessage()  # as every handler will show it
    assert logged.endswith("failed: 503 HAPI-0389 FhirServerUnavailable: The server answered 5xx.")
    assert secret not in caplog.text


def test_record_syncs__one_statement_for_many_rows_and_a_repeat_counts_twice(
    engine: Engine,
) -> None:
    system = "http://iop-bridge.example/fhir/sid/mrn"
    updates = [
        SyncUpdate("Patient", (system, "M1"), "p1", "1", "created"),
        SyncUpdate("Patient", (system, "M2"), "p2", "1", "created"),
        SyncUpdate("Patient", (system, "M1"), "p1", "2", "updated"),
    ]
    with session_scope(engine) as session:
        record_syncs(session, updates)
        record_syncs(session, [])
    with session_scope(engine) as session:
        rows = session.execute(
            select(
                SyncRecord.identifier_value,
                SyncRecord.version_id,
                SyncRecord.last_outcome,
                SyncRecord.attempts,
            ).order_by(SyncRecord.identifier_value)
        ).all()
    assert [tuple(r) for r in rows] == [("M1", "2", "updated", 2), ("M2", "1", "created", 1)]


async def test_a_cancelled_worker_hands_back_what_it_claimed_ahead(
    engine: Engine, fhir: FhirClient
) -> None:
    first, second, third = _enqueue(engine, ["X1", "X2", "X3"])
    never = asyncio.Event()

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        await never.wait()  # a send that hangs until the worker is cancelled
        return []

    job = asyncio.create_task(
        run_worker(engine, fhir, worker_id="w1", stop_event=asyncio.Event(), deliver=send)
    )
    for _ in range(500):  # until the next message was claimed ahead of the hanging send
        if [s for _, s, _ in _rows(engine)][:2] == ["in-flight", "in-flight"]:
            break
        await asyncio.sleep(0.01)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    # the one being sent waits out its lease (it may have reached the server); the rest is back
    assert _rows(engine) == [
        (first, "in-flight", "w1"),
        (second, "pending", "w1"),
        (third, "pending", None),
    ]
