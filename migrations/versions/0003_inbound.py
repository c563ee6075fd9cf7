"""Inbound sync: seen resource versions, poll cursors, and the FHIR side of each referral.

inbound_event de-duplicates rest-hook notifications and poll results by (type, id, versionId);
sync_cursor keeps each poll's high-water mark in the server's clock; referral_link holds the
Task's business identifier, its package references, BSeR milestone and mapping report.

Revision ID: 0003_inbound
Revises: 0002_domain_and_outbox
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_inbound"
down_revision: str | Sequence[str] | None = "0002_domain_and_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Create inbound_event, sync_cursor and referral_link."""
    op.create_table(
        "inbound_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("via IN ('subscription', 'poll')", name=op.f("ck_inbound_event_via")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_event")),
        sa.UniqueConstraint(
            "resource_type",
            "resource_id",
            "version_id",
            name=op.f("uq_inbound_event_resource_type_resource_id_version_id"),
        ),
    )
    op.create_table(
        "sync_cursor",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("high_water", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_cursor")),
    )
    op.create_table(
        "referral_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("task_identifier_system", sa.String(length=255), nullable=False),
        sa.Column("task_identifier_value", sa.String(length=255), nullable=False),
        sa.Column("service_request", sa.String(length=255), nullable=True),
        sa.Column("patient", sa.String(length=255), nullable=True),
        sa.Column("requester", sa.String(length=255), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("authored_on", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_modified", sa.DateTime(timezone=True), nullable=True),
        sa.Column("business_status", sa.String(length=16), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("resulting_activity", sa.String(length=255), nullable=True),
        sa.Column("problems", _JSON, nullable=False),
        sa.Column("losses", _JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_referral_link_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_link")),
        sa.UniqueConstraint("referral_id", name=op.f("uq_referral_link_referral_id")),
        sa.UniqueConstraint(
            "task_identifier_system",
            "task_identifier_value",
            name=op.f("uq_referral_link_task_identifier_system_task_identifier_value"),
        ),
    )


def downgrade() -> None:
    """Drop referral_link, sync_cursor and inbound_event."""
    op.drop_table("referral_link")
    op.drop_table("sync_cursor")
    op.drop_table("inbound_event")
