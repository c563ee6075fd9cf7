"""What the step-down workflow queues for the FHIR server (``integration.referrals.step_down``):
the performer's elements of the referral's Task (an OWNED_FIELDS merge, SDOHCC) and a session's
Encounter (PUT to an id derived from its business identifier), each in the referral's own outbox
aggregate (its row key), so they reach the server in the order they were queued.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.referral_lookup import REFERRAL_AGGREGATE, aggregate_key
from integration.outbox import queue as outbox
from integration.privacy import disclosure
from integration.workflow_errors import ReferralActionRefused
from mappers import encounter
from mappers.errors import Problem
from mappers.fhir_reference import literal_reference
from mappers.fhir_write import format_datetime
from mappers.referral_task import BUSINESS_STATUSES, output_json
from mappers.registry import MappingContext

AGGREGATE = REFERRAL_AGGREGATE
_ENCOUNTER_IDS = uuid.UUID("6c0f3e55-4f51-4d8a-9d43-4f0e1b7a2c11")  # namespace of encounter_id


def encounter_id(system: str, value: str) -> str:
    """The Encounter's server id, derived from its business identifier (stable, a legal id)."""
    return f"iop-{uuid.uuid5(_ENCOUNTER_IDS, f'{system}|{value}')}"


def enqueue_task_change(
    session: Session,
    referral: models.Referral,
    link: ReferralLink,
    *,
    note: dict[str, Any] | None = None,
) -> None:
    """One OWNED_FIELDS message with the performer's Task elements, keyed on the PLAC id;
    ``note`` is appended to Task.note, which the requester writes too."""
    owned: dict[str, Any] = {"status": referral.status}
    if link.status_reason:
        owned["statusReason"] = {"text": link.status_reason}
    if link.business_status:
        owned["businessStatus"] = BUSINESS_STATUSES[link.business_status].codeable_concept()
    if link.last_modified:
        owned["lastModified"] = format_datetime(link.last_modified)
    if link.resulting_activity:
        owned["output"] = [output_json(link.resulting_activity)]
    identifier = {"system": link.task_identifier_system, "value": link.task_identifier_value}
    payload = {
        "resourceType": "Task",
        "identifier": identifier,
        "set": owned,
        "remove": [k for k in ("statusReason", "output") if k not in owned],
    }
    if note is not None:
        payload["add"] = {"note": [note]}
    outbox.enqueue(
        session,
        aggregate_type=AGGREGATE,
        aggregate_key=aggregate_key(referral.id),
        kind=outbox.MessageKind.OWNED_FIELDS,
        payload=payload,
    )


def enqueue_encounter(
    session: Session,
    referral: models.Referral,
    link: ReferralLink,
    iop_session: encounter.Session,
    context: MappingContext,
) -> str:
    """A RESOURCE message: PUT Encounter/<encounter_id> (create-or-update); its reference."""
    if not (link.patient and link.service_request):
        problem = Problem("referral", "the referral's Patient and ServiceRequest are unknown")
        raise ReferralActionRefused("no session for an unmapped referral", problems=[problem])
    resource = encounter.to_fhir(
        iop_session,
        id_system=context.session_id_system,
        subject_reference=link.patient,
        service_provider_reference=referral.iop_organization,
        based_on_reference=link.service_request,
    )
    resource["id"] = encounter_id(context.session_id_system, iop_session.identifier)
    resource = disclosure.labelled(session, referral, resource)  # 42 CFR Part 2 labels
    target = literal_reference("Encounter", resource["id"])
    outbox.enqueue(
        session,
        aggregate_type=AGGREGATE,
        aggregate_key=aggregate_key(referral.id),
        kind=outbox.MessageKind.RESOURCE,
        payload={"resource": resource, "request": {"method": "PUT", "url": target}},
    )
    return target
