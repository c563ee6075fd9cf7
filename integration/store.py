"""Persistence: SQLAlchemy 2 typed models; SQLite embedded by default, PostgreSQL supported.

Repositories flush and never commit: the caller owns the transaction (``session_scope``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, Engine, Integer, String, UniqueConstraint, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    """Declarative base of every iop-bridge table."""


class SyncRecord(Base):
    """Where one domain record lives on the FHIR server, and how its last sync went."""

    __tablename__ = "sync_record"
    __table_args__ = (UniqueConstraint("resource_type", "identifier_system", "identifier_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    identifier_system: Mapped[str] = mapped_column(String(255))
    identifier_value: Mapped[str] = mapped_column(String(255))
    server_id: Mapped[str | None] = mapped_column(String(64))
    version_id: Mapped[str | None] = mapped_column(String(64))
    last_outcome: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def create_db_engine(database_url: str) -> Engine:
    """An engine for ``database_url``; creates the SQLite file's folder when needed."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        yield session


def record_sync(
    session: Session,
    *,
    resource_type: str,
    identifier: tuple[str, str],
    server_id: str,
    version_id: str | None,
    outcome: str,
    now: datetime | None = None,
) -> SyncRecord:
    """Insert or update the sync record of one business identifier (flushes, never commits)."""
    system, value = identifier
    record = session.scalar(
        select(SyncRecord).where(
            SyncRecord.resource_type == resource_type,
            SyncRecord.identifier_system == system,
            SyncRecord.identifier_value == value,
        )
    )
    if record is None:
        record = SyncRecord(
            resource_type=resource_type,
            identifier_system=system,
            identifier_value=value,
            attempts=0,
        )
        session.add(record)
    record.server_id = server_id
    record.version_id = version_id
    record.last_outcome = outcome
    record.attempts = (record.attempts or 0) + 1
    record.updated_at = now or datetime.now(UTC)
    session.flush()
    return record


def list_sync_records(session: Session, *, limit: int = 100) -> list[SyncRecord]:
    """The most recently synced records first."""
    query = select(SyncRecord).order_by(SyncRecord.updated_at.desc()).limit(limit)
    return list(session.scalars(query))
