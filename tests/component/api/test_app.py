"""The FastAPI app with the FHIR server mocked at the transport seam (respx)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI

from api.app import create_app
from integration.settings import Settings
from mappers.errors import MappingError, Problem

BASE = "http://fhir.test/fhir"
SECRET = "component-test-secret-of-sufficient-length"
pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        fhir_base_url=BASE,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        retry_max_attempts=1,
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    app = create_app(settings)

    @app.get("/_raise")
    def _raise() -> None:  # a route that fails the way a mapper does
        raise MappingError("Patient is invalid", problems=[Problem("Patient.gender", "bad code")])

    return app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # Starlette's TestClient is deprecated with httpx; drive the ASGI app and its lifespan directly.
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


CAPABILITIES = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "software": {"name": "HAPI FHIR Server", "version": "8.x"},
}


def _server_with_subscription(
    status: str, error: str | None = None, *, role_status: str | None = "active"
) -> None:
    """The server with our two Subscriptions (``role_status`` None: the second is missing); the
    fake answers every Subscription search with both, as iop-bridge tells them by criteria."""
    respx.get(f"{BASE}/metadata").respond(200, json=CAPABILITIES)
    organization = {"resourceType": "Organization", "id": "1000"}
    respx.get(f"{BASE}/Organization").respond(
        200, json={"resourceType": "Bundle", "entry": [{"resource": organization}]}
    )
    endpoint = {"type": "rest-hook", "endpoint": Settings().hook_base_url}
    subscription = {
        "resourceType": "Subscription",
        "id": "7",
        "status": status,
        "criteria": "Task?owner=Organization/1000",
        "channel": endpoint,
    }
    if error:
        subscription["error"] = error
    entries = [{"resource": subscription}]
    if role_status is not None:
        role = {
            "resourceType": "Subscription",
            "id": "8",
            "status": role_status,
            "criteria": "Task?owner:PractitionerRole.organization=Organization/1000",
            "channel": endpoint,
        }
        entries.append({"resource": role})
    respx.get(f"{BASE}/Subscription").respond(
        200, json={"resourceType": "Bundle", "entry": entries}
    )


@respx.mock
async def test_health__ok_when_fhir_and_database_answer(http: httpx.AsyncClient) -> None:
    _server_with_subscription("active")
    response = await http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["fhir_version"] == "4.0.1"
    assert body["database_ok"] is True
    assert (body["subscription_status"], body["subscription_reason"]) == ("active", None)
    assert (body["role_subscription_status"], body["role_subscription_reason"]) == ("active", None)


@respx.mock
async def test_health__degraded_with_the_servers_reason_when_the_subscription_is_not_active(
    http: httpx.AsyncClient,
) -> None:
    _server_with_subscription("error", error="Failed to deliver: HTTP 503")
    response = await http.get("/health")
    body = response.json()
    assert response.status_code == 200  # iop-bridge still works, by its poll
    assert (body["status"], body["subscription_status"]) == ("degraded", "error")
    assert body["subscription_reason"].endswith(": Failed to deliver: HTTP 503")


@pytest.mark.parametrize(("role_status", "shown"), [("requested", "requested"), (None, "missing")])
@respx.mock
async def test_health__degraded_when_only_the_practitioner_role_subscription_is_not_active(
    http: httpx.AsyncClient, role_status: str | None, shown: str
) -> None:
    _server_with_subscription("active", role_status=role_status)
    response = await http.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["subscription_status"]) == ("degraded", "active")
    assert body["role_subscription_status"] == shown
    assert body["role_subscription_reason"]


@respx.mock
async def test_health__degraded_503_when_fhir_is_down(http: httpx.AsyncClient) -> None:
    respx.get(f"{BASE}/metadata").mock(side_effect=httpx.ConnectError("refused"))
    response = await http.get("/health")
    assert response.status_code == 503
    assert response.json()["fhir_reachable"] is False


async def test_errors__fhir_callers_get_an_operation_outcome_with_paths(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/_raise", headers={"Accept": "application/fhir+json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "bad code",
                "expression": ["Patient.gender"],
            }
        ],
    }


async def test_errors__other_callers_get_problem_json(http: httpx.AsyncClient) -> None:
    response = await http.get("/_raise")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["problems"] == [{"path": "Patient.gender", "message": "bad code"}]


async def test_sync_records__needs_an_admin(http: httpx.AsyncClient) -> None:
    assert (await http.get("/sync-records")).status_code == 401


async def test_sync_records__empty_store_lists_nothing_for_an_admin(
    http: httpx.AsyncClient,
) -> None:
    token = jwt.encode(
        {
            "sub": "admin-1",
            "role": "admin",
            "org": "IOP-1",
            "aud": "iop-bridge",
            "exp": int(time.time()) + 60,
        },
        SECRET,
        algorithm="HS256",
    )
    response = await http.get("/sync-records", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == []
