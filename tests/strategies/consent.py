"""Hypothesis strategies for valid Part 2 DisclosureConsents (synthetic data only)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from fhir_profiles.terminology.privacy import DATA_CLASSES, PURPOSES
from mappers.consent import CONSENT_STATUSES, DisclosureConsent
from tests.strategies.encounter import aware_datetimes
from tests.strategies.referral import days, identifiers, references


@st.composite
def consents(draw: st.DrawFn) -> DisclosureConsent:
    """Any valid consent: every status, one to three recipients, purposes and data classes."""
    start = draw(days)
    return DisclosureConsent(
        identifier=draw(identifiers),
        status=draw(st.sampled_from(sorted(CONSENT_STATUSES))),
        patient=draw(references("Patient")),
        date_time=draw(aware_datetimes()),
        start=start,
        end=start + timedelta(days=draw(st.integers(0, 3 * 366))),
        recipients=tuple(
            draw(st.lists(references("Organization"), min_size=1, max_size=3, unique=True))
        ),
        purposes=tuple(
            draw(st.lists(st.sampled_from(sorted(PURPOSES)), min_size=1, max_size=3, unique=True))
        ),
        data_classes=tuple(
            draw(st.lists(st.sampled_from(sorted(DATA_CLASSES)), min_size=1, unique=True))
        ),
        custodian=draw(st.none() | references("Organization")),
    )
