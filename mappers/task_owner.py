"""Is an inbound referral Task addressed to the IOP? Its owner must be the IOP's Organization, or
a PractitionerRole whose ``organization`` is that Organization (BSeR and Gravity address
referrals to a PractitionerRole; R4 PractitionerRole.organization: "Organization where the roles
are available").

Finding a Task by ``Task?owner:PractitionerRole.organization=<IOP>`` proves nothing: the Task may
also arrive by a notification naming only its id, or by one that carries a body anyone could
have written, and the role may have moved since the search. So the PractitionerRole is read from
the server for each new Task and judged here. This decides only whether a Task is ours to take
in; who may change a referral's Task afterwards is ``task_trust``'s rule, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mappers.fhir_reference import split_literal_reference
from mappers.referral_package.references import relative_reference

PRACTITIONER_ROLE = "PractitionerRole"


class OwnerRefusal(StrEnum):
    """Why a Task owned by a PractitionerRole is not the IOP's (a reason code: ids only)."""

    ROLE_OF_ANOTHER_ORGANIZATION = "owner-role-of-another-organization"
    ROLE_WITHOUT_ORGANIZATION = "owner-role-without-organization"
    ROLE_NOT_ON_SERVER = "owner-role-not-on-server"


@dataclass(frozen=True, slots=True)
class OwnerCheck:
    """The verdict on a Task's owner: ours or not, and why not when it named a role."""

    ours: bool
    refusal: OwnerRefusal | None = None
    role_organization: str | None = None  # what the role says it belongs to (``Type/id``)


def owner_role(owner: str | None) -> str | None:
    """The ``PractitionerRole/<id>`` a Task's (relative) owner names, or None."""
    parts = split_literal_reference(owner) if owner else None
    return owner if parts is not None and parts[0] == PRACTITIONER_ROLE else None


def judge_role(
    role: Mapping[str, Any] | None, organization: str, base: str | None = None
) -> OwnerCheck:
    """Is ``role`` (the owner PractitionerRole as read from the server; None when it is not
    there) a role of ``organization`` (``Organization/<id>``)? ``base``: the server's base URL,
    so that an absolute reference to the same server reads as local."""
    if role is None or role.get("resourceType") != PRACTITIONER_ROLE:
        return OwnerCheck(False, OwnerRefusal.ROLE_NOT_ON_SERVER)
    belongs = relative_reference(role.get("organization"), base)
    if belongs is None:
        return OwnerCheck(False, OwnerRefusal.ROLE_WITHOUT_ORGANIZATION)
    if belongs != organization:
        return OwnerCheck(False, OwnerRefusal.ROLE_OF_ANOTHER_ORGANIZATION, belongs)
    return OwnerCheck(True, None, belongs)
