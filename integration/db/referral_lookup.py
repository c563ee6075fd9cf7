"""The referral a workflow step acts on, and the names iop-bridge gives things about it.

Two ids name a referral, and each parameter says which it takes: ``referral_key: int`` is the
database id (``Referral.id``): every workflow (step-down actions, medication reconciliation,
discharge, aftercare) acts by it, so the tracker acts on exactly the referral it shows.
``business_id: str`` is the sender's identifier (``Referral.business_id``, the Task's
identifier value), unique per sender only (issue 13): the API names referrals by it, and
resolves it to the row key here, with the sender when the caller names one
(``referral_key_of``). The tables' foreign-key columns keep the database's name,
``referral_id``, and hold the row key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from integration.db import repositories as repo
from integration.db.models import Referral
from integration.workflow_errors import ReferralNotFound

# The outbox aggregates of a referral's messages, each keyed by ``aggregate_key`` (the row
# key): two senders' referrals under one business id never share an aggregate (migration
# 0013). The workflows that enqueue them keep these names as their own constants.
REFERRAL_AGGREGATE = "referral"
MEDICATIONS_AGGREGATE = "medication-reconciliation"
DISCHARGE_AGGREGATE = "discharge"
CONSENT_AGGREGATE = "disclosure-consent"  # the client's consents to disclose, recorded by the IOP
REFERRAL_AGGREGATES = (
    REFERRAL_AGGREGATE,
    MEDICATIONS_AGGREGATE,
    DISCHARGE_AGGREGATE,
    CONSENT_AGGREGATE,
)


@dataclass(frozen=True, slots=True)
class ReferralName:
    """A referral as an API caller names it: the sender's business id, and the sender (the
    API's ``referrer``, ``Organization/<id>`` as the FHIR server knows it) where two senders
    use that id. Without the sender a lookup of a shared id is ReferralAmbiguous (409)."""

    business_id: str
    sender: str | None = None

    def __str__(self) -> str:
        return self.business_id if self.sender is None else f"{self.business_id} of {self.sender}"


def named(referral: ReferralName | int) -> ColumnElement[bool]:
    """The WHERE clause of a referral named by its row key or as an API caller names it."""
    if isinstance(referral, int):
        return Referral.id == referral
    clause = Referral.business_id == referral.business_id
    return clause if referral.sender is None else clause & (Referral.sender == referral.sender)


def find_referral(session: Session, referral_key: int) -> Referral:
    """The referral with row key ``referral_key``, or ReferralNotFound."""
    referral = session.get(Referral, referral_key)
    if referral is None:
        raise ReferralNotFound(f"no referral {referral_key} in the store")
    return referral


def referral_key_of(session: Session, business_id: str, *, sender: str | None = None) -> int:
    """The row key of the referral with this business identifier from ``sender``; without a
    sender, of the one referral under it (ReferralAmbiguous, 409, when two senders use it)."""
    referral = repo.get_referral(session, business_id, sender=sender)
    if referral is None:
        raise ReferralNotFound(f"no referral {business_id!r} in the store")
    return referral.id


def aggregate_key(referral_key: int) -> str:
    """The outbox aggregate key of a referral's messages: its row key, as text."""
    return str(referral_key)


def identifier_stem(session: Session, referral: Referral) -> str:
    """What the business identifiers iop-bridge writes about this referral start with (its
    intake and reconciled lists, discharge summary, aftercare request: ``<stem>-INTAKE``, ...).

    The sender's business id, unless an earlier-received referral of another sender has the
    same one: then ``<business id>@<row key>``, so one referral's resources never overwrite or
    match another's, in the store or on the FHIR server. The earliest keeps the plain id, as
    it did before two senders could share one (stable: rows are never deleted)."""
    earlier = select(Referral.id).where(
        Referral.business_id == referral.business_id, Referral.id < referral.id
    )
    if session.scalar(earlier.limit(1)) is None:
        return referral.business_id
    return f"{referral.business_id}@{referral.id}"
