"""The outbox worker at the FHIR client's seam (respx), on SQLite and PostgreSQL."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db.outbox_table import OutboxMessage
from integration.db.store import SyncRecord, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy
from integration.outbox import queue as outbox
from integration.outbox.queue import ClaimedMessage, MessageKind
from integration.outbox.worker import (
    DeliveredEntry,
    WorkerStats,
    business_identifier,
    deliver_message,
    run_worker,
)
from tests.builders import MRN_SYSTEM
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401
from tests.db.messages import make_referral_transaction, transaction_response

BASE = "http://fhir.test/fhir"
PHI = "MRN-SECRET-7"  # stands for anything a server's diagnostics might quote
pytestmark = pytest.mark.anyio


@pytest.fixture
async def fhir() -> AsyncIterator[FhirClient]:
    # one try per request: these tests are about the worker's retries, not the client's
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(max_attempts=1))
    yield client
    await client.aclose()


def _enqueue(engine: Engine, payloads: Sequence[dict[str, Any]], kind: MessageKind) -> list[int]:
    with session_scope(engine) as session:
        return [
            outbox.enqueue(
                session, aggregate_type="referral", aggregate_key=f"SD-{n}", kind=kind, payload=p
            ).id
            for n, p in enumerate(payloads)
        ]


async def _run(engine: Engine, fhir: FhirClient, deliveries: int, **kw: Any) -> WorkerStats:
    """Run one worker until it has attempted ``deliveries`` messages."""
    stop = asyncio.Event()
    calls = 0

    async def counting(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        nonlocal calls
        calls += 1
        if calls >= deliveries:
            stop.set()  # the worker settles this message, releases the rest, then returns
        return await deliver_message(client, message)

    worker = run_worker(
        engine,
        fhir,
        worker_id="w1",
        stop_event=stop,
        poll_interval=0.01,
        deliver=counting,
        backoff=lambda attempt: 60.0,
        **kw,
    )
    return await asyncio.wait_for(worker, timeout=30)


def _message(engine: Engine, message_id: int) -> OutboxMessage:
    with session_scope(engine) as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        return row


def _outcome(diagnostics: str) -> dict[str, Any]:
    issue = {"severity": "error", "code": "processing", "diagnostics": diagnostics}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


@respx.mock
async def test_transaction__delivered_and_sync_state_recorded(
    engine: Engine, fhir: FhirClient
) -> None:
    (message_id,) = _enqueue(engine, [make_referral_transaction("A1")], MessageKind.TRANSACTION)
    respx.post(BASE + "/").respond(
        200,
        json=transaction_response(
            ("201 Created", "Patient/p1/_history/1"), ("200 OK", "Condition/c7/_history/3")
        ),
    )
    stats = await _run(engine, fhir, 1)
    assert (stats.delivered, _message(engine, message_id).status) == (1, "delivered")
    with session_scope(engine) as session:
        rows = session.scalars(select(SyncRecord).order_by(SyncRecord.resource_type)).all()
        synced = [(r.resource_type, r.identifier_value, r.server_id, r.version_id) for r in rows]
        outcomes = [r.last_outcome for r in rows]
    assert synced == [("Condition", "DX-A1", "c7", "3"), ("Patient", "MRN-A1", "p1", "1")]
    assert outcomes == ["matched", "created"]


@respx.mock
async def test_on_delivered__runs_in_the_settle_with_the_delivered_messages_only(
    engine: Engine, fhir: FhirClient
) -> None:
    ok, failing = _enqueue(
        engine, [make_referral_transaction("A8"), make_referral_transaction("A9")],
        MessageKind.TRANSACTION,
    )  # fmt: skip
    answers = iter([
        httpx.Response(200, json=transaction_response(
            ("201 Created", "Patient/p8/_history/1"), ("201 Created", "Condition/c8/_history/1")
        )),
        httpx.Response(422, json=_outcome("HAPI-1094: bad value")),
    ])  # fmt: skip
    respx.post(BASE + "/").mock(side_effect=lambda request: next(answers))
    seen: list[tuple[int, str, int]] = []

    def on_delivered(session: Session, messages: Sequence[ClaimedMessage]) -> None:
        synced = len(session.scalars(select(SyncRecord)).all())  # the settle's own records
        seen.extend((m.id, m.aggregate_key, synced) for m in messages)

    await _run(engine, fhir, 2, on_delivered=on_delivered)
    assert seen == [(ok, "SD-0", 2)]
    assert _message(engine, failing).status == "dead"


@respx.mock
async def test_retryable_error__rescheduled_with_backoff_and_no_phi(
    engine: Engine, fhir: FhirClient
) -> None:
    (message_id,) = _enqueue(engine, [make_referral_transaction("A2")], MessageKind.TRANSACTION)
    respx.post(BASE + "/").respond(503, json=_outcome(f"HAPI-0389: overloaded while {PHI}"))
    before = datetime.now(UTC)
    stats = await _run(engine, fhir, 1)
    row = _message(engine, message_id)
    assert (stats.retried, row.status, row.attempts) == (1, "pending", 1)
    assert row.next_attempt_at >= before + timedelta(seconds=60)
    assert row.last_error == "503 HAPI-0389 FhirServerUnavailable: The server answered 5xx."


@respx.mock
async def test_rejected_request__dead_at_once_with_the_reason(
    engine: Engine, fhir: FhirClient
) -> None:
    (message_id,) = _enqueue(engine, [make_referral_transaction("A3")], MessageKind.TRANSACTION)
    respx.post(BASE + "/").respond(422, json=_outcome(f"HAPI-1094: bad value for {PHI}"))
    stats = await _run(engine, fhir, 1)
    row = _message(engine, message_id)
    assert (stats.dead, row.status) == (1, "dead")
    assert row.last_error is not None
    assert row.last_error.startswith("422 HAPI-1094 FhirUnprocessable")
    assert PHI not in row.last_error


@respx.mock
async def test_rate_limited__waits_at_least_retry_after(engine: Engine, fhir: FhirClient) -> None:
    (message_id,) = _enqueue(engine, [make_referral_transaction("A4")], MessageKind.TRANSACTION)
    respx.post(BASE + "/").respond(429, headers={"Retry-After": "600"})
    before = datetime.now(UTC)
    await _run(engine, fhir, 1)
    assert _message(engine, message_id).next_attempt_at >= before + timedelta(seconds=600)


@respx.mock
async def test_resource__conditional_create_sends_if_none_exist(
    engine: Engine, fhir: FhirClient
) -> None:
    entry = make_referral_transaction("B1")["entry"][0]
    _enqueue(engine, [entry], MessageKind.RESOURCE)
    route = respx.post(BASE + "/Patient").respond(
        201, json={"resourceType": "Patient", "id": "p9", "meta": {"versionId": "1"}}
    )
    await _run(engine, fhir, 1)
    assert route.calls.last.request.headers["If-None-Exist"] == entry["request"]["ifNoneExist"]
    with session_scope(engine) as session:
        record = session.scalars(select(SyncRecord)).one()
        assert (record.identifier_system, record.identifier_value) == (MRN_SYSTEM, "MRN-B1")
        assert (record.server_id, record.version_id, record.last_outcome) == ("p9", "1", "created")


@respx.mock
async def test_resource__conditional_update_puts_on_the_match_url(
    engine: Engine, fhir: FhirClient
) -> None:
    task = {"resourceType": "Task", "status": "accepted", "intent": "order"}
    request = {"method": "PUT", "url": "Task?identifier=http://x.example/task|T-1"}
    _enqueue(engine, [{"resource": task, "request": request}], MessageKind.RESOURCE)
    route = respx.put(BASE + "/Task").respond(
        200, json={**task, "id": "t1", "meta": {"versionId": "4"}}
    )
    await _run(engine, fhir, 1)
    assert route.calls.last.request.url.params["identifier"] == "http://x.example/task|T-1"
    with session_scope(engine) as session:
        record = session.scalars(select(SyncRecord)).one()
        assert (record.server_id, record.version_id, record.last_outcome) == ("t1", "4", "updated")


async def test_unknown_kind__dead_without_calling_the_server(
    engine: Engine, fhir: FhirClient
) -> None:
    with session_scope(engine) as session:
        row = OutboxMessage(
            aggregate_type="referral",
            aggregate_key="SD-X",
            kind="carrier-pigeon",
            payload={},
            max_attempts=5,
            next_attempt_at=datetime.now(UTC),
        )
        session.add(row)
    await _run(engine, fhir, 1)
    assert _message(engine, row.id).last_error == (
        "MalformedMessage: The payload cannot be sent as it is; waiting will not fix it,"
        " so it goes dead at once."
    )


async def test_killed_worker__its_message_is_delivered_after_the_lease(
    engine: Engine, fhir: FhirClient
) -> None:
    (message_id,) = _enqueue(engine, [make_referral_transaction("C1")], MessageKind.TRANSACTION)
    outbox.claim_batch(engine, "killed", 10, lease_seconds=0.3)  # claimed, never settled
    seen: list[tuple[int, int]] = []

    async def fake(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        seen.append((message.id, message.attempts))
        stop.set()
        return []

    stop = asyncio.Event()
    worker = run_worker(
        engine, fhir, worker_id="w2", stop_event=stop, poll_interval=0.05, deliver=fake
    )
    await asyncio.wait_for(worker, timeout=30)
    assert seen == [(message_id, 2)]
    assert _message(engine, message_id).status == "delivered"


async def test_stop__the_rest_of_the_batch_is_handed_back(engine: Engine, fhir: FhirClient) -> None:
    ids = _enqueue(
        engine, [make_referral_transaction(f"D{n}") for n in range(3)], MessageKind.TRANSACTION
    )
    stop = asyncio.Event()

    async def fake(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        stop.set()
        return []

    worker = run_worker(engine, fhir, worker_id="w1", stop_event=stop, deliver=fake)
    stats = await asyncio.wait_for(worker, timeout=30)
    states = [(_message(engine, i).status, _message(engine, i).attempts) for i in ids]
    assert stats.delivered == 1
    assert states == [("delivered", 1), ("pending", 0), ("pending", 0)]


async def test_single_worker__drains_the_outbox_exactly_once(
    engine: Engine, fhir: FhirClient
) -> None:
    ids = _enqueue(
        engine, [make_referral_transaction(f"E{n}") for n in range(50)], MessageKind.TRANSACTION
    )
    seen: Counter[int] = Counter()
    stop = asyncio.Event()

    async def fake(client: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        seen[message.id] += 1
        if sum(seen.values()) == len(ids):
            stop.set()
        return []

    worker = run_worker(engine, fhir, worker_id="w1", stop_event=stop, batch_size=8, deliver=fake)
    stats = await asyncio.wait_for(worker, timeout=60)
    assert seen == Counter({i: 1 for i in ids})
    assert stats.delivered == len(ids)


def test_business_identifier__undoes_fhir_search_escaping() -> None:
    request = {"method": "POST", "ifNoneExist": r"identifier=http://x.example/a\|b|V\,1\\2"}
    assert business_identifier(request) == ("http://x.example/a|b", "V,1\\2")
    assert business_identifier({"method": "PUT", "url": "Patient/p1"}) is None
