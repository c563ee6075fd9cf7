"""How iop-bridge authenticates to the FHIR server: none, a static bearer token, or SMART Backend
Services (OAuth2 client credentials with a signed JWT client assertion).

SMART App Launch 2.x, backend-services.html: the client signs a short-lived JWT (iss = sub =
client_id, aud = the token endpoint, exp at most five minutes ahead, a unique jti) with its
private key (RS384 or ES384), posts it to the token endpoint with ``grant_type=client_credentials``
and the requested ``system/`` scopes, and sends the access token it gets as a bearer token until
shortly before ``expires_in`` runs out. The token endpoint comes from settings or from
``[base]/.well-known/smart-configuration``.

The token requests are yielded from the httpx auth flow, so they travel through the FHIR client's
own pooled connections and its one retry policy; nothing here opens a client of its own. Tokens
and keys never appear in errors or logs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import orjson

from integration.fhir.errors import FhirServerUnavailable, FhirUnauthorized
from integration.settings import Settings

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# backend-services.html: the assertion's exp SHALL be no more than five minutes in the future.
ASSERTION_LIFETIME_SECONDS = 300
# Renew a little before the server's expiry so a request never leaves with a dying token: a
# minute, or a fifth of the lifetime for short-lived tokens.
RENEW_MARGIN_SECONDS = 60
# When the token response has no expires_in, assume this (RFC 6749 5.1 makes it RECOMMENDED).
DEFAULT_TOKEN_LIFETIME_SECONDS = 300


class StaticBearerAuth(httpx.Auth):
    """A configured bearer token on every request to the FHIR server's origin."""

    def __init__(self, token: str, base_url: str) -> None:
        self._token = token
        self._origin = _origin(base_url)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the Authorization header (same origin only), send once."""
        if _origin(str(request.url)) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


@dataclass(frozen=True, slots=True)
class SmartClient:
    """What a SMART backend client is registered with: its id, key, key id and scopes."""

    client_id: str
    private_key_pem: str
    key_id: str
    algorithm: str  # RS384 | ES384
    scope: str
    token_url: str | None  # None: discover it from .well-known/smart-configuration


@dataclass(slots=True)
class _Token:
    value: str
    renew_at: float  # time.monotonic() after which a new one is fetched


class SmartBackendAuth(httpx.Auth):
    """Client-credentials tokens, fetched on first use, shared by all requests, renewed early."""

    def __init__(
        self,
        client: SmartClient,
        base_url: str,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._origin = _origin(base_url)
        self._clock = clock  # wall time for the JWT's exp / iat
        self._monotonic = monotonic  # renewal time, immune to wall-clock steps
        self._token: _Token | None = None
        self._token_url = client.token_url
        self._lock = asyncio.Lock()

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """iop-bridge talks to FHIR only through httpx.AsyncClient."""
        raise RuntimeError("SmartBackendAuth works with httpx.AsyncClient only")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send with the current token; on 401, fetch a new token once and send again."""
        if _origin(str(request.url)) != self._origin:
            yield request  # never hand the FHIR server's token to another host
            return
        stale: str | None = None
        for _ in range(2):
            # One fetch at a time: concurrent requests wait for the token being fetched rather
            # than each asking the authorization server for its own.
            async with self._lock:
                token = self._valid_token(stale)
                if token is None:
                    # ``yield from`` is not allowed in an async generator: drive it by hand.
                    fetch = self._fetch_flow()
                    step = next(fetch)
                    while True:
                        answer = yield step
                        await answer.aread()
                        try:
                            step = fetch.send(answer)
                        except StopIteration as done:
                            token = done.value
                            break
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401:
                return
            stale = token  # revoked or rotated before its expiry: one fresh try

    def _valid_token(self, stale: str | None) -> str | None:
        token = self._token
        if token is None or self._monotonic() >= token.renew_at or token.value == stale:
            return None
        return token.value

    def _fetch_flow(self) -> Generator[httpx.Request, httpx.Response, str]:
        """Discover the token endpoint if needed, then run the client-credentials grant."""
        if self._token_url is None:
            response = yield httpx.Request(
                "GET",
                f"{self._base}/.well-known/smart-configuration",
                headers={"Accept": "application/json"},
            )
            self._token_url = _token_endpoint(response)
        token_url = self._token_url
        response = yield httpx.Request(
            "POST",
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": self._client.scope,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": self.client_assertion(token_url),
            },
            headers={"Accept": "application/json"},
        )
        value, lifetime = _read_token_response(response)
        margin = min(RENEW_MARGIN_SECONDS, lifetime / 5)
        self._token = _Token(value, self._monotonic() + lifetime - margin)
        return value

    def client_assertion(self, token_url: str) -> str:
        """The signed authentication JWT for one token request."""
        now = int(self._clock())
        claims = {
            "iss": self._client.client_id,
            "sub": self._client.client_id,
            "aud": token_url,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            claims,
            self._client.private_key_pem,
            algorithm=self._client.algorithm,
            headers={"kid": self._client.key_id, "typ": "JWT"},
        )


