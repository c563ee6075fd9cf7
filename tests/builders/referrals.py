"""Builders for the step-down referral package: medications, the referral, its Task and the
Part 2 consent. Synthetic data only; plain functions with keyword overrides."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fhir_profiles.canonical import identifier_system_url
from fhir_profiles.terminology.clinical import RX_BUP_NAL_FILM_8_2, RX_SERTRALINE_50
from mappers.consent import DisclosureConsent
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from mappers.referral import Referral
from mappers.referral_task import ReferralTask

MEDICATION_SYSTEM = identifier_system_url("medication-statement")
MED_LIST_SYSTEM = identifier_system_url("medication-list")
REFERRAL_SYSTEM = identifier_system_url("referral")
TASK_SYSTEM = identifier_system_url("referral-task")
CONSENT_SYSTEM = identifier_system_url("consent")

SUBJECT = "Patient/iop-test-0001"
IOP_ORGANIZATION = "Organization/iop-program"
RESIDENTIAL_ORGANIZATION = "Organization/residential-program"
REFERRAL = "ServiceRequest/step-down-0001"
DIAGNOSES = ("Condition/dx-alcohol", "Condition/dx-mdd")
FIRST_SESSION = "Encounter/iop-session-0001"
PACKAGE = (
    "Encounter/residential-stay-0001",
    "QuestionnaireResponse/phq9-0001",
    "List/discharge-meds-0001",
    "Consent/part2-0001",
)

EASTERN = timezone(timedelta(hours=-4))
DISCHARGED = datetime(2024, 10, 4, 11, 30, tzinfo=EASTERN)


def make_sertraline(**overrides: Any) -> MedicationEntry:
    """Sertraline 50 mg once daily (RxNorm 312941, reference 2.6)."""
    base = MedicationEntry.of(
        RX_SERTRALINE_50,
        "MED-TEST-0001",
        dose_text="50 mg by mouth once daily",
        dose=Dose(50, "mg"),
        times_per_day=1,
        start=date(2024, 9, 12),
    )
    return replace(base, **overrides)


def make_buprenorphine(**overrides: Any) -> MedicationEntry:
    """Buprenorphine/naloxone 8/2 mg film, one film twice a day (RxNorm 1010604)."""
    base = MedicationEntry.of(
        RX_BUP_NAL_FILM_8_2,
        "MED-TEST-0002",
        dose_text="1 film under the tongue twice daily",
        dose=Dose(1, "film"),
        times_per_day=2,
        start=date(2024, 9, 7),
    )
    return replace(base, **overrides)


def make_text_only_medication(**overrides: Any) -> MedicationEntry:
    """A supplement with no verified RxNorm code: text only, no structured dose."""
    base = MedicationEntry("MED-TEST-0003", "Omega-3 fish oil (patient reported)")
    return replace(base, **overrides)


def make_medication_list(**overrides: Any) -> MedicationList:
    """The residential discharge list handed over with the step-down referral."""
    base = MedicationList(
        identifier="MEDLIST-TEST-0001",
        title="Residential discharge medications",
        source=ListSource.RESIDENTIAL_DISCHARGE,
        date=DISCHARGED,
        entries=(make_sertraline(), make_buprenorphine()),
    )
    return replace(base, **overrides)


def statement_references(med_list: MedicationList) -> tuple[str, ...]:
    """One MedicationStatement reference per entry, derived from its identifier."""
    return tuple(f"MedicationStatement/{e.identifier.lower()}" for e in med_list.entries)


def make_referral(**overrides: Any) -> Referral:
    """Residential (ASAM 3.5) to IOP (ASAM 2.1) step-down, first day the Monday after discharge."""
    base = Referral(
        identifier="REF-TEST-0001",
        status="active",
        level_of_care="2.1",
        subject=SUBJECT,
        requester=RESIDENTIAL_ORGANIZATION,
        performer=IOP_ORGANIZATION,
        authored_on=datetime(2024, 10, 3, 15, 0, tzinfo=EASTERN),
        requested_start=date(2024, 10, 7),
        reasons=DIAGNOSES,
        supporting_info=PACKAGE,
        note="Evening track preferred (works days).",
    )
    return replace(base, **overrides)


def make_referral_task(**overrides: Any) -> ReferralTask:
    """The new step-down Task, requested and owned by the IOP organization."""
    base = ReferralTask(
        identifier="REF-TEST-0001",
        status="requested",
        focus=REFERRAL,
        patient=SUBJECT,
        requester=RESIDENTIAL_ORGANIZATION,
        authored_on=datetime(2024, 10, 3, 15, 5, tzinfo=EASTERN),
        owner=IOP_ORGANIZATION,
        business_status="2.0",
    )
    return replace(base, **overrides)


def make_consent(**overrides: Any) -> DisclosureConsent:
    """Part 2 consent to disclose SUD records to the IOP for treatment, for one year."""
    base = DisclosureConsent(
        identifier="CONSENT-TEST-0001",
        status="active",
        patient=SUBJECT,
        date_time=datetime(2024, 10, 2, 14, 0, tzinfo=EASTERN),
        start=date(2024, 10, 2),
        end=date(2025, 10, 1),
        recipients=(IOP_ORGANIZATION,),
        purposes=("TREAT",),
        data_classes=("ETH",),
        custodian=RESIDENTIAL_ORGANIZATION,
    )
    return replace(base, **overrides)
