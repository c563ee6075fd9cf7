"""The case managers' tracker list (DESIGN.md, "What the case manager sees"), and whose it is.

One page of handoffs (``integration.tracker.handoffs``: status, age, the HEDIS FUI 7- and 30-day
follow-up windows) and how many handoffs carry each follow-up flag, in two queries whatever the
page size (no N+1); one handoff in detail is ``integration.tracker.detail``.

Organization scoping happens here, in the queries. ``referral.iop_organization`` holds what the
inbound sync saw as the Task's owner, the IOP's Organization reference on the FHIR server
(``Organization/123``), while a caller's organization is an identifier value (``IOP-DEMO-ORG``):
the caller's ``Scope`` (``integration.tenancy``) holds both.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    ScalarSelect,
    Select,
    String,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from integration.db import models
from integration.tenancy.scope import Scope
from integration.tracker import handoffs
from integration.tracker.handoffs import HandoffView
from mappers import follow_up
from mappers.errors import InvalidInputError, Problem

log = logging.getLogger(__name__)

PAGE_SIZE = 50
# Task statuses of a handoff still in play: all but declined, cancelled, failed and entered in
# error. "completed" stays: the first session was attended and the client is in the IOP.
ACTIVE_STATUSES = (
    "requested",
    "received",
    "accepted",
    "ready",
    "in-progress",
    "on-hold",
    "completed",
)
STATUS_FILTERS = ("active", "all", *models.TASK_STATUSES)
BROAD = ("active", "all")  # filters most handoffs pass


class Flag(StrEnum):
    """A follow-up flag the list can be narrowed to."""

    OVERDUE_7 = "overdue-7"  # no attended IOP session within 7 days of residential discharge
    OVERDUE_30 = "overdue-30"  # ... nor within 30 days
    OPEN_7 = "open-7"  # no session yet, the 7-day window still open: the ones to call today


@dataclass(frozen=True, slots=True)
class FlagCounts:
    """How many matching handoffs stand where against each follow-up window."""

    total: int
    overdue_7: int
    overdue_30: int
    open_7: int
    met_7: int
    met_30: int
    no_discharge_date: int

    def of(self, flag: Flag | None) -> int:
        """The number of rows the list pages through when narrowed to ``flag``."""
        by_flag = {
            Flag.OVERDUE_7: self.overdue_7,
            Flag.OVERDUE_30: self.overdue_30,
            Flag.OPEN_7: self.open_7,
        }
        return self.total if flag is None else by_flag[flag]


@dataclass(frozen=True, slots=True)
class HandoffPage:
    """One page of the tracker's list, and the flag counts over every matching handoff."""

    rows: tuple[HandoffView, ...]
    counts: FlagCounts
    status: str
    flag: Flag | None
    page: int
    pages: int
    matching: int


# --- Scoping: the caller's organization as the store spells it --------------------------------


# --- The list -----------------------------------------------------------------------------------


