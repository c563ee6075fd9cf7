"""The audit trail at the API edge: the admins' query, and the hooks every request passes.

- ``GET /api/audit``: one page of the admin's organization's audit events (JSON), with filters;
  ``GET /api/audit/AuditEvent``: the same page as a FHIR searchset Bundle of AuditEvents.
- ``install_privacy_hooks(app)``: (1) every request runs as its caller
  (``integration.privacy.audit``'s actor, so the services' one-line audit calls know who
  acted); (2) every 401 and 403 answer is recorded as a denied access (the route template, never
  the concrete path or the body); (3) log records are sanitized
  (``integration.privacy.logging_setup``: ids and codes only).
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import Token
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import schema_examples as docs
from api.auth import Principal, Role, authenticate, require
from api.limits import ProblemRoute
from integration.db.store import session_scope
from integration.privacy import audit, logging_setup
from integration.tenancy.service import Tenancy
from mappers.audit_event import ACTIONS, ROUTE
from mappers.errors import InvalidInputError, IopBridgeError, Problem

log = logging.getLogger(__name__)
AUDIT_PATH = "/api/audit"
Action = Literal[
    "disclose", "accept", "decline", "schedule-intake", "record-session", "reconcile",
    "discharge", "authenticate", "access", "task-change", "record-consent",
]  # fmt: skip
assert set(Action.__args__) == set(ACTIONS)  # type: ignore[attr-defined]
Outcome = Literal["success", "denied", "failure"]


class AuditEventOut(BaseModel):
    """One audit event: ids and codes only."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 41, "recorded_at": "2026-04-03T19:02:11Z", "action": "disclose",
                    "outcome": "denied", "reason_code": "no-covering-consent",
                    "agent_subject": "cm-17", "agent_role": "case-manager",
                    "agent_organization": "IOP-DEMO-ORG", "organization": "IOP-DEMO-ORG",
                    "entity_type": "Bundle", "entity_system": "urn:ietf:rfc:3986",
                    "entity_id": "urn:uuid:6b1c0f7e-3f55-5a8e-9d7c-2b1e1c1f0a11",
                    "recipient": "Organization/harbor-street", "purpose": "TREAT",
                    "consent": None,
                }
            ]
        },
    )  # fmt: skip

    id: int
    recorded_at: datetime
    action: str
    outcome: str
    reason_code: str | None
    agent_subject: str
    agent_role: str | None
    agent_organization: str | None
    organization: str | None
    entity_type: str
    entity_system: str | None
    entity_id: str
    recipient: str | None
    purpose: str | None
    consent: str | None


class AuditPage(BaseModel):
    """One page of audit events, newest first, and how many match in all."""

    total: int
    limit: int
    offset: int
    items: list[AuditEventOut]


_BUNDLE = {
    "description": "a searchset Bundle of AuditEvents",
    "content": {
        "application/fhir+json": {
            "schema": {
                "type": "object",
                "required": ["resourceType"],
                "properties": {"resourceType": {"const": "Bundle"}},
            }
        }
    },
}


class FhirJSONResponse(JSONResponse):
    """FHIR JSON (R4 http.html#mime-type)."""

    media_type = "application/fhir+json"


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


AdminDep = Annotated[Principal, Depends(require(Role.ADMIN))]
EngineDep = Annotated[Engine, Depends(_engine)]


_SINCE = "recorded at or after (UTC when no zone is given)"
_UNTIL = "recorded before (UTC when no zone is given)"


def _filters(
    action: Action | None = None,
    outcome: Outcome | None = None,
    entity_type: Annotated[str | None, Query(max_length=64)] = None,
    entity_id: Annotated[str | None, Query(max_length=255)] = None,
    agent_subject: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[datetime | None, Query(description=_SINCE)] = None,
    until: Annotated[datetime | None, Query(description=_UNTIL)] = None,
) -> audit.AuditFilter:
    """The filters of the query string (a time without zone is UTC)."""
    return audit.AuditFilter(
        action, outcome, entity_type, entity_id, agent_subject, _aware(since, "since"),
        _aware(until, "until"),
    )  # fmt: skip


