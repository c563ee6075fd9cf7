"""No PHI in logs: PHI-like values are seeded through the main paths (package ingest by the
rest-hook, the three workflows, API errors, worker failures) with every logger at DEBUG, and ALL
captured log output (pytest's caplog and two root handlers: the JSON one and a plain one) is
scanned for them. The FHIR server is faked at the transport seam (respx) and answers failures
with diagnostics that quote the PHI, as real servers do."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI, Request
from sqlalchemy import Engine, select

from api.app import create_app
from integration.db import models
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.discharges import workflow as discharge
from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from integration.outbox.queue import ClaimedMessage
from integration.outbox.worker import DeliveredEntry, deliver_message, run_worker
from integration.privacy import audit, logging_setup
from integration.referrals import step_down
from integration.settings import Settings
from integration.workflow_errors import DisclosureRefused
from mappers.medication import ListSource
from mappers.patient import Client
from sandbox import step_down_package as pkg
from tests.builders import make_diagnosis
from tests.builders.discharge import make_aftercare, organization
from tests.builders.referrals import make_consent
from tests.builders.sessions import make_session

BASE = "http://fhir.test/fhir"
SECRET = "no-phi-test-secret-of-sufficient-length"
IOP, RESIDENTIAL, NEXT = "Organization/iop-1", "Organization/res-1", "Organization/next-1"
AT = datetime(2026, 11, 5, 18, 0, tzinfo=UTC)
# The seeded PHI: a synthetic person (no real one), written the ways it might leak.
GIVEN, FAMILY = "Zelda", "Quill-Testperson"
NAME = f"{GIVEN} {FAMILY}"
BIRTH = date(1984, 2, 29)
MRN = "MRN-ZQ-55501"
NOTE = "Zelda relapsed after her sister's wedding; lives on Larkspur Lane"
SEEDED = (
    *(NAME, GIVEN, FAMILY, BIRTH.isoformat(), "02/29/1984", "19840229", MRN, NOTE, "Larkspur"),
    *(quote(NAME), quote_plus(NAME), quote_plus(NOTE)),  # as they appear in a logged URL
)
pytestmark = pytest.mark.anyio


# --- capture everything ---------------------------------------------------------------------------


class Captured:
    """Every log line, as each kind of handler would have written it."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.json, self.plain = io.StringIO(), io.StringIO()

    def text(self) -> str:
        records = self.caplog.records
        formatter = logging.Formatter()
        parts = [self.caplog.text, self.json.getvalue(), self.plain.getvalue()]
        parts += [r.getMessage() for r in records]
        parts += [formatter.formatException(r.exc_info) for r in records if r.exc_info]
        return "\n".join(parts)

    def leaks(self) -> list[str]:
        text = self.text().lower()
        return [value for value in SEEDED if value.lower() in text]


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[Captured]:
    logging_setup.install()
    result = Captured(caplog)
    root = logging.getLogger()
    handlers = [logging.StreamHandler(result.json), logging.StreamHandler(result.plain)]
    handlers[0].setFormatter(logging_setup.JsonFormatter())
    handlers[1].setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    for handler in handlers:
        root.addHandler(handler)
    caplog.set_level(logging.DEBUG)  # the root logger and pytest's handler, every library
    # SQLAlchemy sets its own logger to WARNING on import: DEBUG there too (SQL + parameters)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    try:
        yield result
    finally:
        for handler in handlers:
            root.removeHandler(handler)


# --- a fake HAPI holding the package with the seeded PHI ----------------------------------------


def _package(n: int) -> dict[str, dict[str, Any]]:
    """The synthetic package as HAPI stores it (Type/id references), with the seeded PHI in the
    Patient and a free-text note on the ServiceRequest."""
    transaction = pkg.to_transaction(
        pkg.make_package(n, iop_organization=IOP, residential_organization=RESIDENTIAL)
    )
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{n}{i:02d}"
           for i, e in enumerate(transaction["entry"])}  # fmt: skip
    text = json.dumps(transaction)
    for full_url, ref in ids.items():
        text = text.replace(full_url, ref)
    resources = {}
    for entry in json.loads(text)["entry"]:
        resource = entry["resource"] | {"id": entry["fullUrl"].split("/")[1]}
        resource["meta"] = {"versionId": "1", "lastUpdated": "2026-11-02T10:00:00.000+00:00"}
        if resource["resourceType"] == "Patient":
            resource["name"] = [{"family": FAMILY, "given": [GIVEN], "text": NAME}]
            resource["birthDate"] = BIRTH.isoformat()
            resource["identifier"][0]["value"] = f"{MRN}-{n}" if n > 1 else MRN
        if resource["resourceType"] == "ServiceRequest":
            resource["note"] = [{"text": NOTE}]
        resources[entry["fullUrl"]] = resource
    return resources


