"""Inbound sync tables: seen resource versions, poll cursors, and each referral's FHIR side.

- ``inbound_event``: one row per (type, id, versionId, lastUpdated) seen on the FHIR server, by
  rest-hook or by poll; the unique key is what makes a late, repeated or doubly delivered
  notification a no-op.
- ``sync_cursor``: the high-water mark of a ``_lastUpdated`` poll, in the server's clock
  (meta.lastUpdated), never ours (fhir-domain-reference.md 5.4).
- ``referral_link``: what a referral's Task says that the ``referral`` row has no column for (the
  Task's business identifier, the references of its package, its BSeR milestone) and what of the
  package could not be mapped, so the case manager sees why a referral must be declined.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from integration.db.base import Base, BigId, JsonDocument, UtcDateTime, utcnow
from integration.db.models import one_of

INBOUND_VIA = ("subscription", "poll")


class InboundEvent(Base):
    """One version of one resource that iop-bridge has taken in (and handled) once."""

    __tablename__ = "inbound_event"
    __table_args__ = (
        # the stamp (meta.lastUpdated) keeps a recycled id's version 1 apart from the old one
        UniqueConstraint(
            "resource_type",
            "resource_id",
            "version_id",
            "last_updated",
            name="uq_inbound_event_version_stamp",
        ),
        CheckConstraint(one_of("via", INBOUND_VIA), name="via"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str] = mapped_column(String(64))
    # meta.lastUpdated as the server wrote it; "" for rows recorded before migration 0008
    last_updated: Mapped[str] = mapped_column(String(40), server_default="")
    via: Mapped[str] = mapped_column(String(16))
    # mappers.task_trust.Refusal: why this version was ignored; None when it was taken in
    refused: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SyncCursor(Base):
    """How far one poll has read: the newest meta.lastUpdated it has seen (server time)."""

    __tablename__ = "sync_cursor"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    high_water: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class ReferralLink(Base):
    """The FHIR side of one referral: its Task's identifier and references, and mapping report."""

    __tablename__ = "referral_link"
    # The sender's Task identifier, per sender (requester): two referrers writing in a shared
    # identifier system (one without configured namespaces) do not collide here.
    __table_args__ = (
        UniqueConstraint(
            "task_identifier_system",
            "task_identifier_value",
            "requester",
            name="uq_referral_link_task_identifier_requester",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), unique=True)
    # The Task's PLAC identifier: what every write back to the Task is keyed on.
    task_identifier_system: Mapped[str] = mapped_column(String(255))
    task_identifier_value: Mapped[str] = mapped_column(String(255))
    service_request: Mapped[str | None] = mapped_column(String(255))  # Task.focus
    patient: Mapped[str | None] = mapped_column(String(255))  # Task.for
    requester: Mapped[str | None] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(255))
    authored_on: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_modified: Mapped[datetime | None] = mapped_column(UtcDateTime())
    business_status: Mapped[str | None] = mapped_column(String(16))  # BSeR milestone code
    status_reason: Mapped[str | None] = mapped_column(Text)
    resulting_activity: Mapped[str | None] = mapped_column(String(255))  # Encounter reference
    # [{"path", "message"}] of everything in the package that failed to map: non-empty means
    # the referral can only be declined (with these as the reason).
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument, default=list)
    # [{"path", "reason"}]: elements received but not kept (mappers' loss reports)
    losses: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument, default=list)
    # The case manager's view of the package (mappers.referral_package.summary): diagnoses with
    # their kinds, recomputed and sender totals, discharge medications, consent, preferences,
    # labels.
    package_summary: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument, nullable=True)
