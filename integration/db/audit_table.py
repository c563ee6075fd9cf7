"""Audit and Part 2 bookkeeping tables (migration 0005).

- ``audit_event``: one row per disclosure, state change and denied access: who (principal
  subject, role, organization), what (action, resource type and business identifier), whose
  records (organization), outcome, when, and a reason code. There is deliberately no free-text
  column: an audit trail that could hold a name, a birth date or a note would itself be a PHI
  store everyone with audit access can read (``integration.privacy.audit`` checks every value).
- ``referral_privacy``: whether a referral's records are SUD-derived (42 CFR Part 2), decided
  where its package is known, so outbound paths that only have the store label correctly.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from integration.db.base import Base, BigId, UtcDateTime, utcnow
from integration.db.models import one_of

# AuditEvent.outcome meanings (R4 audit-event-outcome): the action happened, or was refused.
AUDIT_OUTCOMES = ("success", "denied", "failure")


class AuditEventRecord(Base):
    """Who did what to which record, with what outcome and why (codes and ids only)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        CheckConstraint(one_of("outcome", AUDIT_OUTCOMES), name="outcome"),
        # the admin's query: one organization's events, newest first
        Index("ix_audit_event_organization_recorded", "organization", "recorded_at"),
        # "everything that happened to this record"
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    agent_subject: Mapped[str] = mapped_column(String(255))
    agent_role: Mapped[str | None] = mapped_column(String(32))
    agent_organization: Mapped[str | None] = mapped_column(String(128), index=True)
    organization: Mapped[str | None] = mapped_column(String(128))  # whose records
    entity_type: Mapped[str] = mapped_column(String(64))  # a FHIR resource type, or http-route
    entity_system: Mapped[str | None] = mapped_column(String(255))  # Identifier.system
    entity_id: Mapped[str] = mapped_column(String(255))  # the business identifier (or route)
    recipient: Mapped[str | None] = mapped_column(String(255))  # disclosures: Organization ref
    purpose: Mapped[str | None] = mapped_column(String(16))  # v3-ActReason PurposeOfUse
    consent: Mapped[str | None] = mapped_column(String(255))  # the Consent that permitted it


class ReferralPrivacy(Base):
    """Whether a referral's package held an SUD diagnosis (its records are Part 2 records)."""

    __tablename__ = "referral_privacy"

    referral_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("referral.id", ondelete="CASCADE"), primary_key=True
    )
    part2: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
