"""Medication lines keep their whole MedicationEntry (workflow 2: medication reconciliation).

Reconciliation compares structured doses and times per day, and the reconciled list is sent as
MedicationStatements keyed on each entry's business identifier; the line's columns (display,
RxNorm code, dose text, status) hold neither. ``medication_line.detail`` keeps the entry as JSON:
``{"current": entry, "previous": entry, "matched_by": "rxnorm" | "text"}`` (previous and
matched_by only on a reconciled line: the residential discharge entry it was matched with).
Nullable: lines stored before this revision have none and are rebuilt from their columns.

Revision ID: 0004_workflows
Revises: 0003_inbound
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_workflows"
down_revision: str | Sequence[str] | None = "0003_inbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Add medication_line.detail."""
    with op.batch_alter_table("medication_line") as batch:
        batch.add_column(sa.Column("detail", _JSON, nullable=True))


def downgrade() -> None:
    """Drop medication_line.detail."""
    with op.batch_alter_table("medication_line") as batch:
        batch.drop_column("detail")
