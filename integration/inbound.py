"""Inbound sync: Task changes arrive by rest-hook notification and by a ``_lastUpdated`` poll.

Notifications can be late, repeated or missing (HAPI sends none on delete, and none while
iop-bridge is down), so the poll is the safety net (fhir-domain-reference.md 5.4, 5.6). Both
paths go through :func:`accept_task`: the handler first does its I/O (reading the referral
package) outside any transaction, then one transaction inserts the (type, id, versionId) row of
``inbound_event`` and runs the handler's database step. A version already recorded does nothing;
if two deliveries race, the unique key lets one commit and the other do nothing. A failure before
the commit records nothing, so the next notification or poll tries that version again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from integration.db.base import utcnow
from integration.db.inbound_table import InboundEvent, SyncCursor
from integration.fhir_client import FhirClient
from integration.settings import Settings
from integration.store import session_scope
from integration.workflows import step_down
from integration.workflows.package_fetch import read_task
from mappers import bundle
from mappers.errors import InvalidInputError, IopBridgeError, Problem
from mappers.fhir_write import format_datetime

log = logging.getLogger(__name__)

# A database step run in the de-duplication transaction, given the session and the time.
Apply = Callable[[Session, datetime], None]
# Reads what it needs for one Task version (I/O), then returns its database step.
Handler = Callable[[Mapping[str, Any]], Awaitable[Apply]]


class Via(StrEnum):
    """How a resource version reached iop-bridge."""

    SUBSCRIPTION = "subscription"
    POLL = "poll"


class Outcome(StrEnum):
    """What accepting one notification did."""

    HANDLED = "handled"  # a new version: recorded and handled
    DUPLICATE = "duplicate"  # seen before: nothing done
    GONE = "gone"  # notified by id, but the Task no longer exists


@dataclass(slots=True)
class PollResult:
    """What one poll did; ``high_water`` is the server time the next poll starts from."""

    seen: int = 0
    handled: int = 0
    duplicates: int = 0
    failed: int = 0
    high_water: datetime | None = None


def default_handler(fhir: FhirClient, settings: Settings, organization: str) -> Handler:
    """Workflow 1's handler (the step-down referral) for Tasks owned by ``organization``."""
    return step_down.task_handler(fhir, settings.mapping_context(), organization)


async def accept_task(
    engine: Engine,
    task: Mapping[str, Any],
    *,
    via: Via,
    handler: Handler,
    now: datetime | None = None,
) -> Outcome:
    """Handle one Task version once: the handler's step commits with its inbound_event row."""
    key = event_key(task)
    if await asyncio.to_thread(_seen, engine, key):
        return Outcome.DUPLICATE  # the common duplicate: skip the handler's I/O
    apply = await handler(task)
    moment = now or utcnow()

    def commit() -> bool:
        with session_scope(engine) as session:
            if not record_event(session, key, via=via, at=moment):
                return False  # another delivery of the same version got here first
            apply(session, moment)
            return True

    handled = await asyncio.to_thread(commit)
    return Outcome.HANDLED if handled else Outcome.DUPLICATE


async def accept_notification(
    fhir: FhirClient,
    engine: Engine,
    task_or_id: Mapping[str, Any] | str,
    *,
    handler: Handler,
    now: datetime | None = None,
) -> Outcome:
    """A rest-hook notification: the Task from its body, or read by id when the body is empty."""
    if isinstance(task_or_id, str):
        found = await read_task(fhir, task_or_id)
        if found is None:
            return Outcome.GONE
        task: Mapping[str, Any] = found
    else:
        task = task_or_id
    return await accept_task(engine, task, via=Via.SUBSCRIPTION, handler=handler, now=now)


async def poll_tasks(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization_ref: str,
    *,
    overlap_seconds: float = 5,
    handler: Handler | None = None,
    now: datetime | None = None,
) -> PollResult:
    """Task?owner=<org>&_lastUpdated=ge<high water - overlap>&_sort=_lastUpdated, each Task
    through the same de-duplication and handler; then advance the cursor in server time."""
    handle = handler or default_handler(fhir, settings, organization_ref)
    name = cursor_name(organization_ref)
    since = await asyncio.to_thread(read_cursor, engine, name)
    params = {"owner": organization_ref, "_sort": "_lastUpdated"}
    if since is not None:
        # Overlap: a transaction that committed late can carry an older lastUpdated (5.4).
        params["_lastUpdated"] = "ge" + format_datetime(since - timedelta(seconds=overlap_seconds))
    result = PollResult(high_water=since)
    first_failure: datetime | None = None
    async for task in fhir.search_all("Task", params):
        result.seen += 1
        updated = last_updated(task)
        try:
            outcome = await accept_task(engine, task, via=Via.POLL, handler=handle, now=now)
        except (IopBridgeError, SQLAlchemyError) as exc:
            result.failed += 1
            first_failure = first_failure or updated
            log.warning("poll: Task/%s failed (%s)", task.get("id"), type(exc).__name__)
            continue
        result.handled += outcome is Outcome.HANDLED
        result.duplicates += outcome is Outcome.DUPLICATE
        if first_failure is None and updated is not None:
            result.high_water = max(filter(None, (result.high_water, updated)))
    if first_failure is not None:
        # Never move past a Task that failed: the next poll (ge) must see it again.
        result.high_water = min(filter(None, (result.high_water, first_failure)))
    if result.high_water is not None and result.high_water != since:
        await asyncio.to_thread(write_cursor, engine, name, result.high_water)
    return result


