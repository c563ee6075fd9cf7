"""The local HAPI sandbox behaves as iop-bridge's client expects (status codes, caching, paging)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from integration.fhir.client import FhirClient
from integration.fhir.errors import (
    FhirNotFound,
    FhirPreconditionFailed,
    FhirRequestRejected,
    FhirVersionConflict,
)
from mappers import bundle

pytestmark = [pytest.mark.live, pytest.mark.anyio]
SYSTEM = "http://iop-bridge.example/fhir/sid/live-test"
POM = Path(__file__).resolve().parents[2] / "sandbox" / "hapi" / "pom.xml"


def _pinned_hapi_version() -> str:
    """The HAPI version sandbox/hapi/pom.xml pins (its <hapi.version> property)."""
    found = re.search(r"<hapi\.version>([^<]+)</hapi\.version>", POM.read_text())
    assert found, "sandbox/hapi/pom.xml has no <hapi.version>"
    return found.group(1)


def _patient(value: str) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": value}],
        "name": [{"family": "Testperson"}],
        "gender": "unknown",
        "birthDate": "1990-01-01",
    }


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


async def test_metadata__is_a_hapi_at_least_the_pinned_release_speaking_r4(
    fhir: FhirClient,
) -> None:
    # a minimum, not an exact match: a user's newer HAPI is a server iop-bridge works with
    capability = await fhir.capabilities()
    assert capability["fhirVersion"] == "4.0.1"
    assert _version(capability["software"]["version"]) >= _version(_pinned_hapi_version())


async def test_conditional_create__201_then_200_and_one_resource(
    fhir: FhirClient, unique: str
) -> None:
    query = bundle.identifier_query(SYSTEM, unique)
    first = await fhir.create(_patient(unique), if_none_exist=query)
    second = await fhir.create(_patient(unique), if_none_exist=query)
    assert (first.created, second.created) == (True, False)
    assert await fhir.count("Patient", {"identifier": bundle.identifier_token(SYSTEM, unique)}) == 1


async def test_conditional_create__several_matches_is_precondition_failed(
    fhir: FhirClient, unique: str
) -> None:
    await fhir.create(_patient(unique))
    await fhir.create(_patient(unique))
    with pytest.raises(FhirPreconditionFailed) as caught:
        await fhir.create(_patient(unique), if_none_exist=bundle.identifier_query(SYSTEM, unique))
    assert caught.value.status == 412
    assert "HAPI-0958" in caught.value.hapi_codes


async def test_update__stale_if_match_is_a_version_conflict(fhir: FhirClient, unique: str) -> None:
    created = (await fhir.create(_patient(unique))).resource
    updated = (
        await fhir.update(
            {**created, "gender": "other"}, if_match_version=created["meta"]["versionId"]
        )
    ).resource
    assert updated["meta"]["versionId"] == "2"
    with pytest.raises(FhirVersionConflict) as caught:
        await fhir.update({**created, "gender": "female"}, if_match_version="1")
    assert caught.value.status in (409, 412)  # HAPI answers 409; the FHIR spec says 412


async def test_conditional_update__creates_then_updates_the_same_resource(
    fhir: FhirClient, unique: str
) -> None:
    match = {"identifier": bundle.identifier_token(SYSTEM, unique)}
    first = await fhir.conditional_update(_patient(unique), match=match)
    second = await fhir.conditional_update({**_patient(unique), "gender": "other"}, match=match)
    assert first.created and not second.created
    assert second.resource["id"] == first.resource["id"]
    assert second.resource["gender"] == "other"


async def test_search__our_identical_searches_are_never_answered_from_a_cache(
    fhir: FhirClient, unique: str
) -> None:
    # FhirClient.search asks for a fresh search (Cache-Control: no-cache): this holds on a server
    # that caches searches for 60 s as HAPI does by default, not only on the sandbox
    params = {"identifier": bundle.identifier_token(SYSTEM, unique)}
    assert await fhir.count("Patient", params) == 0
    await fhir.create(_patient(unique))
    assert await fhir.count("Patient", params) == 1


async def test_search_all__pages_through_next_links_and_filters_last_updated(
    fhir: FhirClient, unique: str
) -> None:
    before = (datetime.now(UTC) - timedelta(seconds=5)).isoformat(timespec="seconds")
    for _ in range(5):
        await fhir.create(_patient(unique))
    params = {
        "identifier": bundle.identifier_token(SYSTEM, unique),
        "_count": "2",
        "_lastUpdated": f"ge{before}",
    }
    first_page = await fhir.search("Patient", params)
    assert any(link["relation"] == "next" for link in first_page["link"])
    found = [r["id"] async for r in fhir.search_all("Patient", params)]
    assert len(found) == len(set(found)) == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    later = {**params, "_lastUpdated": f"gt{future}"}
    assert await fhir.count("Patient", later) == 0


async def test_expunge__removes_a_deleted_resource_for_good_where_enabled(
    fhir: FhirClient, unique: str
) -> None:
    created = (await fhir.create(_patient(unique))).resource
    path = f"Patient/{created['id']}"
    await fhir.request("DELETE", path)
    expunge = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "expungeDeletedResources", "valueBoolean": True},
            {"name": "expungePreviousVersions", "valueBoolean": True},
        ],
    }
    try:
        await fhir.request("POST", f"{path}/$expunge", body=expunge)
    except FhirRequestRejected as refused:  # a server with expunge off says so ...
        assert "not enabled" in str(refused)
        history = await fhir.request("GET", f"{path}/_history/1")  # ... and keeps the version
        assert history.body["id"] == created["id"]
        return
    await asyncio.sleep(0)  # the instance-level expunge is synchronous in HAPI
    with pytest.raises(FhirNotFound):
        await fhir.request("GET", f"{path}/_history/1")


async def test_expired_search_page__is_the_not_found_the_client_restarts_on(
    fhir: FhirClient,
) -> None:
    # search_all restarts a search when a next link answers FhirNotFound; prove HAPI's answer
    # for a search id it no longer has (410, HAPI-0417) is exactly that.
    with pytest.raises(FhirNotFound) as caught:
        await fhir.request("GET", "?_getpages=expired-search-id&_getpagesoffset=20&_count=20")
    assert caught.value.status == 410
    assert "HAPI-0417" in caught.value.hapi_codes


async def test_update_owned_fields__survives_a_concurrent_writer(
    fhir: FhirClient, unique: str
) -> None:
    from integration.fhir.concurrency import update_owned_fields

    created = (await fhir.create(_patient(unique))).resource
    calls = 0

    def change(resource: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {**resource, "gender": "other"}

    # Another writer updates between our read and our write on the first attempt.
    original_read = fhir.read

    async def read_then_interfere(resource_type: str, resource_id: str) -> dict[str, Any]:
        current = await original_read(resource_type, resource_id)
        if calls == 0:
            await fhir.update({**current, "birthDate": "1991-02-03"})
        return current

    fhir.read = read_then_interfere  # type: ignore[method-assign]
    outcome = await update_owned_fields(fhir, "Patient", created["id"], change)
    assert calls == 2  # the first PUT met a 409 and the change was re-applied
    assert outcome.resource["gender"] == "other"
    assert outcome.resource["birthDate"] == "1991-02-03"
