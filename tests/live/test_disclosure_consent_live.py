"""A consent the IOP records for the next provider, against HAPI: the discharge is refused while
the referral's Consent names only the IOP; the recorded consent lands on the server as a Consent
that HAPI's validator passes with zero errors and our reader reads as naming the next provider;
the same discharge then goes through, permitted by that Consent."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from fhir_profiles import canonical
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.store import session_scope
from integration.discharges import consents, workflow
from integration.discharges.consents import ConsentOrder
from integration.fhir.client import FhirClient
from integration.fhir.conformance import validate
from integration.fhir.setup import ensure_organization
from integration.settings import Settings
from integration.tenancy.service import Tenancy
from integration.workflow_errors import DisclosureRefused
from mappers import consent_reader
from mappers.bundle import identifier_token
from tests.live.test_discharge_live import DISCHARGED, _aftercare, _ready_for_discharge
from tests.live.test_medications_live import drain_outbox, post_package, store_referral

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox"))
import aftercare_provider as provider

pytestmark = [pytest.mark.live, pytest.mark.anyio]


async def test_recorded_consent__lands_valid_and_lets_the_discharge_through(
    fhir: FhirClient, engine: Engine, live_settings: Settings
) -> None:
    directory_id = f"AFTER-{uuid.uuid4().hex[:10].upper()}"
    with provider.http_client(live_settings.fhir_base) as client:
        next_provider = provider.ensure_organization(
            client, name="Harbor Street Outpatient Counseling", identifier=uuid.uuid4().hex,
            directory=(live_settings.organization_id_system, directory_id),
        )  # fmt: skip
    await ensure_organization(fhir, live_settings, name="Synthetic IOP")
    package = await post_package(fhir)  # the referral's Consent names the IOP only
    referral_id = store_referral(engine, package)
    _ready_for_discharge(engine, referral_id, package)
    key = await _linked_to_its_patient(fhir, engine, referral_id, package.client.mrn)

    async def discharge() -> workflow.DischargeResult:
        return await workflow.discharge(
            engine, fhir, key, iop_organization="Organization/iop-program",
            discharged_at=DISCHARGED, aftercare=_aftercare(next_provider), at=datetime.now(UTC),
        )  # fmt: skip

    with pytest.raises(DisclosureRefused):
        await discharge()

    today = datetime.now(UTC).date()
    order = ConsentOrder(
        recipient=directory_id, start=today - timedelta(days=1),
        end=today + timedelta(days=365), signed_on=today - timedelta(days=1),
    )  # fmt: skip
    view = await consents.record_consent(
        engine, Tenancy(fhir, engine, live_settings), key, order=order, at=datetime.now(UTC)
    )
    await drain_outbox(engine, fhir)
    on_server = await fhir.read("Consent", view.id)
    report = await validate(fhir, on_server)
    assert report.errors == (), report.errors
    read = consent_reader.from_fhir(on_server, id_system=canonical.CONSENT_ID_SYSTEM).value
    assert (read.status, read.recipients) == ("active", (next_provider,))
    assert read.custodian is not None and read.custodian.startswith("Organization/")
    assert "all SUD treatment records" in on_server["text"]["div"]

    result = await discharge()
    assert result.consent == f"Consent/{view.id}"


async def _linked_to_its_patient(
    fhir: FhirClient, engine: Engine, referral_id: str, mrn: str
) -> int:
    """The referral's link to its Patient on the server, as the step-down intake leaves it."""
    token = identifier_token(canonical.MRN_SYSTEM, mrn)
    [found] = (await fhir.search("Patient", {"identifier": token}))["entry"]
    with session_scope(engine) as session:
        referral = repo.get_referral(session, referral_id)
        assert referral is not None
        session.add(ReferralLink(
            referral_id=referral.id, task_identifier_system=canonical.TASK_ID_SYSTEM,
            task_identifier_value=referral_id, patient=f"Patient/{found['resource']['id']}",
        ))  # fmt: skip
        return referral.id
