"""FastAPI application factory: thin routes over integration services, no business rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine

from api import schema_examples as docs
from api.audit import install_privacy_hooks, make_audit_router
from api.auth import Principal, Role, require
from api.docs import install_docs
from api.edge import NoStore, Throttle, ThrottlePolicy
from api.errors import install_error_handler
from api.hooks import make_hooks_router
from api.referrals import make_referrals_router
from api.tracker import make_tracker_router
from integration.db.store import create_db_engine, list_sync_records, session_scope
from integration.fhir.client import FhirClient
from integration.fhir.health import check_health
from integration.runtime import run_background
from integration.settings import Settings
from integration.tenancy.service import Tenancy


class HealthOut(BaseModel):
    """Health of iop-bridge and what it depends on."""

    status: str
    fhir_base_url: str
    fhir_reachable: bool
    fhir_software: str | None
    fhir_version: str | None
    database_ok: bool
    # active | requested | error | off | missing | not-used | no-organization | null (no answer)
    subscription_status: str | None = None
    # why it is not active, in the server's words where it gives any (Subscription.error)
    subscription_reason: str | None = None
    # the same for the second Subscription: Tasks owned by a PractitionerRole of the IOP's
    # Organization (criteria Task?owner:PractitionerRole.organization=Organization/<id>)
    role_subscription_status: str | None = None
    role_subscription_reason: str | None = None


class SyncRecordOut(BaseModel):
    """Where one business identifier lives on the FHIR server."""

    resource_type: str
    identifier_system: str
    identifier_value: str
    server_id: str | None
    version_id: str | None
    last_outcome: str
    attempts: int
    updated_at: datetime


def create_app(settings: Settings, throttle: ThrottlePolicy | None = None) -> FastAPI:
    """Build the app; the FHIR client and database engine live for the app's lifetime.
    ``throttle``: how many refused calls a client or credential may make (api.edge)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = create_db_engine(settings.database_url)
        app.state.fhir = FhirClient.from_settings(settings)
        # The one tenancy service: organization lookups, the IOP's own, callers' scopes.
        app.state.tenancy = Tenancy(app.state.fhir, app.state.engine, settings)
        stop = asyncio.Event()
        background = None
        if settings.embedded_worker:
            background = asyncio.create_task(
                run_background(app.state.engine, app.state.fhir, settings,
                               worker_id="embedded", stop_event=stop)
            )  # fmt: skip
        try:
            yield
        finally:
            stop.set()
            if background is not None:
                await background
            await app.state.fhir.aclose()
            app.state.engine.dispose()

    app = FastAPI(title="iop-bridge", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # served without a CDN by api.docs  # fmt: skip
    install_docs(app)
    install_error_handler(app)
    install_privacy_hooks(app)
    # Outermost (added last): a throttled request never reaches the audit middleware or a route.
    app.add_middleware(NoStore)
    app.add_middleware(Throttle, policy=throttle)
    _add_routes(app)
    app.include_router(make_hooks_router(token=settings.hook_secret))
    app.include_router(make_referrals_router())
    app.include_router(make_audit_router())
    app.include_router(make_tracker_router(settings))
    _document_throttling(app)
    return app


def _document_throttling(app: FastAPI) -> None:
    """Every operation may answer 429 (api.edge throttles before any route): say so once."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.setdefault("responses", {}).setdefault("429", docs.throttled())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _fhir(request: Request) -> FhirClient:
    client: FhirClient = request.app.state.fhir
    return client


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


FhirDep = Annotated[FhirClient, Depends(_fhir)]
EngineDep = Annotated[Engine, Depends(_engine)]


def _add_routes(app: FastAPI) -> None:
    # /health is the one open route: a liveness probe that reveals no client data.
    @app.get("/health", response_model=HealthOut)
    async def health(request: Request, fhir: FhirDep, engine: EngineDep) -> Any:
        settings = request.app.state.settings
        report = await check_health(fhir, engine, settings)
        subscription, role = report.subscription, report.role_subscription
        body = HealthOut(
            # "degraded" with 200 while only a Subscription is not active: iop-bridge still
            # works, hearing of Tasks by its (shorter) poll; 503 when a dependency is down.
            status="ok" if report.ok and not report.degraded else "degraded",
            fhir_base_url=settings.fhir_base,
            fhir_reachable=report.fhir_reachable,
            fhir_software=report.fhir_software,
            fhir_version=report.fhir_version,
            database_ok=report.database_ok,
            subscription_status=subscription.status if subscription else None,
            subscription_reason=subscription.explanation if subscription else None,
            role_subscription_status=role.status if role else None,
            role_subscription_reason=role.explanation if role else None,
        )
        return JSONResponse(body.model_dump(), status_code=200 if report.ok else 503)

    @app.get("/sync-records", response_model=list[SyncRecordOut])
    def sync_records(
        request: Request,
        engine: EngineDep,
        admin: Annotated[Principal, Depends(require(Role.ADMIN))],
        limit: int = 100,
    ) -> list[SyncRecordOut]:
        # Sync records are this deployment's own IOP's: other organizations' admins see none.
        if admin.organization != request.app.state.settings.organization_id:
            return []
        with session_scope(engine) as session:
            rows = list_sync_records(session, limit=min(max(limit, 1), 1000))
            return [SyncRecordOut.model_validate(r, from_attributes=True) for r in rows]
