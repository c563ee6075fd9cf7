"""Hypothesis strategies for valid Sessions and ResidentialStays (synthetic data only)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from mappers.encounter import Attendance, Delivery, Session, SessionKind
from mappers.residential import DISPOSITIONS, RESIDENTIAL_LEVELS, ResidentialStay

# Whole-minute offsets within FHIR's +-14:00 (R4 dateTime regex), including odd ones like +05:45.
_OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes with microseconds, in the years a program could record."""
    return st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=_OFFSETS
    )


def identifiers() -> st.SearchStrategy[str]:
    """Business identifiers: printable, not blank."""
    return st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=24
    )


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    """Any valid session: every kind, delivery and attendance, 15 minutes to 4 hours long."""
    start = draw(aware_datetimes())
    length = draw(st.integers(min_value=15, max_value=240))
    return Session(
        identifier=draw(identifiers()),
        kind=draw(st.sampled_from(SessionKind)),
        delivery=draw(st.sampled_from(Delivery)),
        attendance=draw(st.sampled_from(Attendance)),
        start=start,
        end=start + timedelta(minutes=length, microseconds=draw(st.integers(0, 999_999))),
    )


@st.composite
def residential_stays(draw: st.DrawFn) -> ResidentialStay:
    """Any valid stay at a residential ASAM level, discharged (with or without a disposition) or
    still in progress."""
    admitted = draw(aware_datetimes())
    discharged = draw(
        st.none() | st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=180))
    )
    disposition = draw(st.none() | st.sampled_from(sorted(DISPOSITIONS)))
    return ResidentialStay(
        identifier=draw(identifiers()),
        asam_level=draw(st.sampled_from(sorted(RESIDENTIAL_LEVELS))),
        admitted=admitted,
        discharged=None if discharged is None else admitted + discharged,
        discharge_disposition=None if discharged is None else disposition,
    )


def json_values() -> st.SearchStrategy[object]:
    """Arbitrary JSON values, to put where a mapper expects a particular FHIR element."""
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


@st.composite
def corrupted(draw: st.DrawFn, resource: dict[str, object]) -> dict[str, object]:
    """``resource`` with one element, at any depth, replaced by an arbitrary JSON value."""
    copy: dict[str, object] = json.loads(json.dumps(resource))
    node: object = copy
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))  # type: ignore[arg-type]
        key = draw(st.sampled_from(keys))
        child = node[key]  # type: ignore[index]
        if not isinstance(child, dict | list) or not child or draw(st.booleans()):
            node[key] = draw(json_values())  # type: ignore[index]
            return copy
        node = child
