"""The aftercare loop at the FHIR client's seam (respx) and in the store: the acknowledgement
recorded once the next provider accepts, and a rejected Task that is none."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures and discharge_support are test
# parameters here)

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from sqlalchemy import Engine, select

from integration.db import models
from integration.db.store import session_scope
from integration.discharges import aftercare
from integration.fhir.client import FhirClient
from tests.component.integration.discharges.discharge_support import (
    BASE,
    discharge_now,
    fhir,  # noqa: F401
    store_ready_referral,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio


def _task(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "t1",
        "status": status,
        "meta": {"versionId": "2"},
    } | extra


@respx.mock(base_url=BASE)
async def test_check_aftercare__records_the_acknowledgement_once_accepted(
    respx_mock: respx.MockRouter, fhir: FhirClient, engine: Engine
) -> None:
    key = store_ready_referral(engine)
    discharge_now(engine)
    search = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": _task("requested")}],
    }
    respx_mock.get("/Task").respond(json=search)
    waiting = await aftercare.check_aftercare(fhir, engine, key)
    assert (waiting.task, waiting.status, waiting.acknowledged_at) == ("Task/t1", "requested", None)
    accepted = _task("accepted", lastModified="2026-04-01T09:30:00+00:00",
                     businessStatus={"coding": [{"code": "3.0"}]})  # fmt: skip
    read = respx_mock.get("/Task/t1").respond(json=accepted)
    status = await aftercare.check_aftercare(fhir, engine, key)
    assert read.called  # the Task id was remembered from the first check
    assert (status.status, status.business_status) == ("accepted", "3.0")
    assert status.acknowledged_at == datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
    with session_scope(engine) as session:
        stored = session.scalar(select(models.DischargeRecord))
        assert stored is not None and stored.acknowledged_at == status.acknowledged_at
    assert await aftercare.poll_open_discharges(fhir, engine) == []


@respx.mock(base_url=BASE)
async def test_check_aftercare__a_rejected_task_is_no_acknowledgement(
    respx_mock: respx.MockRouter, fhir: FhirClient, engine: Engine
) -> None:
    store_ready_referral(engine)
    discharge_now(engine)
    rejected = _task("rejected", statusReason={"text": "no capacity"})
    respx_mock.get("/Task").respond(
        json={"resourceType": "Bundle", "entry": [{"resource": rejected}]}
    )
    [status] = await aftercare.poll_open_discharges(fhir, engine)
    assert (status.status, status.acknowledged_at) == ("rejected", None)
