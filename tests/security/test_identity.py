# ruff: noqa: F811  (fixtures imported from referral_support are test parameters here)
"""Identity belongs to the sender (issue 13) and is never merged silently (issue 15, findings 2
and 4), replayed against the API with the FHIR server mocked at the transport seam.

Finding 2: referrer B submitted a package whose Patient carried referrer A's MRN (system and
value) and a Condition with A's identifier; the conditional creates reused A's records. Now B
writes only in its own namespaces, and a Patient matching another person is refused.
Finding 4: referral ids were global: B could take A's id first and A then got 409 naming it.
Now a referral is keyed by its sender and the sender's identifier.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from integration.db.models import Referral
from integration.settings import Settings
from tests.component.api.referral_support import (  # noqa: F401
    FHIR_JSON,
    OTHER,
    PATIENTS_ON_SERVER,
    RES,
    app,
    auth,
    fhir_bundle,
    fhir_mock,
    http,
    make_settings,
    outbox_count,
    store,
    submission,
)

pytestmark = pytest.mark.anyio
OTHER_NAMESPACE = "http://other-ehr.example/fhir/sid/"
MRN_SYSTEM = Settings().mrn_system


def a_ehr() -> dict[str, str]:
    """Referrer A's credential, minted now (a module-level token would expire in a long run)."""
    return auth("ehr-system", RES)


def b_ehr() -> dict[str, str]:
    return auth("ehr-system", OTHER)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """B (OTHER) has its own identifier namespace; A (RES) writes in iop-bridge's defaults."""
    base = make_settings(tmp_path)
    return base.model_copy(update={"organization_namespaces": {OTHER: [OTHER_NAMESPACE]}})


async def post(
    http: httpx.AsyncClient, body: dict[str, Any], who: dict[str, str]
) -> httpx.Response:
    fhir = body.get("resourceType") == "Bundle"
    content_type = {"Content-Type": FHIR_JSON if fhir else "application/json"}
    return await http.post("/api/referrals", json=body, headers={**who, **content_type})


def _patient(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )


def _in_namespace(bundle: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The bundle with every business identifier moved into ``namespace`` (B's own systems)."""
    moved = copy.deepcopy(bundle)
    for entry in moved["entry"]:
        raw = entry["resource"].get("identifier")
        for identifier in raw if isinstance(raw, list) else [raw] if raw else []:
            old = identifier["system"]
            identifier["system"] = namespace + old.rsplit("/", 1)[-1]
            condition = entry["request"].get("ifNoneExist", "")
            entry["request"]["ifNoneExist"] = condition.replace(
                old + "|", identifier["system"] + "|"
            )
    return moved


async def test_finding2__b_writing_in_as_identifier_systems_is_refused(
    http: httpx.AsyncClient, store: Any
) -> None:
    a_package = fhir_bundle(41)
    assert (await post(http, a_package, a_ehr())).status_code == 201
    b_package = _in_namespace(fhir_bundle(42, requester=OTHER), OTHER_NAMESPACE)
    a_patient = _patient(a_package)
    _patient(b_package)["identifier"] = copy.deepcopy(a_patient["identifier"])  # A's MRN
    mrn = a_patient["identifier"][0]
    patient_entry = next(
        e for e in b_package["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    patient_entry["request"]["ifNoneExist"] = f"identifier={mrn['system']}|{mrn['value']}"
    response = await post(http, b_package, b_ehr())
    assert response.status_code == 422
    issues = response.json()["issue"]  # an OperationOutcome: the caller sent FHIR
    assert any(
        MRN_SYSTEM in i["diagnostics"]
        and "Patient" not in i["diagnostics"]
        and ".identifier" in i["expression"][0]
        for i in issues
    ), issues
    assert outbox_count(store) == 1  # only A's package: nothing of B's is stored or sent


async def test_finding2__b_in_its_own_namespace_is_accepted(
    http: httpx.AsyncClient, store: Any
) -> None:
    b_package = _in_namespace(fhir_bundle(43, requester=OTHER), OTHER_NAMESPACE)
    response = await post(http, b_package, b_ehr())
    assert response.status_code == 201, response.text


async def test_finding2__a_patient_matching_another_person_is_refused_not_merged(
    http: httpx.AsyncClient, store: Any
) -> None:
    package = fhir_bundle(44)
    mrn = _patient(package)["identifier"][0]
    PATIENTS_ON_SERVER[f"{mrn['system']}|{mrn['value']}"] = {
        "resourceType": "Patient", "id": "someone-else",
        "name": [{"family": "Different"}], "birthDate": "1950-01-01",
    }  # fmt: skip
    response = await post(http, package, a_ehr())
    assert response.status_code == 422
    [issue] = response.json()["issue"]
    assert "refused rather than merged" in issue["diagnostics"]
    assert "Different" not in response.text  # nothing of the other record is told
    assert outbox_count(store) == 0


async def test_finding2__a_patient_matching_the_same_person_is_the_same_client(
    http: httpx.AsyncClient, store: Any
) -> None:
    package = fhir_bundle(45)
    patient = _patient(package)
    mrn = patient["identifier"][0]
    PATIENTS_ON_SERVER[f"{mrn['system']}|{mrn['value']}"] = {
        "resourceType": "Patient", "id": "same", "name": copy.deepcopy(patient["name"]),
        "birthDate": patient["birthDate"],
    }  # fmt: skip
    assert (await post(http, package, a_ehr())).status_code == 201


async def test_finding4__referral_ids_are_per_sender_and_tell_nothing_of_others(
    http: httpx.AsyncClient, store: Any
) -> None:
    first = await post(http, submission(3), b_ehr())  # B takes the id first (defaults
    # refused for B, which has its own namespace): B submits in its namespace instead
    assert first.status_code == 422
    b_package = _in_namespace(fhir_bundle(3, requester=OTHER), OTHER_NAMESPACE)
    assert (await post(http, b_package, b_ehr())).status_code == 201
    a_response = await post(http, submission(3), a_ehr())  # A's real SD-000003
    assert a_response.status_code == 201, a_response.text
    with store.connect() as connection:
        count = connection.scalar(
            select(func.count()).select_from(Referral).where(Referral.business_id == "SD-000003")
        )
    assert count == 2
    mine = await http.get("/api/referrals/SD-000003", headers=a_ehr())
    assert mine.status_code == 200 and mine.json()["referrer"].endswith("org-res-1")
