"""The inbound loop of a worker (runtime.run_inbound), the FHIR server faked with respx: the poll
runs at the fallback interval while the Subscription is not active, a Subscription gone from the
server is created again, and a re-created Organization re-baselines the poll (issue 14)."""

# ruff: noqa: F811  (fixtures imported from tests.db.fixtures and inbound_support are parameters)

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from sqlalchemy import Engine

from integration import runtime
from integration.fhir.client import FhirClient
from integration.inbound import engine as inbound
from integration.inbound.server_reset import IDENTITY_PREFIX
from integration.settings import Settings
from tests.component.integration.inbound.inbound_support import (  # noqa: F401
    BASE,
    ORG,
    fhir,
    settings,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio
BORN = "2026-11-02T09:00:00.000Z"
HOOK = Settings().hook_base_url


def _organization(born: str = BORN) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": "iop-1", "meta": {"lastUpdated": born}}


def _subscriptions(*statuses: str, owner: str = ORG) -> dict[str, Any]:
    entries = [
        {
            "resource": {
                "resourceType": "Subscription",
                "id": f"s{i}",
                "status": status,
                "criteria": f"Task?owner={owner}",
                "channel": {"type": "rest-hook", "endpoint": HOOK},
            }
        }
        for i, status in enumerate(statuses)
    ]
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


async def _run_for(
    seconds: float,
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """Run the loop for ``seconds`` with a stand-in poll; returns the organizations polled."""
    polled: list[str] = []

    async def poll(_fhir: Any, _engine: Any, _settings: Any, organization: str) -> None:
        polled.append(organization)

    monkeypatch.setattr(runtime, "poll_tasks", poll)
    stop = asyncio.Event()
    loop = asyncio.create_task(
        runtime.run_inbound(fhir, engine, settings, ORG, subscribe=True, stop_event=stop)
    )
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
    return polled


def _fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"inbound_poll_seconds": 30.0, "inbound_fallback_poll_seconds": 0.05}
    )


@pytest.mark.parametrize(
    ("status", "fewest", "most"),
    [
        ("requested", 3, 20),  # not notified: every 0.05 s (at 30 s it would be one poll)
        ("error", 3, 20),
        ("active", 1, 1),  # notified: the 30 s safety net only
    ],
)
@respx.mock
async def test_run_inbound__polls_at_the_fallback_interval_only_while_not_notified(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    fewest: int,
    most: int,
) -> None:
    respx.get(f"{BASE}/{ORG}/_history/1").respond(200, json=_organization())
    respx.get(f"{BASE}/Subscription").respond(200, json=_subscriptions(status))
    polled = await _run_for(1.0, fhir, engine, _fast(settings), monkeypatch)
    assert fewest <= len(polled) <= most
    assert set(polled) == {ORG}


@respx.mock
async def test_run_inbound__a_subscription_gone_from_the_server_is_created_again(
    fhir: FhirClient, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    respx.get(f"{BASE}/{ORG}/_history/1").respond(200, json=_organization())
    # a string search matches by prefix: another IOP's Subscription is not ours
    respx.get(f"{BASE}/Subscription").respond(200, json=_subscriptions("active", owner=ORG + "0"))
    created = respx.post(f"{BASE}/Subscription").respond(
        201, json={"resourceType": "Subscription", "id": "s9", "status": "requested"}
    )
    await _run_for(0.2, fhir, engine, _fast(settings), monkeypatch)
    assert created.called
    assert created.calls[0].request.headers["if-none-exist"].startswith("criteria=")


@respx.mock
async def test_run_inbound__an_organization_created_anew_re_baselines_the_poll(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    inbound.write_cursor(engine, IDENTITY_PREFIX + ORG, before)
    inbound.write_cursor(engine, inbound.cursor_name(ORG), datetime(2026, 11, 3, tzinfo=UTC))
    # the server was reset: the same id now names an Organization written later
    respx.get(f"{BASE}/{ORG}/_history/1").respond(
        200, json=_organization("2026-11-04T08:00:00.000Z")
    )
    respx.get(f"{BASE}/Subscription").respond(200, json=_subscriptions("active"))
    respx.post(f"{BASE}/Organization").respond(200, json=_organization())
    # the set-up publishes our Questionnaires again (they went with the reset)
    respx.post(f"{BASE}/Questionnaire").respond(
        200, json={"resourceType": "Questionnaire", "id": "q1"}
    )
    respx.post(f"{BASE}/Subscription").respond(
        200, json={"resourceType": "Subscription", "id": "s0", "status": "active"}
    )
    with caplog.at_level(logging.WARNING, logger="integration.inbound.server_reset"):
        polled = await _run_for(0.2, fhir, engine, _fast(settings), monkeypatch)
    assert "FHIR server reset detected" in caplog.text
    assert polled == [ORG]
    assert inbound.read_cursor(engine, inbound.cursor_name(ORG)) is None
    reborn = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
    assert inbound.read_cursor(engine, IDENTITY_PREFIX + ORG) == reborn
