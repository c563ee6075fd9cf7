"""The referral page's discharge form: the same checks as ``POST /api/referrals/{id}/discharge``
(``api.schemas.DischargeRequest``) and the same workflow (``start_discharge``: the summary, the
Part 2 consent check, the aftercare handoff), audited as the signed-in person.

The form takes the discharge moment as a date and a time on the program's clock, and the
support groups one per line; everything else as the API names it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine

from api.schemas import DischargeRequest, validation_problems
from api.tracker_login import Viewer
from integration.discharges.views import DischargeOrder, start_discharge
from integration.fhir.client import FhirClient
from integration.privacy import audit
from integration.settings import Settings
from integration.tenancy.service import Tenancy
from mappers.errors import InvalidInputError, Problem

FIELDS = ("date", "time", "next_provider", "next_provider_name", "relapse_prevention",
          "medication_follow_up", "support_groups", "crisis_line", "course_summary")  # fmt: skip


def discharge_order(fields: dict[str, str], settings: Settings) -> DischargeOrder:
    """The form's fields as the API's discharge request; InvalidInputError naming each field."""
    moment, problems = _moment(fields, settings)
    document: dict[str, Any] = {
        name: fields.get(name, "").strip() for name in FIELDS[2:6] if name in fields
    }
    document["discharged_at"] = moment.isoformat() if moment else "1970-01-01T00:00:00Z"
    groups = [g.strip() for g in fields.get("support_groups", "").splitlines() if g.strip()]
    document["support_groups"] = groups
    for name in ("crisis_line", "course_summary"):
        if fields.get(name, "").strip():
            document[name] = fields[name].strip()
    try:
        given = DischargeRequest.model_validate(document)
    except ValidationError as error:
        problems += validation_problems(error)
    if problems:
        raise InvalidInputError.from_problems("the discharge", problems)
    return DischargeOrder(**(given.model_dump() | {"support_groups": tuple(given.support_groups)}))


async def discharge(
    engine: Engine,
    fhir: FhirClient,
    tenancy: Tenancy,
    viewer: Viewer,
    referral_key: int,
    order: DischargeOrder,
) -> None:
    """Run the discharge workflow on the referral the page shows, as the signed-in person."""
    actor = audit.Actor(viewer.subject, viewer.role.value, viewer.organization)
    with audit.acting_as(actor):
        await start_discharge(
            engine, fhir, tenancy, referral_key, caller=viewer.organization, order=order,
            at=datetime.now(UTC),
        )  # fmt: skip


def _moment(fields: dict[str, str], settings: Settings) -> tuple[datetime | None, list[Problem]]:
    problems: list[Problem] = []
    try:
        day = datetime.strptime(fields.get("date", "").strip(), "%Y-%m-%d").date()
    except ValueError:
        problems.append(Problem("date", "is required (YYYY-MM-DD)", "required"))
        return None, problems
    text = fields.get("time", "").strip() or "12:00"
    try:
        at = time.fromisoformat(text)
    except ValueError:
        problems.append(Problem("time", f"{text[:20]!r} is not a time of day (HH:MM)"))
        return None, problems
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=settings.program_zone()), problems
