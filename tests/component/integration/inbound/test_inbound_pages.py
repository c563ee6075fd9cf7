"""The poll a batch of pages at a time, on SQLite and PostgreSQL: one transaction per batch, and a
Task that fails (in its handler's I/O, in its database step, or without a version) left alone
unrecorded while the rest of its batch commits; the cursor never moves past it.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures and inbound_support are test
# parameters here)

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db.inbound_table import InboundEvent
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirServerUnavailable
from integration.inbound import engine as inbound
from integration.settings import Settings
from mappers.errors import InvalidInputError
from tests.component.integration.inbound.inbound_support import (  # noqa: F401
    BASE,
    ORG,
    CountingHandler,
    event_count,
    fhir,
    handled_rows,
    make_task,
    searchset,
    settings,
    store_referral,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio
CURSOR = inbound.cursor_name(ORG)


def at(second: int) -> str:
    return f"2026-11-02T10:00:{second:02d}.000Z"


def instant(second: int) -> datetime:
    return datetime(2026, 11, 2, 10, 0, second, tzinfo=UTC)


def serve_pages(*pages: list[dict[str, Any]]) -> None:
    """The Task search answers ``pages``, linked by next links as HAPI pages them."""
    for number, tasks in enumerate(pages):
        body = searchset(*tasks)
        if number + 1 < len(pages):
            body["link"] = [
                {"relation": "next", "url": f"{BASE}?_getpages=s&_getpagesoffset={number + 1}"}
            ]
        if number == 0:
            respx.get(f"{BASE}/Task").respond(200, json=body)
        else:
            params = {"_getpages": "s", "_getpagesoffset": str(number)}
            respx.get(BASE, params=params).respond(200, json=body)


def count_transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many Tasks' steps each page transaction was given."""
    sizes: list[int] = []
    real = inbound._transaction

    def spy(engine: Engine, steps: list[Any], *args: Any) -> int:
        sizes.append(len(steps))
        return real(engine, steps, *args)

    monkeypatch.setattr(inbound, "_transaction", spy)
    return sizes


@respx.mock
async def test_poll__reads_every_page_and_commits_each_batch_once(
    engine: Engine, fhir: FhirClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_pages(
        [make_task("1", updated=at(1)), make_task("2", updated=at(2))],
        [make_task("3", updated=at(3)), make_task("4", updated=at(4))],
        [make_task("5", updated=at(5))],
    )
    transactions = count_transactions(monkeypatch)
    first = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=CountingHandler())
    assert (first.seen, first.handled, first.failed) == (5, 5, 0)
    assert sum(transactions) == 5 and 1 <= len(transactions) <= 3  # one per batch of pages
    assert handled_rows(engine) == [f"{i}-v1" for i in range(1, 6)]
    assert inbound.read_cursor(engine, CURSOR) == first.high_water == instant(5)

    transactions.clear()
    again = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=CountingHandler())
    assert (again.seen, again.handled, again.duplicates) == (5, 0, 5)
    assert transactions == []  # nothing new: no transaction at all
    assert event_count(engine) == 5


def failing_step(error: Callable[[], Exception]) -> inbound.Apply:
    def apply(session: Session, now: datetime) -> None:
        store_referral(session, "written-before-the-failure", now)
        session.flush()
        raise error()

    return apply


def colliding_step(session: Session, now: datetime) -> None:
    store_referral(session, "1-v1", now)  # Task 1's referral: the unique key fails at flush


@pytest.mark.parametrize(
    "step",
    [
        pytest.param(failing_step(lambda: InvalidInputError("bad", problems=[])), id="mapping"),
        pytest.param(colliding_step, id="integrity"),
    ],
)
@respx.mock
async def test_poll__a_failing_step_leaves_only_its_task_unrecorded(
    engine: Engine,
    fhir: FhirClient,
    settings: Settings,
    step: inbound.Apply,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = [make_task(str(i), updated=at(i)) for i in (1, 2, 3)]
    respx.get(f"{BASE}/Task").respond(200, json=searchset(*tasks))
    handler = CountingHandler(steps={"2": step})
    with caplog.at_level(logging.WARNING, logger="integration.inbound.engine"):
        result = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=handler)
    assert (result.handled, result.failed) == (2, 1)
    assert handled_rows(engine) == ["1-v1", "3-v1"]  # nothing of Task 2's step is kept
    assert event_count(engine) == 2
    assert inbound.read_cursor(engine, CURSOR) == instant(1)  # not past Task 2
    error = "IntegrityError" if step is colliding_step else "InvalidInputError"
    logged = [r.getMessage() for r in caplog.records if "Task/2" in r.getMessage()]
    assert logged == [f"poll: Task/2 failed ({error})"]  # ids and the error type, no text

    retry = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=CountingHandler())
    assert (retry.handled, retry.duplicates, retry.failed) == (1, 2, 0)
    assert handled_rows(engine) == ["1-v1", "2-v1", "3-v1"]
    assert inbound.read_cursor(engine, CURSOR) == instant(3)


