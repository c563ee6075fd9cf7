"""Discharge handoffs as the API shows them: the IOP starts one (workflow 3), the next provider's
EHR follows it (is the aftercare Task acknowledged?) and receives the discharge summary document.

Scoping is in the queries, as for referrals: the IOP's staff see the discharges of referrals
their organization owns; an EHR system sees the discharges handed to its organization
(``discharge_record.next_provider``), and only that next provider gets the document (42 CFR
Part 2: the disclosure is consented to that recipient alone).

The document is the one the discharge enqueued (the first entry of its transaction message):
what was checked against the consent and sent, available before and after delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, Select, func, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import ReferralName, aggregate_key, named
from integration.db.store import session_scope
from integration.discharges import workflow
from integration.discharges.aftercare import read_aftercare
from integration.fhir.client import FhirClient
from integration.outbox import queue as outbox
from integration.privacy import audit, disclosure
from integration.referrals.package import settle_references
from integration.referrals.views import delivery_status
from integration.tenancy.scope import Scope, Side
from integration.tenancy.service import Tenancy
from integration.workflow_errors import ReferralNotFound
from mappers.discharge import CRISIS_LINE_988, AftercarePlan
from mappers.errors import InvalidInputError, Problem
from mappers.fhir_reference import literal_reference
from mappers.registry import MappingContext

NOT_THE_RECIPIENT = "not-the-recipient"  # audit reason: asked for by another organization


@dataclass(frozen=True, slots=True)
class DischargeView:
    """One discharge handoff and where its aftercare loop stands."""

    id: str  # the referral's identifier (the sender's): one discharge per referral
    referral_key: int  # the referral's row key (Referral.id)
    discharged_at: datetime
    next_provider: str
    aftercare_task: str | None
    task_status: str | None  # read from the FHIR server when asked for one handoff
    business_status: str | None
    acknowledged_at: datetime | None
    delivery: str | None  # outbox status of the document + ServiceRequest + Task message


@dataclass(frozen=True, slots=True)
class DischargePage:
    """One page of discharge handoffs and how many match in all."""

    items: tuple[DischargeView, ...]
    total: int
    page: int
    page_size: int


def list_discharges(
    session: Session,
    scope: Scope,
    *,
    acknowledged: bool | None,
    discharged_from: date | None,
    discharged_to: date | None,
    page: int,
    page_size: int,
) -> DischargePage:
    """One page of the scope's handoffs, newest discharge first."""
    record = models.DischargeRecord
    where = _within(scope)
    if acknowledged is not None:
        where.append(record.acknowledged_at.is_not(None) if acknowledged
                     else record.acknowledged_at.is_(None))  # fmt: skip
    if discharged_from is not None:
        where.append(record.discharged_at >= _midnight(discharged_from))
    if discharged_to is not None:
        where.append(record.discharged_at < _midnight(discharged_to + timedelta(days=1)))
    joined = select(func.count(record.id)).join(
        models.Referral, models.Referral.id == record.referral_id
    )
    total = session.scalar(joined.where(*where))
    rows = session.execute(
        _query().where(*where).order_by(record.discharged_at.desc(), record.id.desc())
        .limit(page_size).offset((page - 1) * page_size)
    )  # fmt: skip
    return DischargePage(tuple(_view(row) for row in rows), int(total or 0), page, page_size)


def get_discharge(
    session: Session, scope: Scope, referral: ReferralName | int
) -> DischargeView | None:
    """The handoff of a referral (by its row key, or its business id and perhaps its sender)
    if the scope may see it; ReferralAmbiguous for a business id two senders use."""
    rows = session.execute(_query().where(named(referral), *_within(scope)).limit(2)).all()
    row = repo.only_match(rows, str(referral))
    return _view(row) if row is not None else None


async def follow_discharge(
    engine: Engine, fhir: FhirClient, scope: Scope, referral: ReferralName,
    context: MappingContext,
) -> DischargeView | None:  # fmt: skip
    """The handoff with its aftercare Task's current status, read from the FHIR server once the
    outbox delivered it. A read writes nothing: the background loop (runtime.run_inbound)
    records the Task's id and the acknowledgement."""
    view = await asyncio.to_thread(_in_session, engine, get_discharge, scope, referral)
    if view is None or view.delivery != "delivered":
        return view
    status = await read_aftercare(fhir, engine, view.referral_key, context=context)
    return DischargeView(
        view.id, view.referral_key, view.discharged_at, view.next_provider,
        status.task or view.aftercare_task, status.status, status.business_status,
        status.acknowledged_at, view.delivery,
    )  # fmt: skip


def discharge_document(
    session: Session, scope: Scope, referral: ReferralName
) -> dict[str, Any] | None:
    """The discharge summary document Bundle of a handoff the scope may see, released through
    the disclosure gate (audited as a disclosure to the next provider). Asked for by anyone
    else, it is withheld and the refusal audited with its reason; None either way (flushes)."""
    found = _enqueued_document(session, referral)
    if found is None:
        return None  # no discharge: nothing was disclosed or withheld
    document, owner, referral_key = found
    entity = _document_entity(document)
    view = get_discharge(session, scope, referral_key)
    if view is None:
        # 42 CFR 2.13(a): disclosed only as the consent permits, i.e. to the next provider.
        # an EHR system's own reference when known (the last of its keys)
        partner = scope.side is Side.PARTNER and scope.organizations
        asking = scope.organizations[-1] if partner else None
        disclosure.withheld(
            session, entity, recipient=asking, organization=owner, reason=NOT_THE_RECIPIENT
        )
        return None
    disclosure.released(session, entity, recipient=view.next_provider, organization=owner)
    return dict(document)


