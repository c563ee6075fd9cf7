"""The referral page with its action forms, and the POSTs they send (issue 17).

Each action is a small server-rendered form; no JavaScript. A POST is refused unless it comes
from this origin and carries the session's CSRF token; it carries a one-time form id too, so a
double click or a resent POST acts once (``claim_form``). The action runs through
``integration.referrals.actions`` (the service the API and the CLI use), audited as the
signed-in person. Success answers 303 to the referral page (Post/Redirect/Get); a refusal shows
the page again with each problem beside the field it names (422, or 409 for the state).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from api import tracker_consent, tracker_discharge
from api.tracker_login import Viewer, forged, read_form, tracker_viewer
from api.tracker_render import error_page, readable_path, render
from integration.db import models
from integration.db.store import session_scope
from integration.discharges import consents
from integration.privacy import audit
from integration.referrals import actions as referral_actions
from integration.settings import Settings
from integration.tenancy.scope import Scope
from integration.tenancy.service import Tenancy
from integration.tracker.detail import handoff_detail
from integration.tracker.panel import action_panel
from integration.workflow_errors import DisclosureRefused, ReferralNotFound
from mappers.encounter import Attendance, Delivery, SessionKind
from mappers.errors import InvalidInputError, IopBridgeError, Problem

MAX_ID = 2**31 - 1  # referral.id is a 32-bit INTEGER on PostgreSQL
ACTIONS = (referral_actions.ACCEPT, referral_actions.DECLINE, referral_actions.SCHEDULE,
           referral_actions.SESSION, referral_actions.RECONCILE,
           referral_actions.DISCHARGE, tracker_consent.ACTION)  # fmt: skip
DONE = {
    referral_actions.ACCEPT: "Referral accepted. The Task update is queued for the FHIR server.",
    referral_actions.DECLINE: "Referral declined. The Task update is queued for the FHIR server.",
    referral_actions.SCHEDULE: "Intake scheduled. The Task update is queued for the FHIR server.",
    referral_actions.SESSION: "Session recorded. Its Encounter is queued for the FHIR server.",
    referral_actions.RECONCILE: "Medications reconciled. The lists are queued for the FHIR server.",
    referral_actions.DISCHARGE: "Client discharged. The summary and the aftercare handoff are "
    "queued for the FHIR server.",
    tracker_consent.ACTION: "Consent recorded. Its Consent is queued for the FHIR server; a "
    "discharge to that recipient within its period now passes the Part 2 check.",
}
FORM_LEVEL = "_form"  # problems that name no field of the form (the referral's state)
TITLE = "_title"  # the refusal's own message, above its problems
NEEDS_CONSENT = "_consent"  # a Part 2 refusal: the page points to the consent form
SignedIn = Annotated[Viewer | None, Depends(tracker_viewer)]
# The referral's row key (Referral.id) in the tracker's URLs; the API names referrals by
# their business id instead (api.schemas.ReferralId).
ReferralKey = Annotated[int, PathParameter(ge=1, le=MAX_ID)]


class ForgedForm(IopBridgeError):
    """A POST without this session's CSRF token, or from another origin."""

    http_status = 403
    issue_code = "forbidden"


