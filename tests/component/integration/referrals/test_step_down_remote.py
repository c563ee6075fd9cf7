"""``step_down._take_remote_change`` for a referral submitted through the API: the delivered Task,
arriving by rest-hook or poll, gives the referral its server references (Task id, Task.for,
Task.focus) when they are still missing, so recording a session needs no ``settle_references``
first; a reference already known is never replaced."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, select

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.referrals import step_down
from integration.referrals.bundle import Parties, check_submission
from integration.referrals.intake import record_submission
from integration.referrals.package import TaskChange, map_task
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


def _arrives(engine: Engine, task: dict[str, Any]) -> None:
    mapped, problems, _ = map_task(task, CONTEXT.task_id_system)
    assert mapped is not None, problems
    identifier = (CONTEXT.task_id_system, mapped.identifier)
    change = TaskChange(
        task=task, organization=org_ref(IOP), identifier=identifier, mapped=mapped,
        package=None, problems=(), fetched=False,
    )  # fmt: skip
    with session_scope(engine) as session:
        step_down.on_task_changed(session, change, now=NOW)


def _references(engine: Engine, referral_id: int) -> tuple[Any, ...]:
    with session_scope(engine) as session:
        referral = session.get(models.Referral, referral_id)
        link = session.scalars(select(ReferralLink)).one()
        assert referral is not None
        return referral.task_server_id, link.patient, link.service_request


def test_remote_change__fills_the_missing_references_of_a_submitted_referral(
    engine: Engine,
) -> None:
    referral_id, task = _submitted(engine, 71)
    assert _references(engine, referral_id) == (None, None, None)
    _arrives(engine, _delivered(task, 71))  # the echo of our own delivery (still requested)
    assert _references(engine, referral_id) == ("t71", "Patient/p71", "ServiceRequest/sr71")


def test_remote_change__then_a_session_is_recorded_without_settling_first(
    engine: Engine,
) -> None:
    referral_id, task = _submitted(engine, 72)
    _arrives(engine, _delivered(task, 72))
    with session_scope(engine) as session:
        step_down.accept(session, referral_id, at=NOW)
        step_down.schedule_intake(session, referral_id, date(2026, 11, 5), at=NOW)
        step_down.record_session(session, referral_id, make_session(identifier="SES-72"), at=NOW)
    with session_scope(engine) as session:
        payloads = list(session.scalars(select(OutboxMessage.payload).order_by(OutboxMessage.id)))
    [encounter] = [p["resource"] for p in payloads if "resource" in p]
    assert encounter["subject"] == {"reference": "Patient/p72"}
    assert encounter["basedOn"] == [{"reference": "ServiceRequest/sr72"}]


def test_remote_change__known_references_are_never_replaced(engine: Engine) -> None:
    referral_id, task = _submitted(engine, 73)
    _arrives(engine, _delivered(task, 73))
    other = _delivered(task, 73, version="2")
    other |= {"id": "t-other", "for": {"reference": "Patient/elsewhere"},
              "focus": {"reference": "ServiceRequest/elsewhere"}}  # fmt: skip
    _arrives(engine, other)
    assert _references(engine, referral_id) == ("t73", "Patient/p73", "ServiceRequest/sr73")


def test_remote_change__only_references_on_this_server_are_taken(engine: Engine) -> None:
    """A versioned or absolute reference is left to settle_references (the sync records)."""
    referral_id, task = _submitted(engine, 74)
    served = _delivered(task, 74)
    served["for"] = {"reference": "Patient/p74/_history/1"}
    served["focus"] = {"reference": "http://elsewhere.example/fhir/ServiceRequest/sr74"}
    _arrives(engine, served)
    assert _references(engine, referral_id) == ("t74", None, None)
