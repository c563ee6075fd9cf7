"""Audit trail and Part 2 bookkeeping (issue 5: 42 CFR Part 2, audit).

audit_event: one row per disclosure, state change and denied access, codes and ids only (no
free-text column, so no PHI can land in it); referral_privacy: whether a referral's package held
an SUD diagnosis, so outbound paths that only have the store label its records.

Revision ID: 0005_audit
Revises: 0004_workflows
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_audit"
down_revision: str | Sequence[str] | None = "0004_workflows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create audit_event and referral_privacy."""
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("agent_subject", sa.String(length=255), nullable=False),
        sa.Column("agent_role", sa.String(length=32), nullable=True),
        sa.Column("agent_organization", sa.String(length=128), nullable=True),
        sa.Column("organization", sa.String(length=128), nullable=True),
        sa.Column("entity_type", sa.String(length=64), nullable=False),
        sa.Column("entity_system", sa.String(length=255), nullable=True),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("recipient", sa.String(length=255), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=True),
        sa.Column("consent", sa.String(length=255), nullable=True),
        sa.CheckConstraint(
            "outcome IN ('success', 'denied', 'failure')", name=op.f("ck_audit_event_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    op.create_index(op.f("ix_audit_event_action"), "audit_event", ["action"])
    op.create_index(
        op.f("ix_audit_event_agent_organization"), "audit_event", ["agent_organization"]
    )
    op.create_index("ix_audit_event_entity", "audit_event", ["entity_type", "entity_id"])
    op.create_index(
        "ix_audit_event_organization_recorded", "audit_event", ["organization", "recorded_at"]
    )
    op.create_index(op.f("ix_audit_event_recorded_at"), "audit_event", ["recorded_at"])
    op.create_table(
        "referral_privacy",
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("part2", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_referral_privacy_referral_id_referral"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("referral_id", name=op.f("pk_referral_privacy")),
    )


def downgrade() -> None:
    """Drop referral_privacy and audit_event."""
    op.drop_table("referral_privacy")
    op.drop_index(op.f("ix_audit_event_recorded_at"), table_name="audit_event")
    op.drop_index("ix_audit_event_organization_recorded", table_name="audit_event")
    op.drop_index("ix_audit_event_entity", table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_agent_organization"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_action"), table_name="audit_event")
    op.drop_table("audit_event")
