"""assessment_record: unique per referral, not across the store (issue 13's sender-owned identity).

A PHQ-9/GAD-7 response is identified by its sender's identifier value, and two senders may use
the same value. With one global unique key, the second sender's response was skipped as if it
were the first sender's (a silent identity merge). The key becomes (referral_id, business_id);
whether a response already came with an earlier referral is now asked of that sender's
referrals only (integration/referrals/package.py).

Revision ID: 0011_assessment_per_referral
Revises: 0010_inbound_refusal
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_assessment_per_referral"
down_revision: str | Sequence[str] | None = "0010_inbound_refusal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assessment_record") as batch:
        batch.drop_constraint(op.f("uq_assessment_record_business_id"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_assessment_record_referral_id_business_id"), ["referral_id", "business_id"]
        )


def downgrade() -> None:
    """Back to one global key (fails if two senders' responses share an identifier)."""
    with op.batch_alter_table("assessment_record") as batch:
        batch.drop_constraint(op.f("uq_assessment_record_referral_id_business_id"), type_="unique")
        batch.create_unique_constraint(op.f("uq_assessment_record_business_id"), ["business_id"])
