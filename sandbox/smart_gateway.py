"""A SMART Backend Services gateway in front of the HAPI sandbox, for testing outbound auth live.

The HAPI sandbox is open; real FHIR servers are not. This gateway plays the protected server's
side: an authorization server (``.well-known/smart-configuration`` and a token endpoint that
checks the client's signed JWT assertion against the public key registered for it) and a
resource server that forwards ``/fhir/...`` to HAPI only with an unexpired bearer token it
issued, rewriting HAPI's own base URL in answers (next links, Locations) to its own.

It is a test party, like ``residential_ehr.py``: synthetic clients, in-memory tokens, one process.

    .venv/bin/python sandbox/smart_gateway.py --upstream http://127.0.0.1:8090/fhir \
        --port 8095 --client iop-bridge=path/to/public.pem
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ["RS384", "ES384"]  # backend-services.html: servers SHALL support both
MAX_ASSERTION_SECONDS = 300
# Hop-by-hop and length headers are the proxy's own business, never copied across.
_NOT_FORWARDED = {"host", "authorization", "content-length", "connection", "transfer-encoding"}


@dataclass
class GatewayState:
    """Registered clients, issued tokens and what was refused: the tests read these."""

    public_url: str  # the gateway's own origin, e.g. http://127.0.0.1:8095
    upstream: str  # HAPI's FHIR base, e.g. http://127.0.0.1:8090/fhir
    clients: dict[str, str]  # client_id -> public key PEM
    token_seconds: int = 300
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch seconds)
    used_jtis: set[str] = field(default_factory=set)
    issued: int = 0
    refused_tokens: int = 0  # FHIR requests without a valid token
    refused_assertions: list[str] = field(default_factory=list)  # OAuth error codes

    @property
    def token_url(self) -> str:
        return f"{self.public_url}/auth/token"

    def revoke_all(self) -> None:
        """What a server does when it rotates keys or an admin revokes access."""
        self.tokens.clear()


def create_gateway(state: GatewayState) -> FastAPI:
    """The gateway app: SMART discovery, the token endpoint, the guarded FHIR proxy."""
    upstream = httpx.AsyncClient(timeout=60)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await upstream.aclose()

    app = FastAPI(title="SMART gateway (sandbox)", openapi_url=None, lifespan=lifespan)

    @app.get("/fhir/.well-known/smart-configuration")
    async def smart_configuration() -> dict[str, Any]:
        return {
            "token_endpoint": state.token_url,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
            "scopes_supported": ["system/*.cruds"],
            "capabilities": ["client-confidential-asymmetric"],
        }

    @app.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        # Parsed by hand: Starlette's form parser needs python-multipart, not worth a dependency.
        form = dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace")))
        error = _check_assertion(state, form)
        if error is not None:
            state.refused_assertions.append(error)
            status = 401 if error == "invalid_client" else 400
            return JSONResponse({"error": error}, status_code=status)
        value = secrets.token_urlsafe(24)
        state.tokens[value] = time.time() + state.token_seconds
        state.issued += 1
        return JSONResponse(
            {
                "access_token": value,
                "token_type": "bearer",
                "expires_in": state.token_seconds,
                "scope": str(form.get("scope", "")),
            }
        )

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]

    @app.api_route("/fhir", methods=methods)  # transactions and _getpages links hit the base
    @app.api_route("/fhir/{path:path}", methods=methods)
    async def fhir(request: Request, path: str = "") -> Response:
        if not _valid_bearer(state, request.headers.get("authorization", "")):
            state.refused_tokens += 1
            return JSONResponse(
                _outcome("login", "a valid bearer token is required"),
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        answer = await upstream.request(
            request.method,
            f"{state.upstream}/{path}" if path else state.upstream,
            params=request.query_params.multi_items(),
            content=await request.body(),
            headers=_forwarded(request.headers),
        )
        own_base = f"{state.public_url}/fhir"
        body = answer.content.replace(state.upstream.encode(), own_base.encode())
        headers = {
            name: value.replace(state.upstream, own_base)
            for name, value in answer.headers.items()
            if name.lower() not in _NOT_FORWARDED | {"content-encoding"}
        }
        return Response(body, status_code=answer.status_code, headers=headers)

    return app


def _check_assertion(state: GatewayState, form: Mapping[str, str]) -> str | None:
    """The RFC 6749 error code for a bad token request, or None when it is acceptable."""
    if form.get("grant_type") != "client_credentials":
        return "unsupported_grant_type"
    if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
        return "invalid_request"
    assertion = form["client_assertion"]
    try:
        client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        return "invalid_request"
    key = state.clients.get(str(client_id))
    if key is None:
        return "invalid_client"
    try:
        claims = jwt.decode(
            assertion,
            key,
            algorithms=ALGORITHMS,
            audience=state.token_url,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.InvalidTokenError:
        return "invalid_client"
    if claims["sub"] != client_id or claims["exp"] > time.time() + MAX_ASSERTION_SECONDS + 5:
        return "invalid_client"
    if claims["jti"] in state.used_jtis:
        return "invalid_client"  # a replayed assertion
    state.used_jtis.add(claims["jti"])
    if not str(form.get("scope", "")).startswith("system/"):
        return "invalid_scope"
    return None


def _valid_bearer(state: GatewayState, header: str) -> bool:
    scheme, _, value = header.partition(" ")
    expiry = state.tokens.get(value) if scheme.lower() == "bearer" else None
    return expiry is not None and expiry > time.time()


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}


def _outcome(code: str, text: str) -> dict[str, Any]:
    issue = {"severity": "error", "code": code, "diagnostics": text}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def main() -> None:
    """Run the gateway by hand in front of a HAPI sandbox."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="http://127.0.0.1:8090/fhir")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--client", action="append", default=[], help="CLIENT_ID=public.pem")
    parser.add_argument("--token-seconds", type=int, default=300)
    args = parser.parse_args()
    clients = {}
    for item in args.client:
        client_id, _, pem_path = item.partition("=")
        clients[client_id] = Path(pem_path).read_text()
    state = GatewayState(
        public_url=f"http://127.0.0.1:{args.port}",
        upstream=args.upstream.rstrip("/"),
        clients=clients,
        token_seconds=args.token_seconds,
    )
    uvicorn.run(create_gateway(state), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
