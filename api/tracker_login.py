"""Signing in to the tracker: the login form, server-side sessions, logout, and the checks every
form POST passes (same Origin, the session's CSRF token).

``/tracker/login`` takes the credential an API caller would send (a bearer JWT or an API key),
checks it exactly as ``api.auth`` does, and opens a server-side session
(``integration.tracker.sessions``): the HttpOnly, SameSite=Strict cookie scoped to ``/tracker``
carries only the random session token. Logout revokes the session, so a copied cookie is dead
too. A session ends with the token's own expiry or after a working day, whichever is first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

import jwt
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from api.auth import (
    Forbidden,
    Principal,
    Role,
    Unauthenticated,
    authenticate,
    principal_from_api_key,
    principal_from_jwt,
)
from api.limits import PayloadTooLarge
from api.tracker_render import render
from integration.db.store import session_scope
from integration.settings import Settings
from integration.tracker import sessions as tracker_sessions
from mappers.errors import Problem

COOKIE = "iop_tracker"
TRACKER_ROLES = (Role.CASE_MANAGER, Role.ADMIN)
SESSION_SECONDS = 8 * 3600  # a working day; a token's own expiry ends it sooner
MAX_FORM_BYTES = 64 * 1024  # a login or action form is a few hundred bytes
MAX_FORM_FIELDS = 200  # the reconciliation form has a few fields per medication line


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking: the Principal, and the CSRF token of a browser session (None when the
    caller sent an Authorization or X-API-Key header: no cookie, nothing to forge)."""

    principal: Principal
    csrf_token: str | None
    session_token: str | None = None

    @property
    def subject(self) -> str:
        return self.principal.subject

    @property
    def role(self) -> Role:
        return self.principal.role

    @property
    def organization(self) -> str:
        return self.principal.organization


def tracker_viewer(request: Request) -> Viewer | None:
    """The signed-in case manager or admin; None when the browser has no live session."""
    if "authorization" in request.headers or "x-api-key" in request.headers:
        viewer: Viewer | None = Viewer(authenticate(request), None)  # 401 on a bad header
    else:
        viewer = _from_cookie(request)
    if viewer is not None and viewer.role not in TRACKER_ROLES:
        raise Forbidden(f"role {viewer.role.value!r} may not use the handoff tracker")
    return viewer


def _from_cookie(request: Request) -> Viewer | None:
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    settings: Settings = request.app.state.settings
    with session_scope(_engine(request)) as session:
        found = tracker_sessions.find_session(session, token, settings, datetime.now(UTC))
    if found is None:
        return None
    try:
        principal = Principal(found.subject, Role(found.role), found.organization)
    except ValueError:
        return None
    return Viewer(principal, found.csrf_token, token)


async def read_form(request: Request) -> dict[str, list[str]]:
    """A urlencoded form body, bounded in bytes and fields (PayloadTooLarge past them)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise _form_too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise _form_too_large()
        chunks.append(chunk)
    body = b"".join(chunks).decode("utf-8", "replace")
    try:
        return parse_qs(body, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        raise _form_too_large() from None


def first(form: dict[str, list[str]], name: str) -> str | None:
    """The form's first value of ``name``."""
    values = form.get(name)
    return values[0] if values else None


def same_origin(request: Request) -> bool:
    """No Origin header, or this server's own (a form POST from another site is refused)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def forged(request: Request, viewer: Viewer, form: dict[str, list[str]]) -> bool:
    """True when a cookie session's POST lacks its CSRF token or comes from another origin."""
    if not same_origin(request):
        return True
    if viewer.csrf_token is None:
        return False  # authenticated by header, not by a cookie a browser sends by itself
    return not tracker_sessions.csrf_matches(viewer.csrf_token, first(form, "csrf"))


def add_login_routes(router: APIRouter, settings: Settings) -> None:
    """GET/POST /tracker/login and POST /tracker/logout."""

    @router.get("/tracker/login", response_class=HTMLResponse)
    def login_form() -> Response:
        return render("login.html", viewer=None, error=None)

    @router.post("/tracker/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        if not same_origin(request):
            return render("login.html", 403, viewer=None, error="sign-in from another site")
        form = await read_form(request)
        kind, credential = first(form, "kind") or "token", (first(form, "credential") or "").strip()
        try:
            principal, seconds = _checked(kind, credential, settings)
        except (Unauthenticated, Forbidden) as error:
            return render("login.html", error.http_status, viewer=None, error=error.message)
        api_key = credential if kind == "api-key" else None
        new = await run_in_threadpool(_open, _engine(request), principal, api_key, seconds)
        response = RedirectResponse("/tracker", status_code=303)
        response.set_cookie(
            COOKIE, new.token, max_age=seconds, path="/tracker", httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    @router.post("/tracker/logout")
    async def logout(request: Request) -> Response:
        viewer = await run_in_threadpool(_from_cookie, request)
        response = RedirectResponse("/tracker/login", status_code=303)
        if viewer is None or viewer.session_token is None:
            return response
        form = await read_form(request)
        if forged(request, viewer, form):
            return response  # a forged logout changes nothing
        await run_in_threadpool(_revoke, _engine(request), viewer.session_token)
        response.delete_cookie(COOKIE, path="/tracker", httponly=True, samesite="strict")
        return response


def _checked(kind: str, credential: str, settings: Settings) -> tuple[Principal, int]:
    """The credential's Principal and how long its session may last; refuses a credential that
    is invalid or not a case manager's or admin's."""
    if not credential or kind not in ("token", "api-key"):
        raise Unauthenticated("paste a bearer token or an API key")
    if kind == "api-key":
        principal, seconds = principal_from_api_key(credential, settings), SESSION_SECONDS
    else:
        principal = principal_from_jwt(credential, settings)
        # verified just above: only its expiry is read here, to end the session with the token
        expiry = jwt.decode(credential, options={"verify_signature": False})["exp"]
        seconds = min(SESSION_SECONDS, int(float(expiry) - datetime.now(UTC).timestamp()))
    if principal.role not in TRACKER_ROLES:
        raise Forbidden(f"role {principal.role.value!r} may not use the handoff tracker")
    if seconds <= 0:
        raise Unauthenticated("the token has expired")
    return principal, seconds


def _open(
    engine: Engine, principal: Principal, api_key: str | None, seconds: int
) -> tracker_sessions.NewSession:
    who = (principal.subject, principal.role.value, principal.organization)
    with session_scope(engine) as session:
        return tracker_sessions.open_session(
            session, who, api_key=api_key, now=datetime.now(UTC), seconds=seconds
        )


def _revoke(engine: Engine, token: str) -> None:
    with session_scope(engine) as session:
        tracker_sessions.revoke(session, token, datetime.now(UTC))


def _form_too_large() -> PayloadTooLarge:
    problem = Problem(
        "body", f"a form is at most {MAX_FORM_BYTES} bytes and {MAX_FORM_FIELDS} fields"
    )
    return PayloadTooLarge("the form is too large", problems=[problem])


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine
