"""Outbox worker: claim due messages, deliver each to the FHIR server, settle, record sync state.

Several workers (in one process or many) may share one PostgreSQL database: claiming is
exclusive (integration.outbox). A worker killed mid-delivery leaves its messages in flight until
their lease ends; another worker then delivers them again, which is safe because every payload
is a conditional write keyed on a business identifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from integration.concurrency import update_owned_fields
from integration.errors import FhirError, FhirNotFound, FhirRateLimited
from integration.fhir_client import FhirClient, WriteOutcome
from integration.outbox import (
    DEFAULT_LEASE_SECONDS,
    Backoff,
    ClaimedMessage,
    MessageKind,
    claim_batch,
    exponential_backoff,
    mark_delivered,
    mark_failed,
    release,
)
from integration.store import record_sync, session_scope
from mappers import bundle
from mappers.bundle import EntryOutcome

log = logging.getLogger(__name__)


class MalformedMessage(ValueError):
    """The payload cannot be sent as it is; waiting will not fix it, so it goes dead at once."""


@dataclass(frozen=True, slots=True)
class DeliveredEntry:
    """Where one written resource landed, keyed by the business identifier it was matched on."""

    identifier: tuple[str, str] | None  # (system, value); None when the write had no identifier
    outcome: EntryOutcome
    label: str  # created | matched | updated


Deliver = Callable[[FhirClient, ClaimedMessage], Awaitable[Sequence[DeliveredEntry]]]


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
    """Deliver outbox messages until ``stop_event`` is set; returns what was done."""
    send = deliver or deliver_message
    stats = WorkerStats()
    while not stop_event.is_set():
        batch = await _claim(engine, worker_id, batch_size, lease_seconds)
        for index, message in enumerate(batch):
            if stop_event.is_set():
                await asyncio.to_thread(_release_all, engine, batch[index:])
                break
            await _process(engine, fhir_client, message, send, backoff, stats)
        if not batch:
            await _wait(stop_event, poll_interval)
    return stats


async def deliver_message(fhir: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
    """Send one message by its kind; the FHIR client raises typed FhirErrors on failure."""
    if message.kind == MessageKind.TRANSACTION:
        return await _deliver_transaction(fhir, message.payload)
    if message.kind == MessageKind.RESOURCE:
        return [await _deliver_entry(fhir, message.payload)]
    if message.kind == MessageKind.OWNED_FIELDS:
        return [await _deliver_owned_fields(fhir, message.payload)]
    raise MalformedMessage(f"unknown outbox message kind {message.kind!r}")


def describe_error(exc: Exception) -> str:
    """Status code, HAPI codes and the error class: never the server's text, which may hold PHI."""
    summary = (type(exc).__doc__ or "").strip().splitlines()
    text = f"{type(exc).__name__}: {summary[0]}" if summary else type(exc).__name__
    if isinstance(exc, FhirError):
        codes = " ".join(exc.hapi_codes)
        return " ".join(part for part in (str(exc.status or "-"), codes, text) if part)
    return text


async def _claim(
    engine: Engine, worker_id: str, batch_size: int, lease_seconds: float
) -> list[ClaimedMessage]:
    try:
        return await asyncio.to_thread(claim_batch, engine, worker_id, batch_size, lease_seconds)
    except SQLAlchemyError as exc:
        # The database is briefly unavailable or busy (SQLite "database is locked"): poll again.
        log.warning("worker %s: claim failed (%s); will poll again", worker_id, type(exc).__name__)
        return []


async def _process(
    engine: Engine,
    fhir: FhirClient,
    message: ClaimedMessage,
    send: Deliver,
    backoff: Backoff,
    stats: WorkerStats,
) -> None:
    """Deliver one message and settle it; never lets one message stop the worker."""
    failure: Exception | None = None
    delivered: Sequence[DeliveredEntry] = ()
    try:
        delivered = await send(fhir, message)
    except Exception as exc:  # every failure is settled on the message; none ends the loop
        failure = exc
    try:
        if failure is None:
            await asyncio.to_thread(_settle_success, engine, message, delivered, stats)
        else:
            await asyncio.to_thread(_settle_failure, engine, message, failure, backoff, stats)
    except SQLAlchemyError as exc:
        # Not settled: the lease runs out and the message is delivered again (idempotently).
        log.warning("outbox message %s: settling failed (%s)", message.id, type(exc).__name__)


def _settle_success(
    engine: Engine, message: ClaimedMessage, delivered: Sequence[DeliveredEntry], stats: WorkerStats
) -> None:
    with session_scope(engine) as session:
        for entry in delivered:
            if entry.identifier is None:
                continue
            record_sync(
                session,
                resource_type=entry.outcome.resource_type,
                identifier=entry.identifier,
                server_id=entry.outcome.resource_id,
                version_id=entry.outcome.version_id,
                outcome=entry.label,
            )
        settled = mark_delivered(session, message)
    if settled:
        stats.delivered += 1
    else:
        stats.lease_lost += 1
        log.warning("outbox message %s: delivered after its lease was taken over", message.id)


