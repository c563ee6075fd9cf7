"""Finding 5 (low) and the ids of finding 3's neighbours: input that answered 500, or was
accepted and then broke, now answers 4xx with a message naming the field (issue 15)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI

from api.schema_examples import EXAMPLE_DISCHARGE
from api.tracker_login import MAX_FORM_FIELDS
from tests.component.api.referral_support import (
    FHIR_JSON,
    SECRET,
    app,
    fhir_bundle,
    fhir_mock,
    settings,
    submission,
)
from tests.db.fixtures import empty_db_url
from tests.security.callers import case_manager, ehr

pytestmark = pytest.mark.anyio
__all__ = ["app", "empty_db_url", "fhir_mock", "settings"]  # fixtures, used by name


@pytest.fixture
async def raw(app: FastAPI, fhir_mock: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    """The app as a client sees it: an error inside the app is its 500, not an exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def _fields(response: httpx.Response) -> str:
    """Every field the error names (problem JSON or OperationOutcome), as one string."""
    body = response.json()
    problems = body.get("problems") or body.get("issue") or []
    return " ".join(str(p) for p in problems)


@pytest.mark.parametrize("identifier", ["SD-\u0130STANBUL", "SD-\u202e1", "SD/1", "SD<1>"])
async def test_referral_id__that_cannot_be_read_back_is_refused(
    raw: httpx.AsyncClient, identifier: str
) -> None:
    """Non-Latin-1 ids broke the Location header after storing; '/' and '<>' could not be read
    back (or failed the audit's id check later)."""
    body = submission(1)
    body["identifier"] = identifier
    response = await raw.post("/api/referrals", json=body, headers=ehr())
    assert response.status_code == 422, response.text
    assert "identifier" in _fields(response)


@pytest.mark.parametrize("route", ["/api/referrals", "/api/discharges"])
async def test_search__a_date_at_the_end_of_the_calendar_is_refused(
    raw: httpx.AsyncClient, route: str
) -> None:
    response = await raw.get(route, params={"to": "9999-12-31"}, headers=case_manager())
    assert response.status_code == 422, response.text
    assert "to" in _fields(response)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_submission__a_moment_outside_utc_is_refused(
    raw: httpx.AsyncClient, moment: str
) -> None:
    response = await raw.post("/api/referrals", json=submission(2, authored_on=moment),
                              headers=ehr())  # fmt: skip
    assert response.status_code == 422, response.text
    assert "authored_on" in _fields(response)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_discharge__a_moment_outside_utc_is_refused(
    raw: httpx.AsyncClient, moment: str
) -> None:
    order = EXAMPLE_DISCHARGE | {"discharged_at": moment}
    response = await raw.post("/api/referrals/SD-000001/discharge", json=order,
                              headers=case_manager())  # fmt: skip
    assert response.status_code == 422, response.text
    assert "discharged_at" in _fields(response)


async def test_bundle__an_entry_whose_meta_is_not_an_object_is_refused(
    raw: httpx.AsyncClient,
) -> None:
    bundle = fhir_bundle(3)
    bundle["entry"][0]["resource"]["meta"] = "x"
    response = await raw.post("/api/referrals", json=bundle,
                              headers=ehr() | {"Content-Type": FHIR_JSON})  # fmt: skip
    assert 400 <= response.status_code < 500, response.text
    assert "meta" in _fields(response)


async def test_submission__a_birth_date_in_the_future_is_refused(raw: httpx.AsyncClient) -> None:
    body = submission(4)
    body["client"]["birth_date"] = "9999-12-31"
    response = await raw.post("/api/referrals", json=body, headers=ehr())
    assert response.status_code == 422, response.text
    assert "birth_date" in _fields(response)


async def test_login__too_many_form_fields_is_a_4xx(raw: httpx.AsyncClient) -> None:
    form = "&".join(f"f{i}=x" for i in range(MAX_FORM_FIELDS + 1))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await raw.post("/tracker/login", content=form, headers=headers)
    assert 400 <= response.status_code < 500, response.text


def _token(**claims: Any) -> str:
    base = {"sub": "caller-1", "role": "case-manager", "org": "IOP-DEMO-ORG", "aud": "iop-bridge",
            "exp": int(time.time()) + 600}  # fmt: skip
    return jwt.encode(base | claims, SECRET, algorithm="HS256")


async def test_token__an_exp_that_is_a_numeric_string_is_refused(raw: httpx.AsyncClient) -> None:
    token = _token(exp=str(int(time.time()) + 600))
    api = await raw.get("/api/referrals", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 401, api.text
    form = {"kind": "token", "credential": token}
    login = await raw.post("/tracker/login", data=form)
    assert login.status_code == 401, login.text
