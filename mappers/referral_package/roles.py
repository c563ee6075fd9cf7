"""The referring program's PractitionerRole in a submitted package (BSeR: the ServiceRequest's
requester is a PractitionerRole), checked rather than mapped: iop-bridge reads parties where a
referral references them and keeps no domain value of its own for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mappers.errors import Problem

ROLE: Final = "PractitionerRole"


def role_problems(
    roles: Mapping[int, Mapping[str, Any]],
    *,
    organization: str | None,
    organization_key: tuple[str, str],
    role_system: str,
) -> list[Problem]:
    """Each PractitionerRole entry (by its index in the Bundle) is a role of the caller's own
    ``organization``; in our role namespace (``role_system``) it is keyed on the caller's
    identifier value, as ``mappers.practitioner_role`` writes it, so its conditional create can
    never land on another program's role (a matched conditional create does not store the body
    sent: R4 http.html#ccreate)."""
    found = []
    key = organization_key[1]
    for index, role in roles.items():
        at = f"Bundle.entry[{index}].resource"
        target = role.get("organization")
        if not isinstance(target, dict) or target.get("reference") != organization:
            message = f"must be your organization {'|'.join(organization_key)}"
            found.append(Problem(f"{at}.organization", message, "business-rule"))
        identifiers = role.get("identifier")
        for i, item in enumerate(identifiers if isinstance(identifiers, list) else []):
            ours = isinstance(item, dict) and item.get("system") == role_system
            if ours and item.get("value") != key:
                message = f"a role in {role_system} is keyed on your identifier {key!r}"
                found.append(Problem(f"{at}.identifier[{i}].value", message, "business-rule"))
    return found