def referral_page(
    engine: Engine,
    viewer: Viewer,
    scope: Scope,
    referral_key: int,
    *,
    done: str | None = None,
    failed: tuple[str, Mapping[str, str], Mapping[str, list[str]]] | None = None,
    status_code: int = 200,
    zone: ZoneInfo | None = None,
) -> Response:
    """The referral page; ``failed``: the action, its values and its problems by field;
    ``zone``: the program's, whose date and time the forms start from."""
    today = datetime.now(UTC).date()
    local = datetime.now(zone or ZoneInfo("UTC"))
    try:
        with session_scope(engine) as session:
            detail = handoff_detail(session, referral_key, scope=scope, today=today)
            referral = session.get(models.Referral, referral_key)
            assert referral is not None  # handoff_detail found it in scope
            panel = action_panel(session, referral, today)
            recorded = consents.list_consents(session, referral_key)
    except IopBridgeError as error:
        return error_page(error, viewer)
    action, values, errors = failed or ("", {}, {})
    return render(
        "tracker_referral.html", status_code, viewer=viewer, detail=detail, panel=panel,
        csrf=viewer.csrf_token or "", form_ids={a: secrets.token_urlsafe(18) for a in ACTIONS},
        failed=action, values=values, errors=errors, done=DONE.get(done or ""),
        decline_reasons={"": "choose a reason", **referral_actions.DECLINE_REASONS},
        kinds=list(SessionKind),
        deliveries=list(Delivery), attendances=[a for a in Attendance if a.value != "scheduled"],
        today=local.date(), now=local.strftime("%H:%M"), consents=recorded,
        all_sud_records=consents.ALL_SUD_RECORDS,
    )  # fmt: skip


def add_action_routes(router: APIRouter, settings: Settings) -> None:
    """POST /tracker/referrals/{id}/{action} for each action of ACTIONS."""

    @router.post("/tracker/referrals/{referral_key}/{action}", response_class=HTMLResponse)
    async def act(
        request: Request, viewer: SignedIn, referral_key: ReferralKey, action: str
    ) -> Response:
        if viewer is None:
            return RedirectResponse("/tracker/login", status_code=303)
        if action not in ACTIONS:
            return error_page(ReferralNotFound(f"no action {action!r} on a referral"), viewer)
        form = await read_form(request)
        if forged(request, viewer, form):
            message = "the form did not come from this tracker session: reload the page"
            return error_page(ForgedForm(message), viewer)
        tenancy: Tenancy = request.app.state.tenancy
        scope = await tenancy.iop_scope(viewer.organization)
        fields = {name: values[0] for name, values in form.items() if values}
        if action == referral_actions.DISCHARGE:
            return await _discharge(request, settings, viewer, scope, referral_key, fields)
        if action == tracker_consent.ACTION:
            return await _consent(request, settings, viewer, scope, referral_key, fields)
        return await run_in_threadpool(
            _act, request.app.state.engine, settings, viewer, scope,
            (referral_key, action, fields),
        )  # fmt: skip


def _act(
    engine: Engine,
    settings: Settings,
    viewer: Viewer,
    scope: Scope,
    request: tuple[int, str, dict[str, str]],
) -> Response:
    referral_key, action, fields = request
    form_id = fields.get("form_id", "")
    try:
        if not 16 <= len(form_id) <= 64:
            problem = Problem(FORM_LEVEL, "the form has no valid form id: reload the page")
            raise InvalidInputError("the form is invalid", problems=[problem])
        command = referral_actions.parse(action, fields, settings.program_zone())
        actor = audit.Actor(viewer.subject, viewer.role.value, viewer.organization)
        with audit.acting_as(actor), session_scope(engine) as session:
            referral = referral_actions.owned_referral_by_key(
                session, referral_key, scope.organizations
            )
            if referral_actions.claim_form(session, form_id, referral, action):
                referral_actions.perform(
                    session, referral, action, command, at=datetime.now(UTC),
                    session_ids=form_id[:12], context=settings.mapping_context(),
                )  # fmt: skip
    except ReferralNotFound as error:
        return error_page(error, viewer)
    except IopBridgeError as error:
        failed = (action, fields, _by_field(error, fields))
        return referral_page(
            engine, viewer, scope, referral_key, failed=failed,
            status_code=error.http_status, zone=settings.program_zone(),
        )  # fmt: skip
    return RedirectResponse(f"/tracker/referrals/{referral_key}?done={action}", status_code=303)


