"""Keys of what belongs to one referral, not to a business id two senders may share (issue 13's
sender-owned identity): the outbox aggregate of a referral's messages, and its medication lists.

outbox_message.aggregate_key of a referral's messages: the referral's row key, not its business
id.

Two senders may use the same business id, so a key made of it put both referrals' messages in
one aggregate: the tracker's "Sent to the FHIR server" list of each showed the other's, the
worker settled the wrong referral's references, and one referral's stuck message held the
other's back. The three aggregates of a referral (``referral``, ``medication-reconciliation``,
``discharge``) are now keyed by ``referral.id`` as text (integration/db/referral_lookup.py).

Existing rows: a business id that names one referral becomes its row key (one UPDATE). A
business id that two senders' referrals share is resolved per message from what the message
itself names: a submitted Bundle its Task's requester (the referral's sender), a Task change
the Task's identifier system, a session's Encounter the session, a reconciliation its List,
a discharge the one referral of the two that was discharged. What none of these settles goes
to the earliest-received referral, which is the one the business-id lookups picked before they
refused such ids. A key that names no referral (none of ours) is left as it is.

medication_list_record: unique per (referral_id, business_id), no longer across the store. A
sender's discharge list is identified by the sender's value (for senders of MedicationRequests,
``<Task identifier>-discharge-medications``), so a second sender's list under the same value was
skipped and its referral could not be reconciled (as 0011 did for assessments).

Revision ID: 0013_referral_keys
Revises: 0012_disclosure_consent
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013_referral_keys"
down_revision: str | Sequence[str] | None = "0012_disclosure_consent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OURS = (
    "aggregate_type IN ('referral', 'medication-reconciliation', 'discharge', 'disclosure-consent')"
)
_NAMED_BY = "SELECT {what} FROM referral WHERE referral.business_id = outbox_message.aggregate_key"


def upgrade() -> None:
    bind = op.get_bind()
    # Read (and resolve) the shared ids before the UPDATE rewrites keys: a row key written by
    # it may equal some referral's business id.
    resolved = {message: key for message, key in _shared_id_messages(bind) if key is not None}
    by_id = _NAMED_BY.format(what="CAST(referral.id AS VARCHAR(255))")
    how_many = _NAMED_BY.format(what="COUNT(*)")
    bind.execute(
        sa.text(
            f"UPDATE outbox_message SET aggregate_key = ({by_id})"
            f" WHERE {_OURS} AND ({how_many}) = 1"
        )
    )
    for message, referral_key in resolved.items():
        bind.execute(
            sa.text("UPDATE outbox_message SET aggregate_key = :key WHERE id = :id"),
            {"key": str(referral_key), "id": message},
        )
    with op.batch_alter_table("medication_list_record") as batch:
        batch.drop_constraint(op.f("uq_medication_list_record_business_id"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_medication_list_record_referral_id_business_id"),
            ["referral_id", "business_id"],
        )


def downgrade() -> None:
    """Back to the business id (two senders' referrals under one id share an aggregate again)
    and one global list key (fails if two referrals' lists share an identifier)."""
    with op.batch_alter_table("medication_list_record") as batch:
        batch.drop_constraint(
            op.f("uq_medication_list_record_referral_id_business_id"), type_="unique"
        )
        batch.create_unique_constraint(
            op.f("uq_medication_list_record_business_id"), ["business_id"]
        )
    named = "FROM referral WHERE CAST(referral.id AS VARCHAR(255)) = outbox_message.aggregate_key"
    op.execute(
        f"UPDATE outbox_message SET aggregate_key = (SELECT referral.business_id {named})"
        f" WHERE {_OURS} AND EXISTS (SELECT 1 {named})"
    )


def _shared_id_messages(bind: sa.Connection) -> list[tuple[int, int | None]]:
    """(message id, referral row key) for each message keyed by a business id that more than
    one referral has."""
    rows = bind.execute(
        sa.text(
            "SELECT id, aggregate_type, kind, aggregate_key, payload FROM outbox_message"
            f" WHERE {_OURS} AND ({_NAMED_BY.format(what='COUNT(*)')}) > 1"
        )
    ).all()
    return [(row.id, _referral_of(bind, row)) for row in rows]


def _referral_of(bind: sa.Connection, row: Any) -> int | None:
    candidates = bind.execute(
        sa.text("SELECT id, sender FROM referral WHERE business_id = :value ORDER BY id"),
        {"value": row.aggregate_key},
    ).all()
    keys = [c.id for c in candidates]
    payload = row.payload if isinstance(row.payload, Mapping) else json.loads(row.payload)
    if row.aggregate_type == "referral" and row.kind == "transaction":
        requesters = {_requester(e.get("resource") or {}) for e in payload.get("entry") or []}
        found = [c.id for c in candidates if c.sender in requesters]
    elif row.aggregate_type == "referral" and row.kind == "owned-fields":
        system = str((payload.get("identifier") or {}).get("system"))
        found = _referrals(bind, "referral_link", "task_identifier_system", [system], keys)
    elif row.aggregate_type == "referral":  # one resource: a session's Encounter
        values = _identifier_values(payload.get("resource") or {})
        found = _referrals(bind, "session_record", "business_id", values, keys)
    elif row.aggregate_type == "medication-reconciliation":
        written = [e.get("resource") or {} for e in payload.get("entry") or []]
        lists = [r for r in written if r.get("resourceType") == "List"]
        values = [value for r in lists for value in _identifier_values(r)]
        found = _referrals(bind, "medication_list_record", "business_id", values, keys)
    elif row.aggregate_type == "disclosure-consent":  # a PUT of the Consent under its own id
        values = [str((payload.get("resource") or {}).get("id"))]
        found = _referrals(bind, "disclosure_consent", "business_id", values, keys)
    else:  # a discharge: one per referral
        found = _referrals(bind, "discharge_record", "referral_id", keys, keys)
    return found[0] if len(set(found)) == 1 else (keys[0] if keys else None)


def _requester(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") != "Task":
        return None
    return str((resource.get("requester") or {}).get("reference"))


def _identifier_values(resource: Mapping[str, Any]) -> list[str]:
    return [str(i.get("value")) for i in resource.get("identifier") or [] if i.get("value")]


def _referrals(
    bind: sa.Connection, table: str, column: str, values: Sequence[Any], among: Sequence[int]
) -> list[int]:
    """The referral ids (of ``among``) of the rows of ``table`` whose ``column`` is one of
    ``values``."""
    if not values or not among:
        return []
    query = sa.text(
        f"SELECT referral_id FROM {table} WHERE {column} IN :values AND referral_id IN :among"
    ).bindparams(sa.bindparam("values", expanding=True), sa.bindparam("among", expanding=True))
    rows = bind.execute(query, {"values": list(values), "among": list(among)})
    return [row.referral_id for row in rows]
