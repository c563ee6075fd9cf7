"""The one gate where a client's records leave iop-bridge for another organization (42 CFR Part 2).

Rules (42 CFR 2.31-2.33; fhir-domain-reference.md 3.3, implication 6):

- Records that hold no SUD-derived information (``mappers.security_labels``) need no Part 2
  consent; the disclosure is still audited (reason ``not-part2``).
- SUD-derived records go only under a Consent of the client that ``mappers.consent.covers`` the
  recipient, the purpose of use and the day of the disclosure (active, in its period; a named
  purpose also covers its specialisations) AND whose data classes include substance use
  information (v3-ActCode ETH or SUD): a consent to share psychiatric records only (PSY) does
  not let SUD records out (2.31(a)(3): how much and what kind of information).
- Otherwise the disclosure is refused: ``DisclosureRefused`` (403) naming, per consent, every
  reason it does not cover this disclosure, and nothing of the refused work is stored.
- Every decision is audited: a permitted one in the caller's transaction (it exists exactly when
  the disclosure is enqueued), a refused one in a transaction of its own (it survives the
  caller's rollback).
- A disclosed document carries the redisclosure notice of 42 CFR 2.32 (``notice``).

Which referrals are Part 2 is remembered per referral (``referral_privacy``), so outbound paths
that have only the store label correctly (``labelled``); a referral nobody has classified yet is
treated as Part 2: an unneeded label costs little, a missing one is an unlawful disclosure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db.audit_table import ReferralPrivacy
from integration.db.base import utcnow
from integration.privacy import audit
from integration.workflow_errors import DisclosureRefused
from mappers import consent, security_labels
from mappers.audit_event import AuditRecord
from mappers.consent import DisclosureConsent
from mappers.errors import Problem

TREATMENT: Final = "TREAT"  # v3-ActReason purpose of use of a care handoff
# 42 CFR 2.32(a)(2), the short form (eCFR, 83 FR 251). The 2024 final rule (89 FR 12472,
# compliance 2026-02-16) revised 2.32: a program's compliance office supplies its current text,
# which callers pass in.
REDISCLOSURE_NOTICE: Final = "42 CFR part 2 prohibits unauthorized disclosure of these records."
SUD_DATA_CLASSES: Final = frozenset({"ETH", "SUD"})  # v3-ActCode sensitivity of SUD records
__all__ = [
    "DisclosureRefused", "authorize", "decide", "labelled", "notice", "released", "remember_part2",
    "withheld",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What is to leave, to whom, why and when, and whose records they are."""

    entity: audit.Entity  # the disclosed record (e.g. the document Bundle by its identifier)
    recipient: str  # Organization reference
    at: datetime
    part2: bool  # whether SUD-derived records are included
    purpose: str = TREATMENT
    organization: str | None = None  # the disclosing program (whose records)


def authorize(
    session: Session,
    disclosure: Disclosure,
    consents: Sequence[tuple[str, DisclosureConsent]],
    unreadable: Sequence[tuple[str, str]] = (),
) -> str | None:
    """None for records without Part 2 content, else the reference of the Consent that
    permits the disclosure; DisclosureRefused otherwise. Audited either way."""
    if not disclosure.part2:
        audit.record(session, _event(disclosure, audit.SUCCESS, "not-part2"))
        return None
    permitted, problems = decide(disclosure, consents, unreadable)
    if permitted is not None:
        audit.record(session, _event(disclosure, audit.SUCCESS, "consent-permits", permitted))
        return permitted
    audit.record_independently(session, _event(disclosure, audit.DENIED, "no-covering-consent"))
    day = disclosure.at.date().isoformat()
    raise DisclosureRefused(
        f"the records hold substance use disorder information (42 CFR Part 2) and no consent "
        f"permits disclosing them to {disclosure.recipient} for {disclosure.purpose} on {day}",
        problems=problems,
    )


