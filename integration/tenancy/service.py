"""The one tenancy service of a process, built once (``api.app.create_app``) and injected:
which Organization on the FHIR server a caller's organization is, the IOP's own Organization,
and the ``Scope`` a caller reads under.

Two lookups, kept apart on purpose:

- any organization by its identifier value (``OrganizationDirectory``): searched once, kept in
  ``sync_record`` for every process, FHIR errors propagate to a caller that needs the answer;
- the IOP this process serves (``settings.organization_id``): looked up by identifier
  (``integration.fhir.setup.find_organization``, beside ``ensure_organization`` that creates it
  at start), kept in memory, bounded in time so that a slow FHIR server cannot hold a page, and
  tried again a minute later after a failure (the tracker's pages must answer without it).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import Engine

from integration.fhir.client import FhirClient
from integration.fhir.setup import find_organization
from integration.settings import Settings
from integration.tenancy.organizations import OrganizationDirectory
from integration.tenancy.scope import Scope, Side
from mappers.errors import IopBridgeError

log = logging.getLogger(__name__)


class Tenancy:
    """Organization lookups and scopes for one process (one FHIR client, one store)."""

    RETRY_SECONDS = 60.0

    def __init__(
        self, fhir: FhirClient, engine: Engine, settings: Settings, *, timeout_seconds: float = 5.0
    ) -> None:
        self.settings = settings
        self.directory = OrganizationDirectory(fhir, engine, settings.organization_id_system)
        self._fhir = fhir
        self._timeout = timeout_seconds
        self._iop: str | None = None
        self._next_try = 0.0

    async def reference(self, value: str) -> str | None:
        """``Organization/<id>`` of organization ``value``; None when it is not registered."""
        return await self.directory.reference(value)

    async def keys(self, value: str) -> tuple[str, ...]:
        """Every spelling of organization ``value`` in the store (never raises)."""
        return await self.directory.keys(value)

    async def scope(self, organization: str, side: Side = Side.IOP) -> Scope:
        """What a caller of ``organization`` reads, from ``side`` of the handoffs."""
        return Scope(await self.keys(organization), side)

    async def iop_reference(self, *, wait_to_retry: bool = True) -> str | None:
        """The IOP's own Organization on the server, or None while it cannot be found. After a
        miss the next lookup waits a minute, unless ``wait_to_retry`` is False (a notification
        from the FHIR server, which set up the Subscription for that Organization, asks again
        each time)."""
        due = not wait_to_retry or time.monotonic() >= self._next_try
        if self._iop is None and due:
            self._iop = await self._look_up_iop()
            self._next_try = time.monotonic() + self.RETRY_SECONDS
        return self._iop

    async def iop_scope(self, organization: str) -> Scope:
        """The tracker's scope: ``organization`` itself, and the IOP's server reference when it
        is the IOP this process serves (no lookup for any other organization)."""
        if organization != self.settings.organization_id:
            return Scope((organization,))
        found = await self.iop_reference()
        return Scope((organization,) if found is None else (organization, found))

    async def _look_up_iop(self) -> str | None:
        try:
            return await asyncio.wait_for(
                find_organization(self._fhir, self.settings), self._timeout
            )
        except (IopBridgeError, TimeoutError) as error:
            log.warning("IOP Organization lookup failed (%s)", type(error).__name__)
            return None
