"""Shared by the workflow 3 tests (discharge, clinical record, aftercare): a referral ready for
discharge in the store, the clinical record as read from the server, and a FHIR client at the
respx seam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from integration.db import models
from integration.db import repositories as repo
from integration.db.referral_lookup import referral_key_of
from integration.db.store import session_scope
from integration.discharges import workflow
from integration.discharges.clinical_record import ClinicalRecord
from integration.discharges.workflow import DischargeResult
from integration.fhir.client import FhirClient
from integration.fhir.retry_policy import RetryPolicy
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from mappers import consent
from mappers.medication import MedicationList
from tests.builders import make_client, make_diagnosis
from tests.builders.discharge import make_aftercare, organization
from tests.builders.plans import make_plan
from tests.builders.referrals import make_consent, make_medication_list
from tests.builders.sessions import make_gad7, make_phq9

BASE = "http://fhir.test/fhir"
REFERRAL = "SD-DC-0001"
IOP = "Organization/iop-program"
NEXT = "Organization/harbor-street"
PATIENT = "Patient/p1"
START = datetime(2026, 1, 5, 17, 0, tzinfo=UTC)  # a Monday evening
DISCHARGED = START + timedelta(weeks=11, days=4)  # Friday of week 12
AT = DISCHARGED + timedelta(hours=2)
ALCOHOL = make_diagnosis(identifier="DX-1")
DEPRESSION = make_diagnosis(identifier="DX-2", icd10_code="F33.1", display="MDD, recurrent")


def make_record(**overrides: Any) -> ClinicalRecord:
    """The referral package as read from the server: SUD + depression, consent to the IOP and
    the next provider, final scores and the plan."""
    base = ClinicalRecord(
        patient=PATIENT,
        client=make_client(),
        iop_organization=IOP,
        organizations={
            IOP: organization("Riverside IOP", "ORG-IOP"),
            NEXT: organization("Harbor Street", "ORG-NEXT"),
        },
        diagnoses=(("Condition/dx1", ALCOHOL), ("Condition/dx2", DEPRESSION)),
        consents=(("Consent/c1", make_discharge_consent(recipients=(IOP, NEXT))),),
        scores=(
            ("QuestionnaireResponse/q1", make_phq9()),
            ("QuestionnaireResponse/q2", make_gad7()),
        ),
        plan=("CarePlan/plan1", make_plan(goals=())),
    )
    return replace(base, **overrides)


def make_discharge_consent(**overrides: Any) -> consent.DisclosureConsent:
    fields: dict[str, Any] = {"start": date(2026, 1, 1), "end": date(2026, 12, 31)}
    return make_consent(patient=PATIENT, **(fields | overrides))


def store_ready_referral(
    engine: Engine, *, reconciled: bool = True, meds: MedicationList | None = None
) -> int:
    """The referral, twelve weeks of sessions and the reconciled medication list in the store
    (sertraline and buprenorphine/naloxone unless ``meds`` says otherwise); its row key."""
    meds = meds or make_medication_list()
    with session_scope(engine) as session:
        referral = repo.add_referral(
            session, business_id=REFERRAL, client_mrn="MRN-1", iop_organization="IOP-DEMO-ORG",
            received_at=START - timedelta(days=3),
        )  # fmt: skip
        missed = ((2, 2), (7, 0))
        sessions = [
            (START + timedelta(weeks=w, days=d), "no-show" if (w, d) in missed else "attended")
            for w in range(12) for d in (0, 2, 3)
        ]  # fmt: skip
        sessions += [
            (START + timedelta(days=9), "cancelled"),
            (DISCHARGED + timedelta(days=3), "scheduled"),
        ]
        for n, (starts_at, attendance) in enumerate(sessions):
            repo.record_session(
                session, referral, business_id=f"S-{n}", starts_at=starts_at,
                attendance=models.Attendance(attendance),
            )  # fmt: skip
        medication_lists.record_discharge_list(session, referral.id, meds, START)
        medication_lists.record_intake_list(
            session, referral.id, replace(meds, identifier="IN", source=None), START
        )
        if reconciled:
            medications.reconcile_referral(session, referral.id, at=START)
        return referral.id


def discharge_now(
    engine: Engine, record: ClinicalRecord | None = None, **kw: Any
) -> DischargeResult:
    with session_scope(engine) as session:
        return workflow.discharge_client(
            session, referral_key_of(session, REFERRAL), record=record or make_record(),
            discharged_at=DISCHARGED, aftercare=make_aftercare(next_provider=NEXT), at=AT, **kw,
        )  # fmt: skip


@pytest.fixture
async def fhir() -> AsyncIterator[FhirClient]:
    client = FhirClient(httpx.AsyncClient(base_url=BASE + "/"), retry=RetryPolicy(max_attempts=1))
    yield client
    await client.aclose()
