"""Migration 0013 on SQLite and PostgreSQL, over rows written before it: a referral's outbox
messages move from its business id to its row key, each to the referral it is about even where
two senders share the business id; a second sender's medication list under the same identifier
is then stored beside the first. Down again restores the business ids."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.migrate import alembic_config
from integration.db.outbox_table import OutboxMessage
from tests.db.fixtures import empty_db_url  # noqa: F401

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)
A, B = "Organization/res-a", "Organization/res-b"
# referral row key -> (sender, business id); 1 and 2 share one
REFERRALS = {1: (A, "SD-1"), 2: (B, "SD-1"), 3: (A, "SD-2")}


def _message(
    n: int, aggregate: str, kind: str, key: str, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": n, "aggregate_type": aggregate, "aggregate_key": key, "kind": kind,
        "payload": payload, "status": "delivered", "attempts": 1, "max_attempts": 8,
        "next_attempt_at": AT, "created_at": AT,
    }  # fmt: skip


def _task_change(system: str) -> dict[str, Any]:
    return {"resourceType": "Task", "identifier": {"system": system, "value": "SD-1"}, "set": {}}


def _transaction(*resources: dict[str, Any]) -> dict[str, Any]:
    entries = [{"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
               for r in resources]  # fmt: skip
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# message id -> (the message as 0012 stored it, the key 0013 must give it)
MESSAGES = {
    1: (_message(1, "referral", "transaction", "SD-1", _transaction(
        {"resourceType": "ServiceRequest"},
        {"resourceType": "Task", "requester": {"reference": B}},
    )), "2"),  # a submission: its Task's requester is referral 2's sender
    2: (_message(2, "referral", "owned-fields", "SD-1", _task_change("urn:a:tasks")), "1"),
    3: (_message(3, "referral", "resource", "SD-1", {
        "resource": {"resourceType": "Encounter", "identifier": [{"value": "S-B-1"}]},
        "request": {"method": "PUT", "url": "Encounter/e1"},
    }), "2"),  # a session of referral 2
    4: (_message(4, "medication-reconciliation", "transaction", "SD-1", _transaction(
        {"resourceType": "List", "identifier": [{"value": "SD-1-RECONCILED"}]},
    )), "1"),  # referral 1's reconciled list
    5: (_message(5, "discharge", "transaction", "SD-1", _transaction(
        {"resourceType": "Bundle"},
    )), "2"),  # only referral 2 was discharged
    6: (_message(6, "referral", "owned-fields", "SD-2", _task_change("urn:a:tasks")), "3"),
    # nothing in it tells: the earliest referral, as the business-id lookups chose
    7: (_message(7, "referral", "owned-fields", "SD-1", _task_change("urn:other")), "1"),
    8: (_message(8, "referral", "owned-fields", "SD-9", _task_change("urn:a:tasks")), "SD-9"),
    9: (_message(9, "step-down-package", "transaction", "SD-1", _transaction()), "SD-1"),
}  # fmt: skip


def _store_before_0013(store: Engine) -> None:
    rows: list[tuple[Any, list[dict[str, Any]]]] = [
        (models.Referral.__table__, [
            {"id": key, "sender": sender, "business_id": value, "status": "accepted",
             "client_mrn": f"MRN-{key}", "iop_organization": "IOP-DEMO-ORG", "received_at": AT,
             "created_at": AT, "updated_at": AT}
            for key, (sender, value) in REFERRALS.items()
        ]),
        (ReferralLink.__table__, [
            {"referral_id": key, "task_identifier_system": f"urn:{sender[-1]}:tasks",
             "task_identifier_value": value, "requester": sender, "problems": [], "losses": []}
            for key, (sender, value) in REFERRALS.items()
        ]),
        (models.SessionRecord.__table__, [
            {"business_id": "S-B-1", "referral_id": 2, "starts_at": AT, "attendance": "attended",
             "created_at": AT, "updated_at": AT},
        ]),
        (models.MedicationListRecord.__table__, [
            {"id": 1, "business_id": "SD-1-RECONCILED", "referral_id": 1, "source": "reconciled",
             "recorded_at": AT, "created_at": AT, "updated_at": AT},
        ]),
        (models.DischargeRecord.__table__, [
            {"referral_id": 2, "discharged_at": AT, "next_provider": "Organization/next",
             "created_at": AT, "updated_at": AT},
        ]),
        (OutboxMessage.__table__, [message for message, _ in MESSAGES.values()]),
    ]  # fmt: skip
    with store.begin() as connection:
        for table, values in rows:
            connection.execute(insert(table), values)


def _keys(store: Engine) -> dict[int, str]:
    with store.connect() as connection:
        found = connection.execute(select(OutboxMessage.id, OutboxMessage.aggregate_key))
        return {n: key for n, key in found}


def _migrate(store: Engine, revision: str, *, down: bool = False) -> None:
    with store.begin() as connection:
        step = command.downgrade if down else command.upgrade
        step(alembic_config(connection), revision)


def test_migration_0013__each_message_goes_to_its_own_referral_and_back(
    empty_db_url: str,  # noqa: F811
) -> None:
    store = create_engine(empty_db_url)
    try:
        _migrate(store, "0012_disclosure_consent")
        _store_before_0013(store)
        _migrate(store, "0013_referral_keys")
        assert _keys(store) == {n: expected for n, (_, expected) in MESSAGES.items()}
        _migrate(store, "0012_disclosure_consent", down=True)
        assert _keys(store) == {n: m["aggregate_key"] for n, (m, _) in MESSAGES.items()}
        _migrate(store, "head")
        assert _keys(store) == {n: expected for n, (_, expected) in MESSAGES.items()}
    finally:
        store.dispose()


def test_migration_0013__a_second_senders_list_under_the_same_identifier_is_kept(
    empty_db_url: str,  # noqa: F811
) -> None:
    store = create_engine(empty_db_url)
    table = models.MedicationListRecord.__table__
    second = {"id": 2, "business_id": "SD-1-RECONCILED", "referral_id": 2, "source": "reconciled",
              "recorded_at": AT, "created_at": AT, "updated_at": AT}  # fmt: skip
    try:
        _migrate(store, "0012_disclosure_consent")
        _store_before_0013(store)
        with pytest.raises(IntegrityError), store.begin() as connection:
            connection.execute(insert(table), [second])  # before: one identifier in the store
        _migrate(store, "head")
        with store.begin() as connection:
            connection.execute(insert(table), [second])
        with pytest.raises(IntegrityError), store.begin() as connection:
            connection.execute(insert(table), [{**second, "id": 3}])  # still one per referral
    finally:
        store.dispose()
