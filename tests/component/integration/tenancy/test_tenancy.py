"""The one tenancy service: organization keys kept in the store, the IOP's own Organization
looked up once (and again a minute after a miss), and the Scope each caller reads under."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from integration.db import models
from integration.settings import Settings
from integration.tenancy import service
from integration.tenancy.scope import Scope, Side
from integration.tenancy.service import Tenancy
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio
SETTINGS = Settings()


class FakeFhir:
    """Answers Organization searches from ``found`` (identifier value -> server id)."""

    def __init__(self, found: dict[str, str]) -> None:
        self.found = found
        self.searches: list[str] = []

    async def search(self, resource_type: str, params: dict[str, str]) -> dict[str, Any]:
        value = params["identifier"].split("|", 1)[1]
        self.searches.append(value)
        hit = self.found.get(value)
        return {"entry": [{"resource": {"resourceType": resource_type, "id": hit}}] if hit else []}


async def test_scope__the_callers_keys_on_its_side_kept_in_the_store(engine: Engine) -> None:
    fhir = FakeFhir({"RES-1": "77"})
    tenancy = Tenancy(fhir, engine, SETTINGS)  # type: ignore[arg-type]
    assert await tenancy.scope("RES-1", Side.PARTNER) == Scope(
        ("RES-1", "Organization/77"), Side.PARTNER
    )
    again = Tenancy(FakeFhir({}), engine, SETTINGS)  # type: ignore[arg-type]  # another process
    assert (await again.scope("RES-1")).organizations == ("RES-1", "Organization/77")
    assert await tenancy.scope("NOBODY") == Scope(("NOBODY",), Side.IOP)


async def test_iop_scope__only_the_iop_is_looked_up_and_it_is_kept(engine: Engine) -> None:
    fhir = FakeFhir({SETTINGS.organization_id: "9"})
    tenancy = Tenancy(fhir, engine, SETTINGS)  # type: ignore[arg-type]
    assert (await tenancy.iop_scope("ELSEWHERE")).organizations == ("ELSEWHERE",)
    assert fhir.searches == []
    for _ in range(3):
        scope = await tenancy.iop_scope(SETTINGS.organization_id)
        assert scope.organizations == (SETTINGS.organization_id, "Organization/9")
    assert fhir.searches == [SETTINGS.organization_id]


async def test_iop_reference__a_miss_waits_a_minute_unless_asked_again_now(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(service.time, "monotonic", lambda: clock[0])
    fhir = FakeFhir({})
    tenancy = Tenancy(fhir, engine, SETTINGS)  # type: ignore[arg-type]
    assert await tenancy.iop_reference() is None
    assert await tenancy.iop_reference() is None  # within the minute: no second search
    assert len(fhir.searches) == 1
    fhir.found[SETTINGS.organization_id] = "12"
    assert await tenancy.iop_reference(wait_to_retry=False) == "Organization/12"
    clock[0] += Tenancy.RETRY_SECONDS + 1
    assert await tenancy.iop_reference() == "Organization/12"
    assert len(fhir.searches) == 2  # found once, kept


def test_scope__naming_no_organization_matches_nothing() -> None:
    where = Scope(()).where(iop=models.Referral.iop_organization, partner=None)
    assert [str(clause) for clause in where] == ["false"]
