"""The foreign senders' own HTTP helper: plain httpx against a FHIR R4 server (nothing of
iop-bridge). Conditional creates by identifier, transactions, searches, Task updates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True, slots=True)
class Parties:
    """Who refers (the sender's Organization) and to whom (the IOP's Organization)."""

    sender: str  # Organization/<id>
    iop: str  # Organization/<id>
    base: str  # the server's base URL with a trailing slash (for absolute references)


@dataclass(frozen=True, slots=True)
class Referred:
    """One posted referral: the Task's server id and its business identifier (system, value)."""

    task_id: str
    identifier: tuple[str, str]


class FhirHttp:
    """A small client: one httpx.AsyncClient for one FHIR base."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/") + "/"
        self.http = httpx.AsyncClient(base_url=self.base, timeout=60, headers={"Accept": FHIR_JSON})

    async def aclose(self) -> None:
        await self.http.aclose()

    async def ensure(self, resource: dict[str, Any]) -> str:
        """Conditional create on the resource's first identifier: ``Type/id``."""
        identifier = resource["identifier"][0]
        kind = resource["resourceType"]
        response = await self.http.post(
            kind,
            json=resource,
            headers={
                "If-None-Exist": f"identifier={identifier['system']}|{identifier['value']}",
                "Content-Type": FHIR_JSON,
                "Prefer": "return=representation",
            },
        )
        response.raise_for_status()
        return f"{kind}/{response.json()['id']}"

    async def find(self, kind: str, system: str, value: str) -> str:
        """The one resource with this identifier: ``Type/id``."""
        found = await self.search(kind, {"identifier": f"{system}|{value}"})
        if len(found) != 1:
            raise LookupError(f"{kind} {system}|{value}: {len(found)} matches")
        return f"{kind}/{found[0]['id']}"

    async def search(self, kind: str, params: dict[str, str]) -> list[dict[str, Any]]:
        response = await self.http.get(kind, params=params)
        response.raise_for_status()
        return [entry["resource"] for entry in response.json().get("entry") or []]

    async def transaction(self, bundle: dict[str, Any]) -> list[str]:
        """POST a transaction; the ``Type/id`` of each entry, in order."""
        response = await self.http.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
        if response.is_error:
            raise RuntimeError(f"transaction refused {response.status_code}: {response.text}")
        return [
            "/".join(entry["response"]["location"].split("/")[:2])
            for entry in response.json()["entry"]
        ]

    async def parties(self, organization: dict[str, Any], iop: tuple[str, str]) -> Parties:
        """Make sure the sender's Organization exists and find the IOP's."""
        sender = await self.ensure(organization)
        return Parties(sender, await self.find("Organization", *iop), self.base)


def entry(
    full_url: str, resource: dict[str, Any], if_none_exist: str | None = None
) -> dict[str, Any]:
    """A transaction entry: POST, conditional on an identifier when given."""
    request: dict[str, Any] = {"method": "POST", "url": resource["resourceType"]}
    if if_none_exist is not None:
        request["ifNoneExist"] = if_none_exist
    return {"fullUrl": full_url, "resource": resource, "request": request}
