"""A simulated residential program's EHR that writes iop-bridge's own dialect of a step-down
referral (our identifier systems, our Questionnaire URLs, MedicationStatements in a List), as
literal FHIR JSON. It shares no code with iop-bridge: nothing of ``mappers``, ``fhir_profiles``
or ``integration`` is imported (tests/unit/test_foreign_senders_share_no_code.py checks it), so
every test that uses it is a conversation with another system. The other dialects (US Core,
PACIO, Gravity/BSeR) are the senders in sandbox/senders/.

The package is the literal transaction Bundle in ``residential_ehr_package.json``: Patient,
3 Conditions (co-occurring SUD and mental health), the treatment plan with 5 goals, 8 discharge
medications and their List, PHQ-9 and GAD-7, the residential stay, the ServiceRequest, its Task
owned by the IOP and the Part 2 Consent, with ``urn:uuid`` references between entries. Only the
``${...}`` placeholders are filled in: the package number, the dates (all relative to the
discharge), the two Organizations and the synthetic client.

It makes sure its own Organization exists (conditional create by its identifier), looks up the
IOP's Organization by identifier, and posts each package as one transaction. It can also cancel a
referral (Task cancelled with a statusReason), as the requester may (SDOHCC status table).

Usage: .venv/bin/python sandbox/residential_ehr.py --count 3 [--base http://127.0.0.1:8090/fhir]
Tests import it by path (``sys.path``), like the benchmarks; nothing in the product imports it.
Synthetic people only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"
PACKAGE = Path(__file__).resolve().with_name("residential_ehr_package.json")
RESIDENTIAL_ID_SYSTEM = "http://residential-ehr.example/fhir/sid/organization"
IOP_ID_SYSTEM = "http://iop-bridge.example/fhir/sid/organization"  # the IOP's default system
TASK_ID_SYSTEM = "http://iop-bridge.example/fhir/sid/referral-task"  # as in the package file
DISCHARGED = datetime(2026, 11, 2, 11, 30, tzinfo=UTC)  # when no discharge is given
# BSeR TaskBusinessStatusCS 6.0: the requester cancelled the referral
CANCELLED = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS",
            "code": "6.0",
            "display": "Service Request Fulfillment Cancelled",
        }
    ],
    "text": "Service Request Fulfillment Cancelled",
}
# synthetic clients, one per package number in turn (family, given, gender, birth date)
CLIENTS = (
    ("Okafor", "Jordan", "male", "1987-06-03"),
    ("Delgado", "Marisol", "female", "1990-02-14"),
    ("Lindqvist", "Theo", "male", "1979-11-21"),
    ("Abernathy", "Rae", "female", "1995-04-09"),
)
IRCP = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "IRCP",
            "display": "information recipient",
        }
    ],
    "text": "information recipient",
}


@dataclass(frozen=True, slots=True)
class Package:
    """One filled package: the transaction Bundle as posted and the plain facts it states."""

    identifier: str  # the Task's (and ServiceRequest's) business identifier value
    bundle: dict[str, Any]
    discharged: datetime
    referred: datetime  # the Task's and ServiceRequest's authoredOn
    client_name: str  # "Given Family", as the Patient's name says

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """The package's resources of one type, in the order they were written."""
        return [
            e["resource"]
            for e in self.bundle["entry"]
            if e["resource"]["resourceType"] == resource_type
        ]


@dataclass(frozen=True, slots=True)
class Referred:
    """One posted referral: the Task's server id and business identifier, and the package."""

    task_id: str
    identifier: str
    package: Package


def package(
    n: int,
    *,
    iop: str = "Organization/iop-program",
    residential: str = "Organization/residential-program",
    discharged: datetime | None = None,
    language: str | None = None,
    also_disclose_to: tuple[str, ...] = (),
    new_uuid: Callable[[], Any] = uuid.uuid4,
    discharge_known: bool = True,
) -> Package:
    """The n-th package; every business identifier carries ``n``. ``language``: the client's
    preferred language (a BCP-47 tag); ``also_disclose_to``: Organizations the Part 2 consent
    names beside the IOP (an aftercare provider known at referral); ``discharge_known`` False:
    the referral goes out while the stay is still in progress, its Encounter without an end."""
    out = (discharged or DISCHARGED).astimezone(UTC)
    family, given, gender, birth_date = CLIENTS[n % len(CLIENTS)]
    template = Template(PACKAGE.read_text())
    values = _dates(out) | {
        "tag": f"{n:06d}", "iop": iop, "residential": residential,
        "family": family, "given": given, "gender": gender, "birth_date": birth_date,
    }  # fmt: skip
    names = {name for name in template.get_identifiers() if name.startswith("uuid_")}
    values |= {name: str(new_uuid()) for name in sorted(names)}
    bundle = json.loads(template.substitute(values))
    filled = Package(f"SD-{n:06d}", bundle, out, out - timedelta(days=1), f"{given} {family}")
    if language is not None:
        [patient] = filled.resources("Patient")
        coding = {"system": "urn:ietf:bcp:47", "code": language}
        patient["communication"] = [{"language": {"coding": [coding]}, "preferred": True}]
    if not discharge_known:
        [stay] = filled.resources("Encounter")
        stay["status"] = "in-progress"
        del stay["period"]["end"], stay["hospitalization"]
    [consent] = filled.resources("Consent")
    consent["provision"]["actor"] += [
        {"role": IRCP, "reference": {"reference": other}} for other in also_disclose_to
    ]
    return filled


def _dates(out: datetime) -> dict[str, str]:
    """Every date of the package, relative to the discharge (instants in UTC, as Z)."""
    plan_start = out.date() + timedelta(days=3)

    def instant(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        "discharged": instant(out),
        "admitted": instant(out - timedelta(days=28)),
        "referred": instant(out - timedelta(days=1)),
        "consent_signed": instant(out - timedelta(days=2)),
        "assessed": instant(out - timedelta(hours=3)),
        "consent_start": (out.date() - timedelta(days=2)).isoformat(),
        "consent_end": (out.date() + timedelta(days=365)).isoformat(),
        "plan_start": plan_start.isoformat(),
        "plan_end": (plan_start + timedelta(days=83)).isoformat(),  # 12 weeks
        "goal_due_30": (plan_start + timedelta(days=30)).isoformat(),
        "goal_due_60": (plan_start + timedelta(days=60)).isoformat(),
        "medication_start": (out.date() - timedelta(days=20)).isoformat(),
    }


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
        discharge_known: bool = True,
    ) -> Referred:
        """Post the n-th package as one transaction; the Task is owned by the IOP."""
        own = self.organization or await self.ensure_organization()
        filled = package(
            n, iop=await self.find_iop(), residential=own, discharged=discharged,
            language=language, also_disclose_to=also_disclose_to,
            discharge_known=discharge_known,
        )  # fmt: skip
        response = await self.http.post("", json=filled.bundle, headers={"Content-Type": FHIR_JSON})
        response.raise_for_status()
        locations = [e["response"]["location"] for e in response.json()["entry"]]
        task_location = next(loc for loc in locations if loc.startswith("Task/"))
        return Referred(task_location.split("/")[1], filled.identifier, filled)

    async def task(self, identifier: str) -> dict[str, Any]:
        """The referral's Task, by its business identifier."""
        [found] = await self._search("Task", {"identifier": f"{TASK_ID_SYSTEM}|{identifier}"})
        return found

    async def cancel(self, identifier: str, reason: str) -> dict[str, Any]:
        """Cancel the referral: Task.status cancelled, statusReason, BSeR 6.0 (If-Match guarded)."""
        for _ in range(5):
            task = await self.task(identifier)
            task |= {"status": "cancelled", "statusReason": {"text": reason}}
            task["businessStatus"] = CANCELLED
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
