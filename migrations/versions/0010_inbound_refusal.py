"""inbound_event.refused: why an inbound Task version was not taken over (issue 15).

A Task on the FHIR server that claims a referral's identifier but is not the referral's Task, or
that makes a move its party may not make (mappers/task_trust.py), is recorded like every other
version (so it is handled once) with the refusal's reason code; NULL for a version taken in.

Revision ID: 0010_inbound_refusal
Revises: 0009_referral_sender
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_inbound_refusal"
down_revision: str | Sequence[str] | None = "0009_referral_sender"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_event") as batch:
        batch.add_column(sa.Column("refused", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_event") as batch:
        batch.drop_column("refused")
