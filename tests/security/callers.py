"""Fresh credentials for this tier: referral_support's shared headers are signed at import with
a 10-minute expiry, and in the whole suite this tier runs later than that."""

from __future__ import annotations

from tests.component.api.referral_support import IOP, RES, auth


def ehr() -> dict[str, str]:
    """A residential program's EHR system (RES-1), signed now."""
    return auth("ehr-system", RES)


def case_manager() -> dict[str, str]:
    """The IOP's case manager, signed now."""
    return auth("case-manager", IOP)
