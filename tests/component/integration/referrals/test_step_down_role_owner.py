"""Workflow 1 for Tasks owned by a PractitionerRole of the IOP (BSeR/Gravity address referrals to
a role), on SQLite and PostgreSQL, the FHIR server faked with respx (test_step_down's fake).

The owner role is read from the server for every new Task, however it arrived: a role of the
IOP's Organization makes the Task the IOP's, exactly like an owner that is the Organization; a
role of another organization, one without an organization, or one not on the server is refused
with its reason code on the event row and a log line of ids and codes. Accepting sends the IOP's
Task elements only: the owner stays the role the sender wrote.
"""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures and test_step_down are test
# parameters here)

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import Engine, select

from integration.db import models
from integration.db.inbound_table import InboundEvent
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.inbound import engine as inbound
from integration.referrals import step_down
from mappers.registry import MappingContext
from tests.component.integration.referrals.test_step_down import (  # noqa: F401
    BASE,
    IOP,
    RESIDENTIAL,
    T0,
    FakeServer,
    count,
    fhir,
    messages,
    referral,
    server,
    task_of,
)
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio
ROLE = "PractitionerRole/77"


def role_of(organization: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "PractitionerRole", "id": "77", "active": True}
    if organization is not None:
        resource["organization"] = {"reference": organization}
    return resource


def owned_by_role(server: FakeServer, organization: Any) -> dict[str, Any]:
    """The package's Task, owned by PractitionerRole/77 of ``organization`` (on the server)."""
    server.resources[ROLE] = role_of(organization)
    task = task_of(server.resources)
    task["owner"] = {"reference": ROLE}
    return task


def refusals(engine: Engine) -> list[tuple[str, str | None]]:
    with session_scope(engine) as session:
        return [(e.resource_id, e.refused) for e in session.scalars(select(InboundEvent))]


@pytest.mark.parametrize("organization", [IOP, f"{BASE}/{IOP}"])  # relative, or absolute here
async def test_role_owner__a_role_of_the_iop_is_taken_in_like_the_iop_itself(
    engine: Engine, fhir: FhirClient, server: FakeServer, organization: str
) -> None:
    task = owned_by_role(server, organization)
    handler = step_down.task_handler(fhir, MappingContext(), IOP)
    outcome = await inbound.accept_task(engine, task, via=inbound.Via.POLL, handler=handler, now=T0)
    assert outcome is inbound.Outcome.HANDLED
    with session_scope(engine) as session:
        referral_key = int(session.scalars(select(models.Referral.id)).one())
    row, link = referral(engine, referral_key)
    assert (row.iop_organization, link.owner, link.requester) == (IOP, ROLE, RESIDENTIAL)
    assert link.problems == []
    assert count(engine, models.Intake) == 1 and server.batches == 3  # the whole package
    assert refusals(engine) == [(task["id"], None)]


async def test_role_owner__accept_leaves_the_owner_as_the_sender_wrote_it(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    task = owned_by_role(server, IOP)
    handler = step_down.task_handler(fhir, MappingContext(), IOP)
    await inbound.accept_task(engine, task, via=inbound.Via.POLL, handler=handler, now=T0)
    with session_scope(engine) as session:
        referral_key = int(session.scalars(select(models.Referral.id)).one())
        step_down.accept(session, referral_key, at=T0)
    (message,) = messages(engine)
    sent = message.payload
    assert sent["set"]["status"] == "accepted"
    # only the owner's elements are sent and merged (OWNED_FIELDS): Task.owner is not among them
    assert "owner" not in sent["set"] and "owner" not in sent.get("remove", [])
    assert referral(engine, referral_key)[1].owner == ROLE


@pytest.mark.parametrize(
    ("organization", "reason"),
    [
        (RESIDENTIAL, "owner-role-of-another-organization"),
        ("https://elsewhere.example/fhir/Organization/iop-1", "owner-role-without-organization"),
        (None, "owner-role-without-organization"),
        ("gone", "owner-role-not-on-server"),
    ],
)
@pytest.mark.parametrize("via", ["poll", "notification by id"])
async def test_role_owner__a_role_not_of_the_iop_is_refused_with_its_reason(
    engine: Engine,
    fhir: FhirClient,
    server: FakeServer,
    caplog: pytest.LogCaptureFixture,
    organization: str | None,
    reason: str,
    via: str,
) -> None:
    task = owned_by_role(server, organization)
    if organization == "gone":
        del server.resources[ROLE]
    server.resources[f"Task/{task['id']}"] = task
    handler = step_down.task_handler(fhir, MappingContext(), IOP)
    with caplog.at_level(logging.WARNING, logger="integration.referrals.package_fetch"):
        if via == "poll":
            await inbound.accept_task(engine, task, via=inbound.Via.POLL, handler=handler, now=T0)
        else:  # the notification names the Task; what it says of the owner is read from HAPI
            await inbound.accept_notification(fhir, engine, task["id"], handler=handler, now=T0)
    assert count(engine, models.Referral) == 0
    assert server.batches == 0  # the package is not even read
    assert refusals(engine) == [(task["id"], reason)]
    assert reason in caplog.text and ROLE in caplog.text and IOP in caplog.text
    patient = next(r for r in server.resources.values() if r["resourceType"] == "Patient")
    assert patient["name"][0]["family"] not in caplog.text  # ids and codes only


async def test_role_owner__a_task_the_search_found_is_still_checked(
    engine: Engine, fhir: FhirClient, server: FakeServer
) -> None:
    """The role moved to another organization after the search found the Task (or the server
    answered the chained search wrongly): the role as read now decides."""
    task = owned_by_role(server, IOP)
    server.resources[ROLE]["organization"] = {"reference": RESIDENTIAL}
    handler = step_down.task_handler(fhir, MappingContext(), IOP)
    await inbound.accept_task(engine, task, via=inbound.Via.POLL, handler=handler, now=T0)
    assert count(engine, models.Referral) == 0
    assert refusals(engine) == [(task["id"], "owner-role-of-another-organization")]
