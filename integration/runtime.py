"""The background side of one iop-bridge process: FHIR setup, outbox worker and inbound poll.

Run by ``iop-bridge worker`` (any database) and, when ``embedded_worker`` is on, inside the API
process (the SQLite default: one process owns the embedded database).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from integration.discharges.aftercare import poll_open_discharges
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirError
from integration.fhir.setup import (
    ensure_organization,
    ensure_questionnaires,
    ensure_task_subscription,
    ensure_task_subscriptions,
)
from integration.fhir.subscription_health import MISSING
from integration.inbound.engine import poll_inbound_tasks
from integration.inbound.server_reset import note_server, organization_born, reset_reason
from integration.inbound.watch import SubscriptionWatch
from integration.outbox.queue import DEFAULT_LEASE_SECONDS
from integration.outbox.worker import run_worker
from integration.referrals.package import settle_delivered
from integration.settings import Settings
from mappers.errors import IopBridgeError

log = logging.getLogger(__name__)


async def set_up_fhir_side(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    *,
    subscribe: bool,
    stop_event: asyncio.Event,
) -> str | None:
    """Ensure our Organization (and both Task Subscriptions); retry while the server is away."""
    delay = 1.0
    while not stop_event.is_set():
        try:
            organization = await ensure_organization(
                fhir, settings, name=settings.organization_name
            )
            await ensure_questionnaires(fhir)
            if subscribe:
                await ensure_task_subscriptions(
                    fhir, organization, settings.hook_base_url, settings.hook_secret
                )
            # a server that forgot since our last run re-baselines the poll (server_reset.py)
            await note_server(engine, organization, await organization_born(fhir, organization))
            return organization
        except FhirError as error:
            log.warning("FHIR setup failed (%s); retrying in %.0f s", type(error).__name__, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=delay)
            delay = min(delay * 2, 60.0)
    return None


def freeze_startup_heap() -> int:
    """Take what is alive after start-up out of the cyclic garbage collector's reach.

    Start-up leaves some 110,000 long-lived objects (modules, classes, SQLAlchemy's compiled
    statements). Every full collection walks all of them, and outbox payloads (a 28 kB Bundle is
    some 2,000 objects) that live through a send are what trigger full collections: measured
    here, one such collection per 80 packages stalled the event loop for 50-70 ms, and the
    collector's CPU fell from 1.1 to 0.4 ms per package once they were frozen. Garbage from
    start-up is collected first; later garbage is collected as before. Returns how many
    objects are frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def run_background(
    engine: Engine,
    fhir: FhirClient,
    settings: Settings,
    *,
    worker_id: str,
    stop_event: asyncio.Event,
    subscribe: bool = True,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> None:
    """Set up, then deliver the outbox and poll for Task changes until ``stop_event`` is set."""
    subscribe = subscribe and settings.inbound_mode == "subscription"
    organization = await set_up_fhir_side(
        fhir, engine, settings, subscribe=subscribe, stop_event=stop_event
    )
    if organization is None:
        return
    frozen = freeze_startup_heap()  # imports, migrations, clients and the set-up are done
    log.debug("start-up heap frozen: %s objects", frozen)
    await asyncio.gather(
        run_worker(
            engine,
            fhir,
            worker_id=worker_id,
            stop_event=stop_event,
            concurrency=settings.worker_concurrency,
            batch_size=settings.worker_batch_size,
            poll_interval=settings.worker_poll_seconds,
            lease_seconds=lease_seconds,
            on_delivered=partial(settle_delivered, context=settings.mapping_context()),
        ),
        run_inbound(
            fhir, engine, settings, organization, subscribe=subscribe, stop_event=stop_event
        ),
    )


async def run_inbound(
    fhir: FhirClient,
    engine: Engine,
    settings: Settings,
    organization: str,
    *,
    subscribe: bool,
    stop_event: asyncio.Event,
) -> None:
    """Each round: notice a reset server, read both Subscriptions' states (re-creating one gone
    from the server), poll for Task changes (both searches) and for aftercare acknowledgements;
    then wait the poll interval, or the shorter fallback while a Subscription is not active."""
    watch = SubscriptionWatch()
    while not stop_event.is_set():
        try:
            if await reset_reason(fhir, engine, organization):
                found = await set_up_fhir_side(
                    fhir, engine, settings, subscribe=subscribe, stop_event=stop_event
                )
                organization = found or organization
            if subscribe:
                await _recreate_missing(fhir, settings, organization, watch)
            await poll_inbound_tasks(fhir, engine, settings, organization)
            # the next providers' acknowledgements of aftercare Tasks are recorded here, not by
            # the GET that shows them (a read writes nothing)
            await poll_open_discharges(fhir, engine, context=settings.mapping_context())
        except (IopBridgeError, SQLAlchemyError) as exc:
            log.warning("poll of %s failed (%s)", organization, type(exc).__name__)
        notified = subscribe and watch.notifying
        interval = settings.inbound_poll_seconds
        if not notified:
            interval = min(interval, settings.inbound_fallback_poll_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=interval)


async def _recreate_missing(
    fhir: FhirClient, settings: Settings, organization: str, watch: SubscriptionWatch
) -> None:
    """Read both Subscriptions' states; create again each one gone from the server."""
    for search, health in (await watch.check(fhir, settings, organization)).items():
        if health.status == MISSING:
            log.warning("Subscription missing on the server: creating it again (%s)", search.key)
            await ensure_task_subscription(
                fhir, organization, settings.hook_base_url, settings.hook_secret, search
            )