def _enqueued_document(
    session: Session, referral: ReferralName
) -> tuple[dict[str, Any], str, int] | None:
    """The document the discharge enqueued (first entry of its first transaction message), the
    referral's IOP organization (whose records they are) and the referral's row key."""
    found_rows = session.execute(
        select(models.Referral.id, models.Referral.iop_organization).where(named(referral)).limit(2)
    ).all()
    found = repo.only_match(found_rows, str(referral))
    if found is None:
        return None
    referral_key, owner = found
    payload = session.scalar(
        select(OutboxMessage.payload)
        .where(
            OutboxMessage.aggregate_type == workflow.AGGREGATE_TYPE,
            OutboxMessage.aggregate_key == aggregate_key(referral_key),
            OutboxMessage.kind == str(outbox.MessageKind.TRANSACTION),
        )
        .order_by(OutboxMessage.id)
        .limit(1)
    )
    entries = (payload or {}).get("entry") or []
    document = entries[0].get("resource") if entries else None
    if not isinstance(document, dict):
        return None
    return document, owner, referral_key


def _document_entity(document: dict[str, Any]) -> audit.Entity:
    """The document Bundle by its identifier (Bundle.identifier, urn:ietf:rfc:3986)."""
    identifier = document.get("identifier") or {}
    return audit.Entity("Bundle", str(identifier.get("value")), identifier.get("system"))


@dataclass(frozen=True, slots=True)
class DischargeOrder:
    """What the case manager states at discharge; the next provider by its organization
    identifier value (as registered on the FHIR server, like every tenant key)."""

    discharged_at: datetime
    next_provider: str
    next_provider_name: str
    relapse_prevention: str
    medication_follow_up: str
    support_groups: tuple[str, ...] = ()
    crisis_line: str | None = CRISIS_LINE_988
    course_summary: str | None = None


async def start_discharge(
    engine: Engine,
    fhir: FhirClient,
    tenancy: Tenancy,
    referral: ReferralName | int,
    *,
    caller: str,
    order: DischargeOrder,
    at: datetime,
) -> DischargeView:
    """Run workflow 3 for a referral the caller's organization owns (ReferralNotFound else),
    named by its row key (the tracker) or as an API caller names it."""
    context = tenancy.settings.mapping_context()
    scope = await tenancy.scope(caller)
    owned_by = scope.organizations
    referral_key, organization = await asyncio.to_thread(
        _owned_referral, engine, referral, owned_by, context
    )
    next_provider = await tenancy.reference(order.next_provider)
    if next_provider is None:
        message = f"no Organization {order.next_provider!r} is registered on the FHIR server"
        problem = Problem("next_provider", message, "not-found")
        raise InvalidInputError.from_problems("the discharge", [problem])
    aftercare = AftercarePlan(
        next_provider, order.next_provider_name, order.relapse_prevention,
        order.medication_follow_up, order.support_groups, order.crisis_line,
    )  # fmt: skip
    await workflow.discharge(
        engine, fhir, referral_key, iop_organization=organization,
        discharged_at=order.discharged_at, aftercare=aftercare, at=at,
        course_summary=order.course_summary, context=context,
    )  # fmt: skip
    view = await asyncio.to_thread(_in_session, engine, get_discharge, scope, referral_key)
    assert view is not None  # just stored, in scope
    return view


def _owned_referral(
    engine: Engine, referral: ReferralName | int, owned_by: tuple[str, ...],
    context: MappingContext,
) -> tuple[int, str]:  # fmt: skip
    """The referral's row key and IOP organization, after settling what delivery told about
    its server ids."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(models.Referral, ReferralLink)
            .join(ReferralLink, ReferralLink.referral_id == models.Referral.id)
            .where(named(referral), models.Referral.iop_organization.in_(owned_by or ("",)))
            .limit(2)
        ).all()
        found = repo.only_match(rows, str(referral))
        if found is None:
            raise ReferralNotFound(f"no referral {str(referral)!r} of your organization")
        settle_references(session, found[0], found[1], context)
        return found[0].id, str(found[0].iop_organization)


def _query() -> Select[models.DischargeRecord, str, str | None]:
    delivery = delivery_status(workflow.AGGREGATE_TYPE)
    return select(models.DischargeRecord, models.Referral.business_id,
                  delivery.label("delivery")).join(
        models.Referral, models.Referral.id == models.DischargeRecord.referral_id
    )  # fmt: skip


def _view(row: Row[models.DischargeRecord, str, str | None]) -> DischargeView:
    record, business_id, delivery = row
    task = literal_reference("Task", record.aftercare_task_id) if record.aftercare_task_id else None
    return DischargeView(
        business_id, record.referral_id, record.discharged_at, record.next_provider, task, None,
        None, record.acknowledged_at, delivery,
    )  # fmt: skip


def _in_session(
    engine: Engine,
    read: Callable[[Session, Scope, ReferralName | int], DischargeView | None],
    scope: Scope,
    referral: ReferralName | int,
) -> DischargeView | None:
    with session_scope(engine) as session:
        return read(session, scope, referral)


def _within(scope: Scope) -> list[ColumnElement[bool]]:
    """The IOP's staff read their referrals' discharges, an EHR system those handed to it."""
    return scope.where(
        iop=models.Referral.iop_organization, partner=models.DischargeRecord.next_provider
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
