"""Against a stock HAPI (the official JPA starter's defaults: sandbox/hapi HAPI_PROFILE=stock).

Marker ``stock_only``: these need what the project's own sandbox profile switches off (the 60 s
search cache, rest-hook off), so the test command runs them against the second, stock-profile
HAPI only (scripts/test.sh). Each checks first that the server really behaves that way, so a
server configured otherwise fails the test instead of passing it by coincidence.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from integration.fhir.client import FhirClient
from integration.fhir.health import check_health
from integration.fhir.setup import ensure_organization, ensure_task_subscription
from integration.inbound import engine as inbound
from integration.inbound.server_reset import note_server, organization_born, reset_reason
from integration.settings import Settings
from mappers.fhir_write import format_datetime
from tests.conftest import live_base_url
from tests.task_recorder import Recorder

pytestmark = [pytest.mark.live, pytest.mark.stock_only, pytest.mark.anyio]
SYSTEM = "http://iop-bridge.example/fhir/sid/live-stock-task"


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    return live_settings.model_copy(update={"organization_id": f"IOP-{unique}"})


def _task(value: str, owner: str, status: str = "requested") -> dict[str, Any]:
    # literal FHIR, as a foreign system writes it
    return {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "identifier": [{"system": SYSTEM, "value": value}],
        "owner": {"reference": owner},
    }


async def _plain_search_ids(params: dict[str, str]) -> set[str]:
    """The same search without Cache-Control: what a client that does not ask gets."""
    async with httpx.AsyncClient(base_url=live_base_url()) as client:
        page = (await client.get("/Task", params=params)).json()
    return {entry["resource"]["id"] for entry in page.get("entry") or []}


async def test_poll__a_cached_search_cannot_lose_a_task(
    fhir: FhirClient, engine: Engine, settings: Settings, unique: str
) -> None:
    organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
    a = (await fhir.create(_task(f"{unique}-A", organization))).resource
    handler = Recorder()
    await inbound.poll_tasks(fhir, engine, settings, organization, handler=handler)
    # the second poll's search (ge cursor - 5 s) is the one HAPI now holds in its cache
    await inbound.poll_tasks(fhir, engine, settings, organization, handler=handler)
    cursor = inbound.read_cursor(engine, inbound.cursor_name(organization))
    assert cursor is not None
    params = {
        "owner": organization,
        "_sort": "_lastUpdated",
        "_lastUpdated": "ge" + format_datetime(cursor - timedelta(seconds=5)),
    }
    b = (await fhir.create(_task(f"{unique}-B", organization))).resource
    await asyncio.sleep(1.0)
    await fhir.update({**a, "status": "cancelled"})
    # The loss as a plain client meets it: the cached answer serves A's new version, not B.
    assert await _plain_search_ids(params) == {a["id"]}, "the server does not cache searches"

    result = await inbound.poll_tasks(fhir, engine, settings, organization, handler=handler)

    assert b["id"] in handler.ids()
    assert result.handled == 2  # B, and A's second version
    later = await inbound.poll_tasks(fhir, engine, settings, organization, handler=handler)
    assert (later.handled, len(handler.seen)) == (0, 3)


async def test_health__reports_a_subscription_the_server_never_activates(
    fhir: FhirClient, engine: Engine, settings: Settings
) -> None:
    organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
    await ensure_task_subscription(fhir, organization, settings.hook_base_url, token=None)
    await asyncio.sleep(7)  # HAPI activates subscriptions in a pass every 5 s when it can

    report = await check_health(fhir, engine, settings)

    assert report.ok and report.degraded
    assert report.subscription is not None
    assert report.subscription.status == "requested"
    assert "resthook_enabled" in (report.subscription.reason or "")


async def _put(fhir: FhirClient, resource: dict[str, Any]) -> dict[str, Any]:
    return (await fhir.update(resource)).resource


async def _forget(fhir: FhirClient, *paths: str) -> None:
    """Delete and expunge each resource with its history, so its id can come back as version 1
    (instance $expunge: the stock server allows it; expungeEverything needs multiple delete)."""
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "expungeDeletedResources", "valueBoolean": True},
            {"name": "expungePreviousVersions", "valueBoolean": True},
        ],
    }
    for path in paths:
        await fhir.request("DELETE", path)
        await fhir.request("POST", f"{path}/$expunge", body=body)


async def test_reset__a_recycled_task_id_is_taken_in_and_the_poll_re_baselined(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that forgot and hands out the same ids: the Organization and the Task of two
    different referrals carry the same ids and version 1 (client-assigned ids stand in for the
    in-memory HAPI's recycled sequence, as a restored or purged server gives them)."""
    org_id, task_id = f"iop-{unique.lower()}", f"ref-{unique.lower()}"
    organization = f"Organization/{org_id}"
    iop = {
        "resourceType": "Organization",
        "id": org_id,
        "identifier": [{"system": settings.organization_id_system, "value": f"IOP-{unique}"}],
        "name": "Synthetic IOP",
    }
    await _put(fhir, iop)
    assert await ensure_organization(fhir, settings, name="Synthetic IOP") == organization
    await note_server(engine, organization, await organization_born(fhir, organization))
    first = await _put(fhir, {**_task(f"{unique}-1", organization), "id": task_id})
    handler = Recorder()
    await inbound.poll_tasks(fhir, engine, settings, organization, handler=handler)

    await _forget(fhir, f"Task/{task_id}", organization)  # the server forgets ...
    await asyncio.sleep(1.0)
    await _put(fhir, iop)  # ... and the same ids come back for new things
    second = await _put(fhir, {**_task(f"{unique}-2", organization), "id": task_id})
    assert (second["id"], second["meta"]["versionId"]) == (first["id"], "1")

    with caplog.at_level(logging.WARNING, logger="integration.inbound.server_reset"):
        assert await reset_reason(fhir, engine, organization) is not None
    assert "FHIR server reset detected" in caplog.text
    assert inbound.read_cursor(engine, inbound.cursor_name(organization)) is None
    result = await inbound.poll_tasks(fhir, engine, settings, organization, handler=handler)

    assert result.handled == 1
    assert handler.seen == [
        (task_id, first["meta"]["lastUpdated"]),
        (task_id, second["meta"]["lastUpdated"]),
    ]
