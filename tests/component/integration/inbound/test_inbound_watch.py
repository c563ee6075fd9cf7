"""The inbound loop of a worker (runtime.run_inbound), the FHIR server faked with respx: the poll
runs at the fallback interval while the Subscription is not active, a Subscription gone from the
server is created again, and a re-created Organization re-baselines the poll (issue 14)."""

# ruff: noqa: F811  (fixtures imported from tests.db.fixtures and inbound_support are parameters)

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from sqlalchemy import Engine

from integration import runtime
from integration.fhir.client import FhirClient
from integration.fhir.task_searches import BY_PRACTITIONER_ROLE
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


ROLE_CRITERIA = f"Task?owner:PractitionerRole.organization={ORG}"


def _subscriptions(*statuses: str, owner: str = ORG, role: str | None = "same") -> dict[str, Any]:
    """Our Subscriptions as the server answers any Subscription search: per status one with the
    Organization criteria and one with the PractitionerRole criteria (``role``: its status
    instead of the same one; None: it is missing)."""
    criteria = [f"Task?owner={owner}", f"Task?owner:PractitionerRole.organization={owner}"]
    entries = []
    for i, status in enumerate(statuses):
        for n, (wanted, state) in enumerate(zip(criteria, (status, role), strict=True)):
            if state is None:
                continue
            entries.append(
                {
                    "resource": {
                        "resourceType": "Subscription",
                        "id": f"s{i}-{n}",
                        "status": status if state == "same" else state,
                        "criteria": wanted,
                        "channel": {"type": "rest-hook", "endpoint": HOOK},
                    }
                }
            )
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

    monkeypatch.setattr(runtime, "poll_inbound_tasks", poll)
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
    ("status", "role", "fewest", "most"),
    [
        ("requested", "same", 3, 20),  # not notified: every 0.05 s (at 30 s it would be one poll)
        ("error", "same", 3, 20),
        ("active", "same", 1, 1),  # notified: the 30 s safety net only
        # Tasks owned by a PractitionerRole of the IOP are not notified: the fallback again
        ("active", "requested", 3, 20),
        ("active", "error", 3, 20),
    ],
)
@respx.mock
async def test_run_inbound__polls_at_the_fallback_interval_only_while_not_notified(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    role: str,
    fewest: int,
    most: int,
) -> None:
    respx.get(f"{BASE}/{ORG}/_history/1").respond(200, json=_organization())
    respx.get(f"{BASE}/Subscription").respond(200, json=_subscriptions(status, role=role))
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
    asked = {_criteria(call.request) for call in created.calls}
    assert asked == {f"Task?owner={ORG}", ROLE_CRITERIA}  # both, each at least once


def _criteria(request: httpx.Request) -> str:
    """The criteria a Subscription POST carries, checked against its If-None-Exist."""
    body = json.loads(request.content)
    match = parse_qs(request.headers["if-none-exist"])
    assert match["criteria"] == [body["criteria"]]
    return str(body["criteria"])


@respx.mock
async def test_run_inbound__only_the_missing_practitioner_role_subscription_is_created_again(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    respx.get(f"{BASE}/{ORG}/_history/1").respond(200, json=_organization())
    respx.get(f"{BASE}/Subscription").respond(200, json=_subscriptions("active", role=None))
    created = respx.post(f"{BASE}/Subscription").respond(
        201, json={"resourceType": "Subscription", "id": "s9", "status": "requested"}
    )
    with caplog.at_level(logging.WARNING, logger="integration.runtime"):
        await _run_for(0.2, fhir, engine, _fast(settings), monkeypatch)
    assert created.called
    assert {_criteria(call.request) for call in created.calls} == {ROLE_CRITERIA}
    assert "creating it again (practitioner-role)" in caplog.text


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
    role_cursor = inbound.cursor_name(ORG, BY_PRACTITIONER_ROLE)
    inbound.write_cursor(engine, role_cursor, datetime(2026, 11, 3, tzinfo=UTC))
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
    assert inbound.read_cursor(engine, role_cursor) is None  # both polls re-baselined
    reborn = datetime(2026, 11, 4, 8, 0, tzinfo=UTC)
    assert inbound.read_cursor(engine, IDENTITY_PREFIX + ORG) == reborn
