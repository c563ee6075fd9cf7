"""The aftercare loop (DESIGN.md workflow 3): after the discharge, follow the aftercare Task until
the next provider acknowledges it (accepted, or a later state)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.base import utcnow
from integration.db.referral_lookup import find_referral, identifier_stem
from integration.db.store import session_scope
from integration.discharges.handoff_bundle import AFTERCARE_SUFFIX
from integration.discharges.workflow import in_session
from integration.fhir.client import FhirClient
from integration.workflow_errors import WorkflowNotReady
from mappers import bundle
from mappers.fhir_reference import literal_reference
from mappers.registry import MappingContext

# The next provider has taken the handoff: SDOHCC task statuses at or past "accepted".
ACKNOWLEDGED = frozenset({"accepted", "in-progress", "on-hold", "completed"})


@dataclass(frozen=True, slots=True)
class AftercareStatus:
    """Where the handoff to the next provider stands."""

    referral_id: str  # the referral's business identifier (Referral.business_id)
    task: str | None  # "Task/<id>"; None until the outbox has delivered it
    status: str | None  # Task.status as the next provider left it
    business_status: str | None
    acknowledged_at: datetime | None  # set once the Task is accepted (or further)


async def read_aftercare(
    fhir: FhirClient, engine: Engine, referral_key: int, *, context: MappingContext | None = None
) -> AftercareStatus:
    """Where the aftercare Task stands on the server, writing nothing (what a GET may do)."""
    return (await _read(fhir, engine, referral_key, context or MappingContext()))[0]


async def check_aftercare(
    fhir: FhirClient, engine: Engine, referral_key: int, *, context: MappingContext | None = None
) -> AftercareStatus:
    """read_aftercare, then record the Task's id, and acknowledged_at once the next provider
    moved it to accepted or a later state (the background loop's step, never a GET's)."""
    status, task_id = await _read(fhir, engine, referral_key, context or MappingContext())
    if task_id is None:
        return status

    def remember(session: Session, referral: int) -> None:
        stored = _discharge_record(session, referral).record
        repo.record_aftercare_task(session, stored, task_id=task_id)
        if stored.acknowledged_at is None and status.acknowledged_at is not None:
            repo.acknowledge_discharge(session, stored, at=status.acknowledged_at)

    await asyncio.to_thread(in_session, engine, remember, referral_key)
    return status


async def _read(
    fhir: FhirClient, engine: Engine, referral_key: int, context: MappingContext
) -> tuple[AftercareStatus, str | None]:
    """The status, and the Task's server id when the server has the Task."""
    discharged = await asyncio.to_thread(in_session, engine, _discharge_record, referral_key)
    known, business_id = discharged.record, discharged.business_id
    task = await _aftercare_task(fhir, discharged, context)
    if task is None:
        return AftercareStatus(business_id, None, None, None, known.acknowledged_at), None
    acknowledged = known.acknowledged_at
    if acknowledged is None and task.get("status") in ACKNOWLEDGED:
        acknowledged = _changed_at(task)
    codings = (task.get("businessStatus") or {}).get("coding") or [{}]
    target = literal_reference("Task", task["id"])
    status = AftercareStatus(
        business_id, target, task.get("status"), codings[0].get("code"), acknowledged
    )
    return status, str(task["id"])


async def poll_open_discharges(
    fhir: FhirClient, engine: Engine, *, context: MappingContext | None = None
) -> list[AftercareStatus]:
    """check_aftercare for every discharge not yet acknowledged (the loop's safety net)."""
    query = (
        select(models.DischargeRecord.referral_id)
        .where(models.DischargeRecord.acknowledged_at.is_(None))
        .order_by(models.DischargeRecord.discharged_at)
    )

    def open_ones() -> list[int]:
        with session_scope(engine) as session:
            return list(session.scalars(query))

    return [
        await check_aftercare(fhir, engine, referral_key, context=context)
        for referral_key in await asyncio.to_thread(open_ones)
    ]


@dataclass(frozen=True, slots=True)
class _Discharged:
    """A referral's discharge record, with what names its aftercare Task."""

    record: models.DischargeRecord
    business_id: str  # the referral's (the sender's identifier)
    aftercare_identifier: str  # of the aftercare ServiceRequest and Task (ours)


def _discharge_record(session: Session, referral_key: int) -> _Discharged:
    referral = find_referral(session, referral_key)
    query = select(models.DischargeRecord).where(models.DischargeRecord.referral_id == referral.id)
    found = session.scalar(query)
    if found is None:
        raise WorkflowNotReady(f"referral {referral.business_id!r} has no discharge")
    stem = identifier_stem(session, referral)
    return _Discharged(found, referral.business_id, stem + AFTERCARE_SUFFIX)


async def _aftercare_task(
    fhir: FhirClient, discharged: _Discharged, context: MappingContext
) -> dict[str, Any] | None:
    """By the id seen before, else by identifier (the id is the server's, known after delivery)."""
    if discharged.record.aftercare_task_id is not None:
        return await fhir.read("Task", discharged.record.aftercare_task_id)
    token = bundle.identifier_token(context.task_id_system, discharged.aftercare_identifier)
    found = [t async for t in fhir.search_all("Task", {"identifier": token})]
    return found[0] if len(found) == 1 else None


def _changed_at(task: Mapping[str, Any]) -> datetime:
    """When the next provider's change was made: Task.lastModified (theirs) if it is a full
    instant, else meta.lastUpdated (the server's), else now."""
    for value in (task.get("lastModified"), (task.get("meta") or {}).get("lastUpdated")):
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            return moment
    return utcnow()