async def _discharge(
    request: Request,
    settings: Settings,
    viewer: Viewer,
    scope: Scope,
    referral_key: int,
    fields: dict[str, str],
) -> Response:
    """The discharge: the workflow reads the clinical record from the FHIR server first, so it
    runs here rather than in one store transaction; a second submit finds it discharged."""
    engine = request.app.state.engine
    try:
        order = tracker_discharge.discharge_order(fields, settings)
        await tracker_discharge.discharge(
            engine, request.app.state.fhir, request.app.state.tenancy, viewer, referral_key, order
        )
    except ReferralNotFound as error:
        return error_page(error, viewer)
    except IopBridgeError as error:
        where = (engine, viewer, scope, referral_key)
        return await _refused(where, referral_actions.DISCHARGE, fields, error, settings)
    done = f"/tracker/referrals/{referral_key}?done={referral_actions.DISCHARGE}"
    return RedirectResponse(done, status_code=303)


async def _consent(
    request: Request,
    settings: Settings,
    viewer: Viewer,
    scope: Scope,
    referral_key: int,
    fields: dict[str, str],
) -> Response:
    """Record the client's consent to disclose: the recipient is looked up on the FHIR server
    first, so it runs here; the form id is claimed first in a transaction of its own (a second
    submit of the same form records nothing; a refused one is shown with fresh form ids)."""
    engine = request.app.state.engine
    action = tracker_consent.ACTION
    try:
        given = tracker_consent.order(fields)
        claim = (referral_key, fields.get("form_id", ""), scope)
        if await run_in_threadpool(_claim, engine, *claim):
            await tracker_consent.record(
                engine, request.app.state.tenancy, viewer, referral_key, given
            )
    except ReferralNotFound as error:
        return error_page(error, viewer)
    except IopBridgeError as error:
        where = (engine, viewer, scope, referral_key)
        return await _refused(where, action, fields, error, settings)
    return RedirectResponse(f"/tracker/referrals/{referral_key}?done={action}", status_code=303)


async def _refused(
    where: tuple[Engine, Viewer, Scope, int],
    action: str,
    fields: dict[str, str],
    error: IopBridgeError,
    settings: Settings,
) -> Response:
    """The referral page again with the refused form's problems (its status code)."""
    engine, viewer, scope, referral_key = where
    failed = (action, fields, _by_field(error, fields))
    return await run_in_threadpool(
        partial(referral_page, engine, viewer, scope, referral_key, failed=failed,
                status_code=error.http_status, zone=settings.program_zone())
    )  # fmt: skip


def _claim(engine: Engine, referral_key: int, form_id: str, scope: Scope) -> bool:
    """The referral in scope (ReferralNotFound else) and its form id claimed for the consent."""
    if not 16 <= len(form_id) <= 64:
        problem = Problem(FORM_LEVEL, "the form has no valid form id: reload the page")
        raise InvalidInputError("the form is invalid", problems=[problem])
    with session_scope(engine) as session:
        referral = referral_actions.owned_referral_by_key(
            session, referral_key, scope.organizations
        )
        return referral_actions.claim_form(session, form_id, referral, tracker_consent.ACTION)


def _by_field(error: IopBridgeError, fields: Mapping[str, str]) -> dict[str, list[str]]:
    """The error's title (TITLE), each problem under the form field it names, the others
    (state, transitions, what the FHIR server lacks) above the form with their path in words;
    NEEDS_CONSENT when a Part 2 refusal asks for the client's consent to be recorded."""
    found: dict[str, list[str]] = {TITLE: [error.message]}
    for problem in error.problems:
        if problem.path in fields or _is_field(problem.path):
            found.setdefault(problem.path, []).append(problem.message)
            continue
        where = "" if problem.path == FORM_LEVEL else readable_path(problem.path)
        line = f"{where}: {problem.message}" if where else problem.message
        found.setdefault(FORM_LEVEL, []).append(line)
    if isinstance(error, DisclosureRefused):
        found[NEEDS_CONSENT] = [error.message]
    return found


def _is_field(path: str) -> bool:
    simple = ("reason", "note", "date", "time", "delivery", "kind", "attendance", "minutes")
    return (
        path in simple
        or path in tracker_discharge.FIELDS
        or path in tracker_consent.FIELDS
        or path.startswith(_LINE_FIELDS)
    )


_LINE_FIELDS = ("line-", "dose-", "times-", "new-")
