"""The one FHIR client: one pooled ``httpx.AsyncClient``, one request method, retries at that seam.

Every write iop-bridge makes is conditional on a business identifier, so a retried request never
duplicates a resource; that is what makes retrying POSTs after a timeout safe here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from integration.fhir.auth import fhir_auth
from integration.fhir.errors import FhirError, FhirNotFound, FhirTransportError
from integration.fhir.responses import raise_for_status
from integration.fhir.retry_policy import RetryPolicy, wait_for
from integration.settings import Settings

FHIR_JSON = "application/fhir+json"
# Asks the server to run a search now rather than answer from its search cache (see search()).
FRESH = {"Cache-Control": "no-cache"}


@dataclass(frozen=True, slots=True)
class FhirResponse:
    """A successful answer: status, headers and the parsed JSON body (empty dict if none)."""

    status: int
    headers: httpx.Headers
    body: dict[str, Any]

    @property
    def location(self) -> str | None:
        """Location or Content-Location, as HAPI sets it on creates and conditional matches."""
        value = self.headers.get("location") or self.headers.get("content-location")
        return str(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """Where a create or update landed, and whether it created a new resource."""

    created: bool
    location: str | None
    resource: dict[str, Any]


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """Build the pooled HTTP client for the configured FHIR server."""
    return httpx.AsyncClient(
        base_url=settings.fhir_base + "/",
        timeout=httpx.Timeout(settings.http_timeout_seconds),
        limits=httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=settings.http_max_connections,
        ),
        headers={"Accept": FHIR_JSON},
        auth=fhir_auth(settings),
    )


class FhirClient:
    """All traffic to one FHIR R4 server goes through :meth:`request`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        retry: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = http
        self._retry = retry
        self._sleep = sleep  # injectable so tests can observe waits without sleeping

    @classmethod
    def from_settings(cls, settings: Settings) -> FhirClient:
        """A client with its own pooled HTTP client; close it with :meth:`aclose`."""
        return cls(create_http_client(settings), retry=RetryPolicy.from_settings(settings))

    @property
    def base_url(self) -> str:
        """The server's base URL, ending in ``/`` (absolute references to it are local)."""
        return str(self._http.base_url)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FhirResponse:
        """Send one request with bounded retries; raise a typed FhirError on failure."""
        content = orjson.dumps(body) if body is not None else None
        all_headers = {"Content-Type": FHIR_JSON} if content is not None else {}
        all_headers.update(headers or {})
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.max_attempts),
            wait=wait_for(self._retry),
            retry=retry_if_exception(lambda e: isinstance(e, FhirError) and e.retryable),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(method, path, content, params, all_headers)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _send_once(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
    ) -> FhirResponse:
        try:
            response = await self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise FhirTransportError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        raise_for_status(response)
        body = orjson.loads(response.content) if response.content else {}
        return FhirResponse(response.status_code, response.headers, body)

    async def capabilities(self) -> dict[str, Any]:
        """GET [base]/metadata: the server's CapabilityStatement."""
        return (await self.request("GET", "metadata")).body

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """GET [base]/Type/id."""
        return (await self.request("GET", f"{resource_type}/{resource_id}")).body

    async def search(self, resource_type: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET [base]/Type?params: one searchset Bundle page, computed afresh.

        Every search iop-bridge makes decides something (what the poll takes in, whether a write
        finds its target, which Organization is ours), so none may be answered from a cache: HAPI
        by default reuses an identical search's result for 60 s (JPA setting
        reuse_cached_search_results_millis) and skips that reuse for ``Cache-Control: no-cache``
        (HAPI JPA server docs, "Search result caching").
        """
        return (await self.request("GET", resource_type, params=params, headers=FRESH)).body

    async def search_all(
        self, resource_type: str, params: Mapping[str, str], *, max_restarts: int = 3
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield every matching resource once, in server order (see :meth:`search_pages`)."""
        async for page in self.search_pages(resource_type, params, max_restarts=max_restarts):
            for resource in page:
                yield resource

    async def search_pages(
        self,
        resource_type: str,
        params: Mapping[str, str],
        *,
        max_restarts: int = 3,
        on_page: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the matches page by page, each resource once, following Bundle.link[next].

        ``on_page`` sees each searchset Bundle as it arrives (its meta, links and total).

        HAPI keeps a search's pages in a cache that expires; a next link to an expired search
        answers 404/410. The search is then run again and resources already yielded are skipped
        (by Type/id), at most ``max_restarts`` times. A page whose resources were all yielded
        before is skipped.
        """
        seen: set[str] = set()
        for restart in range(max_restarts + 1):
            try:
                async for resources in self._pages(resource_type, params, on_page):
                    page = []
                    for resource in resources:
                        key = f"{resource.get('resourceType')}/{resource.get('id')}"
                        if key not in seen:
                            seen.add(key)
                            page.append(resource)
                    if page:
                        yield page
                return
            except _ExpiredSearch:
                if restart == max_restarts:
                    raise FhirNotFound(
                        f"{resource_type} search pages kept expiring ({max_restarts} restarts)"
                    ) from None

    async def _pages(
        self,
        resource_type: str,
        params: Mapping[str, str],
        on_page: Callable[[Mapping[str, Any]], None] | None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        page = await self.search(resource_type, params)
        while True:
            if on_page is not None:
                on_page(page)
            yield [
                entry["resource"]
                for entry in page.get("entry") or []
                if entry.get("search", {}).get("mode", "match") == "match"
            ]
            next_url = _next_link(page)
            if next_url is None or not page.get("entry"):
                return
            try:
                page = (await self.request("GET", next_url)).body
            except FhirNotFound as gone:
                raise _ExpiredSearch from gone

    async def create(
        self, resource: Mapping[str, Any], *, if_none_exist: str | None = None
    ) -> WriteOutcome:
        """POST [base]/Type, conditional on ``if_none_exist`` (e.g. ``identifier=sys|val``)."""
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        headers["Prefer"] = "return=representation"
        response = await self.request(
            "POST", str(resource["resourceType"]), body=resource, headers=headers
        )
        return WriteOutcome(response.status == 201, response.location, response.body)

    async def update(
        self, resource: Mapping[str, Any], *, if_match_version: str | None = None
    ) -> WriteOutcome:
        """PUT [base]/Type/id, optionally guarded by If-Match: W/"version"."""
        headers = {"Prefer": "return=representation"}
        if if_match_version is not None:
            headers["If-Match"] = f'W/"{if_match_version}"'
        path = f"{resource['resourceType']}/{resource['id']}"
        response = await self.request("PUT", path, body=resource, headers=headers)
        return WriteOutcome(response.status == 201, response.location, response.body)

    async def conditional_update(
        self, resource: Mapping[str, Any], *, match: Mapping[str, str]
    ) -> WriteOutcome:
        """PUT [base]/Type?match: update the one match, or create when there is none."""
        response = await self.request(
            "PUT",
            str(resource["resourceType"]),
            body=resource,
            params=match,
            headers={"Prefer": "return=representation"},
        )
        return WriteOutcome(response.status == 201, response.location, response.body)

    async def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST [base] with a transaction or batch Bundle (Bundle.type says which; a batch's
        entries succeed or fail one by one); returns the response Bundle."""
        return (await self.request("POST", "", body=bundle)).body

    async def count(self, resource_type: str, params: Mapping[str, str]) -> int:
        """How many resources match, via _summary=count (no resources transferred)."""
        page = await self.search(resource_type, {**params, "_summary": "count"})
        return int(page.get("total", 0))


class _ExpiredSearch(Exception):
    """A next link pointed at a cached search the server no longer has."""


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if link.get("relation") == "next":
            return str(link["url"])
    return None
