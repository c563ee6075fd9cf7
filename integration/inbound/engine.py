"""Inbound sync: Task changes arrive by rest-hook notification and by a ``_lastUpdated`` poll.

Two searches find the Tasks addressed to the IOP (fhir/task_searches.py): owned by its
Organization, or by a PractitionerRole of it. Each has its Subscription and its poll with its own
cursor (:func:`poll_inbound_tasks` runs both); the de-duplication below is one for all of them.

Notifications can be late, repeated or missing (HAPI sends none on delete, and none while
iop-bridge is down), so the poll is the safety net (fhir-domain-reference.md 5.4, 5.6). Each
version is handled once: the handler first does its I/O (reading the referral package) outside
any transaction, then one transaction inserts the (type, id, versionId) row of ``inbound_event``
and runs the handler's database step. A version already recorded does nothing; if two deliveries
race, the unique key lets one commit and the other do nothing. A failure before the commit
records nothing, so the next notification or poll tries that version again.

A notification is one Task (:func:`accept_task`). The poll reads the search's pages ahead and
takes in every page that has arrived as one batch (:func:`accept_page`): one query for which of
its versions are recorded, the handler's I/O for the new ones, then ONE transaction for their
event rows, their steps and the cursor. A Task whose handler or step fails is left unrecorded
(logged by id and error type) and the rest of its batch is committed without it; the cursor never
moves past it, so the next poll tries it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from integration.db.base import utcnow
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.read_ahead import read_ahead
from integration.fhir.setup import find_organization
from integration.fhir.task_searches import BY_ORGANIZATION, TASK_SEARCHES, TaskSearch
from integration.inbound.dedup import (
    EventKey,
    Via,
    cursor_name,
    event_key,
    last_updated,
    mark_refused,
    read_cursor,
    record_event,
    record_events,
    seen_keys,
    set_cursor,
    write_cursor,
)
from integration.referrals import step_down
from integration.referrals.package_fetch import read_task
from integration.settings import Settings
from mappers.errors import IopBridgeError
from mappers.fhir_write import format_datetime

__all__ = [
    "Apply",
    "Handler",
    "Outcome",
    "PollResult",
    "Via",
    "accept_notification",
    "accept_page",
    "accept_task",
    "cursor_name",
    "default_handler",
    "event_key",
    "find_organization",
    "last_updated",
    "poll_inbound_tasks",
    "poll_tasks",
    "read_cursor",
    "record_event",
    "write_cursor",
]

log = logging.getLogger(__name__)

# A database step run in the de-duplication transaction, given the session and the time. It
# returns why it refused the version (mappers.task_trust.Refusal, kept on the event row) or None.
Apply = Callable[[Session, datetime], str | None]
# Reads what it needs for one Task version (I/O), then returns its database step.
Handler = Callable[[Mapping[str, Any]], Awaitable[Apply]]
# What may fail for one Task without failing its page: FHIR and mapping errors, the database.
TASK_ERRORS = (IopBridgeError, SQLAlchemyError)
# Pages the poll may read ahead of its commits (the most it takes in one transaction), and the
# pages a transaction waits for: measured on SQLite (WAL, synchronous FULL), a batch of 5 pages
# of 20 Tasks de-duplicates in about a third of the time of 5 one-page batches.
READ_AHEAD_PAGES = 10
BATCH_PAGES = 5


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
    if await asyncio.to_thread(seen_keys, engine, [key]):
        return Outcome.DUPLICATE  # the common duplicate: skip the handler's I/O
    apply = await handler(task)
    moment = now or utcnow()

    def commit() -> bool:
        with session_scope(engine) as session:
            if not record_event(session, key, via=via, at=moment):
                return False  # another delivery of the same version got here first
            refused = apply(session, moment)
            if refused is not None:
                mark_refused(session, key, refused)
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


@dataclass(slots=True)
class PollCursor:
    """A poll's cursor: past every Task recorded so far, never past one that failed."""

    name: str
    stored: datetime | None  # what the database holds
    high_water: datetime | None  # the newest lastUpdated before the first failure
    failed: bool = False  # once a Task failed, later ones no longer move the cursor
    first_failure: datetime | None = None  # that Task's lastUpdated (None if it had none)
    # The instant the search's answer is complete as of (the earliest page's Bundle.meta.
    # lastUpdated). HAPI keeps a search's matches and reads their CURRENT versions when it
    # serves a page, so a search run (or cached) at T can return a Task updated after T while
    # missing another Task changed after T: nothing past T is known to be complete.
    as_of: datetime | None = None

    def see_page(self, page: Mapping[str, Any]) -> None:
        """Note how fresh a searchset page is (called as each page arrives)."""
        valid = last_updated(page)
        if valid is not None:
            self.as_of = min(filter(None, (self.as_of, valid)))

    def after(self, tasks: Sequence[Mapping[str, Any]], failed: set[int]) -> PollCursor:
        """The cursor once ``tasks`` (in server order) are taken in, those at ``failed`` not."""
        moved = dataclasses.replace(self)
        for index, task in enumerate(tasks):
            updated = last_updated(task)
            if index in failed and not moved.failed:
                moved.failed, moved.first_failure = True, updated
            elif not moved.failed and updated is not None:
                reach = min(filter(None, (updated, self.as_of)))  # never past the search's time
                moved.high_water = max(filter(None, (moved.high_water, reach)))
        return moved

    @property
    def value(self) -> datetime | None:
        """Where the next poll starts (before its overlap)."""
        if self.first_failure is None:
            return self.high_water
        # Never move past a Task that failed: the next poll (ge) must see it again.
        return min(filter(None, (self.high_water, self.first_failure)))

    def take(self, moved: PollCursor) -> None:
        """Become ``moved`` (a batch is done)."""
        self.stored, self.high_water = moved.stored, moved.high_water
        self.failed, self.first_failure = moved.failed, moved.first_failure
        self.as_of = min(filter(None, (self.as_of, moved.as_of)), default=None)

    @property
    def moved(self) -> bool:
        """Whether the database does not hold :attr:`value` yet."""
        return self.value is not None and self.value != self.stored


