"""Outbound authentication to the FHIR server: none, a static bearer token, SMART Backend Services.

respx stands at the HTTP seam for both the FHIR server and its authorization server; the token
requests go through the FHIR client's own httpx client, so they are seen here too.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from integration.fhir.auth import (
    ASSERTION_LIFETIME_SECONDS,
    CLIENT_ASSERTION_TYPE,
    SmartBackendAuth,
    SmartClient,
)
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirServerUnavailable, FhirUnauthorized
from integration.fhir.retry_policy import RetryPolicy
from integration.settings import Settings

BASE = "https://fhir.example.org/r4"
TOKEN_URL = "https://auth.example.org/token"
NOW = 1_800_000_000.0

pytestmark = pytest.mark.anyio


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Clock:
    """Wall and monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def _smart_client(
    key_pem: str, *, algorithm: str = "RS384", token_url: str | None = TOKEN_URL
) -> SmartClient:
    return SmartClient(
        client_id="iop-bridge-test",
        private_key_pem=key_pem,
        key_id="key-1",
        algorithm=algorithm,
        scope="system/Task.cru system/ServiceRequest.rs",
        token_url=token_url,
    )


def _client(auth: httpx.Auth | None) -> FhirClient:
    http = httpx.AsyncClient(base_url=BASE + "/", auth=auth)
    return FhirClient(http, retry=RetryPolicy(max_attempts=2, initial_wait=0, max_wait=0))


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def _form(request: httpx.Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.content.decode()))


def _token_reply(value: str = "tok-1", expires_in: int = 300) -> httpx.Response:
    body = {"access_token": value, "token_type": "bearer", "expires_in": expires_in}
    return httpx.Response(200, json=body)


async def test_no_auth__sends_no_authorization_header(mock: respx.MockRouter) -> None:
    route = mock.get(f"{BASE}/metadata").respond(200, json={"resourceType": "CapabilityStatement"})
    settings = Settings(fhir_base_url=BASE)
    client = FhirClient.from_settings(settings)
    await client.capabilities()
    await client.aclose()
    assert "authorization" not in route.calls.last.request.headers


async def test_bearer__configured_token_on_every_request_to_the_fhir_origin_only(
    mock: respx.MockRouter,
) -> None:
    fhir = mock.get(f"{BASE}/Task/1").respond(200, json={"resourceType": "Task", "id": "1"})
    elsewhere = mock.get("https://other.example.org/r4/Task").respond(
        200, json={"resourceType": "Bundle"}
    )
    settings = Settings(fhir_base_url=BASE, fhir_auth="bearer", fhir_bearer_token="s3cret")
    client = FhirClient.from_settings(settings)
    await client.read("Task", "1")
    await client.request("GET", "https://other.example.org/r4/Task")  # e.g. a foreign next link
    await client.aclose()
    assert fhir.calls.last.request.headers["authorization"] == "Bearer s3cret"
    assert "authorization" not in elsewhere.calls.last.request.headers


