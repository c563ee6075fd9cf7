"""inbound_event.last_updated: a version is told apart by its meta.lastUpdated too (issue 14).

A FHIR server that forgets (an in-memory HAPI restarted, a database restored, the public sandbox
purged) hands out the same ids again: a new Task/1027 version 1 is not the Task/1027 version 1 seen
before, but (type, id, versionId) alone called it a duplicate and the referral was lost. The
version's meta.lastUpdated (to the millisecond, in the server's clock) joins the unique key. Rows
recorded before this revision keep an empty stamp and still match their version alone
(integration/inbound_store.py).

Revision ID: 0008_inbound_event_stamp
Revises: 0007_tracker_actions
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_inbound_event_stamp"
down_revision: str | Sequence[str] | None = "0007_tracker_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = "uq_inbound_event_resource_type_resource_id_version_id"
NEW_KEY = "uq_inbound_event_version_stamp"


def upgrade() -> None:
    """Add the stamp column and widen the unique key with it."""
    with op.batch_alter_table("inbound_event") as batch:
        batch.add_column(
            sa.Column("last_updated", sa.String(length=40), nullable=False, server_default="")
        )
        batch.drop_constraint(OLD_KEY, type_="unique")
        batch.create_unique_constraint(
            NEW_KEY, ["resource_type", "resource_id", "version_id", "last_updated"]
        )


def downgrade() -> None:
    """Back to (type, id, versionId); rows that differ only by their stamp keep the first."""
    op.execute(
        "DELETE FROM inbound_event WHERE id NOT IN (SELECT MIN(id) FROM inbound_event"
        " GROUP BY resource_type, resource_id, version_id)"
    )
    with op.batch_alter_table("inbound_event") as batch:
        batch.drop_constraint(NEW_KEY, type_="unique")
        batch.create_unique_constraint(OLD_KEY, ["resource_type", "resource_id", "version_id"])
        batch.drop_column("last_updated")
