"""A reset FHIR server (server_reset.note_server) also forgets the organization directory's
remembered lookups: after a reset, a remembered ``Organization/<id>`` names nothing, or another
resource, while the directory would keep answering it without asking the server again."""

# ruff: noqa: F811  (fixtures imported from tests.db.fixtures are parameters)

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from integration.db.store import record_sync, session_scope
from integration.db.sync_table import SyncRecord
from integration.inbound import dedup
from integration.inbound.server_reset import IDENTITY_PREFIX, note_server
from integration.tenancy.organizations import RESOLVED
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

pytestmark = pytest.mark.anyio
ORG = "Organization/1000"
DIRECTORY = "http://iop-bridge.example/fhir/sid/organization"
BORN = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _remember(engine: Engine) -> None:
    with session_scope(engine) as session:
        record_sync(session, resource_type="Organization", identifier=(DIRECTORY, "OUTPT-HARBOR"),
                    server_id="1103", version_id=None, outcome=RESOLVED)  # fmt: skip
        # a record we delivered ourselves: not a directory lookup, kept
        record_sync(session, resource_type="Patient", identifier=("urn:test:mrn", "MRN-1"),
                    server_id="1200", version_id="1", outcome="created")  # fmt: skip


def _rows(engine: Engine) -> set[tuple[str, str]]:
    with session_scope(engine) as session:
        found = session.execute(select(SyncRecord.resource_type, SyncRecord.identifier_value))
        return {(kind, value) for kind, value in found}


async def test_note_server__a_reset_forgets_remembered_organization_lookups(
    engine: Engine,
) -> None:
    dedup.write_cursor(engine, IDENTITY_PREFIX + ORG, BORN)
    _remember(engine)
    reason = await note_server(engine, ORG, datetime(2026, 11, 4, 8, 0, tzinfo=UTC))
    assert reason is not None
    assert _rows(engine) == {("Patient", "MRN-1")}


async def test_note_server__the_same_server_keeps_them(engine: Engine) -> None:
    dedup.write_cursor(engine, IDENTITY_PREFIX + ORG, BORN)
    _remember(engine)
    assert await note_server(engine, ORG, BORN) is None
    assert _rows(engine) == {("Organization", "OUTPT-HARBOR"), ("Patient", "MRN-1")}
