"""Whose rows a caller may read: one ``Scope`` for every read model (referrals, discharges, the
tracker), built once per request by ``integration.tenancy.service.Tenancy``.

A scope names the caller's organization in every spelling the store may hold (its identifier
value, and its server reference when the FHIR server knows it) and which side of a handoff the
caller is on: the IOP's staff read what their organization owns, an EHR system what it referred
(a referral's requester) or was handed (a discharge's next provider). Scoping is part of every
query, never a filter afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, false


class Side(StrEnum):
    """Which side of a handoff a caller reads from."""

    IOP = "iop"  # the IOP's case managers and admins: what their organization owns
    PARTNER = "partner"  # an EHR system: what it referred, or the discharges handed to it


@dataclass(frozen=True, slots=True)
class Scope:
    """The caller's organization keys and side; naming no organization, it matches nothing."""

    organizations: tuple[str, ...]
    side: Side = Side.IOP

    def where(self, *, iop: Any, partner: Any) -> list[ColumnElement[bool]]:
        """The WHERE clause on the column of the caller's side (``iop`` for the IOP's staff,
        ``partner`` for an EHR system): the row's organization is one of the caller's keys."""
        if not self.organizations:
            return [false()]
        column = iop if self.side is Side.IOP else partner
        return [column.in_(self.organizations)]
