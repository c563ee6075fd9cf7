"""``step_down._take_remote_change`` for a referral submitted through the API: the delivered Task,
arriving by rest-hook or poll, gives the referral its server references (Task id, Task.for,
Task.focus) when they are still missing, so recording a session needs no ``settle_references``
first; a reference already known is never replaced."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db.audit_table import AuditEventRecord
from integration.db.inbound_table import InboundEvent, ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.store import record_sync, session_scope
from integration.inbound.dedup import Via
from integration.inbound.engine import accept_task
from integration.referrals import step_down
from integration.referrals.intake import record_submission
from integration.referrals.package import TaskChange
from mappers.referral_package.mapping import map_task
from mappers.referral_package.submission import Parties, check_submission
from mappers.registry import MappingContext
from tests.builders.sessions import make_session
from tests.component.api.referral_support import ORG_SYSTEM, fhir_bundle, org_ref
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

CONTEXT = MappingContext()
RES, IOP = "RES-1", "IOP-DEMO-ORG"
PARTIES = Parties((ORG_SYSTEM, RES), org_ref(RES), (ORG_SYSTEM, IOP), org_ref(IOP))
NOW = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def _submitted(engine: Engine, n: int) -> tuple[int, dict[str, Any]]:
    """A referral recorded from an API submission (no server references yet) and its Task."""
    checked = check_submission(fhir_bundle(n), PARTIES, CONTEXT)
    record_submission(engine, checked, owner=org_ref(IOP), now=NOW)
    [task] = [e["resource"] for e in checked.bundle["entry"]
              if e["resource"]["resourceType"] == "Task"]  # fmt: skip
    with session_scope(engine) as session:
        referral = session.scalars(select(models.Referral)).one()
        return referral.id, task


def _delivered(task: dict[str, Any], n: int, version: str = "1") -> dict[str, Any]:
    """The Task as the FHIR server holds it once the transaction is delivered."""
    served = copy.deepcopy(task)
    served |= {"id": f"t{n}", "meta": {"versionId": version},
               "for": {"reference": f"Patient/p{n}"},
               "focus": {"reference": f"ServiceRequest/sr{n}"}}  # fmt: skip
    return served


def _arrives(engine: Engine, task: dict[str, Any], *, recorded: bool = False) -> None:
    """The Task's step; ``recorded``: through the inbound engine, which records the version's
    inbound_event row (and a refusal's reason) in the step's transaction."""
    mapped, problems, _ = map_task(task, CONTEXT.task_id_system)
    assert mapped is not None, problems
    identifier = (CONTEXT.task_id_system, mapped.identifier)
    change = TaskChange(
        task=task, organization=org_ref(IOP), identifier=identifier, mapped=mapped,
        package=None, problems=(), fetched=False,
    )  # fmt: skip

    def step(session: Session, now: datetime) -> str | None:
        return step_down.on_task_changed(session, change, now=now, context=CONTEXT)

    if recorded:

        async def handler(_: Any) -> Any:
            return step

        asyncio.run(accept_task(engine, task, via=Via.POLL, handler=handler, now=NOW))
        return
    with session_scope(engine) as session:
        step(session, NOW)


def _references(engine: Engine, referral_key: int) -> tuple[Any, ...]:
    with session_scope(engine) as session:
        referral = session.get(models.Referral, referral_key)
        link = session.scalars(select(ReferralLink)).one()
        assert referral is not None
        return referral.task_server_id, link.patient, link.service_request


def _worker_delivered(engine: Engine, task: dict[str, Any], n: int) -> None:
    """What the worker records from the server's answer to the submitted transaction."""
    [identifier] = task["identifier"]
    with session_scope(engine) as session:
        referral = session.scalars(select(models.Referral)).one()
        mrn = (CONTEXT.mrn_system, referral.client_mrn)
        request = (CONTEXT.referral_id_system, referral.business_id)
        task_key = (identifier["system"], identifier["value"])
        landed = [("Task", task_key, f"t{n}"), ("Patient", mrn, f"p{n}"),
                  ("ServiceRequest", request, f"sr{n}")]  # fmt: skip
        for kind, key, server_id in landed:
            record_sync(session, resource_type=kind, identifier=key, server_id=server_id,
                        version_id="1", outcome="created", now=NOW)  # fmt: skip


def _cancelled(task: dict[str, Any], n: int, *, server_id: str, version: str) -> dict[str, Any]:
    served = _delivered(task, n, version)
    served |= {"id": server_id, "status": "cancelled",
               "statusReason": {"text": "cancelled by the referring program"}}  # fmt: skip
    return served


def _status_and_refusals(engine: Engine, referral_key: int) -> tuple[str, list[Any], list[Any]]:
    with session_scope(engine) as session:
        referral = session.get(models.Referral, referral_key)
        assert referral is not None
        events = [(e.resource_id, e.refused) for e in session.scalars(select(InboundEvent))]
        audits = [(a.action, a.outcome, a.reason_code, a.entity_id)
                  for a in session.scalars(select(AuditEventRecord))]  # fmt: skip
        return referral.status, events, audits


def test_remote_change__a_task_arriving_before_the_delivery_is_recorded_binds_nothing(
    engine: Engine,
) -> None:
    referral_key, task = _submitted(engine, 71)
    _arrives(engine, _delivered(task, 71))  # claims the identifier; not known to be ours
    assert _references(engine, referral_key) == (None, None, None)


def test_remote_change__references_come_from_the_recorded_delivery(engine: Engine) -> None:
    referral_key, task = _submitted(engine, 72)
    _worker_delivered(engine, task, 72)
    _arrives(engine, _delivered(task, 72))
    assert _references(engine, referral_key) == ("t72", "Patient/p72", "ServiceRequest/sr72")
    with session_scope(engine) as session:
        step_down.accept(session, referral_key, at=NOW)
        step_down.schedule_intake(session, referral_key, date(2026, 11, 5), at=NOW)
        step_down.record_session(session, referral_key, make_session(identifier="SES-72"), at=NOW)
    with session_scope(engine) as session:
        payloads = list(session.scalars(select(OutboxMessage.payload).order_by(OutboxMessage.id)))
    [encounter] = [p["resource"] for p in payloads if "resource" in p]
    assert encounter["subject"] == {"reference": "Patient/p72"}
    assert encounter["basedOn"] == [{"reference": "ServiceRequest/sr72"}]


def test_remote_change__a_forged_cancel_before_delivery_is_refused_kept_and_audited(
    engine: Engine,
) -> None:
    """Finding 1 as reported: an API submission not yet tied to its Task's server id."""
    referral_key, task = _submitted(engine, 73)
    _arrives(engine, _cancelled(task, 73, server_id="forged", version="1"), recorded=True)
    status, events, audits = _status_and_refusals(engine, referral_key)
    assert status == "requested"
    assert events == [("forged", "task-not-yet-bound")]
    assert audits == [
        ("task-change", "denied", "task-not-yet-bound", task["identifier"][0]["value"])
    ]


def test_remote_change__a_forged_cancel_after_delivery_is_refused(engine: Engine) -> None:
    referral_key, task = _submitted(engine, 74)
    _worker_delivered(engine, task, 74)
    _arrives(engine, _cancelled(task, 74, server_id="forged", version="1"), recorded=True)
    status, events, audits = _status_and_refusals(engine, referral_key)
    assert (status, events) == ("requested", [("forged", "not-the-referral-task")])
    assert [a[2] for a in audits] == ["not-the-referral-task"]


def test_remote_change__the_requesters_cancel_on_the_delivered_task_is_taken(
    engine: Engine,
) -> None:
    referral_key, task = _submitted(engine, 75)
    _worker_delivered(engine, task, 75)
    _arrives(engine, _cancelled(task, 75, server_id="t75", version="2"), recorded=True)
    status, events, audits = _status_and_refusals(engine, referral_key)
    assert (status, events, audits) == ("cancelled", [("t75", None)], [])


def test_remote_change__an_owner_move_on_the_delivered_task_is_refused(engine: Engine) -> None:
    """The IOP owns the Task: accepting is its own move, never taken over from the server."""
    referral_key, task = _submitted(engine, 76)
    _worker_delivered(engine, task, 76)
    accepted = _delivered(task, 76, version="2") | {"id": "t76", "status": "accepted"}
    _arrives(engine, accepted, recorded=True)
    status, events, _ = _status_and_refusals(engine, referral_key)
    assert (status, events) == ("requested", [("t76", "move-not-allowed-for-party")])


def test_remote_change__a_cancel_that_changes_the_focus_is_refused(engine: Engine) -> None:
    referral_key, task = _submitted(engine, 77)
    _worker_delivered(engine, task, 77)
    moved = _cancelled(task, 77, server_id="t77", version="2")
    moved["focus"] = {"reference": "ServiceRequest/elsewhere"}
    _arrives(engine, moved, recorded=True)
    status, events, _ = _status_and_refusals(engine, referral_key)
    assert (status, events) == ("requested", [("t77", "task-focus-changed")])
