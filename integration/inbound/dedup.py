"""The inbound sync's rows: which resource versions were taken in, and how far each poll has read.

``inbound_event`` holds one row per (type, id, versionId, lastUpdated); its unique key is what
turns a late, repeated or doubly delivered version into a no-op. The lastUpdated stamp is what
keeps a server that forgot (reset, restored, an in-memory HAPI restarted) from passing off a new
Task/1027 version 1 as the old one: ids and versionIds are recycled, millisecond stamps are not.
``sync_cursor`` holds each poll's high-water mark (one row per search: Tasks owned by the IOP's
Organization, and by a PractitionerRole of it) in the server's clock (meta.lastUpdated). The
session functions flush and never commit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db.inbound_table import InboundEvent, SyncCursor
from integration.db.store import dialect_insert, session_scope
from integration.fhir.task_searches import BY_ORGANIZATION, TASK_SEARCHES, TaskSearch
from mappers.errors import InvalidInputError, Problem

EventKey = tuple[str, str, str, str]  # (type, id, versionId, meta.lastUpdated)
_UNIQUE_KEY = ["resource_type", "resource_id", "version_id", "last_updated"]
LEGACY_STAMP = ""  # rows recorded before migration 0008 carry no stamp
_EVENTS = InboundEvent.__table__


class Via(StrEnum):
    """How a resource version reached iop-bridge."""

    SUBSCRIPTION = "subscription"
    POLL = "poll"


def event_key(resource: Mapping[str, Any]) -> EventKey:
    """(type, id, versionId, lastUpdated) of a resource as the server stored it; a clear error
    without an id and at least one of the two."""
    meta = resource.get("meta") or {}
    stamp = str(meta.get("lastUpdated") or "")
    version = meta.get("versionId") or stamp
    if not resource.get("id") or not version:
        problem = Problem("meta.versionId", "a stored resource needs an id and a versionId")
        raise InvalidInputError("cannot tell resource versions apart", problems=[problem])
    return str(resource.get("resourceType")), str(resource["id"]), str(version), stamp


def seen_keys(engine: Engine, keys: Iterable[EventKey]) -> set[EventKey]:
    """Which of ``keys`` are already recorded: one query for a whole page."""
    wanted = set(keys)
    if not wanted:
        return set()
    query = select(
        InboundEvent.resource_type,
        InboundEvent.resource_id,
        InboundEvent.version_id,
        InboundEvent.last_updated,
    ).where(
        InboundEvent.resource_type.in_({key[0] for key in wanted}),
        InboundEvent.resource_id.in_({key[1] for key in wanted}),
    )  # (type, id) is the unique key's prefix; the versions are matched here
    with engine.connect() as connection:  # a read: no unit of work needed
        rows = [(str(t), str(i), str(v), str(u or "")) for t, i, v, u in connection.execute(query)]
    found = {row for row in rows if row[3] != LEGACY_STAMP}
    legacy = {row[:3] for row in rows if row[3] == LEGACY_STAMP}
    return {key for key in wanted if key in found or key[:3] in legacy}


def record_event(session: Session, key: EventKey, *, via: Via, at: datetime) -> bool:
    """Insert the event row; False when that version is already recorded (flushes)."""
    return key in record_events(session, [key], via=via, at=at)


def record_events(
    session: Session, keys: Iterable[EventKey], *, via: Via, at: datetime
) -> set[EventKey]:
    """Insert the event rows in one statement; returns the keys that were not recorded yet."""
    rows = [
        {
            "resource_type": t,
            "resource_id": i,
            "version_id": v,
            "last_updated": u,
            "via": str(via),
            "received_at": at,
        }
        for t, i, v, u in dict.fromkeys(keys)
    ]
    if not rows:
        return set()
    columns = _EVENTS.c
    statement = (
        dialect_insert(session.get_bind().dialect.name)(_EVENTS)
        .on_conflict_do_nothing(index_elements=_UNIQUE_KEY)
        # RETURNING, not rowcount: it names which rows a racing delivery had already written
        .returning(
            columns.resource_type, columns.resource_id, columns.version_id, columns.last_updated
        )
    )
    # Core, with the rows as parameters: one cached statement that SQLAlchemy sends as a single
    # multi-row INSERT ("insertmanyvalues"), without building 5 bind parameters per row each time
    result = session.connection().execute(statement, rows)
    return {(str(t), str(i), str(v), str(u)) for t, i, v, u in result}


def mark_refused(session: Session, key: EventKey, reason: str) -> None:
    """Keep why the recorded version ``key`` was ignored (flushes)."""
    row = session.scalar(
        select(InboundEvent).where(
            InboundEvent.resource_type == key[0],
            InboundEvent.resource_id == key[1],
            InboundEvent.version_id == key[2],
        )
    )
    if row is not None:
        row.refused = reason
        session.flush()


def cursor_name(organization_ref: str, search: TaskSearch = BY_ORGANIZATION) -> str:
    """The cursor of one Task poll (``search``, fhir/task_searches.py) for one Organization.
    The Organization-owner poll keeps the name it had before there were two."""
    if search == BY_ORGANIZATION:
        return f"task-poll:{organization_ref}"
    return f"task-poll:{search.key}:{organization_ref}"


def cursor_names(organization_ref: str) -> list[str]:
    """The cursors of every Task poll of one Organization."""
    return [cursor_name(organization_ref, search) for search in TASK_SEARCHES]


def read_cursor(engine: Engine, name: str) -> datetime | None:
    """The high-water mark of cursor ``name`` (server time), or None before the first poll."""
    with session_scope(engine) as session:
        return session.scalar(select(SyncCursor.high_water).where(SyncCursor.name == name))


def write_cursor(engine: Engine, name: str, high_water: datetime) -> None:
    """Set cursor ``name`` in its own transaction."""
    with session_scope(engine) as session:
        set_cursor(session, name, high_water)


def set_cursor(session: Session, name: str, high_water: datetime) -> None:
    """Set cursor ``name``; it never moves back except to re-read a failed Task (flushes)."""
    cursor = session.get(SyncCursor, name)
    if cursor is None:
        session.add(SyncCursor(name=name, high_water=high_water))
    else:
        cursor.high_water = high_water
    session.flush()


def last_updated(resource: Mapping[str, Any]) -> datetime | None:
    """meta.lastUpdated as an aware datetime (the server's clock)."""
    value = (resource.get("meta") or {}).get("lastUpdated")
    if not isinstance(value, str):
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None
