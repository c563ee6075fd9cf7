"""A sender's Part 2 Consent as a DisclosureConsent: the category may be a LOINC consent
document (59284-0, 64292-6) instead of v3 IDSCL, the Part 2 policy may be named by
``policy.uri`` instead of ``policyRule`` (R4 consent.html: policy 0..*, policyRule 0..1), the
recipients may be Practitioners, the dates date-only. Each such reading is reported; what
remains is read by ``mappers.consent_reader``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fhir_profiles.terminology import privacy
from mappers import consent_reader
from mappers.foreign import generic
from mappers.foreign.dates import full_datetime
from mappers.loss import Loss, Mapped

_LOINC_CATEGORIES = {
    (c.system, c.code)
    for c in (
        privacy.CONSENT_CATEGORY_LOINC_PATIENT_CONSENT,
        privacy.CONSENT_CATEGORY_LOINC_RELEASE_OF_INFORMATION,
    )
}
_IDSCL = (privacy.CONSENT_CATEGORY_IDSCL.system, privacy.CONSENT_CATEGORY_IDSCL.code)
# 42 CFR Part 2 named in a policy URI or authority (eCFR: title-42/chapter-I/subchapter-A/part-2)
_PART2 = re.compile(r"42[\s_/-]*cfr|part[\s_-]*2\b", re.IGNORECASE)


def from_fhir(resource: Mapping[str, Any]) -> Mapped[Any]:
    """Read a DisclosureConsent from a foreign Consent (see the module docstring)."""
    losses: list[Loss] = []
    ours = dict(resource)
    categories = list(ours.get("category") or [])
    codings = [(c.get("system"), c.get("code")) for concept in categories
               for c in (concept or {}).get("coding") or [] if isinstance(c, dict)]  # fmt: skip
    if _IDSCL not in codings and _LOINC_CATEGORIES & set(codings):
        ours["category"] = [*categories, privacy.CONSENT_CATEGORY_IDSCL.codeable_concept()]
        losses.append(Loss("Consent.category", "LOINC consent document read as IDSCL"))
    if "policyRule" not in ours:
        for index, policy in enumerate(ours.get("policy") or []):
            named = f"{(policy or {}).get('uri', '')} {(policy or {}).get('authority', '')}"
            if _PART2.search(named):
                ours["policyRule"] = privacy.POLICY_42CFR_PART2.codeable_concept()
                losses.append(Loss(f"Consent.policy[{index}]", "read as the 42 CFR Part 2 rule"))
                break
    ours.pop("policy", None)
    provision = ours.get("provision")
    if isinstance(provision, dict) and "securityLabel" not in provision and "policyRule" in ours:
        # A Part 2 consent that names no data class covers the Part 2 (ETH) records.
        ours["provision"] = {**provision, "securityLabel": [privacy.SENSITIVITY_ETH.coding()]}
        losses.append(Loss("Consent.provision", "no securityLabel: read as Part 2 data (ETH)"))
    ours["dateTime"] = full_datetime(ours.get("dateTime"), "Consent.dateTime", losses)
    mapped = generic.adopt(ours, lambda r, s: consent_reader.from_fhir(r, id_system=s))
    return Mapped(mapped.value, mapped.links, (*losses, *mapped.losses))
