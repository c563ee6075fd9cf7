"""Builders for sessions, residential stays and assessments: synthetic data, keyword overrides."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from fhir_profiles.canonical import identifier_system_url
from mappers.asam_intake import DimensionRating, IntakeAssessment
from mappers.assessment import Assessment
from mappers.encounter import Attendance, Delivery, Session, SessionKind
from mappers.residential import ResidentialStay

SESSION_SYSTEM = identifier_system_url("session")
STAY_SYSTEM = identifier_system_url("residential-stay")
ASSESSMENT_SYSTEM = identifier_system_url("assessment")
SUBJECT = "Patient/iop-test-0001"
IOP_ORGANIZATION = "Organization/iop-program"
RESIDENTIAL_ORGANIZATION = "Organization/residential-program"
REFERRAL = "ServiceRequest/step-down-0001"

EASTERN = timezone(timedelta(hours=-4))


def make_session(**overrides: Any) -> Session:
    """An attended in-person evening group session (18:00-21:00, a common IOP block)."""
    base = Session(
        identifier="SES-TEST-0001",
        kind=SessionKind.GROUP,
        delivery=Delivery.IN_PERSON,
        attendance=Attendance.ATTENDED,
        start=datetime(2024, 10, 7, 18, 0, tzinfo=EASTERN),
        end=datetime(2024, 10, 7, 21, 0, tzinfo=EASTERN),
    )
    return replace(base, **overrides)


def make_residential_stay(**overrides: Any) -> ResidentialStay:
    """A 28-day ASAM 3.5 stay, discharged home the day before IOP intake."""
    base = ResidentialStay(
        identifier="RES-TEST-0001",
        asam_level="3.5",
        admitted=datetime(2024, 9, 6, 10, 0, tzinfo=EASTERN),
        discharged=datetime(2024, 10, 4, 11, 30, tzinfo=EASTERN),
        discharge_disposition="home",
    )
    return replace(base, **overrides)


def make_phq9(**overrides: Any) -> Assessment:
    """A PHQ-9 totalling 14 (moderate), with the difficulty question answered."""
    base = Assessment(
        identifier="PHQ9-TEST-0001",
        instrument="phq-9",
        item_scores=(2, 2, 3, 2, 1, 2, 1, 1, 0),
        authored=datetime(2024, 10, 7, 17, 30, tzinfo=EASTERN),
        status="completed",
        difficulty="LA6573-5",
    )
    return replace(base, **overrides)


def make_gad7(**overrides: Any) -> Assessment:
    """A GAD-7 totalling 11 (moderate)."""
    base = Assessment(
        identifier="GAD7-TEST-0001",
        instrument="gad-7",
        item_scores=(2, 2, 2, 1, 1, 2, 1),
        authored=datetime(2024, 10, 7, 17, 35, tzinfo=EASTERN),
    )
    return replace(base, **overrides)


def make_intake(**overrides: Any) -> IntakeAssessment:
    """An intake with the six ASAM dimension ratings of a client stepping down from 3.5."""
    base = IntakeAssessment(
        identifier="INTAKE-TEST-0001",
        authored=datetime(2024, 10, 7, 16, 0, tzinfo=EASTERN),
        ratings=(
            DimensionRating(0, "No withdrawal signs; last use 40 days ago."),
            DimensionRating(1, None),
            DimensionRating(2, "Moderate depressive symptoms (PHQ-9 14)."),
            DimensionRating(1, "Motivated; wants to return to work."),
            DimensionRating(2, "Cravings in the evenings."),
            DimensionRating(2, "Lives with a partner who drinks."),
        ),
    )
    return replace(base, **overrides)
