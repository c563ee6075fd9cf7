"""The IOP's actions on a referral, for its EHR and integrators: accept, decline, schedule the
intake, record a session. The same service as the tracker's forms and the CLI
(``integration.referrals.actions``): the same fields, the same checks, the same audit.

Who: the IOP's case managers and its EHR (role ``ehr-system``) of the organization that owns
the referral; anyone else's referral is "not found". Each answers the referral as
``GET /api/referrals/{id}`` shows it, with the Task change queued for the FHIR server.

| method | path | body |
|---|---|---|
| POST | /api/referrals/{id}/accept | none |
| POST | /api/referrals/{id}/decline | reason, note |
| POST | /api/referrals/{id}/intake | date, time, delivery |
| POST | /api/referrals/{id}/sessions | date, time, minutes, kind, delivery, attendance, id |
| POST | /api/referrals/{id}/reconciliation | lines (position, action, dose, times), new |
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field, ValidationError
from sqlalchemy import Engine

from api import schema_examples as docs
from api.auth import Principal, Role, require
from api.limits import JSON, limited_body, media_type, parse_json
from api.schemas import ReferralId, ReferralOut, Referrer, _In, validation_problems
from integration.db.referral_lookup import ReferralName
from integration.db.store import session_scope
from integration.medications.reconcile_form import MAX_NEW
from integration.privacy import audit
from integration.referrals import actions as referral_actions
from integration.settings import Settings
from integration.tenancy.service import Tenancy
from mappers.errors import InvalidInputError

Actor = Annotated[Principal, Depends(require(Role.CASE_MANAGER, Role.EHR_SYSTEM))]
Day = Field(min_length=10, max_length=10, description="YYYY-MM-DD, the program's calendar")
Clock = Field(min_length=4, max_length=8, description="HH:MM, the program's time zone")


class AcceptIn(_In):
    """Accept. ``residential_discharge_date``: the day the client left residential care, when
    the package gave none (accept is refused without it: no 7/30-day follow-up windows); a date
    the sender gave is never changed. The body is optional."""

    residential_discharge_date: str | None = Field(
        None, min_length=10, max_length=10, description="YYYY-MM-DD, when the package gave none"
    )


class DeclineIn(_In):
    """Why the IOP declines: a reason of the list (text-only, sent as Task.statusReason.text)
    and a note to the referrer (required for ``other``)."""

    reason: Literal[tuple(referral_actions.DECLINE_REASONS)]  # type: ignore[valid-type]
    note: str | None = Field(None, max_length=referral_actions.MAX_NOTE)


class IntakeIn(_In):
    """The intake appointment: day, time (optional) and in person or virtual (telehealth)."""

    date: str = Day
    time: str | None = Field(None, min_length=4, max_length=8, description="HH:MM, optional")
    delivery: Literal["in-person", "virtual"] = "in-person"


class SessionIn(_In):
    """One session that took place or was missed. ``identifier``: the EHR's own id of the
    session (a retry with the same id is refused as a duplicate, not stored twice)."""

    date: str = Day
    time: str = Clock
    minutes: int = Field(ge=1, le=referral_actions.MAX_SESSION_MINUTES)
    kind: Literal["individual", "group", "family", "psychoeducation"] = "group"
    delivery: Literal["in-person", "virtual"] = "in-person"
    attendance: Literal["attended", "no-show", "cancelled"] = "attended"
    identifier: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9.\-]+$")


class LineIn(_In):
    """What the IOP does with one line of the residential discharge list (0-based position)."""

    position: int = Field(ge=0, le=199)
    action: Literal["continue", "change-dose", "stop"]
    dose: str | None = Field(None, max_length=30, description="the new dose, e.g. 100 mg")
    times: int | None = Field(None, ge=1, le=12, description="times a day")


class NewMedicationIn(_In):
    """A medication the IOP starts (not on the discharge list)."""

    medication: str = Field(min_length=1, max_length=200)
    rxnorm: str | None = Field(None, max_length=10, description="RxNorm code (RxCUI)")
    dose: str | None = Field(None, max_length=30)
    times: int | None = Field(None, ge=1, le=12)


class ReconciliationIn(_In):
    """The IOP intake list as stated against the discharge list: lines not named continue."""

    lines: list[LineIn] = Field(default_factory=list, max_length=200)
    new: list[NewMedicationIn] = Field(default_factory=list, max_length=MAX_NEW)

    def fields(self) -> dict[str, str | None]:
        """The same fields as the tracker's form (``integration.medications.reconcile_form``)."""
        found: dict[str, str | None] = {}
        for line in self.lines:
            found[f"line-{line.position}"] = line.action
            found[f"dose-{line.position}"] = line.dose
            found[f"times-{line.position}"] = None if line.times is None else str(line.times)
        for n, new in enumerate(self.new, start=1):
            found |= {f"new-{n}-medication": new.medication, f"new-{n}-rxnorm": new.rxnorm,
                      f"new-{n}-dose": new.dose,
                      f"new-{n}-times": None if new.times is None else str(new.times)}  # fmt: skip
        return found


