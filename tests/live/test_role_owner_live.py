"""Referral Tasks owned by a PractitionerRole of the IOP's Organization, against HAPI, written by a
sender that shares no code with iop-bridge (sandbox/senders/gravity_bser.py: it posts a
PractitionerRole of the IOP's Organization and a Task owned by it, as literal FHIR JSON).

The poll's second search (``Task?owner:PractitionerRole.organization=Organization/<IOP>``) takes
the referral in exactly like one owned by the Organization; accept -> the Task is accepted on
HAPI, its owner still the role the sender wrote. A Task owned by a role of another organization
is not found by that search, and when a notification names it anyway it is refused. With
rest-hook on, HAPI accepts the chained criteria as a Subscription (matched against its database),
activates it and delivers the role's Task to the hook route.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from api.app import create_app
from integration.db.inbound_table import InboundEvent, ReferralLink
from integration.db.models import Referral
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.setup import ensure_organization, ensure_task_subscription
from integration.fhir.subscription_health import subscriptions_health
from integration.fhir.task_searches import BY_PRACTITIONER_ROLE
from integration.inbound import engine as inbound
from integration.referrals import step_down
from integration.settings import Settings
from tests.conftest import live_base_url
from tests.live.test_foreign_senders_live import _drain
from tests.servers import serve_in_thread

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox" / "senders"))
import gravity_bser
from fhir_http import FhirHttp

pytestmark = [pytest.mark.live, pytest.mark.anyio]
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    # A fresh IOP per test: its searches and Subscriptions see only this test's Tasks.
    return live_settings.model_copy(update={"organization_id": f"IOP-{unique}"})


@pytest.fixture
async def organization(fhir: FhirClient, settings: Settings) -> str:
    return await ensure_organization(fhir, settings, name="Synthetic IOP")


@pytest.fixture
async def sender() -> AsyncIterator[FhirHttp]:
    client = FhirHttp(live_base_url())
    yield client
    await client.aclose()


async def _refer(sender: FhirHttp, settings: Settings, unique: str, owner: str) -> tuple[str, str]:
    """The sender's referral addressed to ``owner``; (the Task's id, its owner as on HAPI)."""
    iop = (settings.organization_id_system, settings.organization_id)
    # relative references: the stock pass's HAPI refuses external (absolute) ones; the sender's
    # absolute references are taken through HAPI by test_foreign_senders_live.py
    referred = await gravity_bser.refer(
        sender, iop, int(unique, 16) % 10**5, date.today(), owner=owner, absolute=False
    )
    (task,) = await sender.search("Task", {"_id": referred.task_id})
    return referred.task_id, task["owner"]["reference"]


def _taken_in(engine: Engine) -> list[tuple[str | None, str, str | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Referral.task_server_id, Referral.iop_organization, ReferralLink.owner).join(
                ReferralLink, ReferralLink.referral_id == Referral.id
            )
        )
        return [(task, iop, owner) for task, iop, owner in rows]


def _events(engine: Engine) -> list[tuple[str, str, str | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(InboundEvent.resource_id, InboundEvent.via, InboundEvent.refused)
        )
        return [(task, via, refused) for task, via, refused in rows]


async def test_role_owner__the_poll_takes_it_in_and_accept_keeps_the_senders_owner(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    sender: FhirHttp,
    unique: str,
) -> None:
    task_id, owner = await _refer(sender, settings, unique, "iop-role")
    assert owner.startswith("PractitionerRole/")

    first = await inbound.poll_inbound_tasks(fhir, engine, settings, organization)
    assert (first.seen, first.handled) == (1, 1)
    assert _taken_in(engine) == [(task_id, organization, owner)]
    assert inbound.read_cursor(engine, inbound.cursor_name(organization, BY_PRACTITIONER_ROLE))
    again = await inbound.poll_inbound_tasks(fhir, engine, settings, organization)
    assert (again.seen, again.handled, again.duplicates) == (1, 0, 1)

    with session_scope(engine) as session:
        referral_key = int(session.scalars(select(Referral.id)).one())
        step_down.accept(session, referral_key, at=NOW)
    await _drain(engine, fhir)
    task = await fhir.read("Task", task_id)
    assert task["status"] == "accepted"
    assert task["owner"] == {"reference": owner}  # what the sender wrote, not our Organization


async def test_role_owner__a_role_of_another_organization_is_not_the_iops(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    sender: FhirHttp,
    unique: str,
) -> None:
    task_id, owner = await _refer(sender, settings, unique, "sender-role")
    assert owner.startswith("PractitionerRole/")  # the platform's own coordinator
    polled = await inbound.poll_inbound_tasks(fhir, engine, settings, organization)
    assert polled.seen == 0  # neither search finds it
    # a notification that names it anyway (a forged or mistaken hook call): the role is read
    handler = inbound.default_handler(fhir, settings, organization)
    outcome = await inbound.accept_notification(fhir, engine, task_id, handler=handler)
    assert outcome is inbound.Outcome.HANDLED  # recorded as seen, with why it was refused
    assert _taken_in(engine) == []
    assert _events(engine) == [(task_id, "subscription", "owner-role-of-another-organization")]


@pytest.fixture
def hook_settings(settings: Settings) -> Iterator[Settings]:
    """iop-bridge's app under uvicorn on a free loopback port; settings naming its hook URL."""
    with serve_in_thread(create_app(settings)) as port:
        yield settings.model_copy(update={"hook_base_url": f"http://127.0.0.1:{port}/fhir-hooks"})


@pytest.mark.resthook
async def test_role_owner__hapi_activates_the_chained_subscription_and_delivers(
    fhir: FhirClient,
    engine: Engine,
    hook_settings: Settings,
    organization: str,
    sender: FhirHttp,
    unique: str,
) -> None:
    endpoint = hook_settings.hook_base_url
    subscription = await ensure_task_subscription(
        fhir, organization, endpoint, None, BY_PRACTITIONER_ROLE
    )
    try:
        stored = await fhir.read("Subscription", subscription.split("/")[1])
        assert stored["criteria"] == f"Task?owner:PractitionerRole.organization={organization}"
        tags = {(t["system"].rsplit("/", 1)[-1], t["code"]) for t in stored["meta"]["tag"]}
        assert ("subscription-matching-strategy", "DATABASE") in tags  # chains: not in memory
        for _ in range(60):  # HAPI activates subscriptions in a pass every few seconds
            health = await subscriptions_health(fhir, hook_settings, organization)
            if health[1].status == "active":
                break
            await asyncio.sleep(0.5)
        assert [h.status for h in health] == ["missing", "active"]  # only the role's was made

        task_id, owner = await _refer(sender, hook_settings, unique, "iop-role")
        for _ in range(90):  # HAPI delivers 5-10 s after the change
            if _taken_in(engine):
                break
            await asyncio.sleep(0.5)
        assert _taken_in(engine) == [(task_id, organization, owner)]
        assert [via for _, via, _ in _events(engine)] == ["subscription"]
    finally:
        await fhir.request("DELETE", subscription)