@respx.mock
async def test_poll__a_task_without_version_or_time_holds_the_cursor(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    tasks = [make_task("1", updated=at(1)), {"resourceType": "Task", "id": "2"}]
    tasks.append(make_task("3", updated=at(3)))
    respx.get(f"{BASE}/Task").respond(200, json=searchset(*tasks))
    result = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=CountingHandler())
    assert (result.handled, result.failed) == (2, 1)
    assert inbound.read_cursor(engine, CURSOR) == instant(1)  # Task 3 is later than Task 2


@respx.mock
async def test_poll__a_version_a_notification_recorded_meanwhile_is_a_duplicate(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    tasks = [make_task("4", updated=at(4)), make_task("5", updated=at(5))]
    respx.get(f"{BASE}/Task").respond(200, json=searchset(*tasks))

    async def notification_first(task: Mapping[str, Any]) -> None:
        if task["id"] == "5":  # after the poll's seen-check, before its commit
            outcome = await inbound.accept_task(
                engine, task, via=inbound.Via.SUBSCRIPTION, handler=CountingHandler()
            )
            assert outcome is inbound.Outcome.HANDLED

    handler = CountingHandler(during=notification_first)
    result = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=handler)
    assert (result.handled, result.duplicates, result.failed) == (1, 1, 0)
    assert handled_rows(engine) == ["4-v1", "5-v1"]  # Task 5's step ran once, not twice
    with session_scope(engine) as session:
        vias = dict(session.execute(select(InboundEvent.resource_id, InboundEvent.via)).all())
    assert vias == {"4": "poll", "5": "subscription"}
    assert inbound.read_cursor(engine, CURSOR) == instant(5)


@respx.mock
async def test_poll__a_search_failing_midway_keeps_the_pages_before_it(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    first = searchset(make_task("1", updated=at(1)), make_task("2", updated=at(2)))
    first["link"] = [{"relation": "next", "url": f"{BASE}?_getpages=s&_getpagesoffset=2"}]
    respx.get(f"{BASE}/Task").respond(200, json=first)
    respx.get(BASE, params={"_getpages": "s"}).respond(503)
    with pytest.raises(FhirServerUnavailable):
        await inbound.poll_tasks(fhir, engine, settings, ORG, handler=CountingHandler())
    assert handled_rows(engine) == ["1-v1", "2-v1"]
    assert inbound.read_cursor(engine, CURSOR) == instant(2)  # committed with their batch


@respx.mock
async def test_poll__an_unexpected_error_records_nothing_of_its_batch(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    inbound.write_cursor(engine, CURSOR, instant(0))
    tasks = [make_task(str(i), updated=at(i)) for i in (1, 2)]
    respx.get(f"{BASE}/Task").respond(200, json=searchset(*tasks))
    handler = CountingHandler(steps={"2": failing_step(lambda: RuntimeError("a bug"))})
    with pytest.raises(RuntimeError):
        await inbound.poll_tasks(fhir, engine, settings, ORG, handler=handler)
    assert event_count(engine) == 0 and handled_rows(engine) == []
    assert inbound.read_cursor(engine, CURSOR) == instant(0)


async def test_accept_page__the_same_version_twice_on_a_page_is_handled_once(
    engine: Engine,
) -> None:
    cursor = inbound.PollCursor(CURSOR, stored=None, high_water=None)
    handler = CountingHandler()
    result = await inbound.accept_page(
        engine,
        [make_task("6", updated=at(6)), make_task("6", updated=at(6))],
        via=inbound.Via.POLL,
        handler=handler,
        cursor=cursor,
    )
    assert (result.seen, result.handled, result.duplicates) == (2, 1, 1)
    assert handler.calls == [("6", "1")]
    assert cursor.stored == instant(6) == inbound.read_cursor(engine, CURSOR)


def test_poll_cursor__stops_at_the_first_failure() -> None:
    cursor = inbound.PollCursor(CURSOR, stored=instant(0), high_water=instant(0))
    page = [make_task(str(i), updated=at(i)) for i in (1, 2, 3)]
    assert cursor.after(page, set()).value == instant(3)
    assert cursor.after(page, {1}).value == instant(1)
    assert cursor.after(page, {0, 2}).value == instant(0)
    assert not cursor.after([], set()).moved
    moved = cursor.after(page, {1})
    assert moved.after([make_task("4", updated=at(4))], set()).value == instant(1)
