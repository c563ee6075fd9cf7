"""referral.follow_up_within: the HEDIS FUI window the first attended session met (issue 5).

The tracker counts its overdue/open/met flags over every handoff on each page view; comparing
the residential discharge date with the intake's first attended session row by row cost most of
the page. The referral now carries the result (7, 30 or NULL), set when a session is recorded,
and the organization/status index is widened with it and the discharge date so that every
count is a range of that index alone. Existing rows are backfilled here.

Revision ID: 0006_follow_up_within
Revises: 0005_audit
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0006_follow_up_within"
down_revision: str | Sequence[str] | None = "0005_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# mappers.follow_up.FOLLOW_UP_WINDOWS as of this revision (a migration keeps its own copy)
WINDOWS = (7, 30)

referral = sa.table(
    "referral",
    sa.column("id", sa.Integer()),
    sa.column("residential_discharge_date", sa.Date()),
    sa.column("follow_up_within", sa.Integer()),
)
intake = sa.table(
    "intake",
    sa.column("referral_id", sa.Integer()),
    sa.column("first_attended_date", sa.Date()),
)


def upgrade() -> None:
    """Add the column, its CHECK and the wider index; backfill from the intakes."""
    with op.batch_alter_table("referral") as batch:
        batch.add_column(sa.Column("follow_up_within", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            op.f("ck_referral_follow_up_within"),
            "follow_up_within IS NULL"
            " OR (follow_up_within IN (7, 30) AND residential_discharge_date IS NOT NULL)",
        )
    _backfill()
    op.drop_index("ix_referral_organization_status", table_name="referral")
    op.create_index(
        "ix_referral_organization_status_follow_up",
        "referral",
        ["iop_organization", "status", "follow_up_within", "residential_discharge_date"],
    )


def downgrade() -> None:
    """Back to the organization/status index; drop the column."""
    op.drop_index("ix_referral_organization_status_follow_up", table_name="referral")
    op.create_index("ix_referral_organization_status", "referral", ["iop_organization", "status"])
    with op.batch_alter_table("referral") as batch:
        batch.drop_constraint(op.f("ck_referral_follow_up_within"), type_="check")
        batch.drop_column("follow_up_within")


def _backfill() -> None:
    """Each referral with a discharge date and an attended session within 30 days of it."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            referral.c.id, referral.c.residential_discharge_date, intake.c.first_attended_date
        )
        .join(intake, intake.c.referral_id == referral.c.id)
        .where(
            referral.c.residential_discharge_date.is_not(None),
            intake.c.first_attended_date.is_not(None),
        )
    ).all()
    updates = [
        {"referral_id": id_, "window": window}
        for id_, discharged, attended in rows
        if (window := _window(discharged, attended)) is not None
    ]
    if updates:
        connection.execute(
            referral.update()
            .where(referral.c.id == sa.bindparam("referral_id"))
            .values(follow_up_within=sa.bindparam("window")),
            updates,
        )


def _window(discharged: date, attended: date) -> int | None:
    return next((days for days in WINDOWS if attended <= discharged + timedelta(days=days)), None)
