"""42 CFR Part 2 disclosure consent <-> FHIR R4 Consent, and the disclosure decision.

Shape (fhir-domain-reference.md 3.3 and 1.5; a design proposal from R4 base elements, since no
published Part 2 Consent profile was found): scope consentscope#patient-privacy; category
v3-ActCode#IDSCL; policyRule v3-ActCode#42CFRPart2 (the reference's example; R4 binds
policyRule extensibly to consentpolicycodes, which has no Part 2 code, so HAPI warns and does
not fail); one ``permit`` provision with the period Part 2 requires as the expiry
(42 CFR 2.31(a)), one actor per recipient with role v3-ParticipationType#IRCP "information
recipient" (in R4 security-role-type), purposes from v3-ActReason under PurposeOfUse (R4
v3-PurposeOfUse), and the SUD data class as provision.securityLabel sensitivity codes (ETH /
SUD / PSY / BH, R4 security-labels value set). Consent.organization is the custodian that
discloses (the residential program).

The reader (``from_fhir``, with its safety rule against narrowing provisions) is
``mappers.consent_reader``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhir_profiles.terminology import privacy
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.privacy import DATA_CLASSES, PURPOSE_PARENT, PURPOSES, ROLE_RECIPIENT
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import (
    PARTY_TYPES,
    reference,
    reference_problems,
    typed_reference_problems,
)
from mappers.fhir_write import datetime_problems, format_datetime, identifier_problems

# Consent.status, required binding (R4 valueset-consent-state-codes.html).
CONSENT_STATUSES = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)


@dataclass(frozen=True, slots=True)
class DisclosureConsent:
    """The client's consent to disclose Part 2 records to named recipients for named purposes
    during a period (start and end inclusive, as FHIR Period is)."""

    identifier: str
    status: str
    patient: str  # Patient reference
    date_time: datetime  # when the consent was given
    start: date
    end: date  # Part 2 requires an expiry (42 CFR 2.31(a))
    recipients: tuple[str, ...]  # Organization references
    purposes: tuple[str, ...] = ("TREAT",)
    data_classes: tuple[str, ...] = (privacy.SENSITIVITY_ETH.code,)
    custodian: str | None = None  # Organization reference of the disclosing program
    # What may be disclosed, in the words of the signed form (42 CFR 2.31(a)(3): "how much and
    # what kind"), e.g. "all SUD treatment records". Written as the Consent's narrative: a
    # provision.code/class would narrow the permit, which our reader refuses (consent_reader).
    disclosed: str | None = None

    def problems(self) -> list[Problem]:
        """Every reason this consent cannot be sent as a Consent, each with its field."""
        found = identifier_problems(self.identifier, "DisclosureConsent.identifier")
        if self.status not in CONSENT_STATUSES:
            found.append(Problem("DisclosureConsent.status", f"{self.status!r} is not allowed"))
        found += reference_problems(self.patient, "Patient", "DisclosureConsent.patient")
        found += datetime_problems(self.date_time, "DisclosureConsent.date_time")
        if self.end < self.start:
            found.append(Problem("DisclosureConsent.end", "must not be before start"))
        found += _list_problems("DisclosureConsent.recipients", self.recipients, None)
        found += _list_problems("DisclosureConsent.purposes", self.purposes, PURPOSES)
        found += _list_problems("DisclosureConsent.data_classes", self.data_classes, DATA_CLASSES)
        if self.custodian is not None:
            found += reference_problems(
                self.custodian, "Organization", "DisclosureConsent.custodian"
            )
        if self.disclosed is not None and not self.disclosed.strip():
            found.append(Problem("DisclosureConsent.disclosed", "must not be blank"))
        return found


def _list_problems(
    path: str, values: tuple[str, ...], known: Mapping[str, Code] | None
) -> list[Problem]:
    if not values:
        return [Problem(path, "at least one is required", "required")]
    if len(set(values)) != len(values):
        return [Problem(path, "must not repeat a value")]
    found: list[Problem] = []
    for i, value in enumerate(values):
        if known is None:  # recipients: any party R4 Consent.provision.actor allows
            found += typed_reference_problems(value, PARTY_TYPES, f"{path}[{i}]")
        elif value not in known:
            message = f"{value!r} is not one of: {', '.join(known)}"
            found.append(Problem(f"{path}[{i}]", message, "code-invalid"))
    return found


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a disclosure is permitted, and if not every reason why. Truthy when permitted
    (a bare reason string would be truthy either way, a trap this type avoids)."""

    permitted: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.permitted


