"""Discharge handoff routes: the IOP's case manager discharges a client (workflow 3); the next
provider's EHR follows the aftercare loop and fetches the discharge summary document.

Part 2 (42 CFR 2.31): a discharge whose summary holds SUD records and whose referral carries no
consent covering the next provider is refused with 403 and the reason; the document is given to
the named next provider only.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import Engine

from api import schema_examples as docs
from api.auth import Principal, Role, require
from api.limits import FHIR_JSON, JSON, limited_body, media_type, parse_json
from api.schemas import (
    LAST_SEARCH_DAY,
    DischargeOut,
    DischargePageOut,
    DischargeRequest,
    ReferralId,
    Referrer,
    page_links,
    validation_problems,
)
from integration.db.base import utcnow
from integration.db.referral_lookup import ReferralName
from integration.db.store import session_scope
from integration.discharges.views import (
    DischargeOrder,
    DischargePage,
    DischargeView,
    discharge_document,
    follow_discharge,
    list_discharges,
    start_discharge,
)
from integration.referrals.views import MAX_PAGE_SIZE
from integration.tenancy.scope import Scope, Side
from integration.tenancy.service import Tenancy
from integration.workflow_errors import ReferralNotFound
from mappers.errors import InvalidInputError, Problem

AnyRole = Annotated[Principal, Depends(require(*Role))]


def add_discharge_routes(router: APIRouter) -> None:
    """POST /referrals/{id}/discharge, GET /discharges, /discharges/{id}, its document."""
    _add_discharge_route(router)
    _add_follow_routes(router)
    _add_document_route(router)


def _add_discharge_route(router: APIRouter) -> None:

    @router.post(
        "/referrals/{referral_id}/discharge",
        summary="Discharge the client and hand over to the next provider",
        description="Runs the discharge workflow: the summary document, the Part 2 consent "
        "check, and the aftercare ServiceRequest + Task to the next provider, sent through the "
        "outbox. 403 when no consent of the referral permits disclosing SUD records to the "
        "next provider (42 CFR Part 2), with the reasons: record the client's written consent "
        "for that provider (POST /api/referrals/{id}/disclosure-consents) and discharge again.",
        tags=["discharges"],
        status_code=201,
        response_model=DischargeOut,
        responses=docs.errors(400, 401, 403, 404, 409, 413, 415, 422, 502),
        openapi_extra=docs.discharge_body(),
    )
    async def discharge(
        request: Request,
        principal: Annotated[Principal, Depends(require(Role.CASE_MANAGER))],
        referral_id: ReferralId,
        _json: Annotated[str, Depends(_json_media_type)],
        body: Annotated[bytes, Depends(limited_body)],
        referrer: Referrer = None,
    ) -> Any:
        order = _order(parse_json(body))
        state = request.app.state
        view = await start_discharge(
            state.engine, state.fhir, state.tenancy, ReferralName(referral_id, referrer),
            caller=principal.organization, order=order, at=utcnow(),
        )  # fmt: skip
        out = discharge_out(view)
        headers = {"Location": out.links["self"]}
        return JSONResponse(out.model_dump(mode="json"), 201, headers)


def _add_follow_routes(router: APIRouter) -> None:
    @router.get(
        "/discharges",
        summary="List discharge handoffs",
        description="The next provider's EHR sees the handoffs to its organization; the IOP's "
        "staff those of their organization's referrals. Newest discharge first.",
        tags=["discharges"],
        response_model=DischargePageOut,
        responses=docs.errors(401, 403, 422, 502),
    )
    async def search(
        request: Request,
        principal: AnyRole,
        acknowledged: bool | None = None,
        discharged_from: Annotated[date | None, Query(alias="from", le=LAST_SEARCH_DAY)] = None,
        discharged_to: Annotated[date | None, Query(alias="to", le=LAST_SEARCH_DAY)] = None,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    ) -> DischargePageOut:
        if discharged_from and discharged_to and discharged_from > discharged_to:
            raise InvalidInputError.from_problems("the search", [Problem("from", "is after 'to'")])
        scope = await _scope(request, principal)
        filters = (acknowledged, discharged_from, discharged_to, page, page_size)
        found = await asyncio.to_thread(_list, request.app.state.engine, scope, *filters)
        return DischargePageOut(
            items=[discharge_out(v) for v in found.items], total=found.total, page=page,
            page_size=page_size, links=page_links(request, page, page_size, found.total),
        )  # fmt: skip

    @router.get(
        "/discharges/{referral_id}",
        summary="A discharge handoff: is the aftercare Task acknowledged?",
        tags=["discharges"],
        response_model=DischargeOut,
        responses=docs.errors(401, 403, 404, 422, 502),
    )
    async def read(
        request: Request, principal: AnyRole, referral_id: ReferralId, referrer: Referrer = None
    ) -> DischargeOut:
        scope = await _scope(request, principal)
        state = request.app.state
        context = state.settings.mapping_context()
        referral = ReferralName(referral_id, referrer)
        view = await follow_discharge(state.engine, state.fhir, scope, referral, context)
        if view is None:
            raise ReferralNotFound(f"no discharge {referral_id!r} for your organization")
        return discharge_out(view)


def _add_document_route(router: APIRouter) -> None:
    @router.get(
        "/discharges/{referral_id}/document",
        summary="The discharge summary document, for the named next provider",
        description="The FHIR document Bundle (Composition, LOINC 18842-5) with its Part 2 "
        "security labels and redisclosure notice. Only the next provider's EHR receives it.",
        tags=["discharges"],
        response_class=JSONResponse,
        responses={200: docs.document_response(), **docs.errors(401, 403, 404, 422, 502)},
    )
    async def document(
        request: Request,
        principal: Annotated[Principal, Depends(require(Role.EHR_SYSTEM))],
        referral_id: ReferralId,
        referrer: Referrer = None,
    ) -> Any:
        scope = await _scope(request, principal)
        referral = ReferralName(referral_id, referrer)
        found = await asyncio.to_thread(_document, request.app.state.engine, scope, referral)
        if found is None:
            raise ReferralNotFound(f"no discharge {referral_id!r} handed to your organization")
        return JSONResponse(found, media_type=FHIR_JSON)


def _json_media_type(request: Request) -> str:
    return media_type(request, (JSON,))


def _order(document: Any) -> DischargeOrder:
    try:
        given = DischargeRequest.model_validate(document)
    except ValidationError as error:
        raise InvalidInputError.from_problems("the discharge", validation_problems(error)) from None
    fields = given.model_dump() | {"support_groups": tuple(given.support_groups)}
    return DischargeOrder(**fields)


async def _scope(request: Request, principal: Principal) -> Scope:
    """EHR systems: handoffs to their organization; the IOP's staff: their referrals'."""
    side = Side.PARTNER if principal.role is Role.EHR_SYSTEM else Side.IOP
    tenancy: Tenancy = request.app.state.tenancy
    return await tenancy.scope(principal.organization, side)


def _list(engine: Engine, scope: Scope, *filters: Any) -> DischargePage:
    acknowledged, start, end, page, page_size = filters
    with session_scope(engine) as session:
        return list_discharges(
            session, scope, acknowledged=acknowledged, discharged_from=start,
            discharged_to=end, page=page, page_size=page_size,
        )  # fmt: skip


def _document(engine: Engine, scope: Scope, referral: ReferralName) -> dict[str, Any] | None:
    with session_scope(engine) as session:
        return discharge_document(session, scope, referral)


def discharge_out(view: DischargeView) -> DischargeOut:
    """The response model of one handoff, with its links."""
    links = {"self": f"/api/discharges/{view.id}", "referral": f"/api/referrals/{view.id}"}
    if view.delivery is not None:
        links["document"] = f"/api/discharges/{view.id}/document"
    return DischargeOut(
        id=view.id, discharged_at=view.discharged_at, next_provider=view.next_provider,
        aftercare_task=view.aftercare_task, task_status=view.task_status,
        business_status=view.business_status, acknowledged=view.acknowledged_at is not None,
        acknowledged_at=view.acknowledged_at, delivery=view.delivery, links=links,
    )  # fmt: skip