async def run_poller(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization_ref: str,
    *,
    stop_event: asyncio.Event,
    interval_seconds: float = 60.0,
) -> None:
    """Poll until ``stop_event`` is set; a failed poll is logged and tried again next round."""
    while not stop_event.is_set():
        try:
            await poll_tasks(fhir, engine, settings, organization_ref)
        except (IopBridgeError, SQLAlchemyError) as exc:
            log.warning("poll of %s failed (%s)", organization_ref, type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=interval_seconds)


async def find_organization(fhir: FhirClient, settings: Settings) -> str | None:
    """``Organization/<id>`` of the IOP (by its business identifier), or None if not set up."""
    token = bundle.identifier_token(settings.organization_id_system, settings.organization_id)
    page = await fhir.search("Organization", {"identifier": token})
    for entry in page.get("entry") or []:
        return f"Organization/{entry['resource']['id']}"
    return None


# --- De-duplication and cursors (each flushes, none commits) ---------------------------------


EventKey = tuple[str, str, str]


def event_key(resource: Mapping[str, Any]) -> EventKey:
    """(type, id, versionId) of a resource as the server stored it; a clear error without them."""
    meta = resource.get("meta") or {}
    version = meta.get("versionId") or meta.get("lastUpdated")
    if not resource.get("id") or not version:
        problem = Problem("meta.versionId", "a stored resource needs an id and a versionId")
        raise InvalidInputError("cannot tell resource versions apart", problems=[problem])
    return str(resource.get("resourceType")), str(resource["id"]), str(version)


def record_event(session: Session, key: EventKey, *, via: Via, at: datetime) -> bool:
    """Insert the event row; False when that version is already recorded (flushes)."""
    insert = _insert(session)(InboundEvent).values(
        resource_type=key[0], resource_id=key[1], version_id=key[2], via=str(via), received_at=at
    )
    index = ["resource_type", "resource_id", "version_id"]
    statement = insert.on_conflict_do_nothing(index_elements=index).returning(InboundEvent.id)
    # RETURNING, not rowcount: an ORM-enabled insert does not report rowcount on every driver
    inserted = session.execute(statement).scalar_one_or_none()
    session.flush()
    return inserted is not None


def cursor_name(organization_ref: str) -> str:
    """The cursor of the Task poll for one owner."""
    return f"task-poll:{organization_ref}"


def read_cursor(engine: Engine, name: str) -> datetime | None:
    """The high-water mark of cursor ``name`` (server time), or None before the first poll."""
    with session_scope(engine) as session:
        return session.scalar(select(SyncCursor.high_water).where(SyncCursor.name == name))


def write_cursor(engine: Engine, name: str, high_water: datetime) -> None:
    """Set cursor ``name``; it never moves back except to re-read a failed Task."""
    with session_scope(engine) as session:
        cursor = session.get(SyncCursor, name)
        if cursor is None:
            session.add(SyncCursor(name=name, high_water=high_water))
        else:
            cursor.high_water = high_water


def last_updated(resource: Mapping[str, Any]) -> datetime | None:
    """meta.lastUpdated as an aware datetime (the server's clock)."""
    value = (resource.get("meta") or {}).get("lastUpdated")
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _seen(engine: Engine, key: EventKey) -> bool:
    with session_scope(engine) as session:
        query = select(InboundEvent.id).where(
            InboundEvent.resource_type == key[0],
            InboundEvent.resource_id == key[1],
            InboundEvent.version_id == key[2],
        )
        return session.scalar(query) is not None


def _insert(session: Session) -> Callable[..., Any]:
    # ON CONFLICT DO NOTHING exists on both backends, each with its own construct.
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"no insert-or-ignore for database backend {name!r}")
