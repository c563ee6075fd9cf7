"""Finding 7 (info/hardening): JSON answers are never cached, the API docs load no code from a
CDN, and an org claim spelled as a server reference selects no organization."""

from __future__ import annotations

import re
import time

import httpx
import jwt
import pytest

from tests.component.api.referral_support import (
    SECRET,
    app,
    fhir_mock,
    http,
    org_ref,
    settings,
    submission,
)
from tests.db.fixtures import empty_db_url
from tests.security.callers import case_manager, ehr

pytestmark = pytest.mark.anyio
__all__ = ["app", "empty_db_url", "fhir_mock", "http", "settings"]  # fixtures, by name


async def test_json__answers_and_errors_are_no_store(http: httpx.AsyncClient) -> None:
    for response in (
        await http.get("/api/referrals", headers=case_manager()),
        await http.get("/api/referrals/SD-404", headers=case_manager()),
        await http.get("/api/referrals"),
    ):
        assert response.headers["content-type"].split(";")[0].endswith("json")
        assert response.headers["cache-control"] == "no-store", response.status_code


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs__load_no_code_from_another_origin(http: httpx.AsyncClient, page: str) -> None:
    html = (await http.get(page)).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert sources, html
    assert not [s for s in sources if "://" in s or s.startswith("//")], sources
    assert "cdn." not in html and "googleapis" not in html
    for source in sources:
        if source.startswith("/docs-assets/"):
            assert (await http.get(source)).status_code == 200, source


def _token(org: str, role: str = "ehr-system") -> dict[str, str]:
    claims = {"sub": "caller-x", "role": role, "org": org, "aud": "iop-bridge",
              "exp": int(time.time()) + 600}  # fmt: skip
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def test_org_claim__spelled_as_a_server_reference_selects_nothing(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.post("/api/referrals", json=submission(5), headers=ehr())).status_code == 201
    disguised = _token(org_ref("RES-1"))  # "Organization/org-res-1", the requester as stored
    read = await http.get("/api/referrals/SD-000005", headers=disguised)
    assert read.status_code == 401, read.text
    assert "org" in read.text
