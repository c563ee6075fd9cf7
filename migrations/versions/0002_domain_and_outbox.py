"""Domain records of the three workflows, and the outbox.

Referral (with its Task), intake, plan, sessions, assessments, medication lists with their
lines, discharge/aftercare; and outbox_message, written in the same transaction as the domain
change it announces (DESIGN.md, Promises).

Revision ID: 0002_domain_and_outbox
Revises: 0001_sync_record
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_domain_and_outbox"
down_revision: str | Sequence[str] | None = "0001_sync_record"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the domain tables and outbox_message."""
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("aggregate_type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'in-flight', 'delivered', 'dead')",
            name=op.f("ck_outbox_message_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
    )
    op.create_index(
        "ix_outbox_message_aggregate", "outbox_message", ["aggregate_type", "aggregate_key", "id"]
    )
    op.create_index("ix_outbox_message_claim", "outbox_message", ["status", "next_attempt_at"])

    op.create_table(
        "referral",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("client_mrn", sa.String(length=64), nullable=False),
        sa.Column("iop_organization", sa.String(length=128), nullable=False),
        sa.Column("residential_discharge_date", sa.Date(), nullable=True),
        sa.Column("task_server_id", sa.String(length=64), nullable=True),
        sa.Column("task_version_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('accepted', 'declined')", name=op.f("ck_referral_decision")
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'requested', 'received', 'accepted', 'rejected', 'ready', "
            "'cancelled', 'in-progress', 'on-hold', 'failed', 'completed', 'entered-in-error')",
            name=op.f("ck_referral_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral")),
        sa.UniqueConstraint("business_id", name=op.f("uq_referral_business_id")),
    )
    op.create_index(op.f("ix_referral_client_mrn"), "referral", ["client_mrn"])
    op.create_index("ix_referral_organization_status", "referral", ["iop_organization", "status"])
    op.create_index(op.f("ix_referral_received_at"), "referral", ["received_at"])
    op.create_index(op.f("ix_referral_status"), "referral", ["status"])

    op.create_table(
        "assessment_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("instrument", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=32), nullable=False),
        sa.Column("authored", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_assessment_record_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_record")),
        sa.UniqueConstraint("business_id", name=op.f("uq_assessment_record_business_id")),
    )
    op.create_index(
        "ix_assessment_record_trend", "assessment_record", ["referral_id", "instrument", "authored"]
    )

    op.create_table(
        "discharge_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("discharged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_provider", sa.String(length=255), nullable=False),
        sa.Column("aftercare_task_id", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_discharge_record_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discharge_record")),
        sa.UniqueConstraint("referral_id", name=op.f("uq_discharge_record_referral_id")),
    )
    op.create_index(
        op.f("ix_discharge_record_acknowledged_at"), "discharge_record", ["acknowledged_at"]
    )

    op.create_table(
        "intake",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_date", sa.Date(), nullable=True),
        sa.Column("first_attended_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_intake_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake")),
        sa.UniqueConstraint("referral_id", name=op.f("uq_intake_referral_id")),
    )
    op.create_table(
        "medication_list_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "source IN ('residential-discharge', 'iop-intake', 'reconciled')",
            name=op.f("ck_medication_list_record_source"),
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_medication_list_record_referral_id_referral"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication_list_record")),
        sa.UniqueConstraint("business_id", name=op.f("uq_medication_list_record_business_id")),
    )
    op.create_index(
        "ix_medication_list_record_referral_source",
        "medication_list_record",
        ["referral_id", "source"],
    )

    op.create_table(
        "plan_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column(
            "plan",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_plan_record_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_record")),
        sa.UniqueConstraint("business_id", name=op.f("uq_plan_record_business_id")),
    )
    op.create_index(op.f("ix_plan_record_referral_id"), "plan_record", ["referral_id"])

    op.create_table(
        "medication_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("rxnorm_code", sa.String(length=16), nullable=True),
        sa.Column("display", sa.String(length=255), nullable=False),
        sa.Column("dose_text", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "change IN ('continued', 'dose-changed', 'stopped', 'new')",
            name=op.f("ck_medication_line_change"),
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["medication_list_record.id"],
            name=op.f("fk_medication_line_list_id_medication_list_record"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_medication_line")),
        sa.UniqueConstraint(
            "list_id", "position", name=op.f("uq_medication_line_list_id_position")
        ),
    )
    op.create_table(
        "session_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("intake_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attendance", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "attendance IN ('scheduled', 'attended', 'no-show', 'cancelled')",
            name=op.f("ck_session_record_attendance"),
        ),
        sa.ForeignKeyConstraint(
            ["intake_id"], ["intake.id"], name=op.f("fk_session_record_intake_id_intake")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_session_record_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_record")),
        sa.UniqueConstraint("business_id", name=op.f("uq_session_record_business_id")),
    )
    op.create_index(op.f("ix_session_record_intake_id"), "session_record", ["intake_id"])
    op.create_index(
        "ix_session_record_referral_start", "session_record", ["referral_id", "starts_at"]
    )


def downgrade() -> None:
    """Drop them again, dependents first."""
    op.drop_index("ix_session_record_referral_start", table_name="session_record")
    op.drop_index(op.f("ix_session_record_intake_id"), table_name="session_record")

    op.drop_table("session_record")
    op.drop_table("medication_line")
    op.drop_index(op.f("ix_plan_record_referral_id"), table_name="plan_record")

    op.drop_table("plan_record")
    op.drop_index("ix_medication_list_record_referral_source", table_name="medication_list_record")

    op.drop_table("medication_list_record")
    op.drop_table("intake")
    op.drop_index(op.f("ix_discharge_record_acknowledged_at"), table_name="discharge_record")

    op.drop_table("discharge_record")
    op.drop_index("ix_assessment_record_trend", table_name="assessment_record")

    op.drop_table("assessment_record")
    op.drop_index(op.f("ix_referral_status"), table_name="referral")
    op.drop_index(op.f("ix_referral_received_at"), table_name="referral")
    op.drop_index("ix_referral_organization_status", table_name="referral")
    op.drop_index(op.f("ix_referral_client_mrn"), table_name="referral")

    op.drop_table("referral")
    op.drop_index("ix_outbox_message_claim", table_name="outbox_message")
    op.drop_index("ix_outbox_message_aggregate", table_name="outbox_message")

    op.drop_table("outbox_message")