@dataclass(slots=True)
class _Step:
    """One new Task version of a page, between its handler's I/O and its commit."""

    index: int  # its place on the page
    key: EventKey
    apply: Apply


@dataclass(slots=True)
class _PageOutcome:
    handled: int = 0
    duplicates: int = 0
    failed: set[int] = field(default_factory=set)  # indexes on the page


class _StepFailed(Exception):
    """One step of a page transaction raised; the transaction is rolled back."""

    def __init__(self, step: _Step, error: Exception) -> None:
        super().__init__(step.index)
        self.step, self.error = step, error


async def accept_page(
    engine: Engine,
    tasks: Sequence[Mapping[str, Any]],
    *,
    via: Via,
    handler: Handler,
    cursor: PollCursor,
    now: datetime | None = None,
) -> PollResult:
    """Handle a page of Task versions once each, committing the new ones and the cursor together."""
    outcome = _PageOutcome()
    keys: dict[int, EventKey] = {}
    for index, task in enumerate(tasks):
        try:
            keys[index] = event_key(task)
        except IopBridgeError as exc:
            _failed(outcome, index, task, exc, via)
    seen = await asyncio.to_thread(seen_keys, engine, keys.values())
    steps: list[_Step] = []
    for index, key in keys.items():
        if key in seen:
            outcome.duplicates += 1  # the common duplicate: skip the handler's I/O
            continue
        seen.add(key)  # the same version twice on one page is handled once
        try:
            steps.append(_Step(index, key, await handler(tasks[index])))
        except TASK_ERRORS as exc:
            _failed(outcome, index, tasks[index], exc, via)
    await _commit_page(engine, tasks, steps, outcome, via, now or utcnow(), cursor)
    return PollResult(len(tasks), outcome.handled, outcome.duplicates, len(outcome.failed))


async def _commit_page(
    engine: Engine,
    tasks: Sequence[Mapping[str, Any]],
    steps: list[_Step],
    outcome: _PageOutcome,
    via: Via,
    at: datetime,
    cursor: PollCursor,
) -> None:
    """One transaction for the page; a failing step is dropped and the rest committed again."""
    while True:
        moved = cursor.after(tasks, outcome.failed)
        if not steps:
            break  # nothing new to record: the cursor is written at the end of the poll
        try:
            inserted = await asyncio.to_thread(_transaction, engine, steps, via, at, moved)
        except _StepFailed as failure:
            _failed(outcome, failure.step.index, tasks[failure.step.index], failure.error, via)
            steps.remove(failure.step)
            continue
        except SQLAlchemyError as exc:  # the commit itself: nothing of the page is recorded
            for step in steps:
                _failed(outcome, step.index, tasks[step.index], exc, via)
            steps = []
            continue
        outcome.handled += inserted
        outcome.duplicates += len(steps) - inserted  # raced by another delivery
        moved.stored = moved.value
        break
    cursor.take(moved)


