"""The two searches that find the referral Tasks addressed to the IOP, as Subscription criteria
and as polls.

A Task is addressed to the IOP when its owner is the IOP's Organization, or a PractitionerRole
of that Organization (BSeR and Gravity address referrals to a PractitionerRole). FHIR search
cannot OR a plain and a chained parameter (R4 search.html#combining: only values of one
parameter are OR-ed), so there are two: ``Task?owner=Organization/<id>`` and the chained
``Task?owner:PractitionerRole.organization=Organization/<id>`` (R4 search.html#chaining). HAPI
8.8.0 accepts the chained one as a Subscription criteria, matches it against its database
(it tags the Subscription ``subscription-matching-strategy`` DATABASE: chains cannot be matched
in memory) and activates it (checked on the sandbox, tests/live/test_role_owner_live.py).

The search only finds candidates: whether a PractitionerRole really belongs to the IOP is read
from the server for every Task (``referrals/package_fetch.py``), whichever way the Task arrived.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TaskSearch:
    """One search for Tasks addressed to the IOP: its parameter, and what it is called."""

    key: str  # short, stable: cursor names, health fields, logs
    parameter: str  # the search parameter whose value is ``Organization/<id>``
    description: str  # for people: /health, ``iop-bridge check``, the log

    def criteria(self, organization: str) -> str:
        """The Subscription criteria (R4 Subscription.criteria: a search URL, type first)."""
        return f"Task?{self.parameter}={organization}"

    def params(self, organization: str) -> dict[str, str]:
        """The poll's search parameters (before sorting and ``_lastUpdated``)."""
        return {self.parameter: organization}


BY_ORGANIZATION = TaskSearch("organization", "owner", "Tasks owned by the IOP's Organization")
BY_PRACTITIONER_ROLE = TaskSearch(
    "practitioner-role",
    "owner:PractitionerRole.organization",
    "Tasks owned by a PractitionerRole of the IOP's Organization",
)
TASK_SEARCHES = (BY_ORGANIZATION, BY_PRACTITIONER_ROLE)
