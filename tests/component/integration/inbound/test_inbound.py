"""Inbound sync on SQLite and PostgreSQL: de-duplication by (id, versionId) and the poll cursor.

The handler here is a stand-in that counts calls and writes one row per handled version, so
the tests see exactly when the handler's database step ran; the FHIR server is faked with respx.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures and inbound_support are test
# parameters here)

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db.inbound_table import InboundEvent
from integration.db.models import Referral
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.inbound import engine as inbound
from integration.settings import Settings
from mappers.errors import InvalidInputError
from tests.component.integration.inbound.inbound_support import (  # noqa: F401
    BASE,
    FAR_FUTURE,
    ORG,
    CountingHandler,
    event_count,
    fhir,
    handled_rows,
    make_task,
    searchset,
    settings,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio


async def test_accept_task__same_version_twice_runs_the_handler_once(engine: Engine) -> None:
    handler = CountingHandler()
    first = await inbound.accept_task(
        engine, make_task("7"), via=inbound.Via.SUBSCRIPTION, handler=handler
    )
    again = await inbound.accept_task(engine, make_task("7"), via=inbound.Via.POLL, handler=handler)
    newer = await inbound.accept_task(
        engine, make_task("7", "2"), via=inbound.Via.POLL, handler=handler
    )
    assert (first, again, newer) == (
        inbound.Outcome.HANDLED,
        inbound.Outcome.DUPLICATE,
        inbound.Outcome.HANDLED,
    )
    assert handler.calls == [("7", "1"), ("7", "2")]
    assert handled_rows(engine) == ["7-v1", "7-v2"]


async def test_accept_task__racing_deliveries_of_one_version_commit_once(engine: Engine) -> None:
    handler = CountingHandler(pause=0.05)  # both pass the "seen?" check before either commits
    outcomes = await asyncio.gather(
        inbound.accept_task(engine, make_task("8"), via=inbound.Via.SUBSCRIPTION, handler=handler),
        inbound.accept_task(engine, make_task("8"), via=inbound.Via.POLL, handler=handler),
    )
    assert sorted(outcomes) == [inbound.Outcome.DUPLICATE, inbound.Outcome.HANDLED]
    assert len(handler.calls) == 2  # both did their reading ...
    assert handled_rows(engine) == ["8-v1"]  # ... but only one database step committed
    assert event_count(engine) == 1


async def test_accept_task__a_failing_step_records_nothing_so_it_is_tried_again(
    engine: Engine,
) -> None:
    async def broken(task: Mapping[str, Any]) -> inbound.Apply:
        def apply(session: Session, now: datetime) -> None:
            session.add(
                Referral(
                    business_id="half",
                    status="requested",
                    client_mrn="M",
                    iop_organization=ORG,
                    received_at=now,
                )
            )
            session.flush()
            raise RuntimeError("mapping blew up after a write")

        return apply

    with pytest.raises(RuntimeError):
        await inbound.accept_task(engine, make_task("9"), via=inbound.Via.POLL, handler=broken)
    assert event_count(engine) == 0 and handled_rows(engine) == []
    outcome = await inbound.accept_task(
        engine, make_task("9"), via=inbound.Via.POLL, handler=CountingHandler()
    )
    assert outcome is inbound.Outcome.HANDLED


async def test_accept_task__without_version_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await inbound.accept_task(
            engine,
            {"resourceType": "Task", "id": "1"},
            via=inbound.Via.POLL,
            handler=CountingHandler(),
        )
    assert caught.value.problems[0].path == "meta.versionId"


@respx.mock
async def test_accept_notification__id_only_reads_the_task(
    engine: Engine, fhir: FhirClient
) -> None:
    respx.get(f"{BASE}/Task/11").respond(200, json=make_task("11", "3"))
    respx.get(f"{BASE}/Task/12").respond(410, json={"resourceType": "OperationOutcome"})
    handler = CountingHandler()
    assert await inbound.accept_notification(fhir, engine, "11", handler=handler) == "handled"
    assert await inbound.accept_notification(fhir, engine, "12", handler=handler) == "gone"
    assert handler.calls == [("11", "3")]
    with session_scope(engine) as session:
        assert session.scalar(select(InboundEvent.via)) == "subscription"


@respx.mock
async def test_poll__cursor_advances_by_server_time_and_the_next_poll_overlaps(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    tasks = [
        make_task("1", updated="2026-11-02T10:00:00.000+00:00"),
        make_task("2", updated="2026-11-02T10:00:07.250+00:00"),
    ]
    route = respx.get(f"{BASE}/Task").respond(200, json=searchset(*tasks))
    handler = CountingHandler()
    first = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=handler, now=FAR_FUTURE)
    params = route.calls[0].request.url.params
    assert (params["owner"], params["_sort"]) == (ORG, "_lastUpdated")
    assert "_lastUpdated" not in params  # the first poll reads everything
    high_water = datetime(2026, 11, 2, 10, 0, 7, 250_000, tzinfo=UTC)
    assert (first.seen, first.handled, first.high_water) == (2, 2, high_water)
    assert inbound.read_cursor(engine, inbound.cursor_name(ORG)) == high_water

    second = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=handler, now=FAR_FUTURE)
    assert route.calls[1].request.url.params["_lastUpdated"] == "ge2026-11-02T10:00:02.250000Z"
    assert (second.seen, second.handled, second.duplicates) == (2, 0, 2)  # the overlap, deduped
    assert len(handler.calls) == 2
    assert inbound.read_cursor(engine, inbound.cursor_name(ORG)) == high_water


@respx.mock
async def test_poll__never_moves_past_a_task_that_failed(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    tasks = [
        make_task("1", updated="2026-11-02T10:00:00.000Z"),
        make_task("2", updated="2026-11-02T10:00:05.000Z"),
        make_task("3", updated="2026-11-02T10:00:09.000Z"),
    ]
    respx.get(f"{BASE}/Task").respond(200, json=searchset(*tasks))
    result = await inbound.poll_tasks(
        fhir, engine, settings, ORG, handler=CountingHandler(fail_for="2")
    )
    assert (result.handled, result.failed) == (2, 1)
    stuck = datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC)  # the last Task handled before it
    assert inbound.read_cursor(engine, inbound.cursor_name(ORG)) == stuck
    retry = await inbound.poll_tasks(fhir, engine, settings, ORG, handler=CountingHandler())
    assert (retry.handled, retry.duplicates) == (1, 2)  # Task 2 is taken in now
    assert handled_rows(engine) == ["1-v1", "2-v1", "3-v1"]
    assert retry.high_water == datetime(2026, 11, 2, 10, 0, 9, tzinfo=UTC)


def test_last_updated__reads_server_instants() -> None:
    assert inbound.last_updated(make_task("1", updated="2026-11-02T10:00:00.5Z")) == datetime(
        2026, 11, 2, 10, 0, 0, 500_000, tzinfo=UTC
    )
    assert inbound.last_updated({"meta": {}}) is None
    assert inbound.last_updated({"meta": {"lastUpdated": "yesterday"}}) is None
