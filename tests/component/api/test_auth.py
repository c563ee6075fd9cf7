"""Authentication and roles at the API edge: JWTs against configured keys, hashed API keys."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI

from api.auth import Principal, Role, require
from api.errors import install_error_handler
from integration.settings import ApiKeyGrant, Settings

pytestmark = pytest.mark.anyio
SECRET = "test-only-secret-not-used-anywhere-else"
API_KEY = "test-api-key-0001"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    grant = ApiKeyGrant(name="residential-ehr", role="ehr-system", organization="RES-1")
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        auth_api_keys={hashlib.sha256(API_KEY.encode()).hexdigest(): grant},
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.settings = settings
    install_error_handler(app)

    @app.get("/admin-only")
    def admin_only(who: Annotated[Principal, Depends(require(Role.ADMIN))]) -> dict[str, str]:
        return {"subject": who.subject, "organization": who.organization}

    @app.get("/any-role")
    def any_role(
        who: Annotated[Principal, Depends(require(*Role))],
    ) -> dict[str, str]:
        return {"role": who.role.value}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _token(**claims: Any) -> str:
    body = {
        "sub": "cm-1",
        "role": "admin",
        "org": "IOP-1",
        "aud": "iop-bridge",
        "exp": int(time.time()) + 60,
    } | claims
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, algorithm="HS256")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_jwt__valid_token_gives_its_principal(http: httpx.AsyncClient) -> None:
    response = await http.get("/admin-only", headers=_bearer(_token()))
    assert response.status_code == 200
    assert response.json() == {"subject": "cm-1", "organization": "IOP-1"}


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": int(time.time()) - 10}, "ExpiredSignatureError"),
        ({"aud": "someone-else"}, "InvalidAudienceError"),
        ({"exp": None}, "MissingRequiredClaimError"),
        ({"role": "superuser"}, "unknown role"),
        ({"org": None}, "no organization"),
    ],
)
async def test_jwt__bad_tokens_are_401_naming_why(
    http: httpx.AsyncClient, claims: dict[str, Any], why: str
) -> None:
    response = await http.get("/admin-only", headers=_bearer(_token(**claims)))
    assert response.status_code == 401
    assert why in response.text


async def test_jwt__token_signed_with_another_key_is_401(http: httpx.AsyncClient) -> None:
    forged = jwt.encode(
        {
            "sub": "x",
            "role": "admin",
            "org": "IOP-1",
            "aud": "iop-bridge",
            "exp": int(time.time()) + 60,
        },
        "another-secret-of-enough-length-xx",
        algorithm="HS256",
    )
    assert (await http.get("/admin-only", headers=_bearer(forged))).status_code == 401


async def test_no_credentials__401(http: httpx.AsyncClient) -> None:
    response = await http.get("/any-role")
    assert response.status_code == 401
    assert "X-API-Key" in response.text


async def test_api_key__known_key_authenticates_by_its_hash(http: httpx.AsyncClient) -> None:
    response = await http.get("/any-role", headers={"X-API-Key": API_KEY})
    assert response.json() == {"role": "ehr-system"}
    assert (await http.get("/any-role", headers={"X-API-Key": "guess"})).status_code == 401


async def test_role__wrong_role_is_403_naming_the_allowed(http: httpx.AsyncClient) -> None:
    response = await http.get("/admin-only", headers={"X-API-Key": API_KEY})
    assert response.status_code == 403
    assert "'ehr-system' may not" in response.text and "admin" in response.text
