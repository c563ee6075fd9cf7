"""Hypothesis strategies for valid Referrals and ReferralTasks (synthetic data only)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import strategies as st

from fhir_profiles.terminology.workflow import (
    SDOHCC_REFERRAL_TASK_STATUSES,
    SDOHCC_STATUSES_NEEDING_REASON,
)
from mappers.referral import ASAM_BY_CODE, REQUEST_STATUSES, SUPPORTING_TYPES, Referral
from mappers.referral_task import BUSINESS_STATUSES, ReferralTask
from tests.strategies.encounter import aware_datetimes

# Printable text without leading or trailing blanks (read_str refuses blank strings).
texts = (
    st.text(st.characters(categories=["L", "N", "P"], include_characters=" "), max_size=60)
    .map(str.strip)
    .filter(bool)
)
identifiers = st.from_regex(r"[A-Z]{2,6}-[0-9]{1,6}", fullmatch=True)
resource_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-.]{0,20}", fullmatch=True)
days = st.dates(min_value=date(2015, 1, 1), max_value=date(2035, 12, 31))


def references(kind: str) -> st.SearchStrategy[str]:
    """Relative literal references ``kind/id``."""
    return resource_ids.map(lambda rid: f"{kind}/{rid}")


def any_reference(kinds: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A literal reference to one of ``kinds``."""
    return st.sampled_from(kinds).flatmap(references)


@st.composite
def referrals(draw: st.DrawFn) -> Referral:
    """Any valid Referral: every request status and ASAM level, with or without the package."""
    return Referral(
        identifier=draw(identifiers),
        status=draw(st.sampled_from(sorted(REQUEST_STATUSES))),
        level_of_care=draw(st.sampled_from(sorted(ASAM_BY_CODE))),
        subject=draw(references("Patient")),
        requester=draw(references("Organization")),
        performer=draw(references("Organization")),
        authored_on=draw(aware_datetimes()),
        requested_start=draw(st.none() | days),
        reasons=tuple(draw(st.lists(references("Condition"), max_size=3))),
        supporting_info=tuple(draw(st.lists(any_reference(SUPPORTING_TYPES), max_size=5))),
        note=draw(st.none() | texts),
    )


@st.composite
def referral_tasks(draw: st.DrawFn) -> ReferralTask:
    """Any valid ReferralTask: a reason whenever SDOHCC expects one, lastModified >= authoredOn."""
    status = draw(st.sampled_from(SDOHCC_REFERRAL_TASK_STATUSES))
    needs_reason = status in SDOHCC_STATUSES_NEEDING_REASON
    authored = draw(aware_datetimes())
    later = draw(st.none() | st.timedeltas(timedelta(0), timedelta(days=120)))
    return ReferralTask(
        identifier=draw(identifiers),
        status=status,
        focus=draw(references("ServiceRequest")),
        patient=draw(references("Patient")),
        requester=draw(references("Organization")),
        authored_on=authored,
        last_modified=None if later is None else authored + later,
        owner=draw(st.none() | references("Organization")),
        status_reason=draw(texts if needs_reason else st.none() | texts),
        business_status=draw(st.none() | st.sampled_from(sorted(BUSINESS_STATUSES))),
        resulting_activity=draw(st.none() | references("Encounter")),
    )
