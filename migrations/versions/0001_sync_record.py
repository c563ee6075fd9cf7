"""Baseline: the sync_record table, as the store created it before migrations existed.

Revision ID: 0001_sync_record
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_sync_record"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Where each business identifier lives on the FHIR server, and its last sync outcome."""
    op.create_table(
        "sync_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("identifier_system", sa.String(length=255), nullable=False),
        sa.Column("identifier_value", sa.String(length=255), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=True),
        sa.Column("version_id", sa.String(length=64), nullable=True),
        sa.Column("last_outcome", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_record")),
        sa.UniqueConstraint(
            "resource_type",
            "identifier_system",
            "identifier_value",
            name=op.f("uq_sync_record_resource_type_identifier_system_identifier_value"),
        ),
    )


def downgrade() -> None:
    """Drop sync_record."""
    op.drop_table("sync_record")
