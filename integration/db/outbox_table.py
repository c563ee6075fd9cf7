"""The outbox table: every outbound FHIR write, stored with the domain change that caused it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from integration.db.base import Base, BigId, JsonDocument, UtcDateTime, utcnow
from integration.db.models import one_of


class OutboxStatus(StrEnum):
    """pending -> in-flight -> delivered; or back to pending (retry), or dead (given up)."""

    PENDING = "pending"
    IN_FLIGHT = "in-flight"
    DELIVERED = "delivered"
    DEAD = "dead"


class OutboxMessage(Base):
    """One message to deliver to the FHIR server; ``payload`` is what is sent, as FHIR JSON."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        CheckConstraint(one_of("status", OutboxStatus), name="status"),
        # claiming scans "due" rows: pending by next_attempt_at, in-flight by lease end
        Index("ix_outbox_message_claim", "status", "next_attempt_at"),
        # per-aggregate ordering: "is an earlier message of this aggregate still unfinished?"
        Index("ix_outbox_message_aggregate", "aggregate_type", "aggregate_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    aggregate_type: Mapped[str] = mapped_column(String(64))
    aggregate_key: Mapped[str] = mapped_column(String(255))  # a referral's: its row key (0013)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # status code + HAPI code + error class only: server diagnostics may quote PHI
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
