"""An enqueue that commits wakes a worker of the same process at once (no waiting for a poll)."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import Engine

from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy
from integration.outbox import doorbell as outbox_doorbell
from integration.outbox.delivery import DeliveredEntry
from integration.outbox.queue import ClaimedMessage, MessageKind, enqueue
from integration.outbox.worker import run_worker
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401
from tests.db.messages import enqueue_referral_transactions, make_referral_transaction

BASE = "http://fhir.test/fhir"
pytestmark = pytest.mark.anyio


def _enqueue(engine: Engine, key: str) -> None:
    with session_scope(engine) as session:
        enqueue(
            session,
            aggregate_type="referral",
            aggregate_key=key,
            kind=MessageKind.TRANSACTION,
            payload=make_referral_transaction(key),
        )


def test_a_committed_enqueue_rings_its_engines_listeners_once(engine: Engine) -> None:
    rings: list[str] = []
    hang_up = outbox_doorbell.listen(engine, lambda: rings.append("ring"))
    try:
        _enqueue(engine, "D1")
        with session_scope(engine) as session:  # a commit that enqueued nothing
            session.info["unrelated"] = True
        assert rings == ["ring"]
    finally:
        hang_up()
    _enqueue(engine, "D2")
    assert rings == ["ring"]  # hung up


def test_a_rolled_back_enqueue_rings_nobody(engine: Engine) -> None:
    rings: list[str] = []
    hang_up = outbox_doorbell.listen(engine, lambda: rings.append("ring"))
    try:
        with pytest.raises(RuntimeError), session_scope(engine) as session:
            enqueue(
                session,
                aggregate_type="referral",
                aggregate_key="D3",
                kind=MessageKind.TRANSACTION,
                payload=make_referral_transaction("D3"),
            )
            raise RuntimeError("the domain change failed after the enqueue")
        with session_scope(engine):  # the next unit of work on a pooled connection
            pass
        assert rings == []
    finally:
        hang_up()


def test_an_enqueue_on_another_database_does_not_ring(engine: Engine, tmp_path: object) -> None:
    other = create_db_engine(f"sqlite:///{tmp_path}/other.db")
    rings: list[str] = []
    hang_up = outbox_doorbell.listen(engine, lambda: rings.append("ring"))
    try:
        _enqueue(other, "D4")
        assert rings == []
    finally:
        hang_up()
        other.dispose()


async def test_an_idle_worker_delivers_a_new_message_without_waiting_for_its_poll(
    engine: Engine,
) -> None:
    fhir = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(max_attempts=1))
    stop, delivered = asyncio.Event(), asyncio.Event()

    async def deliver_and_stop(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        assert message.aggregate_key == "D5"
        delivered.set()
        stop.set()
        return []

    # A poll an hour apart: only the ring can bring the message in before the wait below ends.
    worker = asyncio.create_task(
        run_worker(
            engine, fhir, worker_id="w", stop_event=stop, poll_interval=3600,
            deliver=deliver_and_stop,
        )
    )  # fmt: skip
    await asyncio.sleep(0.2)  # the worker found nothing due and waits
    assert not delivered.is_set()
    # enqueued from another thread, as the API's request handlers do
    await asyncio.to_thread(enqueue_referral_transactions, engine, ["D5"])
    await asyncio.wait_for(delivered.wait(), timeout=10)
    stats = await asyncio.wait_for(worker, timeout=10)
    await fhir.aclose()
    assert stats.delivered == 1