def handoff_page(
    session: Session,
    *,
    scope: Scope,
    today: date,
    status: str = "active",
    flag: str | None = None,
    page: int = 1,
    page_size: int = PAGE_SIZE,
) -> HandoffPage:
    """One page of the organization's handoffs, newest received first, with the flag counts."""
    chosen = _parse_filters(status, flag)
    organizations = scope.organizations  # the tracker is the IOP's: what its organization owns
    counts = flag_counts(session, organizations=organizations, status=status, today=today)
    matching = counts.of(chosen)
    pages = max(1, -(-matching // page_size))
    page = min(max(page, 1), pages)
    offset = (page - 1) * page_size
    params = query_params(organizations, status, today, limit=page_size, offset=offset)
    rows = session.execute(list_statement(status, chosen), params).all()
    views = tuple(handoffs.handoff_view(row, today) for row in rows)
    return HandoffPage(views, counts, status, chosen, page, pages, matching)


def flag_counts(
    session: Session, *, organizations: Sequence[str], status: str, today: date
) -> FlagCounts:
    """Every count of the list's header in one query of index ranges (the paging total too).

    A handoff with a discharge date is met, open or overdue against each window, so the
    overdue ones (most of an old store) are what the others leave: only the met ones and the
    recent discharges still open are counted row by row."""
    params = query_params(organizations, status, today)
    total, unknown, met_7, met_30, open_7, open_30 = (
        int(value) for value in session.execute(counts_statement(status), params).one()
    )
    return FlagCounts(
        total=total,
        overdue_7=total - unknown - met_7 - open_7,
        overdue_30=total - unknown - met_30 - open_30,
        open_7=open_7,
        met_7=met_7,
        met_30=met_30,
        no_discharge_date=unknown,
    )


def query_params(
    organizations: Sequence[str],
    status: str,
    today: date,
    *,
    limit: int = PAGE_SIZE,
    offset: int = 0,
) -> dict[str, Any]:
    """The values of the list's and the counts' bound parameters."""
    return {
        "organizations": list(organizations), "status": status,
        "cutoff_7": today - timedelta(days=7), "cutoff_30": today - timedelta(days=30),
        "limit": limit, "offset": offset,
    }  # fmt: skip


# The statements are built once per filter and take every value as a bound parameter: building
# SQLAlchemy expressions per request cost more than running them on a small store.


@functools.cache
def list_statement(
    status: str, flag: Flag | None
) -> Select[models.Referral, date | None, date | None, int | None]:
    """One page of handoffs' query (Referral, intake dates, no-show count) in the list's scope.

    The page's ids are chosen first and only their rows are read and their no-shows counted,
    so a deep page does not count the no-shows of every row it skips. For the broad filters
    most rows match, and the newest-first index on received_at finds a page fastest; with the
    organization/status index SQLite would fetch and sort every match first. A narrow status
    filter keeps that index."""
    referral = models.Referral
    ids = select(referral.id).where(*_scope(status, unindexed=status in BROAD))
    if flag is not None:
        days, state = _FLAG_WINDOWS[flag]
        ids = ids.where(_window(days)[state])
    ids = (
        ids.order_by(referral.received_at.desc(), referral.id.desc())
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    return handoffs.handoff_query(None).where(referral.id.in_(ids.scalar_subquery()))


@functools.cache
def counts_statement(status: str) -> Select[int, int, int, int, int, int]:
    """The counts behind :func:`flag_counts`: total, no discharge date, met 7, met 30, open 7,
    open 30, each a scalar subquery that SQLite and PostgreSQL answer from the
    organization/status/follow-up index alone (``referral.follow_up_within``, no join)."""
    referral = models.Referral
    within, discharged = referral.follow_up_within, referral.residential_discharge_date
    scope = _scope(status, unindexed=False, counting=True)

    def count(*where: ColumnElement[bool]) -> ScalarSelect[int]:
        return select(func.count()).select_from(referral).where(*scope, *where).scalar_subquery()

    def still_open(days: int) -> ColumnElement[int]:
        # not met yet (NULL, or only a longer window) and the deadline not passed; one range
        # per stored value, as an OR would make SQLite scan the organization's whole range
        cutoff = discharged >= bindparam(f"cutoff_{days}", type_=Date)
        opened: ColumnElement[int] = count(within.is_(None), cutoff)
        for longer in (w for w in follow_up.FOLLOW_UP_WINDOWS if w > days):
            opened = opened + count(within == longer, cutoff)
        return opened

    def met(days: int) -> ScalarSelect[int]:
        return count(within.in_([w for w in follow_up.FOLLOW_UP_WINDOWS if w <= days]))

    unknown = count(within.is_(None), discharged.is_(None))  # the CHECK: no window met either
    return select(count(), unknown, met(7), met(30), still_open(7), still_open(30))


def _parse_filters(status: str, flag: str | None) -> Flag | None:
    problems = []
    if status not in STATUS_FILTERS:
        problems.append(Problem("status", f"{status!r} is not one of {', '.join(STATUS_FILTERS)}"))
    known = sorted(f.value for f in Flag)
    if flag and flag not in known:
        problems.append(Problem("flag", f"{flag!r} is not one of {', '.join(known)}"))
    if problems:
        raise InvalidInputError("the tracker cannot filter by that", problems=problems)
    return Flag(flag) if flag else None


_FLAG_WINDOWS = {
    Flag.OVERDUE_7: (7, "overdue"),
    Flag.OVERDUE_30: (30, "overdue"),
    Flag.OPEN_7: (7, "open"),
}


def _scope(status: str, *, unindexed: bool, counting: bool = False) -> list[ColumnElement[bool]]:
    """The organization's keys and the status filter; ``unindexed`` keeps SQLite from using
    the organization/status index for them. ``counting`` spells "all" as every Task status
    (the CHECK allows no other), so that the counts stay ranges of that index."""
    organization: ColumnElement[str] = models.Referral.iop_organization.expression
    task_status: ColumnElement[str] = models.Referral.status.expression
    if unindexed:
        organization, task_status = _Unindexed(organization), _Unindexed(task_status)
    clauses: list[ColumnElement[bool]] = [
        organization.in_(bindparam("organizations", expanding=True))
    ]
    if status == "active":
        clauses.append(task_status.in_(ACTIVE_STATUSES))
    elif status == "all" and counting:
        clauses.append(task_status.in_(models.TASK_STATUSES))
    elif status != "all":
        clauses.append(task_status == bindparam("status", type_=String))
    return clauses


class _Unindexed(FunctionElement[str]):
    """A column SQLite's planner may not use an index for: unary "+" (SQLite query planner,
    "Disqualifying WHERE clause terms using unary-+"); the plain column elsewhere."""

    type = String()
    name = "unindexed"
    inherit_cache = True


@compiles(_Unindexed, "sqlite")
def _unindexed_sqlite(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return f"+{compiler.process(column, **kw)}"


@compiles(_Unindexed)
def _unindexed(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return str(compiler.process(column, **kw))


def _window(days: int) -> Mapping[str, ColumnElement[bool]]:
    """met / overdue / open of one follow-up window in SQL: follow_up.window_state's rules, on
    the window the first attended session met as stored (``referral.follow_up_within``)."""
    discharged = models.Referral.residential_discharge_date
    within = models.Referral.follow_up_within
    not_met = or_(within.is_(None), within > days)
    # discharged before today minus the window: the deadline has passed (query_params)
    cutoff = bindparam(f"cutoff_{days}", type_=Date)
    return {
        "met": within <= days,
        "overdue": and_(discharged < cutoff, not_met),
        "open": and_(discharged >= cutoff, not_met),
    }
