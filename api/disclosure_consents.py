"""The client's Part 2 consent to disclose, recorded by the IOP's case manager:
``POST /api/referrals/{id}/disclosure-consents``.

When the referral's Consent names only the IOP, the discharge to the next provider is refused
(42 CFR 2.31: the consent must name the recipient). The IOP then obtains the client's written
consent to disclose to that provider and records it here; the discharge's Part 2 check counts
it. The same service as the tracker's consent form (``integration.discharges.consents``).

Who: the IOP's case managers of the organization that owns the referral (another organization's
referral is "not found"); an EHR system is refused (403): the consent is the client's, given to
the program, not a change a system makes.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Engine

from api import schema_examples as docs
from api.auth import Principal, Role, require
from api.limits import JSON, limited_body, media_type, parse_json
from api.schemas import ReferralId, Referrer, _In, validation_problems
from integration.db.base import utcnow
from integration.db.referral_lookup import ReferralName
from integration.db.store import session_scope
from integration.discharges import consents
from integration.discharges.consents import ConsentOrder, ConsentView
from integration.referrals import actions as referral_actions
from mappers.errors import InvalidInputError

CaseManager = Annotated[Principal, Depends(require(Role.CASE_MANAGER))]


class DisclosureConsentIn(_In):
    """What the signed consent form says: to whom (the recipient's organization identifier, as
    registered, like a discharge's next provider), from when until when (inclusive; Part 2
    requires an expiry), the day the client signed, and what may be disclosed."""

    recipient: str = Field(
        min_length=1, max_length=64, pattern=r"^\S+$",
        description="the recipient's organization identifier (as registered)",
    )  # fmt: skip
    start: date
    end: date
    signed_on: date = Field(description="the day the client signed the consent")
    disclosed: str = Field(
        consents.ALL_SUD_RECORDS, min_length=1, max_length=consents.MAX_DISCLOSED,
        description="what may be disclosed, in the form's words",
    )  # fmt: skip


class DisclosureConsentOut(BaseModel):
    """A recorded consent and the Consent it is on the FHIR server (once delivered)."""

    id: str
    referral: str
    recipient: str
    recipient_reference: str
    start: date
    end: date
    signed_on: date
    disclosed: str
    consent: str  # Consent/<id>
    links: dict[str, str]


EXAMPLE = {
    "recipient": "OUTPT-HARBOR",
    "start": "2027-01-29",
    "end": "2028-01-29",
    "signed_on": "2027-01-28",
    "disclosed": consents.ALL_SUD_RECORDS,
}


def add_consent_routes(router: APIRouter) -> None:
    """POST and GET /referrals/{id}/disclosure-consents."""

    @router.post(
        "/referrals/{referral_id}/disclosure-consents",
        summary="Record the client's Part 2 consent to disclose to a named recipient",
        description="For the IOP's case managers. Stores the consent and queues a Consent "
        "(patient-privacy, IDSCL, 42 CFR Part 2 policy, a permit provision with the period and "
        "the recipient) for the FHIR server; a discharge to that recipient within the period "
        "then passes the Part 2 check. 422 naming the field for bad input, nothing stored.",
        tags=["discharges"],
        status_code=201,
        response_model=DisclosureConsentOut,
        responses=docs.errors(400, 401, 403, 404, 409, 413, 415, 422, 502),
        openapi_extra=_body(),
    )
    async def record(
        request: Request,
        principal: CaseManager,
        referral_id: ReferralId,
        body: Annotated[bytes, Depends(limited_body)],
        referrer: Referrer = None,
    ) -> Any:
        media_type(request, (JSON,))
        order = consent_order(parse_json(body))
        state = request.app.state
        organizations = await state.tenancy.keys(principal.organization)
        referral = ReferralName(referral_id, referrer)
        key = await asyncio.to_thread(_owned_key, state.engine, referral, organizations)
        view = await consents.record_consent(
            state.engine, state.tenancy, key, order=order, at=utcnow()
        )
        return JSONResponse(consent_out(referral_id, view).model_dump(mode="json"), 201)

    @router.get(
        "/referrals/{referral_id}/disclosure-consents",
        summary="The consents to disclose recorded for a referral, oldest first",
        tags=["discharges"],
        response_model=list[DisclosureConsentOut],
        responses=docs.errors(401, 403, 404, 422, 502),
    )
    async def listed(
        request: Request, principal: CaseManager, referral_id: ReferralId, referrer: Referrer = None
    ) -> list[DisclosureConsentOut]:
        state = request.app.state
        organizations = await state.tenancy.keys(principal.organization)
        referral = ReferralName(referral_id, referrer)
        found = await asyncio.to_thread(_list, state.engine, referral, organizations)
        return [consent_out(referral_id, view) for view in found]


def consent_order(document: Any) -> ConsentOrder:
    """The body as the service's order; InvalidInputError naming each field."""
    try:
        given = DisclosureConsentIn.model_validate(document)
    except ValidationError as error:
        raise InvalidInputError.from_problems("the consent", validation_problems(error)) from None
    return ConsentOrder(**given.model_dump())


def consent_out(referral_id: str, view: ConsentView) -> DisclosureConsentOut:
    """The response model of one recorded consent, with its links."""
    base = f"/api/referrals/{referral_id}"
    return DisclosureConsentOut(
        id=view.id, referral=referral_id, recipient=view.recipient,
        recipient_reference=view.recipient_reference, start=view.start, end=view.end,
        signed_on=view.signed_on, disclosed=view.disclosed, consent=view.consent,
        links={"consents": f"{base}/disclosure-consents", "referral": base},
    )  # fmt: skip


def _owned_key(engine: Engine, referral: ReferralName, organizations: tuple[str, ...]) -> int:
    with session_scope(engine) as session:
        return referral_actions.owned_referral(session, referral, organizations).id


def _list(
    engine: Engine, referral: ReferralName, organizations: tuple[str, ...]
) -> tuple[ConsentView, ...]:
    with session_scope(engine) as session:
        owned = referral_actions.owned_referral(session, referral, organizations)
        return consents.list_consents(session, owned.id)


def _body() -> dict[str, Any]:
    schema = docs.inline_schema(DisclosureConsentIn)
    content = {JSON: {"schema": schema, "examples": {"aftercare": {"value": EXAMPLE}}}}
    return {"requestBody": {"required": True, "content": content}}
