"""The rest-hook route: shared secret, the shapes HAPI delivers, and a quick empty 200."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import respx
from fastapi import FastAPI

from api import hooks
from api.app import create_app
from api.errors import install_error_handler
from api.limits import FHIR_JSON, MAX_BODY_BYTES
from integration.settings import Settings
from integration.tenancy import service as tenancy_service

BASE = "http://fhir.test/fhir"
TASK = {
    "resourceType": "Task",
    "id": "42",
    "status": "requested",
    "meta": {"versionId": "1", "lastUpdated": "2026-11-02T10:00:00Z"},
}
pytestmark = pytest.mark.anyio


class Calls:
    """Records what the route asked the inbound service to do."""

    def __init__(self) -> None:
        self.notifications: list[Any] = []
        self.polls: list[str] = []


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen = Calls()

    async def find_organization(fhir: Any, settings: Any) -> str:
        return "Organization/iop-1"

    async def accept_notification(fhir: Any, engine: Any, task: Any, *, handler: Any) -> str:
        seen.notifications.append(task)
        return "handled"

    async def poll_inbound_tasks(fhir: Any, engine: Any, settings: Any, organization: str) -> None:
        seen.polls.append(organization)

    monkeypatch.setattr(tenancy_service, "find_organization", find_organization)
    monkeypatch.setattr(hooks.inbound, "accept_notification", accept_notification)
    monkeypatch.setattr(hooks.inbound, "poll_inbound_tasks", poll_inbound_tasks)
    monkeypatch.setattr(hooks.inbound, "default_handler", lambda *args: None)
    return seen


def _tenancy() -> tenancy_service.Tenancy:
    """The tenancy service over stand-ins: its IOP lookup is the fixture's find_organization."""
    settings = SimpleNamespace(organization_id_system="urn:example:org", organization_id="IOP-1")
    return tenancy_service.Tenancy(SimpleNamespace(), SimpleNamespace(), settings)  # type: ignore[arg-type]


async def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def http(calls: Calls) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handler(app)
    app.include_router(hooks.make_hooks_router("s3cret"))
    app.state.fhir = app.state.engine = app.state.settings = SimpleNamespace()
    app.state.tenancy = _tenancy()
    async with await _client(app) as client:
        yield client


AUTH = {"Authorization": "Bearer s3cret", "Content-Type": "application/fhir+json"}


async def test_put_task__the_body_is_accepted_and_the_answer_is_an_empty_200(
    http: httpx.AsyncClient, calls: Calls
) -> None:
    response = await http.put("/fhir-hooks/Task/42", json=TASK, headers=AUTH)
    assert (response.status_code, response.content) == (200, b"")
    assert calls.notifications == [TASK]


async def test_post_without_body__reads_the_task_by_id(
    http: httpx.AsyncClient, calls: Calls
) -> None:
    response = await http.post("/fhir-hooks/Task/42", headers=AUTH)
    assert response.status_code == 200
    assert calls.notifications == ["42"]


async def test_bare_post__runs_a_poll(http: httpx.AsyncClient, calls: Calls) -> None:
    response = await http.post("/fhir-hooks", headers=AUTH)
    assert response.status_code == 200
    assert (calls.notifications, calls.polls) == ([], ["Organization/iop-1"])


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "s3cret", "Basic s3cret"])
async def test_wrong_or_missing_secret__401_and_nothing_done(
    http: httpx.AsyncClient, calls: Calls, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/fhir+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await http.put("/fhir-hooks/Task/42", json=TASK, headers=headers)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    assert calls.notifications == []


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"{not json", "body"),
        (b'{"resourceType": "Patient"}', "resourceType"),
        (b'{"resourceType": "Task", "id": "43"}', "Task.id"),
    ],
)
async def test_body_that_is_not_this_task__422_naming_what_is_wrong(
    http: httpx.AsyncClient, calls: Calls, body: bytes, path: str
) -> None:
    response = await http.put("/fhir-hooks/Task/42", content=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == [path]
    assert calls.notifications == []


@respx.mock
async def test_create_app__serves_the_hook_route(tmp_path: Path) -> None:
    # The IOP Organization is not on the server yet: the route still answers 200 at once.
    respx.get(f"{BASE}/Organization").respond(200, json={"resourceType": "Bundle", "entry": []})
    settings = Settings(
        fhir_base_url=BASE,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",  # type: ignore[arg-type]
        retry_max_attempts=1,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        response = await client.put("/fhir-hooks/Task/42", json=TASK)
    assert response.status_code == 200


async def test_put_task__an_invalid_fhir_id_is_refused_before_anything_is_queued(
    http: httpx.AsyncClient, calls: Calls
) -> None:
    response = await http.put("/fhir-hooks/Task/%1F", headers=AUTH)
    assert response.status_code == 422
    assert "not a FHIR id" in response.text
    assert calls.notifications == []


@pytest.mark.parametrize("task_id", [".", "..", "..."])
async def test_put_task__a_dot_segment_is_no_task_id(
    http: httpx.AsyncClient, calls: Calls, task_id: str
) -> None:
    # Task/.. would be read as the server's base: refused like any id that is not a Task's.
    response = await http.post(f"/fhir-hooks/Task/{task_id.replace('.', '%2E')}", headers=AUTH)
    assert response.status_code == 422, response.text
    assert calls.notifications == []


def test_openapi__the_empty_200_has_no_content_and_errors_are_documented() -> None:
    app = FastAPI()
    app.include_router(hooks.make_hooks_router("s3cret"))
    paths = app.openapi()["paths"]
    with_id = paths["/fhir-hooks/Task/{task_id}"]
    for operation in (with_id["put"], with_id["post"], paths["/fhir-hooks"]["post"]):
        responses = operation["responses"]
        assert "content" not in responses["200"]  # an empty body, not JSON
        assert set(responses) == {"200", "401", "413", "422"}
        assert set(responses["422"]["content"]) == {"application/problem+json", FHIR_JSON}
        body = operation["requestBody"]
        assert body["required"] is False and FHIR_JSON in body["content"]


async def test_put_task__a_body_over_the_limit_is_refused_before_it_is_read_whole(
    http: httpx.AsyncClient, calls: Calls
) -> None:
    huge = b'{"resourceType": "Task", "id": "42", "note": "' + b"x" * (MAX_BODY_BYTES + 1) + b'"}'
    response = await http.put("/fhir-hooks/Task/42", content=huge, headers=AUTH)
    assert response.status_code == 413
    assert calls.notifications == []


async def test_without_a_secret__the_body_is_a_hint_and_the_task_is_read_by_id(
    calls: Calls,
) -> None:
    app = FastAPI()
    install_error_handler(app)
    app.include_router(hooks.make_hooks_router(None))
    app.state.fhir = app.state.engine = app.state.settings = SimpleNamespace()
    app.state.tenancy = _tenancy()
    forged = TASK | {"status": "completed"}
    async with await _client(app) as client:
        response = await client.put("/fhir-hooks/Task/42", json=forged)
    assert response.status_code == 200
    assert calls.notifications == ["42"]  # the id only: accept_notification reads the Task
