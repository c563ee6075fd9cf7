"""Fixtures for the live tier: real HAPI server, per-test SQLite store, unique identifiers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from integration.db.store import create_db_engine
from integration.fhir.client import FhirClient
from integration.settings import Settings
from tests.conftest import live_base_url
from tests.us_core import ensure_us_core


@pytest.fixture
def live_settings(tmp_path: Path) -> Settings:
    return Settings(
        fhir_base_url=live_base_url(),  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'iop-bridge.db'}",
        retry_initial_wait_seconds=0.05,
        retry_max_wait_seconds=1.0,
    )


@pytest.fixture
async def fhir(live_settings: Settings) -> AsyncIterator[FhirClient]:
    client = FhirClient.from_settings(live_settings)
    yield client
    await client.aclose()


@pytest.fixture
def engine(live_settings: Settings) -> Engine:
    return create_db_engine(live_settings.database_url)


@pytest.fixture
def unique() -> str:
    """A suffix that keeps each test's business identifiers apart on the shared server."""
    return uuid.uuid4().hex[:10].upper()


@pytest.fixture(scope="session")
def us_core() -> None:
    """US Core 9.0.0 on the live server: our profiles derive from it (fhir_profiles.us_core)."""
    ensure_us_core(live_base_url())
