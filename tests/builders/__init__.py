"""Builders: plain functions returning synthetic domain objects, with keyword overrides."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from mappers.condition import Diagnosis
from mappers.patient import Client

MRN_SYSTEM = "http://iop-bridge.example/fhir/sid/mrn"
CONDITION_SYSTEM = "http://iop-bridge.example/fhir/sid/condition"


def make_client(**overrides: Any) -> Client:
    """A synthetic IOP client (no real person)."""
    base = Client(
        mrn="IOP-TEST-0001",
        family_name="Rivera",
        given_names=("Alex", "J"),
        birth_date=date(1991, 4, 12),
        gender="female",
    )
    return replace(base, **overrides)


def make_diagnosis(**overrides: Any) -> Diagnosis:
    """A synthetic diagnosis; ICD-10-CM F10.20 (reference section 2.5, [CODE]-sourced)."""
    base = Diagnosis(
        identifier="DX-TEST-0001",
        icd10_code="F10.20",
        display="Alcohol dependence, uncomplicated",
        category="problem-list-item",
        clinical_status="active",
        verification_status="confirmed",
        onset="2024-09-01",
    )
    return replace(base, **overrides)
