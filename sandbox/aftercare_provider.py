"""A simulated aftercare provider: the next provider's system after IOP discharge (workflow 3).

A foreign system, so it shares nothing with iop-bridge but the FHIR server: its own plain httpx
client, its own constants. It finds Tasks owned by its Organization in status ``requested`` and
accepts them the way an SDOHCC/BSeR performer does: Task.status ``accepted``, businessStatus
BSeR 3.0 "Service Request Accepted", lastModified now, written with ``PUT`` and ``If-Match`` on
the version it read (FHIR R4 http.html#concurrency), so a change by the requester in between is
never overwritten: on a conflict (HAPI answers 409, the spec says 412) it reads again and retries.

Usage:
  .venv/bin/python sandbox/aftercare_provider.py --organization Organization/123 [--once]
  (--base defaults to http://127.0.0.1:8090/fhir, the local HAPI sandbox)
Tests import it via sys.path, like sandbox/bench/bench_mapping.py.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

DEFAULT_BASE = "http://127.0.0.1:8090/fhir"
FHIR_JSON = "application/fhir+json"
# BSeR TaskBusinessStatusCS (HL7 BSeR IG), the milestone a performer sets on accepting.
BSER_BUSINESS_STATUS = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
ACCEPTED = {"code": "3.0", "display": "Service Request Accepted"}
# Synthetic identifier namespace of this simulated provider (RFC 2606 reserved domain).
PROVIDER_ID_SYSTEM = "http://aftercare-provider.example/fhir/sid/organization"


def http_client(base: str) -> httpx.Client:
    """The provider's own HTTP client for the FHIR server at ``base``."""
    return httpx.Client(
        base_url=base.rstrip("/") + "/",
        headers={"Accept": FHIR_JSON, "Content-Type": FHIR_JSON},
        timeout=30,
    )


def ensure_organization(
    client: httpx.Client,
    *,
    name: str,
    identifier: str,
    directory: tuple[str, str] | None = None,
) -> str:
    """The provider's Organization, created once (conditional create); ``Organization/<id>``.

    ``directory`` is the (system, value) under which a deployment's organization directory
    lists the provider (a receiving program names its next providers by that value), kept
    beside the provider's own identifier."""
    identifiers = [{"system": PROVIDER_ID_SYSTEM, "value": identifier}]
    if directory is not None:
        identifiers.append({"system": directory[0], "value": directory[1]})
    resource = {
        "resourceType": "Organization",
        "identifier": identifiers,
        "active": True,
        "name": name,
    }
    response = client.post(
        "Organization",
        json=resource,
        headers={"If-None-Exist": f"identifier={PROVIDER_ID_SYSTEM}|{identifier}"},
    )
    response.raise_for_status()
    return f"Organization/{response.json()['id']}"


def requested_tasks(client: httpx.Client, organization: str) -> list[dict[str, Any]]:
    """Tasks owned by ``organization`` still waiting for an answer (every page)."""
    found: list[dict[str, Any]] = []
    url: str | None = "Task"
    params: dict[str, str] | None = {"owner": organization, "status": "requested"}
    while url is not None:
        page = client.get(url, params=params)
        page.raise_for_status()
        body = page.json()
        found += [e["resource"] for e in body.get("entry") or []]
        url = next(
            (link["url"] for link in body.get("link") or [] if link["relation"] == "next"), None
        )
        params = None  # a next link carries its own query
    return found


def accept(client: httpx.Client, task_id: str, *, attempts: int = 5) -> dict[str, Any]:
    """Move one Task to accepted (BSeR 3.0) with If-Match; re-read and retry on a conflict."""
    for _ in range(attempts):
        current = client.get(f"Task/{task_id}")
        current.raise_for_status()
        task = current.json()
        if task.get("status") != "requested":
            return dict(task)  # someone answered it already: nothing to do
        updated = accepted(task, at=datetime.now(UTC))
        version = task["meta"]["versionId"]
        response = client.put(
            f"Task/{task_id}", json=updated, headers={"If-Match": f'W/"{version}"'}
        )
        if response.status_code in (409, 412):
            continue  # changed under us: merge onto the newer version
        response.raise_for_status()
        return dict(response.json())
    raise RuntimeError(f"Task/{task_id}: still conflicting after {attempts} attempts")


def accepted(task: dict[str, Any], *, at: datetime) -> dict[str, Any]:
    """The Task as the performer answers it: status, businessStatus and lastModified only."""
    updated = copy.deepcopy(task)
    updated["status"] = "accepted"
    updated["businessStatus"] = {"coding": [{"system": BSER_BUSINESS_STATUS, **ACCEPTED}]}
    updated["lastModified"] = at.isoformat(timespec="seconds")
    return updated


def accept_all(client: httpx.Client, organization: str) -> list[str]:
    """Accept every requested Task owned by ``organization``; returns their ``Task/<id>``."""
    return [f"Task/{accept(client, t['id'])['id']}" for t in requested_tasks(client, organization)]


def main(argv: list[str] | None = None) -> int:
    """Accept the provider's requested Tasks once, or every ``--interval`` seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_BASE)
    parser.add_argument("--organization", required=True, help="Organization/<id> of this provider")
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    with http_client(args.base) as client:
        while True:
            for task in accept_all(client, args.organization):
                print(f"accepted {task}")
            if args.once:
                return 0
            time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
