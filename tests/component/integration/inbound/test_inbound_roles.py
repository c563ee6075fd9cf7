"""The two Task polls (fhir/task_searches.py), on SQLite and PostgreSQL, the FHIR server faked
with respx: one search for Tasks owned by the IOP's Organization, one for Tasks owned by a
PractitionerRole of it (``owner:PractitionerRole.organization``). The fake answers each form of
GET /Task by its parameters; each poll keeps its own cursor; the de-duplication is shared, so a
version one path took in is not handled again by another.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures and inbound_support are test
# parameters here)

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from sqlalchemy import Engine

from integration.fhir.client import FhirClient
from integration.fhir.task_searches import BY_PRACTITIONER_ROLE
from integration.inbound import engine as inbound
from integration.settings import Settings
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
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio
ROLE_PARAMETER = "owner:PractitionerRole.organization"
ORG_CURSOR = inbound.cursor_name(ORG)
ROLE_CURSOR = inbound.cursor_name(ORG, BY_PRACTITIONER_ROLE)


def at(second: int) -> str:
    return f"2026-11-02T10:00:{second:02d}.000Z"


def instant(second: int) -> datetime:
    return datetime(2026, 11, 2, 10, 0, second, tzinfo=UTC)


def serve(org_tasks: list[dict[str, Any]], role_tasks: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Both forms of the Task search, each with its own answer (respx matches the parameters
    it is given among those sent)."""
    by_org = respx.get(f"{BASE}/Task", params={"owner": ORG}).respond(
        200, json=searchset(*org_tasks)
    )
    by_role = respx.get(f"{BASE}/Task", params={ROLE_PARAMETER: ORG}).respond(
        200, json=searchset(*role_tasks)
    )
    return by_org, by_role


@respx.mock
async def test_poll_inbound__both_searches_each_with_its_own_cursor(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    by_org, by_role = serve([make_task("1", updated=at(1))], [make_task("2", updated=at(7))])
    handler = CountingHandler()
    first = await inbound.poll_inbound_tasks(fhir, engine, settings, ORG, handler=handler)
    assert (first.seen, first.handled, first.duplicates) == (2, 2, 0)
    assert sorted(handler.calls) == [("1", "1"), ("2", "1")]
    assert handled_rows(engine) == ["1-v1", "2-v1"]
    assert inbound.read_cursor(engine, ORG_CURSOR) == instant(1) == first.high_water
    assert inbound.read_cursor(engine, ROLE_CURSOR) == instant(7)
    assert by_role.calls.last.request.url.params.get("owner") is None  # the chain alone

    again = await inbound.poll_inbound_tasks(fhir, engine, settings, ORG, handler=handler)
    assert (again.seen, again.handled, again.duplicates) == (2, 0, 2)
    # each search starts from its own cursor, less the 5 s overlap
    assert by_org.calls.last.request.url.params["_lastUpdated"] == "ge2026-11-02T09:59:56Z"
    assert by_role.calls.last.request.url.params["_lastUpdated"] == "ge2026-11-02T10:00:02Z"


@respx.mock
async def test_poll_inbound__a_version_taken_in_by_a_notification_is_not_handled_again(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    task = make_task("5", updated=at(3))
    serve([], [task])
    handler = CountingHandler()
    notified = await inbound.accept_notification(fhir, engine, task, handler=handler)
    assert notified is inbound.Outcome.HANDLED
    polled = await inbound.poll_inbound_tasks(fhir, engine, settings, ORG, handler=handler)
    assert (polled.seen, polled.handled, polled.duplicates) == (1, 0, 1)
    assert handler.calls == [("5", "1")]
    assert event_count(engine) == 1
    assert inbound.read_cursor(engine, ROLE_CURSOR) == instant(3)  # the cursor moves past it


@respx.mock
async def test_poll_inbound__one_version_in_both_answers_is_handled_once(
    engine: Engine, fhir: FhirClient, settings: Settings
) -> None:
    """A server whose two answers overlap (the owner changed between the searches)."""
    serve([make_task("9", updated=at(4))], [make_task("9", updated=at(4))])
    handler = CountingHandler()
    result = await inbound.poll_inbound_tasks(fhir, engine, settings, ORG, handler=handler)
    assert (result.seen, result.handled, result.duplicates) == (2, 1, 1)
    assert handler.calls == [("9", "1")]
    assert handled_rows(engine) == ["9-v1"]
