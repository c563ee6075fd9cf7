"""What an EHR system or the IOP's staff read of a step-down referral: its status and the IOP's
response (decision, intake date, first session), one referral or a page of them.

Organization scoping is part of every query here, never a filter afterwards: an EHR system sees
the referrals its organization requested (``referral_link.requester``), the IOP's case managers
and admins the referrals owned by their organization (``referral.iop_organization``). Both are
given as every spelling the store may hold of that organization (identifier value and server
reference, ``integration.tenancy.organizations``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import REFERRAL_AGGREGATE, ReferralName, named
from integration.outbox import queue as outbox
from integration.referrals.package import landed_references
from integration.tenancy.scope import Scope
from mappers.fhir_reference import literal_reference
from mappers.referral_task import BUSINESS_STATUSES
from mappers.registry import MappingContext

MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class ReferralFilters:
    """List filters: Task status, the IOP program and the referrer (as the API shows them),
    and received between two days (inclusive, UTC)."""

    status: str | None = None
    program: str | None = None
    referrer: str | None = None
    received_from: date | None = None
    received_to: date | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        """The WHERE clauses of the filters given."""
        clauses: list[ColumnElement[bool]] = []
        if self.status is not None:
            clauses.append(models.Referral.status == self.status)
        if self.program is not None:
            clauses.append(models.Referral.iop_organization == self.program)
        if self.referrer is not None:
            clauses.append(ReferralLink.requester == self.referrer)
        if self.received_from is not None:
            clauses.append(models.Referral.received_at >= _midnight(self.received_from))
        if self.received_to is not None:
            end = _midnight(self.received_to + timedelta(days=1))
            clauses.append(models.Referral.received_at < end)
        return clauses


@dataclass(frozen=True, slots=True)
class ReferralView:
    """One referral as its referrer and the IOP see it."""

    id: str
    status: str
    business_status: str | None
    business_status_display: str | None
    status_reason: str | None
    decision: str | None
    decision_reason: str | None
    decided_at: datetime | None
    received_at: datetime
    residential_discharge_date: date | None
    intake_date: date | None
    first_session: date | None
    referrer: str | None
    program: str
    task: str | None
    submission: str | None  # outbox status of an API submission; None: read from the server
    problems: tuple[dict[str, Any], ...]
    losses: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ReferralPage:
    """One page of referrals and how many match in all."""

    items: tuple[ReferralView, ...]
    total: int
    page: int
    page_size: int


def get_referral(
    session: Session, scope: Scope, referral: ReferralName, context: MappingContext
) -> ReferralView | None:
    """The referral so named if the scope may see it (ReferralAmbiguous for a business id two
    senders use, the sender not named). Reads only: the worker stores where a submission
    landed when it settles the delivery; until then (or with a worker that does not), the
    Task's server id is read from its sync record."""
    rows = session.execute(_query().where(named(referral), *_within(scope)).limit(2)).all()
    row = repo.only_match(rows, str(referral))
    if row is None:
        return None
    view = _view(row)
    if view.task is None:
        landed = landed_references(session, row[0], row[1], context).task_server_id
        view = replace(view, task=literal_reference("Task", landed) if landed else None)
    return view


def list_referrals(
    session: Session, scope: Scope, filters: ReferralFilters, *, page: int, page_size: int
) -> ReferralPage:
    """One page of the scope's referrals matching ``filters``, newest received first."""
    where = [*_within(scope), *filters.clauses()]
    total = session.scalar(
        select(func.count(models.Referral.id))
        .join(ReferralLink, ReferralLink.referral_id == models.Referral.id)
        .where(*where)
    )
    query = (
        _query()
        .where(*where)
        .order_by(models.Referral.received_at.desc(), models.Referral.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    items = tuple(_view(row) for row in session.execute(query))
    return ReferralPage(items, int(total or 0), page, page_size)


def delivery_status(aggregate_type: str) -> Any:
    """Outbox status of the first transaction message of a referral's aggregate (keyed by its
    row key), as a subquery correlated with ``referral``."""
    return (
        select(OutboxMessage.status)
        .where(
            OutboxMessage.aggregate_type == aggregate_type,
            OutboxMessage.aggregate_key == cast(models.Referral.id, String),
            OutboxMessage.kind == str(outbox.MessageKind.TRANSACTION),
        )
        .order_by(OutboxMessage.id)
        .limit(1)
        .correlate_except(OutboxMessage)
        .scalar_subquery()
    )


def _query() -> Select[models.Referral, ReferralLink, date | None, date | None, str | None]:
    submission = delivery_status(REFERRAL_AGGREGATE)
    return (
        select(models.Referral, ReferralLink, models.Intake.scheduled_date,
               models.Intake.first_attended_date, submission.label("submission"))
        .join(ReferralLink, ReferralLink.referral_id == models.Referral.id)
        .outerjoin(models.Intake, models.Intake.referral_id == models.Referral.id)
    )  # fmt: skip


def _view(row: Sequence[Any]) -> ReferralView:
    referral, link, scheduled, attended, submission = row
    milestone = BUSINESS_STATUSES.get(link.business_status or "")
    return ReferralView(
        id=referral.business_id,
        status=referral.status,
        business_status=link.business_status,
        business_status_display=milestone.display if milestone else None,
        status_reason=link.status_reason,
        decision=referral.decision,
        decision_reason=referral.decision_reason,
        decided_at=referral.decided_at,
        received_at=referral.received_at,
        residential_discharge_date=referral.residential_discharge_date,
        intake_date=scheduled,
        first_session=attended,
        referrer=link.requester,
        program=referral.iop_organization,
        task=literal_reference("Task", task_id) if (task_id := referral.task_server_id) else None,
        submission=submission,
        problems=tuple(link.problems or ()),
        losses=tuple(link.losses or ()),
    )


def _within(scope: Scope) -> list[ColumnElement[bool]]:
    """The IOP's staff read what their organization owns, an EHR system what it requested."""
    return scope.where(iop=models.Referral.iop_organization, partner=ReferralLink.requester)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
