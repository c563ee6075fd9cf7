"""The tracker's flags and counts read ``referral.follow_up_within`` (migration 0006); they must
say exactly what a plain recomputation from the recorded sessions says, on each backend, for
every case the FUI rules distinguish, whether the column was kept by ``record_session`` or
backfilled by the migration."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from alembic import command
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.migrate import alembic_config
from integration.db.store import session_scope
from integration.tenancy.scope import Scope
from integration.tracker.views import (
    ACTIVE_STATUSES,
    Flag,
    FlagCounts,
    flag_counts,
    handoff_page,
)
from mappers.follow_up import FOLLOW_UP_WINDOWS, WindowState, window_state
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

TODAY = date(2026, 11, 23)
ORG, OTHER = "IOP-FUI", "IOP-ELSEWHERE"
# residential discharge relative to TODAY: long ago, each side of both deadlines, today, ahead
DISCHARGE_DAYS: tuple[int | None, ...] = (None, -60, -31, -30, -29, -8, -7, -6, -1, 0, 3)
# what was recorded, as (days after discharge, attendance) per session, in recording order
SESSIONS: dict[str, tuple[tuple[int, models.Attendance], ...]] = {
    "none": (),
    "no-show only": ((2, models.Attendance.NO_SHOW), (5, models.Attendance.NO_SHOW)),
    "cancelled only": ((4, models.Attendance.CANCELLED),),
    "day 0": ((0, models.Attendance.ATTENDED),),
    "day 7": ((7, models.Attendance.ATTENDED),),
    "day 8": ((8, models.Attendance.ATTENDED),),
    "day 30": ((30, models.Attendance.ATTENDED),),
    "day 31": ((31, models.Attendance.ATTENDED),),
    "before discharge": ((-2, models.Attendance.ATTENDED),),
    "no-show then day 12": ((3, models.Attendance.NO_SHOW), (12, models.Attendance.ATTENDED)),
    # an earlier session recorded after a later one: the first attended is the earliest
    "day 35 then day 6": ((35, models.Attendance.ATTENDED), (6, models.Attendance.ATTENDED)),
    "day 20 then day 40": ((20, models.Attendance.ATTENDED), (40, models.Attendance.ATTENDED)),
}
STATUSES = ("requested", "accepted", "in-progress", "completed", "rejected", "cancelled")


@dataclass(frozen=True, slots=True)
class Case:
    """One generated handoff: where it belongs and what happened."""

    business_id: str
    organization: str
    status: str
    discharged: date | None
    sessions: tuple[tuple[int, models.Attendance], ...]


def population() -> list[Case]:
    """Every discharge offset x session history x status, and a few of another organization."""
    cases = []
    combos = itertools.product(DISCHARGE_DAYS, SESSIONS.items(), STATUSES)
    for n, (offset, (_, sessions), status) in enumerate(combos):
        discharged = None if offset is None else TODAY + timedelta(days=offset)
        organization = OTHER if n % 17 == 0 else ORG
        cases.append(Case(f"SD-FUI-{n:04d}", organization, status, discharged, sessions))
    return cases


def _at(discharged: date | None, day: int) -> datetime:
    # without a discharge date a session still happens; date it from TODAY
    return datetime.combine((discharged or TODAY) + timedelta(days=day), time(17), tzinfo=UTC)


def _store(session: Session, cases: Iterable[Case]) -> None:
    """Through the write path the services use (repositories.record_session)."""
    for n, case in enumerate(cases):
        referral = repo.add_referral(
            session,
            business_id=case.business_id,
            status=case.status,
            client_mrn=f"MRN-{n}",
            iop_organization=case.organization,
            residential_discharge_date=case.discharged,
            received_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
        )
        for k, (day, attendance) in enumerate(case.sessions):
            repo.record_session(
                session,
                referral,
                business_id=f"{case.business_id}-S{k}",
                starts_at=_at(case.discharged, day),
                attendance=attendance,
            )


# --- the straightforward recomputation: sessions as recorded, follow_up.window_state ----------


def _first_attended(session: Session, referral_key: int) -> date | None:
    starts = session.scalars(
        select(models.SessionRecord.starts_at).where(
            models.SessionRecord.referral_id == referral_key,
            models.SessionRecord.attendance == models.Attendance.ATTENDED,
        )
    ).all()
    return min(starts).date() if starts else None


def recomputed(session: Session, status: str) -> dict[str, tuple[WindowState, WindowState]]:
    """Each in-scope handoff's 7- and 30-day states, from its sessions, row by row."""
    states = {}
    for referral in session.scalars(select(models.Referral)):
        in_status = status == "all" or (
            referral.status in ACTIVE_STATUSES if status == "active" else referral.status == status
        )
        if referral.iop_organization != ORG or not in_status:
            continue
        attended = _first_attended(session, referral.id)
        discharged = referral.residential_discharge_date
        states[referral.business_id] = (
            window_state(discharged, attended, 7, TODAY),
            window_state(discharged, attended, 30, TODAY),
        )
    return states


def expected_counts(states: dict[str, tuple[WindowState, WindowState]]) -> FlagCounts:
    """What the header must show for those states."""
    seven = Counter(s7 for s7, _ in states.values())
    thirty = Counter(s30 for _, s30 in states.values())
    return FlagCounts(
        total=len(states),
        overdue_7=seven[WindowState.OVERDUE],
        overdue_30=thirty[WindowState.OVERDUE],
        open_7=seven[WindowState.OPEN],
        met_7=seven[WindowState.MET],
        met_30=thirty[WindowState.MET],
        no_discharge_date=seven[WindowState.UNKNOWN],
    )