def released(
    session: Session,
    entity: audit.Entity,
    *,
    recipient: str,
    organization: str | None,
    purpose: str = TREATMENT,
) -> None:
    """Audit handing out a record whose disclosure was authorized before (e.g. the discharge
    document fetched by the next provider it was disclosed to), in the caller's transaction."""
    audit.record(
        session,
        audit.event(
            audit.DISCLOSE, entity, reason="released", organization=organization,
            recipient=recipient, purpose=purpose,
        ),
    )  # fmt: skip


def withheld(
    session: Session,
    entity: audit.Entity,
    *,
    recipient: str | None,
    organization: str | None,
    reason: str,
    purpose: str = TREATMENT,
) -> None:
    """Audit a refused release of a record (e.g. the discharge document asked for by an
    organization it was not disclosed to) with the reason code, in a transaction of its own
    like every refusal: the caller answers with an error and may roll back."""
    audit.record_independently(
        session,
        audit.event(
            audit.DISCLOSE, entity, outcome=audit.DENIED, reason=reason,
            organization=organization, recipient=recipient, purpose=purpose,
        ),
    )  # fmt: skip


def decide(
    disclosure: Disclosure,
    consents: Sequence[tuple[str, DisclosureConsent]],
    unreadable: Sequence[tuple[str, str]] = (),
) -> tuple[str | None, list[Problem]]:
    """The first consent that covers the disclosure, or every reason none does (per consent)."""
    problems: list[Problem] = []
    for ref, given in consents:
        decision = consent.covers(
            given, recipient=disclosure.recipient, purpose=disclosure.purpose, at=disclosure.at
        )
        reasons = list(decision.reasons)
        if not SUD_DATA_CLASSES & set(given.data_classes):
            classes = ", ".join(given.data_classes)
            reasons.append(f"consent covers {classes} records, not substance use (ETH or SUD)")
        if not reasons:
            return ref, []
        problems += [Problem(ref, reason, "forbidden") for reason in reasons]
    problems += [
        Problem(ref, f"not readable as a Part 2 consent: {why}", "forbidden")
        for ref, why in unreadable
    ]
    if not problems:
        message = "the referral carries no Consent"
        problems.append(Problem("ServiceRequest.supportingInfo", message, "forbidden"))
    return None, problems


def notice(part2: bool, text: str = REDISCLOSURE_NOTICE) -> str | None:
    """The redisclosure notice a disclosed document must carry (42 CFR 2.32), if Part 2."""
    return text if part2 else None


def _event(
    disclosure: Disclosure, outcome: str, reason: str, permitted_by: str | None = None
) -> AuditRecord:
    return audit.event(
        audit.DISCLOSE, disclosure.entity, outcome=outcome, reason=reason,
        organization=disclosure.organization, recipient=disclosure.recipient,
        purpose=disclosure.purpose, consent=permitted_by, at=disclosure.at,
    )  # fmt: skip


# --- which referrals are Part 2, and labels on their way out ------------------------------------


def remember_part2(session: Session, referral_key: int, *, part2: bool) -> None:
    """Record whether the referral's package held an SUD diagnosis (flushes, never commits).
    Once Part 2, always Part 2: a later package without the diagnosis does not unlabel."""
    known = session.get(ReferralPrivacy, referral_key)
    if known is None:
        session.add(ReferralPrivacy(referral_id=referral_key, part2=part2, decided_at=utcnow()))
    elif part2 and not known.part2:
        known.part2, known.decided_at = True, utcnow()
    session.flush()


def remember_package(
    session: Session, referral_key: int, resources: Sequence[Mapping[str, Any]]
) -> bool:
    """``remember_part2`` from the package's FHIR resources (an F10-F19 Condition among them)."""
    part2 = security_labels.contains_sud(resources)
    remember_part2(session, referral_key, part2=part2)
    return part2


def is_part2(session: Session, referral_key: int) -> bool:
    """Whether the referral's records are Part 2 records; unknown counts as yes."""
    query = select(ReferralPrivacy.part2).where(ReferralPrivacy.referral_id == referral_key)
    known = session.scalar(query)
    return True if known is None else known


def labelled(
    session: Session, referral: models.Referral, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """``payload`` (a resource or a Bundle) with the Part 2 labels when the referral is Part 2."""
    return security_labels.label(payload, sud_derived=is_part2(session, referral.id))
