"""The tracker's browser sessions and its form submissions (migration 0007).

- ``tracker_session``: one row per signed-in browser. The cookie carries a random token; only its
  SHA-256 is stored (a copy of the database cannot be replayed as a cookie). The row holds who
  signed in (subject, role, organization), until when, the per-session CSRF token every form
  POST must echo, and, for an API-key sign-in, the key's SHA-256 (the form settings keep it in),
  so a key removed from the settings ends its sessions. Logout sets ``revoked_at``.
- ``tracker_submission``: the one-time id of each rendered action form, stored in the same
  transaction as the action it caused: a second submit of the same form (a double click, a
  reload of the POST) finds its row and acts no more.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from integration.db.base import Base, UtcDateTime, utcnow


class TrackerSession(Base):
    """A browser signed in to the tracker: who, until when, its CSRF token."""

    __tablename__ = "tracker_session"
    __table_args__ = (Index("ix_tracker_session_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    subject: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    organization: Mapped[str] = mapped_column(String(128))
    api_key_hash: Mapped[str | None] = mapped_column(String(64))  # API-key sign-ins only
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TrackerSubmission(Base):
    """One submitted action form (its one-time id), and what it did."""

    __tablename__ = "tracker_submission"

    form_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