def _transaction(
    engine: Engine, steps: list[_Step], via: Via, at: datetime, cursor: PollCursor
) -> int:
    """Insert the event rows, run the steps of the versions inserted, move the cursor."""
    with session_scope(engine) as session:
        inserted = record_events(session, [step.key for step in steps], via=via, at=at)
        for step in steps:
            if step.key not in inserted:
                continue  # another delivery of the same version got here first
            try:
                refused = step.apply(session, at)
                if refused is not None:
                    mark_refused(session, step.key, refused)
                session.flush()  # so a step's database error is its own, not the commit's
            except TASK_ERRORS as exc:
                raise _StepFailed(step, exc) from exc
        if cursor.moved and cursor.value is not None:
            set_cursor(session, cursor.name, cursor.value)
        return len(inserted)


def _failed(
    outcome: _PageOutcome, index: int, task: Mapping[str, Any], exc: Exception, via: Via
) -> None:
    outcome.failed.add(index)
    # the id and the error's type only: an error's message may quote the resource (PHI)
    log.warning("%s: Task/%s failed (%s)", via, task.get("id"), type(exc).__name__)


async def poll_inbound_tasks(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization_ref: str,
    *,
    handler: Handler | None = None,
    now: datetime | None = None,
) -> PollResult:
    """Both polls, one after the other (each with its own cursor): Tasks owned by the IOP's
    Organization, then by a PractitionerRole of it. The de-duplication is shared, so a Task
    version either poll or a notification already took in is not handled again. The result
    adds up both; its ``high_water`` is the Organization poll's."""
    handle = handler or default_handler(fhir, settings, organization_ref)
    total = PollResult()
    for search in TASK_SEARCHES:
        done = await poll_tasks(
            fhir, engine, settings, organization_ref, handler=handle, now=now, search=search
        )
        total.seen += done.seen
        total.handled += done.handled
        total.duplicates += done.duplicates
        total.failed += done.failed
        if search == BY_ORGANIZATION:
            total.high_water = done.high_water
    return total


async def poll_tasks(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization_ref: str,
    *,
    overlap_seconds: float = 5,
    handler: Handler | None = None,
    now: datetime | None = None,
    search: TaskSearch = BY_ORGANIZATION,
) -> PollResult:
    """One poll: Task?owner=<org> (or ``search``'s parameter) &_lastUpdated=ge<high water -
    overlap>&_sort=_lastUpdated, a batch of pages at a time through the same de-duplication and
    handler; the cursor (one per search) moves in server time."""
    handle = handler or default_handler(fhir, settings, organization_ref)
    name = cursor_name(organization_ref, search)
    since = await asyncio.to_thread(read_cursor, engine, name)
    params = {**search.params(organization_ref), "_sort": "_lastUpdated"}
    if since is not None:
        # Overlap: a transaction that committed late can carry an older lastUpdated (5.4).
        params["_lastUpdated"] = "ge" + format_datetime(since - timedelta(seconds=overlap_seconds))
    cursor = PollCursor(name, stored=since, high_water=since)
    result = PollResult()
    answer = fhir.search_pages("Task", params, on_page=cursor.see_page)
    pages = read_ahead(answer, depth=READ_AHEAD_PAGES, least=BATCH_PAGES)
    async with contextlib.aclosing(pages):
        async for batch in pages:
            done = await accept_page(
                engine, batch, via=Via.POLL, handler=handle, cursor=cursor, now=now
            )
            result.seen += done.seen
            result.handled += done.handled
            result.duplicates += done.duplicates
            result.failed += done.failed
    if cursor.moved and cursor.value is not None:
        await asyncio.to_thread(write_cursor, engine, name, cursor.value)
    result.high_water = cursor.value
    return result
