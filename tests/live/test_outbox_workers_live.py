"""Three outbox workers sharing one PostgreSQL database deliver real transactions to HAPI.

Some messages repeat a client's bundle (a redelivered referral) and some were claimed by a
worker that died; every business identifier must still be on the server exactly once.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, func, select

from integration.db.outbox_table import OutboxMessage
from integration.db.store import SyncRecord, session_scope
from integration.fhir.client import FhirClient
from integration.outbox import queue as outbox
from integration.outbox.queue import MessageKind
from integration.outbox.worker import WorkerStats, run_worker
from integration.settings import Settings
from mappers.bundle import identifier_token
from tests.builders import CONDITION_SYSTEM, MRN_SYSTEM
from tests.db.fixtures import postgres_url  # noqa: F401
from tests.db.messages import make_referral_transaction

pytestmark = [pytest.mark.live, pytest.mark.postgres, pytest.mark.anyio]
CLIENTS = 20
REPEATS = 10  # the first 10 clients' bundles are enqueued a second time
WORKERS = 3


def _enqueue_referrals(engine: Engine, unique: str) -> list[str]:
    tags = [f"{unique}-{n:02d}" for n in range(CLIENTS)]
    with session_scope(engine) as session:
        for tag in [*tags, *tags[:REPEATS]]:
            outbox.enqueue(
                session,
                aggregate_type="referral",
                aggregate_key=f"MRN-{tag}",  # one client's messages are delivered in order
                kind=MessageKind.TRANSACTION,
                payload=make_referral_transaction(tag),
            )
    return tags


def _count(engine: Engine, model: type[object], *where: object) -> int:
    with session_scope(engine) as session:
        query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int(session.scalar(query) or 0)


async def _run_workers(url: str, settings: Settings, expected: int) -> list[WorkerStats]:
    """Three workers, each with its own engine and FHIR client, until all are delivered."""
    stop = asyncio.Event()
    engines = [create_engine(url) for _ in range(WORKERS)]
    clients = [FhirClient.from_settings(settings) for _ in range(WORKERS)]
    workers = [
        run_worker(
            engine, client, worker_id=f"live-{n}", stop_event=stop, batch_size=4, poll_interval=0.1
        )
        for n, (engine, client) in enumerate(zip(engines, clients, strict=True))
    ]
    try:
        tasks = [asyncio.create_task(worker) for worker in workers]
        delivered = OutboxMessage.status == "delivered"
        async with asyncio.timeout(240):
            while await asyncio.to_thread(_count, engines[0], OutboxMessage, delivered) < expected:
                await asyncio.sleep(0.2)
        stop.set()
        return list(await asyncio.gather(*tasks))
    finally:
        stop.set()
        for client in clients:
            await client.aclose()
        for engine in engines:
            engine.dispose()


async def test_three_workers__every_identifier_on_hapi_exactly_once(
    postgres_url: str, live_settings: Settings, fhir: FhirClient, unique: str
) -> None:
    engine = create_engine(postgres_url)
    tags = _enqueue_referrals(engine, unique)
    total = CLIENTS + REPEATS
    # a worker that claimed 5 messages and died: its lease ran out long ago
    outbox.claim_batch(engine, "killed", 5, 60, now=datetime.now(UTC) - timedelta(minutes=10))
    stats = await _run_workers(postgres_url, live_settings, total)
    assert sum(s.delivered for s in stats) == total
    assert sum(s.dead + s.retried for s in stats) == 0
    assert all(s.delivered > 0 for s in stats), [s.delivered for s in stats]
    for tag in tags:
        patients = {"identifier": identifier_token(MRN_SYSTEM, f"MRN-{tag}")}
        conditions = {"identifier": identifier_token(CONDITION_SYSTEM, f"DX-{tag}")}
        assert await fhir.count("Patient", patients) == 1, tag
        assert await fhir.count("Condition", conditions) == 1, tag
    # one sync record per identifier; repeated bundles matched instead of creating
    assert _count(engine, SyncRecord) == 2 * CLIENTS
    assert _count(engine, SyncRecord, SyncRecord.attempts == 2) == 2 * REPEATS
    engine.dispose()
