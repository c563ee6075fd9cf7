"""One worker, several senders: requests in flight together, claims shared, order and bounds kept.

The senders of one worker share its claims and its settler. What must hold with several of them:
``concurrency`` requests really are in flight at once, an aggregate's messages still go out one
at a time and in order, the worker still holds at most ``batch_size`` messages, claims are made
for several messages at a time, and a stopped or cancelled worker hands back what it claimed and
did not start; on SQLite and PostgreSQL.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select

from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy
from integration.outbox import queue as outbox
from integration.outbox import worker
from integration.outbox.queue import ClaimedMessage
from integration.outbox.worker import DeliveredEntry, WorkerStats, run_worker
from integration.settings import Settings
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401
from tests.db.messages import enqueue_referral_transactions

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fhir() -> AsyncIterator[FhirClient]:
    client = FhirClient(httpx.AsyncClient(base_url="http://fhir.test/fhir/"), retry=RetryPolicy(1))
    yield client
    await client.aclose()


_enqueue = enqueue_referral_transactions


def _statuses(engine: Engine) -> list[tuple[str, int]]:
    return list(_rows(engine).values())


def _rows(engine: Engine) -> dict[int, tuple[str, int]]:
    """Message id -> (status, attempts)."""
    with session_scope(engine) as session:
        query = select(OutboxMessage.id, OutboxMessage.status, OutboxMessage.attempts)
        return {i: (status, attempts) for i, status, attempts in session.execute(query)}


async def _run(engine: Engine, fhir: FhirClient, send: Any, **kw: Any) -> WorkerStats:
    kw = {"poll_interval": 0.01, "backoff": lambda attempt: 60.0, **kw}
    job = run_worker(engine, fhir, worker_id="w1", deliver=send, **kw)
    return await asyncio.wait_for(job, timeout=30)


async def test_k_senders_keep_k_requests_in_flight(engine: Engine, fhir: FhirClient) -> None:
    ids = _enqueue(engine, [f"A{n}" for n in range(12)])
    stop, in_flight, most = asyncio.Event(), 0, 0
    sent: list[int] = []
    all_four = asyncio.Event()

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 4:
            all_four.set()
        await asyncio.wait_for(all_four.wait(), 5)  # the first sends wait for the others
        await asyncio.sleep(0.01)
        in_flight -= 1
        sent.append(message.id)
        if len(sent) == len(ids):
            stop.set()
        return []

    stats = await _run(engine, fhir, send, stop_event=stop, concurrency=4, batch_size=8)
    assert (stats.delivered, most) == (len(ids), 4)
    assert sorted(sent) == ids
    assert _statuses(engine) == [("delivered", 1)] * len(ids)


async def test_an_aggregate_is_never_sent_twice_at_once_and_keeps_its_order(
    engine: Engine, fhir: FhirClient
) -> None:
    keys = ["SD-1", "SD-2", "SD-1", "SD-3", "SD-1", "SD-2", "SD-4", "SD-1"]
    ids = _enqueue(engine, keys)
    key_of = dict(zip(ids, keys, strict=True))
    stop, sending, sent = asyncio.Event(), set[str](), list[int]()

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        key = key_of[message.id]
        assert key not in sending, f"two messages of {key} in flight at once"
        sending.add(key)
        await asyncio.sleep(0.02)
        sending.discard(key)
        sent.append(message.id)
        if len(sent) == len(ids):
            stop.set()
        return []

    # a long poll interval: a message made due by the worker's own settle goes out without it
    stats = await _run(
        engine, fhir, send, stop_event=stop, concurrency=3, batch_size=6, poll_interval=60.0
    )
    assert stats.delivered == len(ids)
    for key in set(keys):
        assert [i for i in sent if key_of[i] == key] == [i for i in ids if key_of[i] == key]


def _sender_stopping_after(
    count: int, delay: Callable[[int], float]
) -> tuple[asyncio.Event, Callable[[FhirClient, ClaimedMessage], Awaitable[list[DeliveredEntry]]]]:
    """A send that takes ``delay(messages sent so far)`` seconds and stops the worker (the
    returned event) once ``count`` messages are sent."""
    stop, sent = asyncio.Event(), [0]

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        await asyncio.sleep(delay(sent[0]))
        sent[0] += 1
        if sent[0] == count:
            stop.set()
        return []

    return stop, send


async def test_held_messages_stay_within_the_batch_size(
    engine: Engine, fhir: FhirClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _enqueue(engine, [f"H{n}" for n in range(20)])
    settle_all = worker._settle_all

    def slow_settle(*args: Any) -> None:  # settles lag, so sent messages pile up unsettled
        time.sleep(0.05)
        settle_all(*args)

    monkeypatch.setattr(worker, "_settle_all", slow_settle)
    stop, held = asyncio.Event(), list[int]()

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        with session_scope(engine) as session:
            query = select(func.count()).where(OutboxMessage.status == "in-flight")
            held.append(session.scalar(query) or 0)
        await asyncio.sleep(0.005)
        if len(held) == len(ids):
            stop.set()
        return []

    stats = await _run(engine, fhir, send, stop_event=stop, concurrency=3, batch_size=5)
    assert stats.delivered == len(ids)
    assert max(held) <= 5, held


async def test_several_senders_claim_several_messages_at_a_time(
    engine: Engine, fhir: FhirClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _enqueue(engine, [f"C{n}" for n in range(40)])
    claim_batch, claimed = outbox.claim_batch, []

    def counted(*args: Any, **kw: Any) -> list[ClaimedMessage]:
        batch = claim_batch(*args, **kw)
        claimed.append(len(batch))
        return batch

    monkeypatch.setattr(worker, "claim_batch", counted)
    stop, send = _sender_stopping_after(len(ids), lambda sent: 0.02)
    stats = await _run(engine, fhir, send, stop_event=stop, concurrency=4, batch_size=10)
    assert stats.delivered == len(ids) == sum(claimed)
    claims_with_messages = [n for n in claimed if n]
    # one message per claim would be 40 claims; four senders share claims of two or more
    assert len(claims_with_messages) <= len(ids) // 2, claimed


async def test_answers_coming_back_apart_are_settled_together(
    engine: Engine, fhir: FhirClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _enqueue(engine, [f"S{n}" for n in range(24)])
    settle_all, settled = worker._settle_all, list[int]()

    def counted(engine: Engine, attempts: Any, *args: Any) -> None:
        settled.append(len(attempts))
        settle_all(engine, attempts, *args)

    monkeypatch.setattr(worker, "_settle_all", counted)
    # answers 5 ms apart (within the linger), as from a server working on four at once
    stop, send = _sender_stopping_after(len(ids), lambda sent: 0.02 + 0.005 * (sent % 4))
    stats = await _run(engine, fhir, send, stop_event=stop, concurrency=4, batch_size=10)
    assert stats.delivered == len(ids) == sum(settled)
    assert _statuses(engine) == [("delivered", 1)] * len(ids)
    # one transaction per answer would be 24; four senders' answers share settles
    assert len(settled) <= len(ids) // 2, settled


async def test_the_last_answer_of_a_burst_is_settled_without_lingering(
    engine: Engine, fhir: FhirClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a linger long enough to see: only a settle that waits for no more answers finishes
    monkeypatch.setattr(worker, "SETTLE_LINGER_SECONDS", 60.0)
    ids = _enqueue(engine, [f"L{n}" for n in range(5)])

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        await asyncio.sleep(0.02)
        return []

    stop = asyncio.Event()
    job = asyncio.create_task(
        _run(engine, fhir, send, stop_event=stop, concurrency=4, batch_size=10)
    )
    try:
        # four sent together, then the fifth alone: nothing else is out when it answers
        for _ in range(500):
            if _statuses(engine) == [("delivered", 1)] * len(ids):
                break
            await asyncio.sleep(0.01)
        # checked while the worker still runs: stopping settles at once anyway
        assert _statuses(engine) == [("delivered", 1)] * len(ids)
    finally:
        stop.set()
        stats = await job
    assert stats.delivered == len(ids)


async def test_a_cancelled_worker_hands_back_all_it_claimed_ahead(
    engine: Engine, fhir: FhirClient
) -> None:
    ids = _enqueue(engine, [f"X{n}" for n in range(10)])
    never, started = asyncio.Event(), []

    async def send(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        started.append(message.id)
        await never.wait()  # sends that hang until the worker is cancelled
        return []

    job = asyncio.create_task(
        run_worker(
            engine,
            fhir,
            worker_id="w1",
            stop_event=asyncio.Event(),
            deliver=send,
            concurrency=3,
            batch_size=8,
        )
    )
    for _ in range(500):  # until all three senders are sending and the next ones are claimed
        if len(started) == 3 and [s for s, _ in _statuses(engine)].count("in-flight") > 3:
            break
        await asyncio.sleep(0.01)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    # the three being sent wait out their lease (they may have reached the server); the rest is
    # pending again with its attempt not counted
    rows = _rows(engine)
    assert {i for i, (status, _) in rows.items() if status == "in-flight"} == set(started)
    assert [rows[i] for i in ids if i not in started] == [("pending", 0)] * 7


async def test_concurrency_above_the_batch_size_is_refused(
    engine: Engine, fhir: FhirClient
) -> None:
    with pytest.raises(ValueError, match="concurrency=4, batch_size=3"):
        await run_worker(
            engine, fhir, worker_id="w1", stop_event=asyncio.Event(), concurrency=4, batch_size=3
        )


def test_settings_name_what_does_not_fit_the_worker_concurrency() -> None:
    with pytest.raises(ValidationError, match="IOP_BRIDGE_WORKER_BATCH_SIZE \\(2\\) must be"):
        Settings(worker_concurrency=3, worker_batch_size=2)
    with pytest.raises(ValidationError, match="IOP_BRIDGE_HTTP_MAX_CONNECTIONS \\(2\\) must be"):
        Settings(worker_concurrency=3, http_max_connections=2)
    assert Settings().worker_concurrency <= Settings().worker_batch_size
