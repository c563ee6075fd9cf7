"""Which Organization on the FHIR server a caller's organization is.

A caller's organization (``Principal.organization``, the tenant key) is an identifier value in the
deployment's organization identifier system (``settings.organization_id_system``): the IOP itself
is ``<system>|<settings.organization_id>``, and each EHR system's organization is registered on
the FHIR server under ``<system>|<its key>``. The store, like the FHIR server, spells
organizations as references (``Organization/123``: ``referral.iop_organization``,
``referral_link.requester``, ``discharge_record.next_provider``), so scoping needs both.

A lookup searches the server by identifier once and keeps the answer in ``sync_record`` (where one
business identifier lives on the server), so later lookups, and other processes, need no FHIR
round trip. Only a single match is kept: none means "not registered", several is a data error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from integration.db.store import record_sync, session_scope
from integration.db.sync_table import SyncRecord
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirTransportError
from mappers import bundle
from mappers.errors import IopBridgeError, Problem
from mappers.fhir_reference import literal_reference

log = logging.getLogger(__name__)
ORGANIZATION = "Organization"
RESOLVED = "resolved"  # sync_record.last_outcome of a lookup (not a write)
LOOKUP_TIMEOUT_SECONDS = 10.0  # a read must not hang on a slow FHIR server


def forget_lookups(session: Session) -> int:
    """Drop every remembered organization lookup; returns how many. Used when the FHIR server
    was reset: its Organizations got new ids (or an old id now names another resource), so a
    remembered ``Organization/<id>`` would address a next provider that is not there."""
    gone = session.execute(
        delete(SyncRecord).where(
            SyncRecord.resource_type == ORGANIZATION, SyncRecord.last_outcome == RESOLVED
        )
    )
    return int(getattr(gone, "rowcount", 0) or 0)


class AmbiguousOrganization(IopBridgeError):
    """Several Organizations on the FHIR server carry the same business identifier."""

    http_status = 409
    issue_code = "multiple-matches"


@dataclass(frozen=True, slots=True)
class OrganizationDirectory:
    """Organization identifier values -> ``Organization/<id>`` on the FHIR server."""

    fhir: FhirClient
    engine: Engine
    system: str

    async def reference(self, value: str) -> str | None:
        """The server reference of organization ``value``; None when it is not registered.
        FHIR errors propagate (the caller needs the answer, e.g. to build a submission)."""
        known = await asyncio.to_thread(self._recorded, value)
        if known is not None:
            return known
        token = bundle.identifier_token(self.system, value)
        try:
            page = await asyncio.wait_for(
                self.fhir.search(ORGANIZATION, {"identifier": token}), LOOKUP_TIMEOUT_SECONDS
            )
        except TimeoutError:
            raise FhirTransportError("the organization lookup timed out") from None
        ids = [
            str(entry["resource"]["id"])
            for entry in page.get("entry") or []
            if isinstance(entry.get("resource"), dict) and entry["resource"].get("id")
        ]
        if len(ids) > 1:
            problem = Problem("Organization.identifier", f"{len(ids)} Organizations carry {token}")
            raise AmbiguousOrganization(f"organization {value!r} is ambiguous", problems=[problem])
        if not ids:
            return None
        await asyncio.to_thread(self._record, value, ids[0])
        return literal_reference(ORGANIZATION, ids[0])

    async def keys(self, value: str) -> tuple[str, ...]:
        """Every spelling of organization ``value`` in the store: the value itself and, when the
        server knows it, its reference. Never raises: a failed lookup narrows to the value."""
        try:
            found = await self.reference(value)
        except IopBridgeError as error:
            log.warning("organization lookup failed (%s)", type(error).__name__)
            found = None
        return (value,) if found is None else (value, found)

    def _recorded(self, value: str) -> str | None:
        query = select(SyncRecord.server_id).where(
            SyncRecord.resource_type == ORGANIZATION,
            SyncRecord.identifier_system == self.system,
            SyncRecord.identifier_value == value,
            SyncRecord.server_id.is_not(None),
        )
        with session_scope(self.engine) as session:
            server_id = session.scalar(query)
        return None if server_id is None else literal_reference(ORGANIZATION, server_id)

    def _record(self, value: str, server_id: str) -> None:
        with session_scope(self.engine) as session:
            record_sync(
                session,
                resource_type=ORGANIZATION,
                identifier=(self.system, value),
                server_id=server_id,
                version_id=None,
                outcome=RESOLVED,
            )
