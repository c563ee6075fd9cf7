"""The HEDIS FUI follow-up windows: pure rules over dates (no clock; the caller passes today).

The FUI measure counts a follow-up visit within 7 and within 30 days after discharge from
residential/inpatient care (DESIGN.md; fhir-domain-reference.md section 4). For each window a
handoff is ``met`` (an attended IOP session on or before the deadline), ``open`` (deadline not
reached yet) or ``overdue`` (deadline passed with no attended session).
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

FOLLOW_UP_WINDOWS = (7, 30)


class WindowState(StrEnum):
    """Where a handoff stands against one follow-up window."""

    MET = "met"
    OPEN = "open"
    OVERDUE = "overdue"
    UNKNOWN = "unknown"  # no residential discharge date on the referral


def window_state(
    discharged: date | None, first_attended: date | None, days: int, today: date
) -> WindowState:
    """State of one follow-up window (7 or 30 days after the residential discharge)."""
    if discharged is None:
        return WindowState.UNKNOWN
    deadline = discharged + timedelta(days=days)
    if first_attended is not None and first_attended <= deadline:
        return WindowState.MET
    return WindowState.OPEN if today <= deadline else WindowState.OVERDUE


def follow_up_within(discharged: date | None, first_attended: date | None) -> int | None:
    """The shortest window (7 or 30 days) the first attended session met; None if neither.

    What ``referral.follow_up_within`` stores: with it, :func:`window_state` is ``met`` for a
    window of ``days`` exactly when the stored value is at most ``days``.
    """
    if discharged is None or first_attended is None:
        return None
    return next(
        (days for days in FOLLOW_UP_WINDOWS if first_attended <= discharged + timedelta(days=days)),
        None,
    )
