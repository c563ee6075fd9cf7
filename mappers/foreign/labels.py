"""Security labels a sender put on its resources (R4 meta.security, DS4P): kept with the data,
never dropped silently, and honoured: a resource labelled 42 CFR Part 2 or ETH or SUD (substance
use information sensitivity) makes the referral's data Part 2 data, whatever its diagnoses
say. This reads labels; what we write is ``mappers.security_labels``'s rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_profiles.terminology import privacy

PART2_MARKERS = frozenset(
    (c.system, c.code)
    for c in (privacy.POLICY_42CFR_PART2, privacy.SENSITIVITY_ETH, privacy.SENSITIVITY_SUD)
)


def security_labels(resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(system, code) of every meta.security Coding of ``resource``."""
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, dict) else None
    if not isinstance(labels, list):
        return []  # most resources carry no labels
    return [
        (str(c.get("system")), str(c.get("code")))
        for c in labels
        if isinstance(c, dict) and c.get("code")
    ]


def marks_part2(labels: list[tuple[str, str]]) -> bool:
    """Whether any label says the data is 42 CFR Part 2 (substance use disorder) data."""
    return any(label in PART2_MARKERS for label in labels)
