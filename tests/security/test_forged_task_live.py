"""Finding 1 (high): a Task forged on the FHIR server with a referral's business identifier must
not change that referral, whichever way iop-bridge hears of it (the unauthenticated hook route,
HAPI's own rest-hook Subscription even with a hook token, or the poll). The referral is
submitted through the API and delivered, and nothing has read it since (no settle_references):
the state in which the review cancelled it. The forged Task is refused, kept on its
inbound_event row with the reason and audited; the requester's own cancel on the genuine Task
still counts.

The attacker writes literal FHIR JSON (a copy of the victim's Task) with its own HTTP client."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine, select

from api.app import create_app
from api.schema_examples import EXAMPLE_SUBMISSION
from integration.db.audit_table import AuditEventRecord
from integration.db.inbound_table import InboundEvent
from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_task_subscription
from integration.inbound import engine as inbound
from integration.settings import Settings
from tests.conftest import live_base_url
from tests.live.test_inbound_live import _wait_active
from tests.live.test_referrals_api_live import SECRET, _drain, _headers, organizations
from tests.servers import serve_in_thread

pytestmark = [pytest.mark.live, pytest.mark.anyio]
__all__ = ["organizations"]  # a fixture, used by name


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    return live_settings.model_copy(
        update={"organization_id": f"IOP-{unique}", "auth_jwt_secret": SecretStr(SECRET)}
    )


@pytest.fixture
async def api(settings: Settings, organizations: dict[str, str]) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def _submitted_and_delivered(
    http: httpx.AsyncClient, fhir: FhirClient, settings: Settings, unique: str
) -> tuple[str, dict[str, Any]]:
    """POST /api/referrals, let the worker deliver it; the referral id and its Task on HAPI."""
    referral_id = f"SEC-{unique}"
    body = json.loads(json.dumps(EXAMPLE_SUBMISSION).replace("SD-000001", referral_id))
    sent = await http.post("/api/referrals", json=body,
                           headers=_headers(unique, "application/json"))  # fmt: skip
    assert sent.status_code == 201, sent.text
    engine = create_db_engine(settings.database_url, migrate_schema=False)
    await _drain(engine, fhir)
    engine.dispose()
    async with httpx.AsyncClient(base_url=live_base_url()) as raw:
        found = (await raw.get("Task", params={"identifier": referral_id})).json()
    [entry] = found["entry"]
    return referral_id, entry["resource"]


async def _forge(victim: dict[str, Any], owner: str | None = None) -> dict[str, Any]:
    """The attacker's Task: the victim's copied, cancelled with its own reason, POSTed anew."""
    forged = copy.deepcopy(victim)
    for element in ("id", "meta", "text"):
        forged.pop(element, None)
    forged |= {"status": "cancelled", "statusReason": {"text": "forged cancellation"},
               "requester": {"reference": owner or victim["requester"]["reference"]}}  # fmt: skip
    async with httpx.AsyncClient(base_url=live_base_url()) as raw:
        created = await raw.post("Task", json=forged,
                                 headers={"Content-Type": "application/fhir+json"})  # fmt: skip
    assert created.status_code == 201, created.text
    return dict(created.json())


def _refusals(engine: Engine, task_id: str) -> tuple[list[Any], list[Any]]:
    with session_scope(engine) as session:
        events = list(session.scalars(
            select(InboundEvent.refused).where(InboundEvent.resource_id == task_id)))  # fmt: skip
        audits = [(a.action, a.outcome, a.reason_code) for a in session.scalars(
            select(AuditEventRecord).where(AuditEventRecord.action == "task-change"))]  # fmt: skip
    return events, audits


async def _status(http: httpx.AsyncClient, referral_id: str, unique: str) -> str:
    read = await http.get(f"/api/referrals/{referral_id}",
                          headers=_headers(unique, "application/json"))  # fmt: skip
    assert read.status_code == 200, read.text
    return str(read.json()["status"])


async def test_forged_task__through_the_hook_route_is_refused_audited_and_kept(
    api: FastAPI, fhir: FhirClient, settings: Settings, unique: str
) -> None:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        referral_id, victim = await _submitted_and_delivered(http, fhir, settings, unique)
        forged = await _forge(victim)
        # No hook token is configured: anyone may call the route (the Task is read from HAPI).
        hooked = await http.put(f"/fhir-hooks/Task/{forged['id']}")
        assert hooked.status_code == 200
        assert await _status(http, referral_id, unique) == "requested"
        engine = create_db_engine(settings.database_url, migrate_schema=False)
        refused = "not-the-referral-task"
        assert _refusals(engine, forged["id"]) == ([refused], [("task-change", "denied", refused)])
        # The requester cancels its own Task: that is taken over.
        genuine = copy.deepcopy(victim)
        genuine |= {"status": "cancelled", "statusReason": {"text": "client moved away"}}
        await fhir.update(genuine)
        await http.put(f"/fhir-hooks/Task/{victim['id']}")
        assert await _status(http, referral_id, unique) == "cancelled"
        engine.dispose()


async def test_forged_task__through_hapis_subscription_and_the_poll_is_refused(
    fhir: FhirClient, settings: Settings, organizations: dict[str, str], unique: str
) -> None:
    """HAPI itself delivers the forged Task (it is owned by the IOP), with the hook token set:
    the token proves the sender is HAPI, not that the Task is the referral's."""
    secured = settings.model_copy(update={"hook_token": SecretStr("live-hook-token-" + unique)})
    app = create_app(secured)
    with serve_in_thread(app) as port:
        endpoint = f"http://127.0.0.1:{port}/fhir-hooks"
        subscription = await ensure_task_subscription(
            fhir, organizations["iop"], endpoint, token=secured.hook_secret
        )
        try:
            await _wait_active(fhir, subscription)
            transport = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
            async with transport as http:
                referral_id, victim = await _submitted_and_delivered(http, fhir, secured, unique)
                forged = await _forge(victim)
                engine = create_db_engine(secured.database_url, migrate_schema=False)
                for _ in range(90):  # HAPI delivers 5-10 s after the change
                    if _refusals(engine, forged["id"])[0]:
                        break
                    await asyncio.sleep(0.5)
                events, audits = _refusals(engine, forged["id"])
                assert events == ["not-the-referral-task"]
                assert audits == [("task-change", "denied", "not-the-referral-task")]
                with session_scope(engine) as session:
                    vias = list(session.scalars(select(InboundEvent.via).where(
                        InboundEvent.resource_id == forged["id"])))  # fmt: skip
                assert vias == ["subscription"]
                assert await _status(http, referral_id, unique) == "requested"
                # The poll (the safety net) refuses a second forgery just the same.
                later = await _forge(victim)
                await inbound.poll_tasks(fhir, engine, secured, organizations["iop"])
                assert _refusals(engine, later["id"])[0] == ["not-the-referral-task"]
                assert await _status(http, referral_id, unique) == "requested"
                engine.dispose()
        finally:
            await fhir.request("DELETE", subscription)
