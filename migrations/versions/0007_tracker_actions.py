"""Tracker actions (issue 17): browser sessions with a CSRF token, one-time form ids, and the
client's name, birth date and preferred language on the referral for the tracker's pages.

Revision ID: 0007_tracker_actions
Revises: 0006_follow_up_within
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_tracker_actions"
down_revision: str | Sequence[str] | None = "0006_follow_up_within"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Two tables; nullable columns for the client (existing referrals show none) and for the
    intake's time and delivery."""
    op.create_table(
        "tracker_session",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("api_key_hash", sa.String(64), nullable=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_tracker_session")),
    )
    op.create_index("ix_tracker_session_expires_at", "tracker_session", ["expires_at"])
    op.create_table(
        "tracker_submission",
        sa.Column("form_id", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"],
            name=op.f("fk_tracker_submission_referral_id_referral"),
        ),
        sa.PrimaryKeyConstraint("form_id", name=op.f("pk_tracker_submission")),
    )  # fmt: skip
    op.create_index(
        op.f("ix_tracker_submission_referral_id"), "tracker_submission", ["referral_id"]
    )
    with op.batch_alter_table("referral") as batch:
        batch.add_column(sa.Column("client_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("client_birth_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("client_language", sa.String(64), nullable=True))
    with op.batch_alter_table("intake") as batch:
        batch.add_column(sa.Column("scheduled_time", sa.Time(), nullable=True))
        batch.add_column(sa.Column("scheduled_delivery", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop what upgrade added."""
    with op.batch_alter_table("intake") as batch:
        batch.drop_column("scheduled_delivery")
        batch.drop_column("scheduled_time")
    with op.batch_alter_table("referral") as batch:
        batch.drop_column("client_language")
        batch.drop_column("client_birth_date")
        batch.drop_column("client_name")
    op.drop_index(op.f("ix_tracker_submission_referral_id"), table_name="tracker_submission")
    op.drop_table("tracker_submission")
    op.drop_index("ix_tracker_session_expires_at", table_name="tracker_session")
    op.drop_table("tracker_session")
