"""Who is calling: OAuth2 bearer JWTs or API keys, roles, and the caller's organization.

Every route depends on ``require(...)``: no route is reachable without a Principal. JWTs are
checked against configured keys (HS256 with a shared secret for development and tests; RS256 or
ES256 public keys in PEM for identity providers), with ``exp`` required and the audience checked.
System clients may use an API key instead (header ``X-API-Key``); only the SHA-256 of each key
is configured, so the settings never hold a usable secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request

from integration.settings import Settings
from mappers.errors import IopBridgeError
from mappers.fhir_write import READABLE_ID


class Role(StrEnum):
    """What a caller may do (issue 5): EHR systems exchange referrals, case managers work them,
    admins also read the audit trail."""

    EHR_SYSTEM = "ehr-system"
    CASE_MANAGER = "case-manager"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who, in which role, for which organization."""

    subject: str
    role: Role
    organization: str  # the caller's organization identifier value (tenant key)


class Unauthenticated(IopBridgeError):
    """No credentials, or credentials that do not check out."""

    http_status = 401
    issue_code = "login"


class Forbidden(IopBridgeError):
    """Authenticated, but this role may not do this."""

    http_status = 403
    issue_code = "forbidden"


_ORGANIZATION_KEY = re.compile(READABLE_ID)
_ALGORITHMS_BY_KEY = {"hmac": ["HS256"], "public": ["RS256", "ES256"]}


def authenticate(request: Request) -> Principal:
    """The Principal of this request, from a bearer JWT or an API key; 401 otherwise."""
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return principal_from_jwt(header[7:].strip(), settings)
    api_key = request.headers.get("x-api-key")
    if api_key:
        return principal_from_api_key(api_key, settings)
    raise Unauthenticated("authentication required: a bearer token or an X-API-Key header")


def principal_from_jwt(token: str, settings: Settings) -> Principal:
    """Verify signature, expiry, audience (and issuer when configured); read role and org."""
    claims = _verified_claims(token, settings)
    return _principal(
        str(claims.get("sub", "")), claims.get("role"), claims.get("org"), source="token"
    )


def principal_from_api_key(api_key: str, settings: Settings) -> Principal:
    """Look the key's SHA-256 up among the configured grants (constant-time comparison)."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    for known, grant in settings.auth_api_keys.items():
        if hmac.compare_digest(known.lower(), digest):
            return _principal(grant.name, grant.role, grant.organization, source="API key")
    raise Unauthenticated("unknown API key")


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency admitting only callers in one of ``roles``."""

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise Forbidden(f"role {principal.role.value!r} may not do this (allowed: {allowed})")
        return principal

    return dependency


def _verified_claims(token: str, settings: Settings) -> dict[str, Any]:
    keys: list[tuple[Any, list[str]]] = []
    if settings.auth_jwt_secret is not None:
        keys.append((settings.auth_jwt_secret.get_secret_value(), _ALGORITHMS_BY_KEY["hmac"]))
    keys += [(pem, _ALGORITHMS_BY_KEY["public"]) for pem in settings.auth_jwt_public_keys]
    if not keys:
        raise Unauthenticated("bearer tokens are not accepted: no signing keys are configured")
    last: Exception | None = None
    for key, algorithms in keys:
        try:
            claims = dict(
                jwt.decode(
                    token, key, algorithms=algorithms, audience=settings.auth_jwt_audience,
                    issuer=settings.auth_jwt_issuer, options={"require": ["exp", "sub"]},
                )
            )  # fmt: skip
        except jwt.PyJWTError as error:
            last = error
            continue
        return _numeric_dates(claims)
    raise Unauthenticated(f"invalid bearer token: {type(last).__name__}")


def _numeric_dates(claims: dict[str, Any]) -> dict[str, Any]:
    """RFC 7519 4.1.4-4.1.6: exp, nbf and iat are JSON numbers. PyJWT also takes a numeric
    string such as "1999999999", which then breaks arithmetic on the claim: refused here."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise Unauthenticated(f"invalid bearer token: {name} is not a NumericDate")
    return claims


def _principal(subject: str, role: Any, organization: Any, *, source: str) -> Principal:
    if not subject:
        raise Unauthenticated(f"{source} names no subject")
    try:
        parsed = Role(str(role))
    except ValueError:
        raise Unauthenticated(f"{source} carries an unknown role {role!r}") from None
    if not isinstance(organization, str) or not organization:
        raise Unauthenticated(f"{source} names no organization")
    if not _ORGANIZATION_KEY.fullmatch(organization):
        # The claim is an identifier value in settings.organization_id_system. The store also
        # spells organizations as server references (Organization/123), so a claim in that
        # form would select whichever organization has that server id (issue 15, finding 7).
        raise Unauthenticated(f"{source}: org is not an organization identifier value")
    return Principal(subject, parsed, organization)