def fhir_auth(settings: Settings) -> httpx.Auth | None:
    """The outbound authentication the settings ask for; None for an open server."""
    mode = settings.fhir_auth
    if mode == "none":
        return None
    if mode == "bearer":
        assert settings.fhir_bearer_token is not None  # Settings validates the combination
        return StaticBearerAuth(settings.fhir_bearer_token.get_secret_value(), settings.fhir_base)
    assert settings.fhir_smart_client_id and settings.fhir_smart_private_key
    client = SmartClient(
        client_id=settings.fhir_smart_client_id,
        private_key_pem=settings.fhir_smart_private_key.get_secret_value(),
        key_id=settings.fhir_smart_key_id,
        algorithm=settings.fhir_smart_algorithm,
        scope=settings.fhir_smart_scope,
        token_url=settings.fhir_smart_token_url,
    )
    return SmartBackendAuth(client, settings.fhir_base)


def _token_endpoint(response: httpx.Response) -> str:
    if response.status_code != 200:
        _raise_for_token_status(response, "SMART configuration")
    try:
        endpoint = orjson.loads(response.content)["token_endpoint"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        endpoint = None
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        raise FhirUnauthorized(
            ".well-known/smart-configuration has no token_endpoint URL; set "
            "IOP_BRIDGE_FHIR_SMART_TOKEN_URL",
            status=response.status_code,
        )
    return endpoint


def _read_token_response(response: httpx.Response) -> tuple[str, float]:
    if response.status_code != 200:
        _raise_for_token_status(response, "token endpoint")
    try:
        body: dict[str, Any] = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {}
    token, lifetime = body.get("access_token"), body.get("expires_in")
    if not isinstance(token, str) or not token:
        raise FhirUnauthorized(
            "token endpoint answered 200 without an access_token", status=response.status_code
        )
    if str(body.get("token_type", "bearer")).lower() != "bearer":
        raise FhirUnauthorized(
            f"token endpoint issued a {body.get('token_type')!r} token; only bearer is supported",
            status=response.status_code,
        )
    seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else None
    return token, seconds or DEFAULT_TOKEN_LIFETIME_SECONDS


def _raise_for_token_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status == 429 or status >= 500:
        # Worth retrying: the one retry policy of the FHIR client sees a transient error.
        raise FhirServerUnavailable(f"{what} answered {status}", status=status)
    # RFC 6749 5.2: the error code (invalid_client, invalid_scope, ...) is safe to show; the
    # description could echo what was sent, so it is left out.
    try:
        code = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        code = None
    detail = f" ({code})" if isinstance(code, str) and code.isascii() and len(code) < 64 else ""
    raise FhirUnauthorized(
        f"{what} refused iop-bridge's client credentials: {status}{detail}", status=status
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port
