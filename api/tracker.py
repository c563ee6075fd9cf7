"""The case managers' handoff tracker: server-rendered pages (Jinja2, inline SVG, no JavaScript).

- ``GET /tracker``: the organization's handoffs with status, age and the FUI 7/30-day flags,
  their counts, a status filter and paging;
- ``GET /tracker/referrals/{id}``: one handoff's timeline, medication reconciliation, PHQ-9 and
  GAD-7 trends and planned weekly hours against the 9-19 band.

How a browser signs in: ``/tracker/login`` takes the same credential an API caller sends (a
bearer JWT or an API key) in a form POST, checks it exactly as ``api.auth`` does, and keeps it in
an HttpOnly, SameSite=Strict cookie scoped to ``/tracker``. Every page checks the credential in
the cookie again (signature, expiry, role, organization), so the cookie needs no signature of its
own and a revoked key or an expired token ends the session. API clients may send their
Authorization or X-API-Key header instead. Pages are read-only GETs; the two POSTs (login,
logout) refuse a foreign Origin. The pages stay out of the OpenAPI schema: they are for people.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import jwt
from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
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
from integration.db.store import session_scope
from integration.settings import Settings
from integration.tracker.detail import handoff_detail
from integration.tracker.views import STATUS_FILTERS, OrganizationKeys, handoff_page
from mappers.errors import IopBridgeError

HERE = Path(__file__).resolve().parent
COOKIE = "iop_tracker"
TRACKER_ROLES = (Role.CASE_MANAGER, Role.ADMIN)
MAX_ID = 2**31 - 1  # referral.id is a 32-bit INTEGER on PostgreSQL
SESSION_SECONDS = 8 * 3600  # a working day; a token's own expiry ends it sooner
_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    auto_reload=False,  # templates ship with the code: no stat() per page
)
_CSS = Markup((HERE / "static" / "tracker.css").read_text(encoding="utf-8"))  # ours, as is
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
# PHI pages: never cached, never framed, no scripts at all; the one inline stylesheet by hash.
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on the
    # login form's POST, and the POSTs' Origin check needs the real one
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def tracker_viewer(request: Request) -> Principal | None:
    """The signed-in case manager or admin; None when the browser has no valid session."""
    if "authorization" in request.headers or "x-api-key" in request.headers:
        principal: Principal | None = authenticate(request)  # 401 on a bad header, as anywhere
    else:
        principal = _from_cookie(request)
    if principal is not None and principal.role not in TRACKER_ROLES:
        raise Forbidden(f"role {principal.role.value!r} may not use the handoff tracker")
    return principal


Viewer = Annotated[Principal | None, Depends(tracker_viewer)]
ReferralId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]


def make_tracker_router(settings: Settings) -> APIRouter:
    """The tracker's pages, login and logout."""
    router = APIRouter(include_in_schema=False)
    keys = OrganizationKeys(settings)

    @router.get("/tracker", response_class=HTMLResponse)
    async def handoff_list(
        request: Request, viewer: Viewer, status: str = "active", flag: str = "", page: int = 1
    ) -> Response:
        if viewer is None:
            return _to_login()
        organizations = await keys.of(request.app.state.fhir, viewer.organization)
        return await run_in_threadpool(
            _list_page, _engine(request), viewer, organizations, status, flag, page
        )

    @router.get("/tracker/referrals/{referral_id}", response_class=HTMLResponse)
    async def handoff(request: Request, viewer: Viewer, referral_id: ReferralId) -> Response:
        if viewer is None:
            return _to_login()
        organizations = await keys.of(request.app.state.fhir, viewer.organization)
        return await run_in_threadpool(
            _referral_page, _engine(request), viewer, organizations, referral_id
        )

    _add_login(router, settings)
    return router


def _list_page(
    engine: Engine,
    viewer: Principal,
    organizations: tuple[str, ...],
    status: str,
    flag: str,
    page: int,
) -> Response:
    try:
        with session_scope(engine) as session:
            result = handoff_page(
                session,
                organizations=organizations,
                today=_today(),
                status=status,
                flag=flag or None,
                page=page,
            )
    except IopBridgeError as error:
        return _error_page(error, viewer)
    return render(
        "tracker_list.html",
        viewer=viewer,
        result=result,
        link=_link(result.status),
        status_filters=STATUS_FILTERS,
        status_label=_status_label(result.status),
    )