class FakeHapi:
    """Reads and batch GETs from the packages; every write fails quoting the PHI."""

    def __init__(self, *packages: dict[str, dict[str, Any]]) -> None:
        self.resources = {k: v for p in packages for k, v in p.items()}

    def post(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("type") != "batch":  # a transaction from the outbox: refused, quoting PHI
            return httpx.Response(400, json=_outcome(f"HAPI-0450: Patient {NAME} ({MRN}) invalid"))
        entries = []
        for entry in body["entry"]:
            found = self.resources.get(entry["request"]["url"])
            entries.append({"resource": found, "response": {"status": "200 OK"}} if found
                           else {"response": {"status": "404 Not Found"}})  # fmt: skip
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": entries})

    def get(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir/")
        if path == "Organization":
            return httpx.Response(200, json={"resourceType": "Bundle", "entry": [
                {"resource": {"resourceType": "Organization", "id": "iop-1"}}]})  # fmt: skip
        if path in self.resources:
            return httpx.Response(200, json=self.resources[path])
        return httpx.Response(500, json=_outcome(f"lookup failed for {NAME}, born {BIRTH}"))


def _outcome(diagnostics: str) -> dict[str, Any]:
    issue = {"severity": "error", "code": "processing", "diagnostics": diagnostics}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


@pytest.fixture
def hapi() -> Iterator[FakeHapi]:
    fake = FakeHapi(_package(1), _package(2))
    with respx.mock(assert_all_called=False) as mock:
        mock.post(BASE + "/").mock(side_effect=fake.post)
        mock.get(url__startswith=BASE).mock(side_effect=fake.get)
        mock.route(url__startswith=BASE).respond(503, json=_outcome(f"{NAME} {NOTE}"))
        yield fake


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    settings = Settings(
        fhir_base_url=BASE,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        retry_max_attempts=1,
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
    )
    app = create_app(settings)

    @app.middleware("http")
    async def like_uvicorn(request: Request, call_next: Any) -> Any:
        try:
            return await call_next(request)
        except Exception as exc:  # what uvicorn logs for an error the app did not handle
            logging.getLogger("uvicorn.error").error(
                "Exception in ASGI application\n", exc_info=exc
            )
            raise

    @app.get("/_fails")
    def fails() -> None:
        raise RuntimeError(f"could not render the chart of {NAME} (MRN {MRN}): {NOTE}")

    return app


@pytest.fixture
async def http(app: FastAPI, hapi: FakeHapi) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def _bearer(role: str) -> dict[str, str]:
    claims = {"sub": "cm-17", "role": role, "org": "IOP-DEMO-ORG", "aud": "iop-bridge",
              "exp": datetime.now(UTC) + timedelta(minutes=5)}  # fmt: skip
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


# --- the main paths ----------------------------------------------------------------------------


async def _ingest_by_rest_hook(http: httpx.AsyncClient, hapi: FakeHapi) -> None:
    for task in (r for r in hapi.resources.values() if r["resourceType"] == "Task"):
        response = await http.put(f"/fhir-hooks/Task/{task['id']}", json=task)
        assert response.status_code == 200


async def _api_errors(http: httpx.AsyncClient) -> None:
    phi_query = {"entity_id": NAME, "agent_subject": MRN, "since": NOTE}
    assert (await http.get("/api/audit", params=phi_query)).status_code == 401
    forbidden = await http.get("/api/audit", params=phi_query, headers=_bearer("case-manager"))
    assert forbidden.status_code == 403
    invalid = await http.get("/api/audit", params=phi_query, headers=_bearer("admin"))
    assert invalid.status_code == 422
    wrong = {"resourceType": "Task", "id": "other", "note": [{"text": NOTE}], "for": NAME}
    assert (await http.put("/fhir-hooks/Task/42", json=wrong)).status_code == 422
    assert (await http.post("/fhir-hooks/Task/42", content=f"{NAME} {MRN}")).status_code == 422
    assert (await http.get("/_fails", params={"mrn": MRN})).status_code == 500


def _workflows(engine: Engine) -> None:
    """Workflows 1-3 as a case manager drives them, with PHI in every free-text field."""
    with audit.acting_as(audit.Actor("cm-17", "case-manager", "IOP-DEMO-ORG")):
        with session_scope(engine) as session:
            first, second = session.scalars(select(models.Referral).order_by(models.Referral.id))
            step_down.accept(session, first.id, at=AT)
            step_down.schedule_intake(session, first.id, BIRTH, at=AT)
            step_down.record_session(session, first.id, make_session(identifier="S-1"), at=AT)
            step_down.decline(session, second.id, NOTE, at=AT)
            key = first.id
            stored = medications.current_list(session, first, ListSource.RESIDENTIAL_DISCHARGE)
            assert stored is not None
            intake = replace(medication_lists.load_list(stored), identifier="IN-1", source=None)
            medication_lists.record_intake_list(session, key, intake, AT)
            medications.reconcile_referral(session, key, at=AT)
        _discharge(engine, key)


def _discharge(engine: Engine, referral_key: int) -> None:
    client = Client(MRN, FAMILY, (GIVEN,), BIRTH, "female")
    consent = make_consent(patient="Patient/p1", start=date(2026, 1, 1), end=date(2026, 12, 31))
    record = discharge.ClinicalRecord(
        patient="Patient/p1", client=client, iop_organization=IOP,
        organizations={IOP: organization(NAME, "ORG-IOP"), NEXT: organization("Next", "N-1")},
        diagnoses=(("Condition/dx1", make_diagnosis()),), consents=(("Consent/c1", consent),),
    )  # fmt: skip
    args: dict[str, Any] = {
        "record": record, "discharged_at": AT, "at": AT, "course_summary": NOTE,
        "aftercare": make_aftercare(next_provider=NEXT, relapse_prevention=NOTE),
    }  # fmt: skip
    with pytest.raises(DisclosureRefused), session_scope(engine) as session:
        discharge.discharge_client(session, referral_key, **args)  # IOP-only consent: refused
    allowed = replace(consent, recipients=(IOP, NEXT))
    with session_scope(engine) as session:
        record = replace(record, consents=(("Consent/c1", allowed),))
        discharge.discharge_client(session, referral_key, **(args | {"record": record}))


async def _worker_failures(engine: Engine) -> None:
    """Every outbox message (transactions, the Encounter, Task changes) fails on the server,
    whose diagnostics quote the PHI: dead at once, or retried later."""
    with session_scope(engine) as session:
        for n, message in enumerate(session.scalars(select(OutboxMessage))):
            message.max_attempts = 1 if n % 2 else 2
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(1, 0, 0))
    stop, calls = asyncio.Event(), [0]

    async def counting(fhir: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
        calls[0] += 1
        return await deliver_message(fhir, message)

    worker = asyncio.create_task(
        run_worker(engine, client, worker_id="w-phi", stop_event=stop, poll_interval=0.01,
                   deliver=counting, backoff=lambda attempt: 60.0)
    )  # fmt: skip
    seen = -1
    while calls[0] != seen:  # until nothing is due any more (retries wait 60 s)
        seen = calls[0]
        await asyncio.sleep(0.5)
    stop.set()
    stats = await asyncio.wait_for(worker, timeout=30)
    await client.aclose()
    assert stats.dead >= 1 and stats.retried >= 1 and stats.delivered == 0


async def test_no_seeded_phi_in_any_log_output(
    http: httpx.AsyncClient, hapi: FakeHapi, app: FastAPI, captured: Captured
) -> None:
    await _ingest_by_rest_hook(http, hapi)
    engine: Engine = app.state.engine
    with session_scope(engine) as session:
        referrals = list(session.scalars(select(models.Referral)))
    assert [r.client_mrn for r in referrals] == [MRN, f"{MRN}-2"]  # the PHI did go through
    await _api_errors(http)
    _workflows(engine)
    await _worker_failures(engine)
    records = captured.caplog.records
    loggers = {r.name.split(".")[0] for r in records}
    assert {"httpx", "sqlalchemy", "integration", "uvicorn"} <= loggers, loggers  # all at DEBUG
    assert any(r.exc_info for r in records)  # a traceback was logged, and scanned
    assert captured.leaks() == []


def test_the_scan_finds_a_leak_when_the_sanitizer_is_off(caplog: pytest.LogCaptureFixture) -> None:
    logging_setup.uninstall()  # proves the scan above is not vacuous
    try:
        caplog.set_level(logging.DEBUG)
        logging.getLogger("integration.example").info("client %s", NAME)
        assert Captured(caplog).leaks() == [NAME, GIVEN, FAMILY]
    finally:
        logging_setup.install()
