"""The store on SQLite: sync records are upserted by business identifier, never duplicated."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from integration.store import SyncRecord, create_db_engine, record_sync, session_scope


def test_record_sync__second_sync_updates_the_same_row(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'nested' / 's.db'}")
    for version, outcome in (("1", "created"), ("2", "matched")):
        with session_scope(engine) as session:
            record_sync(
                session,
                resource_type="Patient",
                identifier=("sys", "MRN-1"),
                server_id="p1",
                version_id=version,
                outcome=outcome,
                now=datetime(2026, 1, 1, tzinfo=UTC),
            )
    with session_scope(engine) as session:
        rows = session.scalars(select(SyncRecord)).all()
        assert [(r.version_id, r.last_outcome, r.attempts) for r in rows] == [("2", "matched", 2)]


def test_session_scope__rolls_back_everything_on_error(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        record_sync(
            session,
            resource_type="Patient",
            identifier=("sys", "MRN-2"),
            server_id="p2",
            version_id="1",
            outcome="created",
        )
        raise RuntimeError("fails after the flush")
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(SyncRecord)) == 0
