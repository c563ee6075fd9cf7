"""The EHR-facing referral routes: submit a step-down referral, read its status and the IOP's
response, list and search; the discharge handoff routes come with them (``api.discharges``).

Routes are thin: parse, call an integration service, render an explicit response model.

| method | path | roles | what |
|---|---|---|---|
| POST | /api/referrals | ehr-system | submit a package (FHIR Bundle or domain JSON) |
| GET | /api/referrals | all | the caller's referrals, paged and filtered |
| GET | /api/referrals/{id} | all | one referral: status, decision, intake, first session |
| POST | /api/referrals/{id}/accept, decline, intake, sessions | case-manager, ehr-system | act |
| POST | /api/referrals/{id}/discharge | case-manager | discharge + aftercare handoff |
| GET | /api/discharges, /api/discharges/{id} | all | the aftercare loop |
| GET | /api/discharges/{id}/document | ehr-system | the summary, for the next provider |
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from api import schema_examples as docs
from api.auth import Principal, Role, require
from api.discharges import add_discharge_routes
from api.disclosure_consents import add_consent_routes
from api.limits import FHIR_JSON, JSON, ProblemRoute, limited_body, media_type, parse_json
from api.referral_actions import add_action_routes
from api.schemas import (
    LAST_SEARCH_DAY,
    BusinessStatusOut,
    ReferralId,
    ReferralOut,
    ReferralPageOut,
    Referrer,
    page_links,
    parse_submission,
)
from integration.db.base import utcnow
from integration.db.models import TASK_STATUSES
from integration.db.referral_lookup import ReferralName
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.referrals.intake import submit_referral
from integration.referrals.views import (
    MAX_PAGE_SIZE,
    ReferralFilters,
    ReferralView,
    get_referral,
    list_referrals,
)
from integration.settings import Settings
from integration.tenancy.scope import Scope, Side
from integration.tenancy.service import Tenancy
from integration.workflow_errors import ReferralNotFound
from mappers.errors import InvalidInputError, Problem

Page = Annotated[int, Query(ge=1, le=100_000, description="1-based page number")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")]
Status = Annotated[str | None, Query(json_schema_extra={"enum": list(TASK_STATUSES)})]
Organization = Annotated[str | None, Query(max_length=255, description="Organization/<id>")]
AnyRole = Annotated[Principal, Depends(require(*Role))]
EhrSystem = Annotated[Principal, Depends(require(Role.EHR_SYSTEM))]


def make_referrals_router() -> APIRouter:
    """Routes under /api: referrals and discharge handoffs."""
    router = APIRouter(prefix="/api", route_class=ProblemRoute, tags=["referrals"])
    _add_submit_route(router)
    _add_read_routes(router)
    add_action_routes(router, _read_owned)
    add_discharge_routes(router)
    add_consent_routes(router)
    return router


def _add_submit_route(router: APIRouter) -> None:
    @router.post(
        "/referrals",
        summary="Submit a step-down referral",
        description="A referral package as a FHIR transaction Bundle (application/fhir+json) "
        "or as domain JSON (application/json). It is checked, recorded and forwarded to the "
        "FHIR server through the outbox. The same package again answers 200 with the "
        "referral it already is; another package under the same identifier answers 409.",
        status_code=201,
        response_model=ReferralOut,
        responses={
            200: {"model": ReferralOut, "description": "already submitted: the same"},
            **docs.errors(400, 401, 403, 409, 413, 415, 422, 502),
        },
        openapi_extra=docs.submission_body(),
    )
    async def submit(
        request: Request,
        principal: EhrSystem,
        kind: Annotated[str, Depends(_submission_media_type)],
        body: Annotated[bytes, Depends(limited_body)],
    ) -> Any:
        document = parse_json(body)
        submission = parse_submission(document) if kind == JSON else document
        _, engine, fhir = _state(request)
        done = await submit_referral(engine, fhir, _tenancy(request),
                                     caller=principal.organization,
                                     submission=submission, now=utcnow())  # fmt: skip
        view = await _read(request, principal, ReferralName(done.referral_id))
        # ids are READABLE_ID (ASCII); quoted anyway so a header can never fail to encode
        headers = {"Location": quote(view.links["self"], safe="/:@+~._-")}
        return JSONResponse(view.model_dump(mode="json"), 201 if done.created else 200, headers)


def _add_read_routes(router: APIRouter) -> None:
    @router.get(
        "/referrals/{referral_id}",
        summary="A referral's status and the IOP's response",
        response_model=ReferralOut,
        responses=docs.errors(401, 403, 404, 422, 502),
    )
    async def read(
        request: Request, principal: AnyRole, referral_id: ReferralId, referrer: Referrer = None
    ) -> ReferralOut:
        return await _read(request, principal, ReferralName(referral_id, referrer))

    @router.get(
        "/referrals",
        summary="List and search referrals",
        description="Newest received first. EHR systems see the referrals they requested; "
        "the IOP's case managers and admins those their organization owns.",
        response_model=ReferralPageOut,
        responses=docs.errors(401, 403, 422, 502),
    )
    async def search(
        request: Request,
        principal: AnyRole,
        status: Status = None,
        program: Organization = None,
        referrer: Organization = None,
        received_from: Annotated[
            date | None, Query(alias="from", description="received on", le=LAST_SEARCH_DAY)
        ] = None,
        received_to: Annotated[
            date | None, Query(alias="to", description="received on", le=LAST_SEARCH_DAY)
        ] = None,
        page: Page = 1,
        page_size: PageSize = 20,
    ) -> ReferralPageOut:
        filters = _filters(status, program, referrer, received_from, received_to)
        scope = await _scope(request, principal)
        _, engine, _ = _state(request)
        found = await asyncio.to_thread(_list, engine, scope, filters, page, page_size)
        return ReferralPageOut(
            items=[_out(view) for view in found.items], total=found.total, page=page,
            page_size=page_size, links=page_links(request, page, page_size, found.total),
        )  # fmt: skip


def _submission_media_type(request: Request) -> str:
    return media_type(request, (JSON, FHIR_JSON))


def _filters(
    status: str | None, program: str | None, referrer: str | None, start: date | None,
    end: date | None,
) -> ReferralFilters:  # fmt: skip
    problems = []
    if status is not None and status not in TASK_STATUSES:
        problems.append(Problem("status", f"{status!r} is not one of {', '.join(TASK_STATUSES)}"))
    if start is not None and end is not None and start > end:
        problems.append(Problem("from", "is after 'to'"))
    if problems:
        raise InvalidInputError.from_problems("the search", problems)
    return ReferralFilters(status, program, referrer, start, end)


async def _read(request: Request, principal: Principal, referral: ReferralName) -> ReferralOut:
    scope = await _scope(request, principal)
    settings, engine, _ = _state(request)
    view = await asyncio.to_thread(_get, engine, scope, referral, settings)
    if view is None:
        raise ReferralNotFound(f"no referral {str(referral)!r} of your organization")
    return _out(view)


async def _read_owned(
    request: Request, principal: Principal, referral: ReferralName
) -> ReferralOut:
    """A referral as the organization that owns it sees it (after an action of the IOP's own
    case manager or EHR, whichever role acted)."""
    settings, engine, _ = _state(request)
    scope = await _tenancy(request).scope(principal.organization)
    view = await asyncio.to_thread(_get, engine, scope, referral, settings)
    if view is None:
        raise ReferralNotFound(f"no referral {str(referral)!r} of your organization")
    return _out(view)


async def _scope(request: Request, principal: Principal) -> Scope:
    """EHR systems: what they requested; the IOP's staff: what their organization owns."""
    side = Side.PARTNER if principal.role is Role.EHR_SYSTEM else Side.IOP
    return await _tenancy(request).scope(principal.organization, side)


def _tenancy(request: Request) -> Tenancy:
    return request.app.state.tenancy  # type: ignore[no-any-return]


def _get(
    engine: Engine, scope: Scope, referral: ReferralName, settings: Settings
) -> ReferralView | None:
    with session_scope(engine) as session:
        return get_referral(session, scope, referral, settings.mapping_context())


def _list(engine: Engine, scope: Scope, filters: ReferralFilters, page: int, size: int) -> Any:
    with session_scope(engine) as session:
        return list_referrals(session, scope, filters, page=page, page_size=size)


def _out(view: ReferralView) -> ReferralOut:
    milestone = None
    if view.business_status is not None:
        milestone = BusinessStatusOut(
            code=view.business_status, display=view.business_status_display
        )
    fields = {k: getattr(view, k) for k in ReferralOut.model_fields if hasattr(view, k)}
    return ReferralOut.model_validate(
        fields | {"business_status": milestone, "links": {"self": f"/api/referrals/{view.id}"}}
    )


def _state(request: Request) -> tuple[Settings, Engine, FhirClient]:
    state = request.app.state
    return state.settings, state.engine, state.fhir
