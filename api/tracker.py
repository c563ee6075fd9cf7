"""The case managers' handoff tracker: server-rendered pages (Jinja2, inline SVG, no JavaScript).

- ``GET /tracker``: the organization's handoffs with status, age and the FUI 7/30-day flags,
  their counts, a status filter and paging;
- ``GET /tracker/referrals/{id}``: one handoff's timeline, medication reconciliation, PHQ-9 and
  GAD-7 trends and planned weekly hours against the 9-19 band.

How a browser signs in: ``api.tracker_login`` (a server-side session; the cookie holds only its
random token). API clients may send their Authorization or X-API-Key header instead. The
referral page's actions are small forms (``api.tracker_actions``), each POST checked for its
Origin and the session's CSRF token. The pages stay out of the OpenAPI schema: they are for
people.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from api.tracker_actions import ReferralKey, add_action_routes, referral_page
from api.tracker_login import COOKIE, Viewer, add_login_routes, tracker_viewer
from api.tracker_render import error_page, render
from integration.db.store import session_scope
from integration.settings import Settings
from integration.tenancy.scope import Scope
from integration.tenancy.service import Tenancy
from integration.tracker.views import STATUS_FILTERS, handoff_page
from mappers.errors import IopBridgeError

__all__ = ["COOKIE", "make_tracker_router", "render"]


SignedIn = Annotated[Viewer | None, Depends(tracker_viewer)]


def make_tracker_router(settings: Settings) -> APIRouter:
    """The tracker's pages, login and logout."""
    router = APIRouter(include_in_schema=False)

    @router.get("/tracker", response_class=HTMLResponse)
    async def handoff_list(
        request: Request, viewer: SignedIn, status: str = "active", flag: str = "", page: int = 1
    ) -> Response:
        if viewer is None:
            return _to_login()
        scope = await _tenancy(request).iop_scope(viewer.organization)
        return await run_in_threadpool(
            _list_page, _engine(request), viewer, scope, status, flag, page
        )

    @router.get("/tracker/referrals/{referral_key}", response_class=HTMLResponse)
    async def handoff(request: Request, viewer: SignedIn, referral_key: ReferralKey) -> Response:
        if viewer is None:
            return _to_login()
        scope = await _tenancy(request).iop_scope(viewer.organization)
        return await run_in_threadpool(
            referral_page, _engine(request), viewer, scope, referral_key,
            done=request.query_params.get("done"), zone=settings.program_zone(),
        )  # fmt: skip

    add_login_routes(router, settings)
    add_action_routes(router, settings)
    return router


def _list_page(
    engine: Engine,
    viewer: Viewer,
    scope: Scope,
    status: str,
    flag: str,
    page: int,
) -> Response:
    try:
        with session_scope(engine) as session:
            result = handoff_page(
                session,
                scope=scope,
                today=_today(),
                status=status,
                flag=flag or None,
                page=page,
            )
    except IopBridgeError as error:
        return error_page(error, viewer)
    return render(
        "tracker_list.html",
        viewer=viewer,
        result=result,
        link=_link(result.status),
        status_filters=STATUS_FILTERS,
        status_label=_status_label(result.status),
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


def _to_login() -> Response:
    return RedirectResponse("/tracker/login", status_code=303)


def _tenancy(request: Request) -> Tenancy:
    tenancy: Tenancy = request.app.state.tenancy
    return tenancy


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _today() -> date:
    return datetime.now(UTC).date()
