"""Inbound against HAPI, the residential EHR writing first: by rest-hook and by poll.

(a) The iop-bridge app runs under uvicorn on a free loopback port; HAPI's rest-hook Subscription
delivers the Task there and the referral appears in the store. (b) Without a Subscription, the
``_lastUpdated`` poll takes the referral in, and a second poll only finds duplicates.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from api.app import create_app
from integration.db.inbound_table import InboundEvent
from integration.db.models import Referral
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_organization, ensure_task_subscription
from integration.inbound import engine as inbound
from integration.settings import Settings
from tests.conftest import live_base_url
from tests.servers import serve_in_thread

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
from residential_ehr import ResidentialEhr

pytestmark = [pytest.mark.live, pytest.mark.anyio]


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    # A fresh IOP per test: its Subscription and poll see only this test's Tasks.
    return live_settings.model_copy(update={"organization_id": f"IOP-{unique}"})


@pytest.fixture
async def ehr(settings: Settings, unique: str) -> AsyncIterator[ResidentialEhr]:
    client = ResidentialEhr.connect(
        live_base_url(),
        organization_id=f"RES-{unique}",
        iop_identifier=(settings.organization_id_system, settings.organization_id),
    )
    yield client
    await client.aclose()


@pytest.fixture
def app_port(settings: Settings) -> Iterator[int]:
    """iop-bridge's app under uvicorn in a background thread on a free 127.0.0.1 port."""
    with serve_in_thread(create_app(settings)) as port:
        yield port


def _referrals(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        return [(r.business_id, r.status) for r in session.scalars(select(Referral))]


def _vias(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return list(session.scalars(select(InboundEvent.via)))


async def _wait_active(fhir: FhirClient, subscription: str) -> None:
    for _ in range(60):  # HAPI activates subscriptions asynchronously (a few seconds)
        if (await fhir.read("Subscription", subscription.split("/")[1]))["status"] == "active":
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{subscription} never became active")


@pytest.mark.resthook
async def test_subscription__hapi_delivers_the_task_and_the_referral_is_stored(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    ehr: ResidentialEhr,
    app_port: int,
    unique: str,
) -> None:
    organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
    endpoint = f"http://127.0.0.1:{app_port}/fhir-hooks"
    subscription = await ensure_task_subscription(fhir, organization, endpoint, token=None)
    try:
        await _wait_active(fhir, subscription)
        referred = await ehr.refer(int(unique, 16))
        for _ in range(90):  # HAPI delivers 5-10 s after the change
            if _referrals(engine):
                break
            await asyncio.sleep(0.5)
        assert _referrals(engine) == [(referred.identifier, "requested")]
        assert _vias(engine) == ["subscription"]
        # The poll, the safety net, finds the same version and does nothing with it.
        result = await inbound.poll_tasks(fhir, engine, settings, organization)
        assert (result.seen, result.handled, result.duplicates) == (1, 0, 1)
        assert _referrals(engine) == [(referred.identifier, "requested")]
    finally:
        await fhir.request("DELETE", subscription)


async def test_poll__takes_the_referral_in_and_advances_by_server_time(
    fhir: FhirClient, engine: Engine, settings: Settings, ehr: ResidentialEhr, unique: str
) -> None:
    organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
    referred = await ehr.refer(int(unique, 16))
    first = await inbound.poll_tasks(fhir, engine, settings, organization)
    assert (first.seen, first.handled) == (1, 1)
    assert _referrals(engine) == [(referred.identifier, "requested")]
    task = await fhir.read("Task", referred.task_id)
    cursor = inbound.read_cursor(engine, inbound.cursor_name(organization))
    assert cursor == inbound.last_updated(task)  # the server's clock, not ours
    second = await inbound.poll_tasks(fhir, engine, settings, organization)
    assert (second.seen, second.handled, second.duplicates) == (1, 0, 1)
    assert _vias(engine) == ["poll"]


async def test_poll__reads_hapi_pages_ahead_and_records_every_task_once(
    fhir: FhirClient, engine: Engine, settings: Settings, unique: str
) -> None:
    # 45 Tasks are three of HAPI's 20-entry pages, followed by its _getpages next links.
    organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
    system = "http://iop-bridge.example/fhir/sid/live-poll-task"
    entries = [
        {
            "resource": {
                "resourceType": "Task",
                "status": "requested",
                "intent": "order",
                "identifier": [{"system": system, "value": f"{unique}-{i}"}],
                "owner": {"reference": organization},
            },
            "request": {"method": "POST", "url": "Task"},
        }
        for i in range(45)
    ]
    await fhir.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    calls: list[str] = []

    async def record_only(task: Mapping[str, Any]) -> inbound.Apply:
        calls.append(str(task["id"]))
        return lambda session, now: None

    first = await inbound.poll_tasks(fhir, engine, settings, organization, handler=record_only)
    assert (first.seen, first.handled, first.failed) == (45, 45, 0)
    assert len(set(calls)) == 45 and len(_vias(engine)) == 45
    second = await inbound.poll_tasks(fhir, engine, settings, organization, handler=record_only)
    assert (second.seen, second.handled, second.duplicates) == (45, 0, 45)
    assert len(calls) == 45
    assert inbound.read_cursor(engine, inbound.cursor_name(organization)) == first.high_water