FiltersDep = Annotated[audit.AuditFilter, Depends(_filters)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


async def audit_scope(request: Request, admin: AdminDep) -> dict[str, Any]:
    """An admin sees its organization's events, under each key its records are stored with
    (``integration.tenancy.organizations``: the identifier value and the server reference); the
    operator's admins also those of nobody's (calls without credentials)."""
    state = request.app.state
    tenancy: Tenancy = state.tenancy
    organizations = await tenancy.keys(admin.organization)
    operator = admin.organization == state.settings.organization_id
    return {"organizations": organizations, "include_unscoped": operator}


ScopeDep = Annotated[dict[str, Any], Depends(audit_scope)]


def make_audit_router() -> APIRouter:
    """Admin-only routes under /api/audit."""
    router = APIRouter(prefix=AUDIT_PATH, tags=["audit"], route_class=ProblemRoute)

    @router.get(
        "",
        summary="The audit trail of the admin's organization",
        description="Disclosures, state changes and denied accesses, newest first: ids and "
        "codes only, never PHI. Admins only; each sees its own organization's events.",
        response_model=AuditPage,
        responses=docs.errors(401, 403, 422),
    )
    def list_audit_events(
        engine: EngineDep,
        scoped: ScopeDep,
        where: FiltersDep,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> AuditPage:
        """The audit events of the admin's organization, newest first."""
        with session_scope(engine) as session:
            rows, total = audit.list_events(
                session, where=where, limit=limit, offset=offset, **scoped
            )
            items = [AuditEventOut.model_validate(r) for r in rows]
        return AuditPage(total=total, limit=limit, offset=offset, items=items)

    @router.get(
        "/AuditEvent",
        summary="The same page as FHIR R4 AuditEvents",
        description="A searchset Bundle of AuditEvents (R4), for export to an audit repository.",
        response_class=FhirJSONResponse,
        responses={200: _BUNDLE, **docs.errors(401, 403, 422)},
    )
    def export_audit_events(
        engine: EngineDep,
        scoped: ScopeDep,
        where: FiltersDep,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Any:
        """The same page as a FHIR R4 searchset Bundle of AuditEvents."""
        with session_scope(engine) as session:
            rows, total = audit.list_events(
                session, where=where, limit=limit, offset=offset, **scoped
            )
            return FhirJSONResponse(audit.to_fhir_bundle(rows, total))

    return router


def _aware(moment: datetime | None, name: str) -> datetime | None:
    """The moment in UTC (a time without zone is UTC); 422 when UTC cannot hold it."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 lies before year 1 in UTC
        problem = Problem(name, "is out of range in UTC")
        raise InvalidInputError.from_problems("the query", [problem]) from None


# --- hooks every request passes --------------------------------------------------------------


class AccessAudit:
    """ASGI middleware: run the request as its caller; record every 401 and 403 answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        caller = _caller(request)
        token: Token[audit.Actor] | None = None
        if caller is not None:
            token = audit.set_actor(_actor(caller))
        answered: dict[str, int] = {}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if token is not None:
                audit.reset_actor(token)
        if answered.get("status") in (401, 403):
            await asyncio.to_thread(_record_denied, request, caller, answered["status"])


def _caller(request: Request) -> Principal | None:
    """The request's Principal when its credentials check out, else None."""
    try:
        return authenticate(request)
    except (IopBridgeError, AttributeError):  # no or bad credentials; app not started
        return None


def _actor(caller: Principal) -> audit.Actor:
    return audit.Actor(caller.subject, caller.role.value, caller.organization)


def _record_denied(request: Request, caller: Principal | None, status: int) -> None:
    """One audit event for a refused call: the route template, who (if known), why."""
    route = request.scope.get("route")
    template = getattr(route, "path", None) or "/unmatched"
    entity = audit.Entity(ROUTE, f"{request.method} {template}")
    action, reason = (
        (audit.AUTHENTICATE, "unauthenticated") if status == 401 else (audit.ACCESS, "forbidden")
    )
    actor = audit.SYSTEM if caller is None else _actor(caller)
    engine: Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        return
    try:
        with audit.acting_as(actor), session_scope(engine) as session:
            audit.record(
                session,
                audit.event(action, entity, outcome=audit.DENIED, reason=reason,
                            organization=caller.organization if caller else None),
            )  # fmt: skip
    except (SQLAlchemyError, IopBridgeError) as exc:
        log.error("denied access to %s not audited (%s)", template, type(exc).__name__)


def install_privacy_hooks(app: FastAPI) -> None:
    """Audit denied accesses, attribute audit events to the caller, keep PHI out of logs."""
    logging_setup.install()
    app.add_middleware(AccessAudit)