async def test_smart__token_request_carries_a_signed_assertion_per_backend_services(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = mock.post(TOKEN_URL).mock(return_value=_token_reply())
    fhir = mock.get(f"{BASE}/Task/1").respond(200, json={"resourceType": "Task", "id": "1"})
    auth = SmartBackendAuth(_smart_client(_pem(rsa_key)), BASE, clock=Clock())
    client = _client(auth)
    await client.read("Task", "1")
    await client.aclose()

    form = _form(token.calls.last.request)
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "system/Task.cru system/ServiceRequest.rs"
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    header = jwt.get_unverified_header(form["client_assertion"])
    assert (header["alg"], header["kid"], header["typ"]) == ("RS384", "key-1", "JWT")
    claims = jwt.decode(
        form["client_assertion"],
        rsa_key.public_key(),
        algorithms=["RS384"],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "iop-bridge-test"
    assert claims["exp"] - NOW <= ASSERTION_LIFETIME_SECONDS
    assert claims["jti"]
    assert fhir.calls.last.request.headers["authorization"] == "Bearer tok-1"


async def test_smart__es384_assertion_verifies_with_the_public_key(
    mock: respx.MockRouter,
) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    token = mock.post(TOKEN_URL).mock(return_value=_token_reply())
    mock.get(f"{BASE}/Task/1").respond(200, json={"resourceType": "Task", "id": "1"})
    client = _client(SmartBackendAuth(_smart_client(_pem(key), algorithm="ES384"), BASE))
    await client.read("Task", "1")
    await client.aclose()
    assertion = _form(token.calls.last.request)["client_assertion"]
    claims = jwt.decode(assertion, key.public_key(), algorithms=["ES384"], audience=TOKEN_URL)
    assert claims["sub"] == "iop-bridge-test"


async def test_smart__token_is_shared_until_near_expiry_then_renewed(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = mock.post(TOKEN_URL).mock(
        side_effect=[_token_reply("tok-1", 300), _token_reply("tok-2", 300)]
    )
    fhir = mock.get(f"{BASE}/Task/1").respond(200, json={"resourceType": "Task", "id": "1"})
    clock = Clock()
    auth = SmartBackendAuth(_smart_client(_pem(rsa_key)), BASE, clock=clock, monotonic=clock)
    client = _client(auth)
    for _ in range(3):
        await client.read("Task", "1")
    clock.now += 300 - 60  # inside the renewal margin
    await client.read("Task", "1")
    await client.aclose()
    assert token.call_count == 2
    sent = [call.request.headers["authorization"] for call in fhir.calls]
    assert sent == ["Bearer tok-1"] * 3 + ["Bearer tok-2"]
    assertions = [_form(call.request)["client_assertion"] for call in token.calls]
    jtis = {jwt.decode(a, options={"verify_signature": False})["jti"] for a in assertions}
    assert len(jtis) == 2  # a fresh jti for every token request


async def test_smart__a_401_fetches_a_new_token_once_and_resends(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    mock.post(TOKEN_URL).mock(side_effect=[_token_reply("revoked"), _token_reply("fresh")])
    fhir = mock.get(f"{BASE}/Task/1").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json={"resourceType": "Task"})]
    )
    client = _client(SmartBackendAuth(_smart_client(_pem(rsa_key)), BASE))
    assert (await client.read("Task", "1"))["resourceType"] == "Task"
    await client.aclose()
    sent = [call.request.headers["authorization"] for call in fhir.calls]
    assert sent == ["Bearer revoked", "Bearer fresh"]


async def test_smart__a_second_401_is_an_unauthorized_error(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = mock.post(TOKEN_URL).mock(return_value=_token_reply())
    mock.get(f"{BASE}/Task/1").respond(401)
    client = _client(SmartBackendAuth(_smart_client(_pem(rsa_key)), BASE))
    with pytest.raises(FhirUnauthorized):
        await client.read("Task", "1")
    await client.aclose()
    assert token.call_count == 2  # the first token, then one fresh try; no loop


async def test_smart__token_endpoint_is_discovered_from_smart_configuration(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    mock.get(f"{BASE}/.well-known/smart-configuration").respond(
        200, json={"token_endpoint": TOKEN_URL, "grant_types_supported": ["client_credentials"]}
    )
    token = mock.post(TOKEN_URL).mock(return_value=_token_reply())
    mock.get(f"{BASE}/Task/1").respond(200, json={"resourceType": "Task", "id": "1"})
    client = _client(SmartBackendAuth(_smart_client(_pem(rsa_key), token_url=None), BASE))
    await client.read("Task", "1")
    await client.aclose()
    assert token.call_count == 1


async def test_smart__refused_credentials_name_the_oauth_error_and_leak_nothing(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    mock.post(TOKEN_URL).respond(
        400, json={"error": "invalid_client", "error_description": "echo: secret-ish text"}
    )
    fhir = mock.get(f"{BASE}/Task/1").respond(200, json={})
    client = _client(SmartBackendAuth(_smart_client(_pem(rsa_key)), BASE))
    with pytest.raises(FhirUnauthorized) as caught:
        await client.read("Task", "1")
    await client.aclose()
    assert "invalid_client" in str(caught.value)
    assert "secret-ish" not in str(caught.value)
    assert not fhir.called  # nothing reached the FHIR server without a token


async def test_smart__token_endpoint_outage_is_transient_and_retried(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = mock.post(TOKEN_URL).mock(side_effect=[httpx.Response(503), _token_reply()])
    mock.get(f"{BASE}/Task/1").respond(200, json={"resourceType": "Task", "id": "1"})
    client = _client(SmartBackendAuth(_smart_client(_pem(rsa_key)), BASE))
    await client.read("Task", "1")  # the client's retry policy covers the token request too
    await client.aclose()
    assert token.call_count == 2


async def test_smart__token_endpoint_outage_surfaces_as_server_unavailable(
    mock: respx.MockRouter, rsa_key: rsa.RSAPrivateKey
) -> None:
    mock.post(TOKEN_URL).respond(503)
    client = _client(SmartBackendAuth(_smart_client(_pem(rsa_key)), BASE))
    with pytest.raises(FhirServerUnavailable):
        await client.read("Task", "1")
    await client.aclose()


@pytest.mark.parametrize(
    ("mode", "missing"),
    [
        ("bearer", "IOP_BRIDGE_FHIR_BEARER_TOKEN"),
        ("smart-backend", "IOP_BRIDGE_FHIR_SMART_CLIENT_ID"),
        ("smart-backend", "IOP_BRIDGE_FHIR_SMART_PRIVATE_KEY"),
    ],
)
def test_settings__incomplete_outbound_auth_names_the_missing_setting(
    mode: str, missing: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(fhir_auth=mode)
    assert missing in str(caught.value)
