"""Shared by the inbound tests: Task builders, a counting handler, a respx-faked FHIR client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import HttpUrl
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from integration.db.inbound_table import InboundEvent
from integration.db.models import Referral
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirServerUnavailable
from integration.fhir.retry_policy import RetryPolicy
from integration.inbound import engine as inbound
from integration.settings import Settings

BASE = "http://fhir.test/fhir"
ORG = "Organization/iop-1"
FAR_FUTURE = datetime(2031, 1, 1, tzinfo=UTC)  # our clock: must never become the cursor


def make_task(
    task_id: str, version: str = "1", updated: str = "2026-11-02T10:00:00.000Z"
) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": task_id,
        "status": "requested",
        "meta": {"versionId": version, "lastUpdated": updated},
    }


class CountingHandler:
    """Counts handler calls; its database step stores a referral named after the version.

    ``fail_for``: the id whose I/O fails; ``steps``: ids whose database step is replaced;
    ``during``: awaited in the I/O of each Task (to interleave another delivery there).
    """

    def __init__(
        self,
        *,
        fail_for: str | None = None,
        pause: float = 0.0,
        steps: Mapping[str, inbound.Apply] | None = None,
        during: Callable[[Mapping[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_for = fail_for
        self.pause = pause
        self.steps = steps or {}
        self.during = during

    async def __call__(self, task: Mapping[str, Any]) -> inbound.Apply:
        self.calls.append((task["id"], task["meta"]["versionId"]))
        if task["id"] == self.fail_for:
            raise FhirServerUnavailable("503 while reading the package")
        await asyncio.sleep(self.pause)  # lets concurrent deliveries interleave here
        if self.during is not None:
            await self.during(task)
        if task["id"] in self.steps:
            return self.steps[task["id"]]
        business_id = f"{task['id']}-v{task['meta']['versionId']}"
        return lambda session, now: store_referral(session, business_id, now)


def store_referral(session: Session, business_id: str, now: datetime) -> None:
    """A stand-in database step: one referral row (its business_id is unique)."""
    session.add(
        Referral(
            business_id=business_id,
            status="requested",
            client_mrn="M",
            iop_organization=ORG,
            received_at=now,
        )
    )


def handled_rows(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return sorted(session.scalars(select(Referral.business_id)))


def event_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(InboundEvent)) or 0)


@pytest.fixture
async def fhir() -> AsyncIterator[FhirClient]:
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(1, 0, 0))
    yield client
    await client.aclose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(fhir_base_url=HttpUrl(BASE), database_url="sqlite://")


def searchset(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": t, "search": {"mode": "match"}} for t in tasks],
    }
