"""Three workers on one PostgreSQL outbox, each thread with its own engine: nothing twice.

The deliveries are fakes that count message ids (component tier); the live tier sends real
transactions to HAPI (tests/live/test_outbox_workers_live.py).
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select

from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.outbox import queue as outbox
from integration.outbox.queue import ClaimedMessage, MessageKind
from integration.outbox.worker import DeliveredEntry, WorkerStats, run_worker
from tests.db.fixtures import postgres_url  # noqa: F401

pytestmark = pytest.mark.postgres
MESSAGES = 300
WORKERS = 3
BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": []}


def _enqueue(url: str, count: int) -> list[int]:
    engine = create_engine(url)
    try:
        with session_scope(engine) as session:
            return [
                outbox.enqueue(
                    session,
                    aggregate_type="referral",
                    aggregate_key=f"SD-{n:04d}",
                    kind=MessageKind.TRANSACTION,
                    payload=BUNDLE,
                ).id
                for n in range(count)
            ]
    finally:
        engine.dispose()


def _in_threads(target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"


def test_claim_batch__three_claimers_never_share_a_message(postgres_url: str) -> None:
    ids = _enqueue(postgres_url, MESSAGES)
    claimed: list[list[int]] = [[] for _ in range(WORKERS)]
    start = threading.Barrier(WORKERS)

    def claimer(n: int) -> None:
        engine = create_engine(postgres_url)
        start.wait()
        while batch := outbox.claim_batch(engine, f"claimer-{n}", 7, 60):
            claimed[n] += [m.id for m in batch]
        engine.dispose()

    _in_threads(claimer)
    every = [i for ids_of_one in claimed for i in ids_of_one]
    assert sorted(every) == ids  # all claimed, none twice
    assert all(claimed), "each claimer should have won some rows"


def _worker_thread(
    url: str, n: int, deliver: Callable[..., object], done: threading.Event, stats: list[object]
) -> None:
    async def main() -> WorkerStats:
        stop = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                await asyncio.sleep(0.02)
            stop.set()

        watcher = asyncio.create_task(watch())
        engine = create_engine(url)  # its own engine and connections
        try:
            return await run_worker(
                engine,
                FhirClient.__new__(FhirClient),  # never used: the fake delivery ignores it
                worker_id=f"worker-{n}",
                stop_event=stop,
                batch_size=5,
                poll_interval=0.02,
                deliver=deliver,  # type: ignore[arg-type]
            )
        finally:
            await watcher
            engine.dispose()

    stats[n] = asyncio.run(main())


def _run_three_workers(url: str, expected: int) -> tuple[Counter[int], list[WorkerStats]]:
    seen: Counter[int] = Counter()
    lock = threading.Lock()
    done = threading.Event()

    async def fake(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        with lock:
            seen[message.id] += 1
        await asyncio.sleep(0.001)  # let the other workers interleave
        return []

    stats: list[object] = [None] * WORKERS

    def watchdog() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _delivered(url) < expected:
            time.sleep(0.05)
        done.set()

    guard = threading.Thread(target=watchdog)
    guard.start()
    _in_threads(lambda n: _worker_thread(url, n, fake, done, stats))
    guard.join()
    return seen, [s for s in stats if isinstance(s, WorkerStats)]


def _delivered(url: str) -> int:
    engine = create_engine(url)
    try:
        with session_scope(engine) as session:
            query = select(func.count()).where(OutboxMessage.status == "delivered")
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


def test_run_worker__three_workers_deliver_each_message_exactly_once(postgres_url: str) -> None:
    ids = _enqueue(postgres_url, MESSAGES)
    seen, stats = _run_three_workers(postgres_url, MESSAGES)
    assert seen == Counter({i: 1 for i in ids})
    assert sum(s.delivered for s in stats) == MESSAGES
    assert all(s.delivered > 0 for s in stats), [s.delivered for s in stats]
    assert _delivered(postgres_url) == MESSAGES


def test_run_worker__a_killed_workers_claims_are_delivered_once_by_the_others(
    postgres_url: str,
) -> None:
    ids = _enqueue(postgres_url, 60)
    engine = create_engine(postgres_url)
    past = datetime.now(UTC) - timedelta(minutes=5)
    # a worker that claimed 20 messages five minutes ago with a 60 s lease, then died
    orphaned = outbox.claim_batch(engine, "killed", 20, 60, now=past)
    engine.dispose()
    seen, _ = _run_three_workers(postgres_url, 60)
    assert seen == Counter({i: 1 for i in ids})
    assert {m.id for m in orphaned} <= set(seen)