FILTERS = ("active", "all", "rejected", "cancelled", "completed")
FLAG_STATES = {
    Flag.OVERDUE_7: (0, WindowState.OVERDUE),
    Flag.OVERDUE_30: (1, WindowState.OVERDUE),
    Flag.OPEN_7: (0, WindowState.OPEN),
}


def assert_tracker_agrees(store: Engine) -> None:
    """Counts, row flags and each flag's list equal the recomputation, for each filter."""
    with session_scope(store) as session:
        for status in FILTERS:
            states = recomputed(session, status)
            counts = flag_counts(session, organizations=[ORG], status=status, today=TODAY)
            assert counts == expected_counts(states), status
            page = handoff_page(
                session, scope=Scope((ORG,)), today=TODAY, status=status, page_size=1000
            )
            shown = {v.business_id: (v.follow_up_7, v.follow_up_30) for v in page.rows}
            assert shown == states, status
            for flag, (window, state) in FLAG_STATES.items():
                listed = handoff_page(
                    session,
                    scope=Scope((ORG,)),
                    today=TODAY,
                    status=status,
                    flag=flag.value,
                    page_size=1000,
                )
                wanted = {b for b, windows in states.items() if windows[window] is state}
                assert {v.business_id for v in listed.rows} == wanted, (status, flag)
                assert listed.matching == len(wanted), (status, flag)


def test_population__covers_every_state_of_both_windows(engine: Engine) -> None:  # noqa: F811
    with session_scope(engine) as session:
        _store(session, population())
    with session_scope(engine) as session:
        states = recomputed(session, "all")
    assert {s7 for s7, _ in states.values()} == set(WindowState)
    assert {s30 for _, s30 in states.values()} == set(WindowState)
    assert FOLLOW_UP_WINDOWS == (7, 30)  # the column's CHECK and migration 0006 assume these


def test_tracker__counts_and_flags_equal_a_recomputation_from_the_sessions(
    engine: Engine,  # noqa: F811
) -> None:
    with session_scope(engine) as session:
        _store(session, population())
    assert_tracker_agrees(engine)


def test_record_session__keeps_the_stored_window_as_sessions_arrive(
    engine: Engine,  # noqa: F811
) -> None:
    discharged = TODAY - timedelta(days=40)
    steps = (
        (models.Attendance.NO_SHOW, 3, None),
        (models.Attendance.ATTENDED, 31, None),
        (models.Attendance.ATTENDED, 9, 30),
        (models.Attendance.ATTENDED, 15, 30),  # later than the first: no change
        (models.Attendance.ATTENDED, 7, 7),
    )
    with session_scope(engine) as session:
        referral = repo.add_referral(
            session,
            business_id="SD-STEPS",
            client_mrn="MRN-S",
            iop_organization=ORG,
            residential_discharge_date=discharged,
            received_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        assert referral.follow_up_within is None
        for k, (attendance, day, expected) in enumerate(steps):
            repo.record_session(
                session,
                referral,
                business_id=f"SD-STEPS-{k}",
                starts_at=_at(discharged, day),
                attendance=attendance,
            )
            assert referral.follow_up_within == expected, (attendance, day)


def test_migration_0006__backfills_what_record_session_would_have_stored(
    empty_db_url: str,  # noqa: F811
) -> None:
    """Rows written before 0006 (intake.first_attended_date only) count the same after it."""
    store = create_engine(empty_db_url)
    try:
        with store.begin() as connection:
            command.upgrade(alembic_config(connection), "0005_audit")
        _store_before_0006(store, population())
        with store.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        assert_tracker_agrees(store)
    finally:
        store.dispose()


def _store_before_0006(store: Engine, cases: list[Case]) -> None:
    """The rows as the 0005 schema held them: no follow_up_within column yet."""
    created = datetime(2026, 1, 1, tzinfo=UTC)
    referrals, intakes, sessions = [], [], []
    for n, case in enumerate(cases, start=1):
        referrals.append({
            "id": n, "business_id": case.business_id, "status": case.status,
            "client_mrn": f"MRN-{n}", "iop_organization": case.organization,
            "residential_discharge_date": case.discharged,
            "received_at": created + timedelta(minutes=n), "created_at": created,
            "updated_at": created,
        })  # fmt: skip
        attended = [
            _at(case.discharged, day).date()
            for day, attendance in case.sessions
            if attendance is models.Attendance.ATTENDED
        ]
        intakes.append({"id": n, "referral_id": n, "created_at": created, "updated_at": created,
                        "first_attended_date": min(attended) if attended else None})  # fmt: skip
        sessions += [
            {"business_id": f"{case.business_id}-S{k}", "referral_id": n, "intake_id": n,
             "starts_at": _at(case.discharged, day), "attendance": attendance.value,
             "created_at": created, "updated_at": created}
            for k, (day, attendance) in enumerate(case.sessions)
        ]  # fmt: skip
    # only the keys given are inserted, so the 0005 table (no follow_up_within) takes them
    with store.begin() as connection:
        for table, rows in (
            (models.Referral.__table__, referrals),
            (models.Intake.__table__, intakes),
            (models.SessionRecord.__table__, sessions),
        ):
            connection.execute(insert(table), rows)
