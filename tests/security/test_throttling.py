"""Finding 6 (low): no throttling. Refused calls are now limited per client and per credential
(429 with Retry-After), the audit trail gets one row per lockout instead of one per refused
call, and the unauthenticated hook route cannot start unbounded polls."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import create_engine, select

from api.app import create_app
from api.edge import FAILURES_PER_MINUTE
from api.hooks import UNPROVEN_PER_MINUTE
from integration.db.audit_table import AuditEventRecord
from integration.settings import Settings
from tests.component.api.referral_support import BASE, SECRET, make_settings

pytestmark = pytest.mark.anyio
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    built = create_app(settings)
    async with built.router.lifespan_context(built):
        yield built


def _client(app: FastAPI, address: str = "192.0.2.10") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _audit(settings: Settings) -> list[tuple[str, str | None]]:
    engine = create_engine(settings.database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEventRecord.action, AuditEventRecord.reason_code))
        found = [(str(action), reason) for action, reason in rows]
    engine.dispose()
    return found


async def test_login__300_failures_in_a_row_are_throttled_and_audited_once_per_lockout(
    app: FastAPI, settings: Settings
) -> None:
    async with _client(app) as http:
        answers = [
            await http.post(
                "/tracker/login", content=f"kind=api-key&credential=guess{i}", headers=FORM
            )
            for i in range(300)
        ]
    statuses = [a.status_code for a in answers]
    assert statuses[:FAILURES_PER_MINUTE] == [401] * FAILURES_PER_MINUTE
    assert set(statuses[FAILURES_PER_MINUTE:]) == {429}
    assert 1 <= int(answers[-1].headers["Retry-After"]) <= 60
    rows = _audit(settings)
    assert rows.count(("access", "throttled")) == 1  # one row stands for the 290 refusals
    assert len(rows) == FAILURES_PER_MINUTE + 1


async def test_denied__a_credential_is_throttled_from_any_client(app: FastAPI) -> None:
    """A token refused 403 (an EHR system on the audit route) moves between clients."""
    claims = {"sub": "ehr-1", "role": "ehr-system", "org": "RES-1", "aud": "iop-bridge",
              "exp": int(time.time()) + 600}  # fmt: skip
    headers = {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}
    statuses = []
    for i in range(FAILURES_PER_MINUTE + 2):
        async with _client(app, f"192.0.2.{i + 20}") as http:
            statuses.append((await http.get("/api/audit", headers=headers)).status_code)
    assert statuses == [403] * FAILURES_PER_MINUTE + [429, 429]
    async with _client(app, "192.0.2.99") as other:  # another client, no credential: served
        assert (await other.get("/api/audit")).status_code == 401


async def test_hook__bare_notifications_start_at_most_one_poll(app: FastAPI) -> None:
    """Without a hook token anyone may POST /fhir-hooks: 50 calls, one poll of the server."""
    with respx.mock(base_url=BASE, assert_all_called=False) as fhir:
        organization = {"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Organization", "id": "iop"}}]}  # fmt: skip
        fhir.get("/Organization").respond(json=organization)
        empty = {"resourceType": "Bundle", "entry": []}
        # one poll is two searches: Tasks owned by the IOP, and by a PractitionerRole of it
        by_org = fhir.get("/Task", params={"owner": "Organization/iop"}).respond(json=empty)
        by_role = fhir.get(
            "/Task", params={"owner:PractitionerRole.organization": "Organization/iop"}
        ).respond(json=empty)
        async with _client(app) as http:
            answers = [(await http.post("/fhir-hooks")).status_code for _ in range(50)]
    assert answers == [200] * 50
    assert (by_org.call_count, by_role.call_count) == (1, 1)


async def test_hook__unauthenticated_notifications_are_limited_per_client(app: FastAPI) -> None:
    allowed = UNPROVEN_PER_MINUTE.amount
    with respx.mock(base_url=BASE, assert_all_called=False) as fhir:
        fhir.get("/Organization").respond(json={"resourceType": "Bundle", "entry": []})
        async with _client(app) as http:
            answers = [await http.put(f"/fhir-hooks/Task/t{i}") for i in range(allowed + 1)]
    assert [a.status_code for a in answers] == [200] * allowed + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
