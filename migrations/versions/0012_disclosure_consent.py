"""disclosure_consent: the client's Part 2 consent to disclose to a named recipient (the next
provider at discharge), recorded by the IOP's case manager and sent as a Consent.

Revision ID: 0012_disclosure_consent
Revises: 0011_assessment_per_referral
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_disclosure_consent"
down_revision: str | Sequence[str] | None = "0011_assessment_per_referral"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """One new table."""
    op.create_table(
        "disclosure_consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("business_id", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(128), nullable=False),
        sa.Column("recipient_reference", sa.String(255), nullable=False),
        sa.Column("patient", sa.String(255), nullable=False),
        sa.Column("custodian", sa.String(255), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disclosed", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('"end" >= start', name=op.f("ck_disclosure_consent_period")),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"],
            name=op.f("fk_disclosure_consent_referral_id_referral"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_consent")),
        sa.UniqueConstraint(
            "referral_id", "business_id",
            name=op.f("uq_disclosure_consent_referral_id_business_id"),
        ),
    )  # fmt: skip
    op.create_index(
        op.f("ix_disclosure_consent_referral_id"), "disclosure_consent", ["referral_id"]
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_index(op.f("ix_disclosure_consent_referral_id"), table_name="disclosure_consent")
    op.drop_table("disclosure_consent")
