"""The FHIR client at its transport seam (respx): retries, Retry-After, error mapping, paging."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from integration.fhir.client import FhirClient
from integration.fhir.errors import (
    FhirBadRequest,
    FhirNotFound,
    FhirPreconditionFailed,
    FhirRateLimited,
    FhirRequestRejected,
    FhirServerUnavailable,
    FhirTransportError,
    FhirVersionConflict,
)
from integration.fhir.retry_policy import RetryPolicy

BASE = "http://fhir.test/fhir"
pytestmark = pytest.mark.anyio


class SleepRecorder:
    """Stands in for asyncio.sleep so the tests see each wait without spending it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def client(sleeps: SleepRecorder) -> FhirClient:
    http = httpx.AsyncClient(base_url=BASE + "/")
    return FhirClient(
        http, retry=RetryPolicy(max_attempts=4, initial_wait=0.1, max_wait=5), sleep=sleeps
    )


def _outcome(text: str, code: str = "processing") -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }


@respx.mock
async def test_request__retries_503_then_succeeds(
    client: FhirClient, sleeps: SleepRecorder
) -> None:
    route = respx.get(f"{BASE}/Patient/p1").mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(503),
            httpx.Response(200, json={"resourceType": "Patient", "id": "p1"}),
        ]
    )
    assert (await client.read("Patient", "p1"))["id"] == "p1"
    assert route.call_count == 3
    assert len(sleeps.waits) == 2


@respx.mock
async def test_request__honours_retry_after_on_429(
    client: FhirClient, sleeps: SleepRecorder
) -> None:
    respx.get(f"{BASE}/metadata").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"resourceType": "CapabilityStatement"}),
        ]
    )
    await client.capabilities()
    assert sleeps.waits == [3.0]


@respx.mock
async def test_request__retry_after_is_capped_by_policy(
    client: FhirClient, sleeps: SleepRecorder
) -> None:
    respx.get(f"{BASE}/metadata").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3600"}),
            httpx.Response(200, json={}),
        ]
    )
    await client.capabilities()
    assert sleeps.waits == [5.0]


@respx.mock
async def test_request__connection_errors_exhaust_into_transport_error(
    client: FhirClient, sleeps: SleepRecorder
) -> None:
    route = respx.get(f"{BASE}/metadata").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(FhirTransportError, match="ConnectError"):
        await client.capabilities()
    assert route.call_count == 4  # bounded by max_attempts
    assert len(sleeps.waits) == 3


@respx.mock
async def test_request__persistent_5xx_raises_server_unavailable(client: FhirClient) -> None:
    respx.get(f"{BASE}/metadata").mock(return_value=httpx.Response(500, json=_outcome("boom")))
    with pytest.raises(FhirServerUnavailable) as caught:
        await client.capabilities()
    assert caught.value.status == 500


@respx.mock
async def test_request__400_is_not_retried_and_carries_hapi_code(client: FhirClient) -> None:
    route = respx.post(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            400, json=_outcome("HAPI-0450: Failed to parse request body", "invalid")
        )
    )
    with pytest.raises(FhirBadRequest) as caught:
        await client.create({"resourceType": "Patient"})
    assert route.call_count == 1
    assert caught.value.hapi_codes == ("HAPI-0450",)
    assert caught.value.problems[0].code == "invalid"


@respx.mock
async def test_request__404_maps_to_not_found(client: FhirClient) -> None:
    respx.get(f"{BASE}/Patient/nope").mock(return_value=httpx.Response(404, json=_outcome("gone")))
    with pytest.raises(FhirNotFound):
        await client.read("Patient", "nope")


@respx.mock
@pytest.mark.parametrize("status", [409, 412])
async def test_update__stale_if_match_is_a_version_conflict_for_409_and_412(
    client: FhirClient, status: int
) -> None:
    route = respx.put(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(status))
    with pytest.raises(FhirVersionConflict):
        await client.update({"resourceType": "Patient", "id": "p1"}, if_match_version="2")
    assert route.calls.last.request.headers["If-Match"] == 'W/"2"'


@respx.mock
async def test_create__412_without_if_match_is_multiple_matches(client: FhirClient) -> None:
    respx.post(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            412, json=_outcome("HAPI-0958: Failed to CREATE resource with match URL")
        )
    )
    with pytest.raises(FhirPreconditionFailed) as caught:
        await client.create({"resourceType": "Patient"}, if_none_exist="identifier=s|v")
    assert caught.value.hapi_codes == ("HAPI-0958",)


@respx.mock
async def test_create__sends_if_none_exist_and_reads_200_as_matched(client: FhirClient) -> None:
    route = respx.post(f"{BASE}/Patient").mock(
        return_value=httpx.Response(
            200,
            json={"resourceType": "Patient", "id": "p1"},
            headers={"Location": f"{BASE}/Patient/p1/_history/1"},
        )
    )
    outcome = await client.create({"resourceType": "Patient"}, if_none_exist="identifier=s|v")
    assert route.calls.last.request.headers["If-None-Exist"] == "identifier=s|v"
    assert route.calls.last.request.headers["Content-Type"] == "application/fhir+json"
    assert outcome.created is False
    assert outcome.location == f"{BASE}/Patient/p1/_history/1"


