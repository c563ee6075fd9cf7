"""The outbox on SQLite and PostgreSQL: atomic with the domain change, leased claims, dead ends."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from integration.db import repositories as repo
from integration.db.models import Referral
from integration.db.outbox_table import OutboxMessage, OutboxStatus
from integration.db.store import session_scope
from integration.outbox import queue as outbox
from integration.outbox.queue import MessageKind
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BUNDLE = {"resourceType": "Bundle", "type": "transaction", "entry": []}


def _enqueue(engine: Engine, count: int = 1, *, key: str | None = None, **kw: object) -> list[int]:
    with session_scope(engine) as session:
        return [
            outbox.enqueue(
                session,
                aggregate_type="referral",
                aggregate_key=key or f"SD-{n}",
                kind=MessageKind.TRANSACTION,
                payload=BUNDLE,
                now=T0,
                **kw,  # type: ignore[arg-type]
            ).id
            for n in range(count)
        ]


def _row(engine: Engine, message_id: int) -> OutboxMessage:
    with session_scope(engine) as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        return row


def _count(engine: Engine, model: type[object]) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _fail(engine: Engine, message: outbox.ClaimedMessage, **kw: object) -> OutboxStatus | None:
    with session_scope(engine) as session:
        return outbox.mark_failed(
            session,
            message,
            error="503 FhirServerUnavailable",
            now=T0,
            **kw,  # type: ignore[arg-type]
        )


def test_enqueue__commits_together_with_the_domain_change(engine: Engine) -> None:
    with session_scope(engine) as session:
        referral = repo.add_referral(
            session,
            business_id="SD-1",
            client_mrn="MRN-1",
            iop_organization="ORG",
            received_at=T0,
        )
        outbox.enqueue(
            session,
            aggregate_type="referral",
            aggregate_key=referral.business_id,
            kind=MessageKind.TRANSACTION,
            payload=BUNDLE,
        )
    assert (_count(engine, Referral), _count(engine, OutboxMessage)) == (1, 1)


def test_enqueue__an_error_after_enqueue_leaves_neither(engine: Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        repo.add_referral(
            session, business_id="SD-1", client_mrn="MRN-1", iop_organization="ORG", received_at=T0
        )
        outbox.enqueue(
            session,
            aggregate_type="referral",
            aggregate_key="SD-1",
            kind=MessageKind.TRANSACTION,
            payload=BUNDLE,
        )
        raise RuntimeError("the workflow fails after both were flushed")
    assert (_count(engine, Referral), _count(engine, OutboxMessage)) == (0, 0)


def test_enqueue__refuses_a_payload_that_could_never_be_sent(engine: Engine) -> None:
    with pytest.raises(ValueError, match="transaction"), session_scope(engine) as session:
        outbox.enqueue(
            session,
            aggregate_type="referral",
            aggregate_key="SD-1",
            kind=MessageKind.TRANSACTION,
            payload={"resourceType": "Patient"},
        )
    assert _count(engine, OutboxMessage) == 0


def test_claim_batch__each_due_message_once_in_enqueue_order(engine: Engine) -> None:
    ids = _enqueue(engine, 3)
    first = outbox.claim_batch(engine, "w1", 2, 60, now=T0)
    second = outbox.claim_batch(engine, "w2", 2, 60, now=T0)
    third = outbox.claim_batch(engine, "w3", 2, 60, now=T0)
    assert [m.id for m in first] == ids[:2]
    assert [m.id for m in second] == ids[2:]
    assert third == []
    assert (first[0].attempts, first[0].claimed_by, first[0].payload) == (1, "w1", BUNDLE)
    row = _row(engine, ids[0])
    assert (row.status, row.claimed_until) == ("in-flight", T0 + timedelta(seconds=60))


def test_claim_batch__an_expired_lease_makes_the_message_claimable_again(engine: Engine) -> None:
    (message_id,) = _enqueue(engine)
    outbox.claim_batch(engine, "killed-worker", 10, 30, now=T0)
    assert outbox.claim_batch(engine, "w2", 10, 30, now=T0 + timedelta(seconds=29)) == []
    (again,) = outbox.claim_batch(engine, "w2", 10, 30, now=T0 + timedelta(seconds=31))
    assert (again.id, again.attempts, again.claimed_by) == (message_id, 2, "w2")


def test_settle__a_worker_whose_lease_was_taken_over_cannot_settle(engine: Engine) -> None:
    _enqueue(engine)
    (stale,) = outbox.claim_batch(engine, "slow", 10, 30, now=T0)
    (fresh,) = outbox.claim_batch(engine, "fast", 10, 30, now=T0 + timedelta(seconds=31))
    with session_scope(engine) as session:
        assert outbox.mark_delivered(session, stale) is False
        assert outbox.mark_delivered(session, fresh) is True
    assert _fail(engine, stale, retryable=True) is None
    assert _row(engine, fresh.id).status == "delivered"


def test_mark_failed__retryable_waits_for_its_backoff(engine: Engine) -> None:
    (message_id,) = _enqueue(engine)
    (message,) = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    assert _fail(engine, message, retryable=True, backoff=lambda attempt: 40.0) == "pending"
    row = _row(engine, message_id)
    assert (row.next_attempt_at, row.last_error) == (
        T0 + timedelta(seconds=40),
        "503 FhirServerUnavailable",
    )
    assert outbox.claim_batch(engine, "w1", 10, 30, now=T0 + timedelta(seconds=39)) == []
    assert len(outbox.claim_batch(engine, "w1", 10, 30, now=T0 + timedelta(seconds=40))) == 1


def test_mark_failed__retry_after_wins_over_a_shorter_backoff(engine: Engine) -> None:
    (message_id,) = _enqueue(engine)
    (message,) = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    _fail(engine, message, retryable=True, backoff=lambda attempt: 1.0, retry_after=120.0)
    assert _row(engine, message_id).next_attempt_at == T0 + timedelta(seconds=120)


def test_mark_failed__dead_letter_after_max_attempts(engine: Engine) -> None:
    (message_id,) = _enqueue(engine, max_attempts=3)
    statuses = []
    for _ in range(4):
        claimed = outbox.claim_batch(engine, "w1", 10, 30, now=T0 + timedelta(hours=1))
        statuses += [_fail(engine, m, retryable=True, backoff=lambda a: 0.0) for m in claimed]
    assert statuses == ["pending", "pending", "dead"]
    row = _row(engine, message_id)
    assert (row.status, row.attempts, row.last_error) == ("dead", 3, "503 FhirServerUnavailable")


def test_mark_failed__not_retryable_is_dead_at_once(engine: Engine) -> None:
    _enqueue(engine)
    (message,) = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    assert _fail(engine, message, retryable=False) == "dead"
    with session_scope(engine) as session:
        assert outbox.count_by_status(session) == {"dead": 1}


def test_claim_batch__messages_of_one_aggregate_go_in_order(engine: Engine) -> None:
    first, second = _enqueue(engine, 2, key="SD-SAME")
    (other,) = _enqueue(engine, 1, key="SD-OTHER")
    claimed = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    assert [m.id for m in claimed] == [first, other]  # second waits for first
    with session_scope(engine) as session:
        outbox.mark_delivered(session, claimed[0])
    assert [m.id for m in outbox.claim_batch(engine, "w1", 10, 30, now=T0)] == [second]


def test_claim_batch__a_dead_message_holds_its_aggregate_until_requeued(engine: Engine) -> None:
    first, _second = _enqueue(engine, 2, key="SD-SAME")
    (claimed,) = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    _fail(engine, claimed, retryable=False)
    assert outbox.claim_batch(engine, "w1", 10, 30, now=T0) == []
    with session_scope(engine) as session:
        outbox.requeue_dead(session, first, now=T0)
    assert [m.id for m in outbox.claim_batch(engine, "w1", 10, 30, now=T0)] == [first]


def test_claim_batch__a_lease_expiring_on_the_last_attempt_goes_dead(engine: Engine) -> None:
    (message_id,) = _enqueue(engine, max_attempts=1)
    outbox.claim_batch(engine, "crashing-worker", 10, 30, now=T0)
    assert outbox.claim_batch(engine, "w2", 10, 30, now=T0 + timedelta(minutes=5)) == []
    row = _row(engine, message_id)
    assert (row.status, row.last_error) == ("dead", "lease expired on the last attempt")


def test_release__hands_the_claim_back_without_counting_it(engine: Engine) -> None:
    (message_id,) = _enqueue(engine)
    (message,) = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    with session_scope(engine) as session:
        assert outbox.release(session, message)
    row = _row(engine, message_id)
    assert (row.status, row.attempts, row.claimed_until) == ("pending", 0, None)


def test_requeue_dead__gives_fresh_attempts(engine: Engine) -> None:
    (message_id,) = _enqueue(engine)
    (message,) = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    _fail(engine, message, retryable=False)
    with session_scope(engine) as session:
        assert outbox.requeue_dead(session, message_id, now=T0)
    (again,) = outbox.claim_batch(engine, "w1", 10, 30, now=T0)
    assert (again.id, again.attempts) == (message_id, 1)


def test_a_claimed_message_repr_leaves_the_payload_out() -> None:
    # a payload holds PHI; reprs reach tracebacks and exception texts (deque.remove puts the
    # missing item's repr in its ValueError, which also cost 0.4 ms a message in the worker)
    payload = {"resourceType": "Bundle", "type": "transaction", "entry": [{"name": "Jane Doe"}]}
    message = outbox.ClaimedMessage(7, "referral", "SD-1", "transaction", payload, 1, 8, "w1")
    assert "Jane Doe" not in repr(message)
    assert "id=7" in repr(message)