def _referral_page(
    engine: Engine, viewer: Principal, organizations: tuple[str, ...], referral_id: int
) -> Response:
    try:
        with session_scope(engine) as session:
            detail = handoff_detail(
                session, referral_id, organizations=organizations, today=_today()
            )
    except IopBridgeError as error:
        return _error_page(error, viewer)
    return render("tracker_referral.html", viewer=viewer, detail=detail)


def _add_login(router: APIRouter, settings: Settings) -> None:
    @router.get("/tracker/login", response_class=HTMLResponse)
    def login_form() -> Response:
        return render("login.html", viewer=None, error=None)

    @router.post("/tracker/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return render("login.html", 403, viewer=None, error="sign-in from another site")
        form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        kind = (form.get("kind") or ["token"])[0]
        credential = (form.get("credential") or [""])[0].strip()
        try:
            seconds = _session_seconds(kind, credential, settings)
        except (Unauthenticated, Forbidden) as error:
            return render("login.html", error.http_status, viewer=None, error=error.message)
        response = RedirectResponse("/tracker", status_code=303)
        response.set_cookie(
            COOKIE,
            f"{kind}:{credential}",
            max_age=seconds,
            path="/tracker",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/tracker/logout")
    def logout(request: Request) -> Response:
        response = _to_login()
        if _same_origin(request):
            response.delete_cookie(COOKIE, path="/tracker", httponly=True, samesite="strict")
        return response


def _session_seconds(kind: str, credential: str, settings: Settings) -> int:
    """How long a browser session on this credential may last; refuses a credential that is
    invalid or not a case manager's or admin's."""
    if not credential or kind not in ("token", "api-key"):
        raise Unauthenticated("paste a bearer token or an API key")
    if kind == "api-key":
        principal, seconds = principal_from_api_key(credential, settings), SESSION_SECONDS
    else:
        principal = principal_from_jwt(credential, settings)
        # verified just above: only its expiry is read here, to end the cookie with the token
        expiry = jwt.decode(credential, options={"verify_signature": False})["exp"]
        seconds = min(SESSION_SECONDS, int(expiry - datetime.now(UTC).timestamp()))
    if principal.role not in TRACKER_ROLES:
        raise Forbidden(f"role {principal.role.value!r} may not use the handoff tracker")
    return seconds


def _from_cookie(request: Request) -> Principal | None:
    kind, _, credential = request.cookies.get(COOKIE, "").partition(":")
    settings: Settings = request.app.state.settings
    try:
        if kind == "token" and credential:
            return principal_from_jwt(credential, settings)
        if kind == "api-key" and credential:
            return principal_from_api_key(credential, settings)
    except Unauthenticated:
        return None  # expired or revoked: sign in again
    return None


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from its template, with the stylesheet inline and the PHI-page headers."""
    html = _ENV.get_template(name).render(css=_CSS, **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def _error_page(error: IopBridgeError, viewer: Principal) -> HTMLResponse:
    """A service's deliberate refusal (not found, bad filter) as a page with its status."""
    return render(
        "error.html",
        error.http_status,
        viewer=viewer,
        status=error.http_status,
        title=error.message,
        problems=error.problems,
    )


def _link(status: str) -> Callable[..., str]:
    """Builds the list's own links: same status unless told, page 1 and no flag left out."""

    def link(**params: Any) -> str:
        query = {"status": status, **params}
        return "/tracker?" + urlencode({k: v for k, v in query.items() if v not in (None, 1)})

    return link


def _status_label(status: str) -> str:
    return {"active": "active (not declined or cancelled)", "all": "all statuses"}.get(
        status, f"status {status}"
    )


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _to_login() -> Response:
    return RedirectResponse("/tracker/login", status_code=303)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _today() -> date:
    return datetime.now(UTC).date()
