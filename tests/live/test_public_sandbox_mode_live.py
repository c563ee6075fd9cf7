"""Public-sandbox mode (README "Against the public HAPI R4 sandbox"): no Subscription, poll only.

The public server cannot call a hook on a private address, shares its data with every other user
and expunges nothing for us. iop-bridge runs as a worker process does (``run_background``) with
``inbound_mode=poll`` and an Organization identifier of its own; the residential EHR refers a
client, and the poll alone takes the referral in. The test command runs it against the
stock-profile HAPI as well as the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from integration.db.inbound_table import InboundEvent
from integration.db.models import Referral
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.health import check_health
from integration.inbound.engine import find_organization
from integration.runtime import run_background
from integration.settings import Settings
from tests.conftest import live_base_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
from residential_ehr import ResidentialEhr

pytestmark = [pytest.mark.live, pytest.mark.anyio]


@pytest.fixture
def settings(live_settings: Settings, unique: str) -> Settings:
    return live_settings.model_copy(
        update={
            "inbound_mode": "poll",
            # one's own identifier, so nobody else's Tasks are ours on a shared server
            "organization_id": f"IOP-PUBLIC-{unique}",
            "inbound_fallback_poll_seconds": 1.0,
        }
    )


@pytest.fixture
async def running(
    fhir: FhirClient, engine: Engine, settings: Settings
) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    background = asyncio.create_task(
        run_background(engine, fhir, settings, worker_id="public-1", stop_event=stop)
    )
    yield stop
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(background, timeout=30)


def _taken_in(engine: Engine) -> tuple[list[str], list[str]]:
    with session_scope(engine) as session:
        referrals = list(session.scalars(select(Referral.business_id)))
        vias = list(session.scalars(select(InboundEvent.via)))
    return referrals, vias


async def test_poll_only__the_referral_arrives_without_any_subscription(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    running: asyncio.Event,
    unique: str,
) -> None:
    ehr = ResidentialEhr.connect(
        live_base_url(),
        organization_id=f"RES-{unique}",
        iop_identifier=(settings.organization_id_system, settings.organization_id),
    )
    try:
        for _ in range(120):  # iop-bridge creates its Organization first
            if await find_organization(fhir, settings):
                break
            await asyncio.sleep(0.5)
        referred = await ehr.refer(int(unique, 16))
        for _ in range(120):
            if _taken_in(engine)[0]:
                break
            await asyncio.sleep(0.5)
    finally:
        await ehr.aclose()

    referrals, vias = _taken_in(engine)
    assert referrals == [referred.identifier]
    assert set(vias) == {"poll"}
    organization = await find_organization(fhir, settings)
    found = await fhir.search("Subscription", {"criteria": f"Task?owner={organization}"})
    assert not found.get("entry")  # nothing asked of the server that it could not do
    report = await check_health(fhir, engine, settings)
    assert report.subscription is not None and report.subscription.status == "not-used"
    assert report.ok and not report.degraded
