"""Valid diagnoses drawn from the ICD-10-CM codes fhir_profiles records (reference section 2.5)."""

from __future__ import annotations

from hypothesis import strategies as st

from fhir_profiles.terminology.local import DIAGNOSIS_ROLES
from mappers.condition import CATEGORIES, CLINICAL_STATUSES, VERIFICATION_STATUSES, Diagnosis

# (code, display) pairs from fhir_profiles.terminology.clinical (reference 2.5, [CODE]-sourced).
_ICD = [
    ("F10.20", "Alcohol dependence, uncomplicated"),
    ("F11.20", "Opioid dependence, uncomplicated"),
    ("F33.1", "Major depressive disorder, recurrent, moderate"),
    ("F41.1", "Generalized anxiety disorder"),
    ("F43.10", "Post-traumatic stress disorder, unspecified"),
]
_onset = st.one_of(
    st.none(),
    st.dates().map(lambda d: f"{d.year:04d}"),
    st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}"),
    st.dates().map(lambda d: d.isoformat()),
)


@st.composite
def diagnoses(draw: st.DrawFn) -> Diagnosis:
    """Any valid Diagnosis."""
    code, display = draw(st.sampled_from(_ICD))
    return Diagnosis(
        identifier=draw(st.from_regex(r"DX-[A-Z0-9]{4,10}", fullmatch=True)),
        icd10_code=code,
        display=display,
        category=draw(st.sampled_from(sorted(CATEGORIES))),
        clinical_status=draw(st.sampled_from(sorted(CLINICAL_STATUSES))),
        verification_status=draw(
            st.sampled_from(sorted(VERIFICATION_STATUSES - {"entered-in-error"}))
        ),
        onset=draw(st.one_of(_onset)),
        role=draw(st.one_of(st.none(), st.sampled_from(sorted(DIAGNOSIS_ROLES)))),
        recorded=draw(st.one_of(st.none(), st.dates().map(lambda d: d.isoformat()))),
    )
