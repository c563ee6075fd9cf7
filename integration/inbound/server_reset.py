"""Noticing a FHIR server that forgot everything, and starting over with it.

An in-memory HAPI that restarts, a restored database, an ``$expunge`` or the public sandbox's
periodic purge all leave a server that hands out the same ids again (Organization/1000,
Task/1027, ...). iop-bridge must then neither trust its poll cursor (the new server's Tasks may
carry any lastUpdated) nor lose its Organization and Subscription. The sign it watches is its own
Organization: the instant version 1 of it was written (meta.lastUpdated of ``_history/1``) is
stored beside the poll cursors; when that Organization is gone, or its version 1 now carries
another instant (the same id handed out again), the server was reset. Then the Organization and
Subscriptions are set up again and the Task polls re-baseline: their cursors are cleared, so the
next polls read every Task of the Organization and of its PractitionerRoles, and the
de-duplication (keyed on meta.lastUpdated as well as the version, dedup.py) takes the new
server's Tasks as new. The organization directory's remembered lookups (``Organization/<id>``
per identifier) are forgotten too: a next provider registered again on the new server has
another id.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import Engine, delete

from integration.db.inbound_table import SyncCursor
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirNotFound
from integration.inbound.dedup import cursor_names, last_updated, read_cursor, write_cursor
from integration.privacy.logging_setup import Safe
from integration.tenancy.organizations import forget_lookups

log = logging.getLogger(__name__)

IDENTITY_PREFIX = "server-identity:"  # sync_cursor row: our Organization's creation instant


async def organization_born(fhir: FhirClient, organization: str) -> datetime | None:
    """When version 1 of ``organization`` was written, or None when it is not on the server."""
    try:
        first = await fhir.read("Organization", f"{organization.split('/', 1)[1]}/_history/1")
    except FhirNotFound:
        return None
    return last_updated(first)


def _start_over(engine: Engine, organization: str) -> None:
    """Clear both Task poll cursors and the remembered organization lookups, in one
    transaction."""
    with session_scope(engine) as session:
        # both Task polls: by the Organization as owner and by its PractitionerRoles
        session.execute(delete(SyncCursor).where(SyncCursor.name.in_(cursor_names(organization))))
        forget_lookups(session)


async def note_server(engine: Engine, organization: str, born: datetime | None) -> str | None:
    """Compare with the instant stored for ``organization``; on a difference re-baseline the
    poll. Returns why a reset was concluded, or None."""
    if born is None:
        return None  # a server that keeps no history: nothing to compare
    name = IDENTITY_PREFIX + organization
    stored = await asyncio.to_thread(read_cursor, engine, name)
    if stored == born:
        return None
    await asyncio.to_thread(write_cursor, engine, name, born)
    if stored is None:
        return None  # first sight of this Organization
    # built from an id and two server instants only: safe to log as it is
    reason = Safe(
        f"{organization} was created at {born.isoformat()}, not at {stored.isoformat()} "
        "as before: the server forgot its data and hands out the same ids again"
    )
    await asyncio.to_thread(_start_over, engine, organization)
    log.warning(
        "FHIR server reset detected (%s); Task polls of %s re-baselined: every Task is read "
        "again; organization lookups forgotten",
        reason,
        organization,
    )
    return reason


async def reset_reason(fhir: FhirClient, engine: Engine, organization: str) -> str | None:
    """Why the server looks reset for ``organization`` (gone, or re-created), or None."""
    born = await organization_born(fhir, organization)
    if born is None:
        reason = Safe(f"{organization} is gone from the server")
        log.warning("FHIR server reset detected (%s); setting up again", reason)
        return reason
    return await note_server(engine, organization, born)