def _settle_failure(
    engine: Engine, message: ClaimedMessage, exc: Exception, backoff: Backoff, stats: WorkerStats
) -> None:
    retryable = isinstance(exc, FhirError) and exc.retryable
    retry_after = exc.retry_after if isinstance(exc, FhirRateLimited) else None
    error = describe_error(exc)
    with session_scope(engine) as session:
        status = mark_failed(
            session,
            message,
            error=error,
            retryable=retryable,
            backoff=backoff,
            retry_after=retry_after,
        )
    if status is None:
        stats.lease_lost += 1
    elif status == "dead":
        stats.dead += 1
        log.error("outbox message %s (%s) is dead: %s", message.id, message.kind, error)
    else:
        stats.retried += 1
        log.info("outbox message %s: attempt %s failed: %s", message.id, message.attempts, error)


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


async def _deliver_transaction(
    fhir: FhirClient, payload: Mapping[str, Any]
) -> list[DeliveredEntry]:
    """POST the transaction; pair each response entry with the request entry it answers."""
    response = await fhir.transaction(payload)
    outcomes = bundle.read_transaction_response(response)
    requests = [entry.get("request") or {} for entry in payload.get("entry") or []]
    if len(outcomes) != len(requests):
        # FHIR R4 http.html#transaction-response: one response entry per request entry, in order
        raise MalformedMessage("transaction response does not answer every entry")
    return [
        _delivered(request, outcome) for request, outcome in zip(requests, outcomes, strict=True)
    ]


async def _deliver_entry(fhir: FhirClient, entry: Mapping[str, Any]) -> DeliveredEntry:
    """One Bundle.entry-shaped write: conditional create (POST), conditional or plain update."""
    resource, request = entry["resource"], entry["request"]
    method, url = str(request.get("method", "")), str(request.get("url", ""))
    if method == "POST":
        written = await fhir.create(resource, if_none_exist=request.get("ifNoneExist"))
    elif method == "PUT" and "?" in url:
        written = await fhir.conditional_update(resource, match=_parse_query(url.partition("?")[2]))
    elif method == "PUT":
        written = await fhir.update(resource)
    else:
        raise MalformedMessage(f"unsupported request method {method!r} for a resource message")
    return _delivered(request, _entry_outcome(str(resource["resourceType"]), written))


async def _deliver_owned_fields(fhir: FhirClient, payload: Mapping[str, Any]) -> DeliveredEntry:
    """Change only the elements this side owns on the one resource with that identifier."""
    resource_type = str(payload["resourceType"])
    system, value = str(payload["identifier"]["system"]), str(payload["identifier"]["value"])
    token = bundle.identifier_token(system, value)
    found = [r async for r in fhir.search_all(resource_type, {"identifier": token})]
    if len(found) != 1:
        # Messages of one aggregate are delivered in order, so the create came first: zero
        # matches means the resource was removed, several that identifiers are not unique.
        # Retrying cannot fix either; the message goes dead with this reason.
        raise FhirNotFound(f"{resource_type} with identifier {token}: {len(found)} matches")
    to_set = dict(payload.get("set") or {})
    to_remove = [str(name) for name in payload.get("remove") or []]

    def change(current: dict[str, Any]) -> dict[str, Any]:
        for name in to_remove:
            current.pop(name, None)
        return current | to_set

    written = await update_owned_fields(fhir, resource_type, str(found[0]["id"]), change)
    return DeliveredEntry((system, value), _entry_outcome(resource_type, written), "updated")


def _entry_outcome(resource_type: str, written: WriteOutcome) -> EntryOutcome:
    """The EntryOutcome of a single write, from the returned resource or else its Location."""
    body = written.resource
    status = 201 if written.created else 200
    if body.get("id"):
        version = (body.get("meta") or {}).get("versionId")
        return EntryOutcome(status, resource_type, str(body["id"]), version)
    location = {"response": {"status": str(status), "location": written.location or ""}}
    return bundle.read_transaction_response({"entry": [location]})[0]


def _delivered(request: Mapping[str, Any], outcome: EntryOutcome) -> DeliveredEntry:
    method = request.get("method")
    label = "created" if outcome.created else "matched" if method == "POST" else "updated"
    return DeliveredEntry(business_identifier(request), outcome, label)


def business_identifier(request: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (system, value) a conditional write matches on: ifNoneExist or the PUT's query."""
    query = request.get("ifNoneExist") or str(request.get("url", "")).partition("?")[2]
    token = _parse_query(str(query)).get("identifier")
    return _split_token(token) if token else None


def _parse_query(query: str) -> dict[str, str]:
    # mappers.bundle builds match URLs unencoded ("identifier=sys|val"); '+' is not a space here.
    pairs = (part.partition("=") for part in query.split("&") if part)
    return {key: value for key, _, value in pairs}


def _split_token(token: str) -> tuple[str, str] | None:
    """Undo FHIR search escaping (search.html#escaping) and split ``system|value``."""
    parts, escaped = [""], False
    for char in token:
        if escaped:
            parts[-1] += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|" and len(parts) == 1:
            parts.append("")
        else:
            parts[-1] += char
    return (parts[0], parts[1]) if len(parts) == 2 else None
