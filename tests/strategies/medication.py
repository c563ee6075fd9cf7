"""Hypothesis strategies for valid MedicationEntries and MedicationLists (synthetic data only)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from fhir_profiles.terminology import clinical
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.systems import RXNORM
from mappers.medication import (
    LIST_STATUSES,
    STATEMENT_STATUSES,
    Dose,
    ListSource,
    MedicationEntry,
    MedicationList,
)
from tests.strategies.encounter import aware_datetimes
from tests.strategies.referral import days, identifiers, texts

# Every RxNorm Code fhir_profiles records (reference 2.6).
RXNORM_CODES = sorted(
    (c for c in vars(clinical).values() if isinstance(c, Code) and c.system == RXNORM),
    key=lambda c: c.code,
)
# UCUM units (sent with their code) and count units (sent as unit text only).
DOSE_UNITS = ("mg", "g", "ug", "mL", "tablet", "film", "capsule")
# Amounts in thousandths, as a dose is written (exact in JSON and as a FHIR decimal).
doses = st.builds(
    Dose, st.integers(1, 2_000_000).map(lambda n: n / 1000), st.sampled_from(DOSE_UNITS)
)


@st.composite
def medication_entries(draw: st.DrawFn) -> MedicationEntry:
    """Any valid entry: coded with a verified RxNorm code or text-only, any status, with or
    without each dosage part, started and possibly ended."""
    code = draw(st.none() | st.sampled_from(RXNORM_CODES))
    start = draw(st.none() | days)
    end = None
    if start is not None and draw(st.booleans()):
        end = start + timedelta(days=draw(st.integers(0, 400)))
    return MedicationEntry(
        identifier=draw(identifiers),
        medication=code.display if code is not None else draw(texts),
        rxnorm_code=None if code is None else code.code,
        status=draw(st.sampled_from(sorted(STATEMENT_STATUSES))),
        dose_text=draw(st.none() | texts),
        dose=draw(st.none() | doses),
        times_per_day=draw(st.none() | st.integers(1, 6)),
        start=start,
        end=end,
    )


@st.composite
def medication_lists(draw: st.DrawFn) -> MedicationList:
    """Any valid list of up to five entries with distinct identifiers."""
    entries = draw(st.lists(medication_entries(), max_size=5, unique_by=lambda e: e.identifier))
    return MedicationList(
        identifier=draw(identifiers),
        title=draw(texts),
        source=draw(st.none() | st.sampled_from(ListSource)),
        date=draw(aware_datetimes()),
        entries=tuple(entries),
        status=draw(st.sampled_from(sorted(LIST_STATUSES))),
    )
