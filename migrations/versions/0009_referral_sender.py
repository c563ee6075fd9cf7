"""referral.sender: a referral is keyed by who sent it and the sender's identifier (issue 13,
issue 15 finding 4); referral_link.package_summary: the case manager's view of the package.

The business identifier of a referral is the sender's (its Task identifier): two referrers may
use the same value, and one must neither collide with nor learn of the other's. ``sender`` is
the Task's requester as the FHIR server knows it; the unique key becomes (sender, business_id).
Existing rows are backfilled from their referral_link.requester.

Revision ID: 0009_referral_sender
Revises: 0008_inbound_event_stamp
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_referral_sender"
down_revision: str | Sequence[str] | None = "0008_inbound_event_stamp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Add sender (backfilled), swap the unique key; add the link's package summary."""
    with op.batch_alter_table("referral") as batch:
        batch.add_column(sa.Column("sender", sa.String(255), nullable=False, server_default=""))
    op.execute(
        "UPDATE referral SET sender = COALESCE((SELECT requester FROM referral_link"
        " WHERE referral_link.referral_id = referral.id), '')"
    )
    with op.batch_alter_table("referral") as batch:
        batch.drop_constraint(op.f("uq_referral_business_id"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_referral_sender_business_id"), ["sender", "business_id"]
        )
        batch.create_index(op.f("ix_referral_business_id"), ["business_id"])
    with op.batch_alter_table("referral_link") as batch:
        batch.add_column(sa.Column("package_summary", _JSON, nullable=True))
        batch.drop_constraint(
            op.f("uq_referral_link_task_identifier_system_task_identifier_value"), type_="unique"
        )
        batch.create_unique_constraint(
            "uq_referral_link_task_identifier_requester",
            ["task_identifier_system", "task_identifier_value", "requester"],
        )


def downgrade() -> None:
    """Back to one global key (fails if two senders share a business identifier)."""
    with op.batch_alter_table("referral_link") as batch:
        batch.drop_constraint(
            "uq_referral_link_task_identifier_requester",
            type_="unique",
        )
        batch.create_unique_constraint(
            op.f("uq_referral_link_task_identifier_system_task_identifier_value"),
            ["task_identifier_system", "task_identifier_value"],
        )
        batch.drop_column("package_summary")
    with op.batch_alter_table("referral") as batch:
        batch.drop_index(op.f("ix_referral_business_id"))
        batch.drop_constraint(op.f("uq_referral_sender_business_id"), type_="unique")
        batch.create_unique_constraint(op.f("uq_referral_business_id"), ["business_id"])
        batch.drop_column("sender")
