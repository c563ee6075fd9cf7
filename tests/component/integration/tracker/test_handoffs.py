"""The case manager's handoff view: age and the HEDIS FUI 7- and 30-day follow-up windows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from integration.db import repositories as repo
from integration.db.models import Attendance
from integration.db.store import create_db_engine, session_scope
from integration.tracker.handoffs import count_handoffs, list_handoffs
from mappers.follow_up import WindowState, window_state

DISCHARGED = date(2026, 11, 2)


@pytest.mark.parametrize(
    ("first_attended", "today", "days", "expected"),
    [
        (date(2026, 11, 9), date(2026, 11, 20), 7, WindowState.MET),  # day 7 still counts
        (date(2026, 11, 10), date(2026, 11, 20), 7, WindowState.OVERDUE),
        (None, date(2026, 11, 8), 7, WindowState.OPEN),
        (None, date(2026, 11, 10), 7, WindowState.OVERDUE),
        (date(2026, 11, 10), date(2026, 11, 20), 30, WindowState.MET),
        (None, date(2026, 12, 1), 30, WindowState.OPEN),
        (None, date(2026, 12, 3), 30, WindowState.OVERDUE),
    ],
)
def test_window_state__met_open_overdue(
    first_attended: date | None, today: date, days: int, expected: WindowState
) -> None:
    assert window_state(DISCHARGED, first_attended, days, today) is expected


def test_window_state__unknown_without_a_discharge_date() -> None:
    assert window_state(None, None, 7, date(2026, 11, 20)) is WindowState.UNKNOWN


def _referral(session, business_id: str, received: datetime):  # type: ignore[no-untyped-def]
    return repo.add_referral(
        session,
        business_id=business_id,
        client_mrn=f"MRN-{business_id}",
        iop_organization="Organization/iop",
        residential_discharge_date=DISCHARGED,
        received_at=received,
    )


def test_list_handoffs__flags_counts_and_order(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'h.db'}")
    with session_scope(engine) as session:
        on_time = _referral(session, "REF-A", datetime(2026, 11, 1, tzinfo=UTC))
        late = _referral(session, "REF-B", datetime(2026, 11, 2, tzinfo=UTC))
        _referral(session, "REF-C", datetime(2026, 11, 3, tzinfo=UTC))
        repo.record_session(
            session,
            on_time,
            business_id="S1",
            attendance=Attendance.ATTENDED,
            starts_at=datetime(2026, 11, 5, 18, tzinfo=UTC),
        )
        repo.record_session(
            session,
            late,
            business_id="S2",
            attendance=Attendance.NO_SHOW,
            starts_at=datetime(2026, 11, 5, 18, tzinfo=UTC),
        )
        repo.record_session(
            session,
            late,
            business_id="S3",
            attendance=Attendance.ATTENDED,
            starts_at=datetime(2026, 11, 20, 18, tzinfo=UTC),
        )
    with session_scope(engine) as session:
        views = list_handoffs(session, today=date(2026, 11, 23))
        total = count_handoffs(session)
    assert [v.business_id for v in views] == ["REF-C", "REF-B", "REF-A"]  # newest first
    by_id = {v.business_id: v for v in views}
    assert (by_id["REF-A"].follow_up_7, by_id["REF-A"].follow_up_30) == ("met", "met")
    assert (by_id["REF-B"].follow_up_7, by_id["REF-B"].follow_up_30) == ("overdue", "met")
    assert (by_id["REF-C"].follow_up_7, by_id["REF-C"].follow_up_30) == ("overdue", "open")
    assert by_id["REF-B"].no_shows == 1
    assert by_id["REF-A"].first_attended == date(2026, 11, 5)
    assert by_id["REF-A"].days_since_discharge == 21
    assert total == 3


def test_list_handoffs__pages_and_filters_by_status(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'h.db'}")
    with session_scope(engine) as session:
        for n in range(5):
            _referral(session, f"REF-{n}", datetime(2026, 11, 1 + n, tzinfo=UTC))
        repo.get_referral(session, "REF-0").status = "accepted"  # type: ignore[union-attr]
    with session_scope(engine) as session:
        page = list_handoffs(session, today=date(2026, 11, 23), limit=2, offset=2)
        accepted = list_handoffs(session, today=date(2026, 11, 23), status="accepted")
    assert [v.business_id for v in page] == ["REF-2", "REF-1"]
    assert [v.business_id for v in accepted] == ["REF-0"]
