"""A simulated residential program's EHR: it writes step-down referrals to the FHIR server the
way a foreign system would, with its own plain httpx client (not iop-bridge's client or outbox).

It makes sure its own Organization exists (conditional create by its identifier), looks up the
IOP's Organization by identifier, and posts each synthetic package (sandbox/step_down_package.py)
as one transaction with the Task owned by the IOP and requested by itself. It can also cancel a
referral (Task cancelled with a statusReason), as the requester may (SDOHCC status table).

Usage: .venv/bin/python sandbox/residential_ehr.py --count 3 [--base http://127.0.0.1:8090/fhir]
Tests import it by path (``sys.path``), like the benchmarks; nothing in the product imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from fhir_profiles.terminology.workflow import BSER_FULFILLMENT_CANCELLED

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_down_package as pkg

FHIR_JSON = "application/fhir+json"
RESIDENTIAL_ID_SYSTEM = "http://residential-ehr.example/fhir/sid/organization"
IOP_ID_SYSTEM = "http://iop-bridge.example/fhir/sid/organization"  # iop-bridge's default
TASK_ID_SYSTEM = pkg.canonical.TASK_ID_SYSTEM  # the system step_down_package's Tasks carry


@dataclass(frozen=True, slots=True)
class Referred:
    """One posted referral: the Task's server id and business identifier, and the package."""

    task_id: str
    identifier: str
    package: pkg.StepDownPackage


class ResidentialEhr:
    """The residential program's side of the step-down referral."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        organization_id: str = "RES-DEMO",
        iop_identifier: tuple[str, str] = (IOP_ID_SYSTEM, "IOP-DEMO-ORG"),
    ) -> None:
        self.http = http
        self.organization_id = organization_id
        self.iop_identifier = iop_identifier
        self.organization: str | None = None

    @classmethod
    def connect(cls, base_url: str, **kwargs: Any) -> ResidentialEhr:
        """An EHR with its own HTTP client for ``base_url``; close it with :meth:`aclose`."""
        http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", timeout=60, headers={"Accept": FHIR_JSON}
        )
        return cls(http, **kwargs)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.http.aclose()

    async def ensure_organization(self) -> str:
        """Conditional create of the residential program's Organization: ``Organization/<id>``."""
        body = {
            "resourceType": "Organization",
            "active": True,
            "identifier": [{"system": RESIDENTIAL_ID_SYSTEM, "value": self.organization_id}],
            "name": "Synthetic Residential Treatment Program",
        }
        response = await self.http.post(
            "Organization",
            json=body,
            headers={
                "If-None-Exist": f"identifier={RESIDENTIAL_ID_SYSTEM}|{self.organization_id}",
                "Content-Type": FHIR_JSON,
                "Prefer": "return=representation",
            },
        )
        response.raise_for_status()
        self.organization = f"Organization/{response.json()['id']}"
        return self.organization

    async def find_iop(self) -> str:
        """The IOP's Organization, found by its business identifier."""
        system, value = self.iop_identifier
        found = await self._search("Organization", {"identifier": f"{system}|{value}"})
        if len(found) != 1:
            raise LookupError(f"IOP Organization {system}|{value}: {len(found)} matches")
        return f"Organization/{found[0]['id']}"

    async def refer(
        self,
        n: int,
        *,
        discharged: datetime | None = None,
        language: str | None = None,
        also_disclose_to: tuple[str, ...] = (),
    ) -> Referred:
        """Post the n-th synthetic package as one transaction; the Task is owned by the IOP."""
        own = self.organization or await self.ensure_organization()
        package = pkg.make_package(
            n, iop_organization=await self.find_iop(), residential_organization=own,
            discharged=discharged, language=language, also_disclose_to=also_disclose_to,
        )  # fmt: skip
        bundle = pkg.to_transaction(package)
        response = await self.http.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
        response.raise_for_status()
        locations = [e["response"]["location"] for e in response.json()["entry"]]
        task_location = next(loc for loc in locations if loc.startswith("Task/"))
        return Referred(task_location.split("/")[1], package.task.identifier, package)

    async def task(self, identifier: str) -> dict[str, Any]:
        """The referral's Task, by its business identifier."""
        [found] = await self._search("Task", {"identifier": f"{TASK_ID_SYSTEM}|{identifier}"})
        return found

    async def cancel(self, identifier: str, reason: str) -> dict[str, Any]:
        """Cancel the referral: Task.status cancelled, statusReason, BSeR 6.0 (If-Match guarded)."""
        for _ in range(5):
            task = await self.task(identifier)
            task |= {
                "status": "cancelled",
                "statusReason": {"text": reason},
                "businessStatus": BSER_FULFILLMENT_CANCELLED.codeable_concept(),
            }
            version = task["meta"]["versionId"]
            response = await self.http.put(
                f"Task/{task['id']}",
                json=task,
                headers={"Content-Type": FHIR_JSON, "If-Match": f'W/"{version}"'},
            )
            if response.status_code not in (409, 412):  # HAPI: 409 for a stale If-Match
                response.raise_for_status()
                return dict(response.json())
        raise RuntimeError(f"Task {identifier}: kept conflicting")

    async def _search(self, resource_type: str, params: dict[str, str]) -> list[dict[str, Any]]:
        # fresh, not HAPI's cached answer of up to 60 s ago (a stock HAPI caches searches): the
        # IOP's Organization may have been created a moment before
        headers = {"Cache-Control": "no-cache"}
        response = await self.http.get(resource_type, params=params, headers=headers)
        response.raise_for_status()
        return [entry["resource"] for entry in response.json().get("entry") or []]


async def _main(args: argparse.Namespace) -> None:
    ehr = ResidentialEhr.connect(
        args.base,
        organization_id=args.organization_id,
        iop_identifier=(args.iop_system, args.iop_id),
    )
    try:
        print(f"residential program: {await ehr.ensure_organization()}")
        for n in range(args.start, args.start + args.count):
            referred = await ehr.refer(n)
            print(f"referral {referred.identifier}: Task/{referred.task_id}")
    finally:
        await ehr.aclose()


def main() -> None:
    """Post ``--count`` synthetic step-down referrals to the FHIR server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8090/fhir", help="FHIR base URL")
    parser.add_argument("--count", type=int, default=1, help="how many referrals to post")
    parser.add_argument("--start", type=int, default=1, help="number of the first package")
    parser.add_argument("--organization-id", default="RES-DEMO", help="this program's id")
    parser.add_argument("--iop-system", default=IOP_ID_SYSTEM, help="IOP identifier system")
    parser.add_argument("--iop-id", default="IOP-DEMO-ORG", help="IOP identifier value")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
