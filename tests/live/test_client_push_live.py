"""The first vertical slice against the real server: idempotent, read back equal, fault-tolerant."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from sqlalchemy import Engine

from integration.db.store import list_sync_records, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.client_push import push_client, read_back
from integration.fhir.retry_policy import RetryPolicy
from integration.settings import Settings
from tests.builders import make_client, make_diagnosis

pytestmark = [pytest.mark.live, pytest.mark.anyio]


def _records(unique: str):  # type: ignore[no-untyped-def]
    client = make_client(mrn=f"MRN-{unique}")
    diagnoses = [
        make_diagnosis(identifier=f"DX-{unique}-1"),
        make_diagnosis(
            identifier=f"DX-{unique}-2",
            icd10_code="F43.10",
            display="Post-traumatic stress disorder, unspecified",
        ),
    ]
    return client, diagnoses


async def test_push_twice__exactly_one_of_each_and_content_round_trips(
    fhir: FhirClient, engine: Engine, live_settings: Settings, unique: str
) -> None:
    client, diagnoses = _records(unique)
    first = await push_client(fhir, engine, live_settings, client, diagnoses)
    second = await push_client(fhir, engine, live_settings, client, diagnoses)
    assert [p.created for p in first] == [True, True, True]
    assert [p.created for p in second] == [False, False, False]
    assert [p.server_id for p in first] == [p.server_id for p in second]
    result = await read_back(fhir, live_settings, client, diagnoses)
    assert result.patient_count == 1
    assert result.condition_counts == {d.identifier: 1 for d in diagnoses}
    assert result.matches_sent


async def test_push__conditions_reference_the_matched_patient(
    fhir: FhirClient, engine: Engine, live_settings: Settings, unique: str
) -> None:
    client, diagnoses = _records(unique)
    await push_client(fhir, engine, live_settings, client, diagnoses[:1])
    pushed = await push_client(fhir, engine, live_settings, client, diagnoses)
    patient_id, _, new_condition = pushed
    stored = await fhir.read("Condition", new_condition.server_id)
    assert stored["subject"]["reference"] == f"Patient/{patient_id.server_id}"


async def test_push__records_sync_state_in_the_store(
    fhir: FhirClient, engine: Engine, live_settings: Settings, unique: str
) -> None:
    client, diagnoses = _records(unique)
    await push_client(fhir, engine, live_settings, client, diagnoses)
    await push_client(fhir, engine, live_settings, client, diagnoses)
    with session_scope(engine) as session:
        records = {r.identifier_value: r for r in list_sync_records(session)}
    assert records[client.mrn].resource_type == "Patient"
    assert records[client.mrn].attempts == 2
    assert records[client.mrn].last_outcome == "matched"


async def test_push__a_different_client_is_refused_nothing_else_changes(
    fhir: FhirClient, engine: Engine, live_settings: Settings, unique: str
) -> None:
    client, diagnoses = _records(unique)
    await push_client(fhir, engine, live_settings, client, diagnoses)
    renamed = replace(client, family_name="Changed")
    await push_client(fhir, engine, live_settings, renamed, diagnoses)
    result = await read_back(fhir, live_settings, client, diagnoses)
    # Conditional create never overwrites: the server still holds the first version.
    assert result.matches_sent and result.patient_count == 1


class FaultyTransport(httpx.AsyncBaseTransport):
    """Injects faults in front of the real HAPI server, in the order given, then passes through.

    "lost-response" forwards the request to HAPI and then raises a read timeout, the worst case
    for idempotency: the server did the work but the client never heard.
    """

    def __init__(self, faults: list[object]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._faults = list(faults)
        self.forwarded = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self._faults.pop(0) if self._faults else None
        if fault == "lost-response":
            response = await self._inner.handle_async_request(request)
            await response.aread()
            self.forwarded += 1
            raise httpx.ReadTimeout("injected: response lost after the server committed")
        if isinstance(fault, int):
            headers = {"Retry-After": "0"} if fault == 429 else {}
            return httpx.Response(fault, headers=headers, request=request)
        if isinstance(fault, Exception):
            raise fault
        self.forwarded += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_push__survives_503_429_refused_and_lost_response_without_duplicates(
    engine: Engine, live_settings: Settings, unique: str
) -> None:
    transport = FaultyTransport(
        [503, 429, httpx.ConnectError("injected: refused"), "lost-response"]
    )
    http = httpx.AsyncClient(base_url=live_settings.fhir_base + "/", transport=transport)
    flaky = FhirClient(http, retry=RetryPolicy(max_attempts=6, initial_wait=0.01, max_wait=0.1))
    client, diagnoses = _records(unique)
    try:
        pushed = await push_client(flaky, engine, live_settings, client, diagnoses)
        result = await read_back(flaky, live_settings, client, diagnoses)
    finally:
        await flaky.aclose()
    assert transport.forwarded >= 2  # the lost transaction reached HAPI, and so did the retry
    assert [p.created for p in pushed] == [False, False, False]  # the retry matched, not created
    assert result.patient_count == 1
    assert result.condition_counts == {d.identifier: 1 for d in diagnoses}