@respx.mock
async def test_rate_limited_error_keeps_retry_after_when_exhausted(client: FhirClient) -> None:
    respx.get(f"{BASE}/metadata").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "1"})
    )
    with pytest.raises(FhirRateLimited) as caught:
        await client.capabilities()
    assert caught.value.retry_after == 1.0


@respx.mock
async def test_search_all__follows_next_links_until_none(client: FhirClient) -> None:
    def page(ids: list[str], next_url: str | None) -> httpx.Response:
        links = [{"relation": "next", "url": next_url}] if next_url else []
        entries = [
            {"resource": {"resourceType": "Task", "id": i}, "search": {"mode": "match"}}
            for i in ids
        ]
        return httpx.Response(
            200,
            json={"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries},
        )

    respx.get(f"{BASE}/Task", params={"status": "requested"}).mock(
        return_value=page(["a", "b"], f"{BASE}?_getpages=x&_getpagesoffset=2")
    )
    respx.get(f"{BASE}", params={"_getpages": "x", "_getpagesoffset": "2"}).mock(
        return_value=page(["c"], None)
    )
    found = [r["id"] async for r in client.search_all("Task", {"status": "requested"})]
    assert found == ["a", "b", "c"]


@respx.mock
async def test_search_all__restarts_an_expired_search_without_repeating(
    client: FhirClient,
) -> None:
    def page(ids: list[str], next_url: str | None) -> httpx.Response:
        links = [{"relation": "next", "url": next_url}] if next_url else []
        entries = [{"resource": {"resourceType": "Task", "id": i}} for i in ids]
        return httpx.Response(200, json={"resourceType": "Bundle", "link": links, "entry": entries})

    respx.get(f"{BASE}/Task").mock(
        side_effect=[
            page(["a", "b"], f"{BASE}?_getpages=old&_getpagesoffset=2"),
            page(["a", "b"], f"{BASE}?_getpages=new&_getpagesoffset=2"),
        ]
    )
    respx.get(f"{BASE}", params={"_getpages": "old"}).mock(
        return_value=httpx.Response(410, json=_outcome("HAPI-0523: search expired"))
    )
    respx.get(f"{BASE}", params={"_getpages": "new"}).mock(return_value=page(["c"], None))
    found = [r["id"] async for r in client.search_all("Task", {})]
    assert found == ["a", "b", "c"]


@respx.mock
async def test_update_owned_fields__reapplies_the_change_after_a_conflict(
    client: FhirClient,
) -> None:
    from integration.fhir.concurrency import update_owned_fields

    respx.get(f"{BASE}/Task/t1").mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "resourceType": "Task",
                    "id": "t1",
                    "meta": {"versionId": "1"},
                    "status": "requested",
                },
            ),
            httpx.Response(
                200,
                json={
                    "resourceType": "Task",
                    "id": "t1",
                    "meta": {"versionId": "2"},
                    "status": "requested",
                    "note": [{"text": "theirs"}],
                },
            ),
        ]
    )
    put = respx.put(f"{BASE}/Task/t1").mock(
        side_effect=[
            httpx.Response(409, json=_outcome("HAPI-0989: not the current version")),
            httpx.Response(200, json={"resourceType": "Task", "id": "t1"}),
        ]
    )

    def accept(task: dict[str, object]) -> dict[str, object]:
        return {**task, "status": "accepted"}

    await update_owned_fields(client, "Task", "t1", accept)
    last = json.loads(put.calls.last.request.content)
    assert put.calls.last.request.headers["If-Match"] == 'W/"2"'
    assert last["status"] == "accepted"
    assert last["note"] == [{"text": "theirs"}]  # the other side's change survived


@respx.mock
async def test_request__hapi_2745_conditional_race_is_retried(
    client: FhirClient, sleeps: SleepRecorder
) -> None:
    # A retried conditional create racing the timed-out original: HAPI's duplicate guard
    # answers 409 HAPI-2745; the next try matches what the first one created.
    route = respx.post(f"{BASE}/Patient").mock(
        side_effect=[
            httpx.Response(
                409, json=_outcome("HAPI-0550: HAPI-2745: conditional constraint failure")
            ),
            httpx.Response(200, json={"resourceType": "Patient", "id": "p1"}),
        ]
    )
    outcome = await client.create({"resourceType": "Patient"}, if_none_exist="identifier=s|v")
    assert outcome.created is False
    assert route.call_count == 2
    assert len(sleeps.waits) == 1


@respx.mock
async def test_request__a_redirect_is_an_error_not_an_empty_page(client: FhirClient) -> None:
    # Read as a page, a 307's empty body would end a search early without a word.
    respx.get(f"{BASE}/Task").respond(307, headers={"Location": "http://elsewhere.test/fhir/"})
    with pytest.raises(FhirRequestRejected) as caught:
        await client.search("Task", {"owner": "Organization/o1"})
    assert "307 redirect to http://elsewhere.test/fhir/" in str(caught.value)
