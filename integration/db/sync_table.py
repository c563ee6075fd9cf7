"""The sync_record table: where each business identifier lives on the FHIR server."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from integration.db.base import Base, UtcDateTime


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
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