def covers(consent: DisclosureConsent, *, recipient: str, purpose: str, at: date) -> Decision:
    """Decide whether ``consent`` permits disclosing to ``recipient`` for ``purpose`` on the day
    of ``at`` (a datetime counts on its own calendar day): active, in period, recipient named,
    purpose permitted (a named purpose also covers its specialisations, e.g. TREAT covers COC)."""
    reasons = [str(p) for p in consent.problems()]
    day = at.date() if isinstance(at, datetime) else at
    if consent.status != "active":
        reasons.append(f"consent is {consent.status}, not active")
    if day < consent.start:
        reasons.append(f"consent period starts on {consent.start.isoformat()}")
    if day > consent.end:
        reasons.append(f"consent expired on {consent.end.isoformat()}")
    if recipient not in consent.recipients:
        named = ", ".join(consent.recipients) or "nobody"
        reasons.append(f"recipient {recipient} is not named (consent names {named})")
    if purpose not in PURPOSES:
        reasons.append(f"purpose {purpose!r} is not a known purpose of use")
    elif not _purpose_permitted(purpose, consent.purposes):
        reasons.append(
            f"purpose {purpose} is not permitted (consent permits {', '.join(consent.purposes)})"
        )
    return Decision(not reasons, tuple(reasons))


def _purpose_permitted(purpose: str, permitted: tuple[str, ...]) -> bool:
    """The purpose or one of its ancestors in v3-ActReason is among the permitted ones."""
    current: str | None = purpose
    while current is not None:
        if current in permitted:
            return True
        current = PURPOSE_PARENT.get(current)
    return False


def _narrative(disclosed: str) -> dict[str, str]:
    """Narrative (R4 narrative.html): status ``additional`` (R4 CodeSystem narrative-status
    4.0.1, checked with the search tool: "may contain additional information not found in the
    structured data"), since it says what the client agreed may be disclosed; escaped XHTML."""
    words = html.escape(disclosed.strip(), quote=False)
    div = f'<div xmlns="http://www.w3.org/1999/xhtml"><p>Disclosure of: {words}</p></div>'
    return {"status": "additional", "div": div}


def to_fhir(
    consent: DisclosureConsent, *, id_system: str, resource_id: str | None = None
) -> dict[str, Any]:
    """Fill Consent.text (what may be disclosed, when given), identifier, status, scope,
    category, patient, dateTime, organization, policyRule and provision (type, period, actor,
    purpose, securityLabel)."""
    raise_if_problems("DisclosureConsent", consent.problems())
    resource: dict[str, Any] = {"resourceType": "Consent"}
    if resource_id is not None:
        resource["id"] = resource_id
    if consent.disclosed is not None:
        resource["text"] = _narrative(consent.disclosed)
    resource["identifier"] = [{"system": id_system, "value": consent.identifier}]
    resource["status"] = consent.status
    resource["scope"] = privacy.CONSENT_SCOPE_PATIENT_PRIVACY.codeable_concept()
    resource["category"] = [privacy.CONSENT_CATEGORY_IDSCL.codeable_concept()]
    resource["patient"] = reference(consent.patient)
    resource["dateTime"] = format_datetime(consent.date_time)
    if consent.custodian is not None:
        resource["organization"] = [reference(consent.custodian)]
    resource["policyRule"] = privacy.POLICY_42CFR_PART2.codeable_concept()
    resource["provision"] = {
        "type": "permit",
        "period": {"start": consent.start.isoformat(), "end": consent.end.isoformat()},
        "actor": [
            {"role": ROLE_RECIPIENT.codeable_concept(), "reference": reference(r)}
            for r in consent.recipients
        ],
        "purpose": [PURPOSES[p].coding() for p in consent.purposes],
        "securityLabel": [DATA_CLASSES[c].coding() for c in consent.data_classes],
    }
    return resource
