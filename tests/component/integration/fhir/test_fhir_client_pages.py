"""FhirClient.search_pages: a search page by page, each resource once across a restart."""

from __future__ import annotations

import httpx
import pytest
import respx

from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy

BASE = "http://fhir.test/fhir"
pytestmark = pytest.mark.anyio


def page(ids: list[str], next_url: str | None) -> httpx.Response:
    links = [{"relation": "next", "url": next_url}] if next_url else []
    entries = [{"resource": {"resourceType": "Task", "id": i}} for i in ids]
    return httpx.Response(200, json={"resourceType": "Bundle", "link": links, "entry": entries})


@respx.mock
async def test_search_pages__a_restart_yields_only_what_is_new() -> None:
    respx.get(f"{BASE}/Task").mock(
        side_effect=[
            page(["a", "b"], f"{BASE}?_getpages=old&_getpagesoffset=2"),
            page(["a", "b"], f"{BASE}?_getpages=new&_getpagesoffset=2"),  # all seen: skipped
        ]
    )
    respx.get(BASE, params={"_getpages": "old"}).respond(410)
    respx.get(BASE, params={"_getpages": "new"}).mock(return_value=page(["b", "c"], None))
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(1, 0, 0))
    try:
        pages = [[r["id"] for r in p] async for p in client.search_pages("Task", {})]
    finally:
        await client.aclose()
    assert pages == [["a", "b"], ["c"]]