EXAMPLES: dict[str, tuple[type[_In], dict[str, Any]]] = {
    "accept": (AcceptIn, {"residential_discharge_date": "2026-12-01"}),
    "decline": (DeclineIn, {"reason": "no-capacity", "note": "Waitlist of six weeks"}),
    "intake": (IntakeIn, {"date": "2026-12-09", "time": "10:00", "delivery": "virtual"}),
    "sessions": (
        SessionIn,
        {
            "date": "2026-12-09",
            "time": "18:00",
            "minutes": 180,
            "kind": "group",
            "delivery": "in-person",
            "attendance": "attended",
            "identifier": "EHR-SES-1001",
        },
    ),
    "reconciliation": (
        ReconciliationIn,
        {
            "lines": [
                {"position": 0, "action": "change-dose", "dose": "100 mg", "times": 1},
                {"position": 1, "action": "stop"},
            ],
            "new": [{"medication": "Naltrexone 50 MG Oral Tablet", "dose": "50 mg", "times": 1}],
        },
    ),
}


def add_action_routes(router: APIRouter, read: Any) -> None:
    """The five routes; ``read(request, principal, ReferralName)`` renders the referral
    afterwards."""
    for path, action, summary in (
        ("accept", referral_actions.ACCEPT, "Accept a referral"),
        ("decline", referral_actions.DECLINE, "Decline a referral, with the reason"),
        ("intake", referral_actions.SCHEDULE, "Schedule (or move) the intake appointment"),
        ("sessions", referral_actions.SESSION, "Record a session (attended, no-show, cancelled)"),
        ("reconciliation", referral_actions.RECONCILE, "Reconcile the medication list"),
    ):
        _add(router, read, path, action, summary)


def _add(router: APIRouter, read: Any, path: str, action: str, summary: str) -> None:
    model = EXAMPLES.get(path)

    @router.post(
        f"/referrals/{{referral_id}}/{path}",
        summary=summary,
        description="For the IOP's case managers and its EHR (ehr-system of the organization "
        "that owns the referral). Offered only in the states that allow it (409 otherwise); "
        "the Task change is queued for the FHIR server. Times are in the program's time zone.",
        tags=["referral actions"],
        response_model=ReferralOut,
        responses=docs.errors(400, 401, 403, 404, 409, 413, 415, 422, 502),
        openapi_extra=_body(*model) if model else None,
        name=f"referral_{path}",
    )
    async def act(
        request: Request,
        principal: Actor,
        referral_id: ReferralId,
        body: Annotated[bytes, Depends(limited_body)],
        referrer: Referrer = None,
    ) -> ReferralOut:
        fields = _fields(request, body, model[0] if model else None)
        state = request.app.state
        tenancy: Tenancy = state.tenancy
        organizations = await tenancy.keys(principal.organization)
        referral = ReferralName(referral_id, referrer)
        await asyncio.to_thread(
            _perform, state.engine, state.settings, principal, organizations,
            (referral, action, fields),
        )  # fmt: skip
        return await read(request, principal, referral)  # type: ignore[no-any-return]


def _fields(request: Request, body: bytes, model: type[_In] | None) -> dict[str, str | None]:
    """The body checked by its model, as the strings the service parses (None: no body)."""
    if model is None or (model is AcceptIn and not body.strip()):
        return {}  # accept as it stands
    media_type(request, (JSON,))
    try:
        given = model.model_validate(parse_json(body))
    except ValidationError as error:
        raise InvalidInputError.from_problems("the request", validation_problems(error)) from None
    if isinstance(given, ReconciliationIn):
        return given.fields()
    return {k: None if v is None else str(v) for k, v in given.model_dump().items()}


def _perform(
    engine: Engine,
    settings: Settings,
    principal: Principal,
    organizations: tuple[str, ...],
    request: tuple[ReferralName, str, dict[str, str | None]],
) -> None:
    named, action, fields = request
    command = referral_actions.parse(action, fields, settings.program_zone())
    actor = audit.Actor(principal.subject, principal.role.value, principal.organization)
    now = datetime.now(UTC)
    with audit.acting_as(actor), session_scope(engine) as session:
        referral = referral_actions.owned_referral(session, named, organizations)
        ids = fields.get("identifier") or f"{now:%Y%m%d%H%M%S%f}"
        referral_actions.perform(
            session, referral, action, command, at=now, session_ids=ids,
            context=settings.mapping_context(),
        )  # fmt: skip


def _body(model: type[_In], example: dict[str, Any]) -> dict[str, Any]:
    schema = docs.inline_schema(model)
    content = {JSON: {"schema": schema, "examples": {"example": {"value": example}}}}
    return {"requestBody": {"required": model is not AcceptIn, "content": content}}
