"""Inbound against servers that cache and servers that forget (issue 14), the server faked with
respx: a search is always asked for fresh, the cursor never passes the instant a search's answer
is complete as of, and a recycled id's version 1 is a new version, not a duplicate."""

# ruff: noqa: F811  (fixtures imported from tests.db.fixtures and inbound_support are parameters)

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from sqlalchemy import Engine, insert

from integration.db.inbound_table import InboundEvent
from integration.fhir.client import FhirClient
from integration.inbound import engine as inbound
from integration.settings import Settings
from tests.component.integration.inbound.inbound_support import (  # noqa: F401
    BASE,
    ORG,
    fhir,
    make_task,
    searchset,
    settings,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401
from tests.task_recorder import Recorder

pytestmark = pytest.mark.anyio


def _as_of(bundle: dict[str, Any], instant: str) -> dict[str, Any]:
    return {**bundle, "meta": {"lastUpdated": instant}}


@respx.mock
async def test_poll__asks_for_a_fresh_search(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    route = respx.get(f"{BASE}/Task").respond(200, json=searchset(make_task("1")))
    await inbound.poll_tasks(fhir, engine, settings, ORG, handler=Recorder())
    assert route.calls[0].request.headers["cache-control"] == "no-cache"


@respx.mock
async def test_poll__cursor_stops_at_the_instant_the_answer_is_complete_as_of(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    # HAPI's cached search from 10:00:05 serves Task 1's CURRENT version (10:00:30); a Task 2
    # created at 10:00:20 is not in that cached answer. Past 10:00:05 nothing is known.
    answer = _as_of(
        searchset(make_task("1", "2", updated="2026-11-02T10:00:30.000Z")),
        "2026-11-02T10:00:05.000Z",
    )
    respx.get(f"{BASE}/Task").respond(200, json=answer)
    result = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=Recorder())
    as_of = datetime(2026, 11, 2, 10, 0, 5, tzinfo=UTC)
    assert result.handled == 1
    assert inbound.read_cursor(engine, inbound.cursor_name(ORG)) == as_of


@respx.mock
async def test_poll__a_complete_answer_moves_the_cursor_to_its_newest_task(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    answer = _as_of(
        searchset(make_task("1", updated="2026-11-02T10:00:30.000Z")), "2026-11-02T10:01:00.000Z"
    )
    respx.get(f"{BASE}/Task").respond(200, json=answer)
    await inbound.poll_tasks(fhir, engine, settings, ORG, handler=Recorder())
    newest = datetime(2026, 11, 2, 10, 0, 30, tzinfo=UTC)
    assert inbound.read_cursor(engine, inbound.cursor_name(ORG)) == newest


async def test_accept_task__a_recycled_id_with_a_new_stamp_is_a_new_version(
    engine: Engine,
) -> None:
    handler = Recorder()
    before_reset = make_task("1027", "1", updated="2026-11-02T10:00:00.000Z")
    after_reset = make_task("1027", "1", updated="2026-11-03T08:00:00.000Z")
    outcomes = [
        await inbound.accept_task(engine, task, via=inbound.Via.POLL, handler=handler)
        for task in (before_reset, before_reset, after_reset)
    ]
    assert outcomes == [
        inbound.Outcome.HANDLED,
        inbound.Outcome.DUPLICATE,
        inbound.Outcome.HANDLED,
    ]
    assert [stamp for _, stamp in handler.seen] == [
        "2026-11-02T10:00:00.000Z",
        "2026-11-03T08:00:00.000Z",
    ]


async def test_accept_task__a_row_recorded_before_the_stamp_still_matches_its_version(
    engine: Engine,
) -> None:
    # rows written before migration 0008 carry "" and stand for their version whatever its stamp
    with engine.begin() as connection:
        connection.execute(
            insert(InboundEvent).values(
                resource_type="Task",
                resource_id="7",
                version_id="1",
                last_updated="",
                via="poll",
                received_at=datetime(2026, 11, 1, tzinfo=UTC),
            )
        )
    handler = Recorder()
    outcome = await inbound.accept_task(
        engine, make_task("7"), via=inbound.Via.POLL, handler=handler
    )
    assert (outcome, handler.seen) == (inbound.Outcome.DUPLICATE, [])
