"""The IOP Organization and the Task Subscription are created once, however often we ask."""

from __future__ import annotations

import asyncio

import pytest

from integration.fhir.client import FhirClient
from integration.fhir.setup import (
    ensure_organization,
    ensure_questionnaires,
    ensure_task_subscription,
)
from integration.settings import Settings
from mappers import asam_intake, assessment
from tests.builders.sessions import ASSESSMENT_SYSTEM, make_gad7, make_intake, make_phq9

pytestmark = [pytest.mark.live, pytest.mark.anyio]


async def test_ensure_organization__same_organization_every_time(
    fhir: FhirClient, live_settings: Settings, unique: str
) -> None:
    settings = live_settings.model_copy(update={"organization_id": f"IOP-{unique}"})
    first = await ensure_organization(fhir, settings, name="Synthetic IOP")
    second = await ensure_organization(fhir, settings, name="Synthetic IOP")
    assert first == second
    assert first.startswith("Organization/")


@pytest.mark.resthook
async def test_ensure_task_subscription__created_once_and_activated(
    fhir: FhirClient, live_settings: Settings, unique: str
) -> None:
    settings = live_settings.model_copy(update={"organization_id": f"IOP-{unique}"})
    organization = await ensure_organization(fhir, settings, name="Synthetic IOP")
    endpoint = f"http://127.0.0.1:9/hooks-{unique}"  # nothing listens: only activation is checked
    first = await ensure_task_subscription(fhir, organization, endpoint, "secret")
    second = await ensure_task_subscription(fhir, organization, endpoint, "secret")
    assert first == second
    for _ in range(60):  # HAPI activates subscriptions asynchronously (a few seconds)
        if (await fhir.read("Subscription", first.split("/")[1]))["status"] == "active":
            break
        await asyncio.sleep(0.5)
    assert (await fhir.read("Subscription", first.split("/")[1]))["status"] == "active"


async def test_ensure_questionnaires__every_canonical_we_write_resolves(fhir: FhirClient) -> None:
    await ensure_questionnaires(fhir)
    assert await ensure_questionnaires(fhir) == 0  # the second time creates nothing
    subject = "Patient/p1"
    written = [
        assessment.to_fhir(make_phq9(), id_system=ASSESSMENT_SYSTEM, subject_reference=subject),
        assessment.to_fhir(make_gad7(), id_system=ASSESSMENT_SYSTEM, subject_reference=subject),
        asam_intake.to_fhir(make_intake(), id_system=ASSESSMENT_SYSTEM, subject_reference=subject),
    ]
    for response in written:
        found = await fhir.search("Questionnaire", {"url": response["questionnaire"]})
        assert found.get("entry"), f"{response['questionnaire']} does not resolve on the server"
