"""The audit trail at the API edge: every 401 and 403 is recorded (route template, who, why),
requests run as their caller, and admins page through their organization's events (JSON and
FHIR AuditEvents). The FHIR server is faked at the transport seam (respx)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI

from api.app import create_app
from integration.privacy import audit
from integration.settings import Settings

BASE = "http://fhir.test/fhir"
SECRET = "audit-api-test-secret-of-sufficient-length"
OPERATOR = "IOP-DEMO-ORG"  # Settings.organization_id: the IOP running this iop-bridge
pytestmark = pytest.mark.anyio


def token(role: str, org: str = OPERATOR, sub: str = "user-1") -> dict[str, str]:
    claims = {"sub": sub, "role": role, "org": org, "aud": "iop-bridge", "exp": time.time() + 60}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    settings = Settings(
        fhir_base_url=BASE,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        retry_max_attempts=1,
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
    )
    app = create_app(settings)

    @app.get("/_whoami")
    def whoami_sync() -> dict[str, Any]:  # sync: runs in the thread pool
        actor = audit.current_actor()
        return {"subject": actor.subject, "role": actor.role, "org": actor.organization}

    @app.get("/_whoami_async")
    async def whoami_async() -> dict[str, Any]:
        return {"subject": audit.current_actor().subject}

    return app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    with respx.mock(assert_all_called=False) as fhir:
        # the operator's Organization on the FHIR server (tracker.views.OrganizationKeys)
        fhir.get(f"{BASE}/Organization").respond(
            json={"resourceType": "Bundle", "entry": [{"resource": {"id": "iop-1"}}]}
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            yield client


async def _events(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get("/api/audit", headers=token("admin"), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_requests_run_as_their_caller(http: httpx.AsyncClient) -> None:
    who = await http.get("/_whoami", headers=token("case-manager", "IOP-X", "cm-9"))
    assert who.json() == {"subject": "cm-9", "role": "case-manager", "org": "IOP-X"}
    assert (await http.get("/_whoami_async", headers=token("admin"))).json()["subject"] == "user-1"
    anonymous = await http.get("/_whoami")
    assert anonymous.json()["subject"] == "iop-bridge"  # no caller: the service itself


async def test_unauthenticated__recorded_with_the_route_template(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/audit", params={"action": "accept"})).status_code == 401
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert (await http.get("/api/audit/AuditEvent", headers=bad)).status_code == 401
    page = await _events(http, action="authenticate")
    assert [(e["entity_type"], e["entity_id"]) for e in page["items"]] == [
        ("http-route", "GET /api/audit/AuditEvent"),
        ("http-route", "GET /api/audit"),
    ]
    assert {(e["outcome"], e["reason_code"], e["agent_subject"]) for e in page["items"]} == {
        ("denied", "unauthenticated", "iop-bridge")
    }


async def test_forbidden__recorded_with_who_was_refused(http: httpx.AsyncClient) -> None:
    refused = await http.get("/api/audit", headers=token("case-manager", sub="cm-4"))
    assert refused.status_code == 403
    [event] = (await _events(http, action="access"))["items"]
    assert (event["agent_subject"], event["agent_role"], event["agent_organization"]) == (
        "cm-4",
        "case-manager",
        OPERATOR,
    )
    assert (event["entity_id"], event["reason_code"]) == ("GET /api/audit", "forbidden")


async def test_list__scoped_to_the_admins_organization(http: httpx.AsyncClient) -> None:
    await http.get("/api/audit", headers=token("ehr-system", "RES-1", "ehr-1"))
    await http.get("/api/audit")  # nobody's: only the operator's admins see it
    other = await http.get("/api/audit", headers=token("admin", "IOP-OTHER"))
    assert other.json() == {"total": 0, "limit": 50, "offset": 0, "items": []}
    ehr_org = await http.get("/api/audit", headers=token("admin", "RES-1"))
    assert [e["agent_subject"] for e in ehr_org.json()["items"]] == ["ehr-1"]
    operator = await _events(http)  # the call without credentials, not RES-1's refusal
    assert [(e["agent_subject"], e["reason_code"]) for e in operator["items"]] == [
        ("iop-bridge", "unauthenticated")
    ]


async def test_list__paging_and_filters(http: httpx.AsyncClient) -> None:
    for _ in range(3):
        await http.get("/api/audit")
    first = await _events(http, limit=2)
    second = await _events(http, limit=2, offset=2)
    assert (first["total"], len(first["items"]), len(second["items"])) == (3, 2, 1)
    ids = [e["id"] for e in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert (await _events(http, outcome="success"))["total"] == 0
    since = first["items"][0]["recorded_at"]
    assert (await _events(http, since=since))["total"] >= 1
    assert (await _events(http, until="2000-01-01T00:00:00"))["total"] == 0  # no zone: UTC


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"action": "peek"}, {"since": "yesterday"}],
)
async def test_list__bad_query_is_422(http: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await http.get("/api/audit", headers=token("admin"), params=params)
    assert response.status_code == 422


async def test_export__fhir_searchset_of_audit_events(http: httpx.AsyncClient) -> None:
    await http.get("/api/audit")
    response = await http.get("/api/audit/AuditEvent", headers=token("admin"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    found = response.json()
    assert (found["resourceType"], found["type"], found["total"]) == ("Bundle", "searchset", 1)
    event = found["entry"][0]["resource"]
    assert (event["resourceType"], event["outcome"], event["type"]["code"]) == (
        "AuditEvent",
        "4",
        "110114",
    )
    assert event["entity"][0]["name"] == "GET /api/audit"


async def test_openapi__documents_the_audit_routes(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    listing = schema["paths"]["/api/audit"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"action", "since", "limit", "offset"}
    assert (
        "application/fhir+json"
        in schema["paths"]["/api/audit/AuditEvent"]["get"]["responses"]["200"]["content"]
    )
