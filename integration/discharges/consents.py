"""The client's Part 2 consent to disclose to a named recipient, recorded by the IOP's case
manager: typically the written consent obtained for the aftercare provider when the referral's
own Consent names only the IOP (42 CFR 2.31: a disclosure needs a consent naming its recipient).

One recording, one database transaction: the ``disclosure_consent`` row, the Consent (written by
``mappers.consent``, the one way iop-bridge writes a Consent) queued in the outbox as a PUT of
its own id, and the audit record; nothing of it on any refusal. The discharge's Part 2 check
(``integration.discharges.workflow``) counts the recorded consents of the referral beside the
Consents its ServiceRequest points to.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.referral_lookup import CONSENT_AGGREGATE, aggregate_key
from integration.db.store import session_scope
from integration.outbox import queue as outbox
from integration.privacy import audit, disclosure
from integration.referrals.package import settle_references
from integration.tenancy.service import Tenancy
from integration.workflow_errors import ReferralNotFound, WorkflowNotReady
from mappers import consent
from mappers.consent import DisclosureConsent
from mappers.errors import InvalidInputError, Problem
from mappers.fhir_reference import literal_reference
from mappers.registry import MappingContext

AGGREGATE_TYPE: Final = CONSENT_AGGREGATE
ALL_SUD_RECORDS: Final = "all SUD treatment records"
MAX_DISCLOSED: Final = 500
# Older days are typing slips, and the start of year 1 has no UTC form east of Greenwich.
EARLIEST: Final = date(1900, 1, 1)


@dataclass(frozen=True, slots=True)
class ConsentOrder:
    """What the case manager records from the signed form: the recipient by its organization
    identifier value (as registered on the FHIR server, like the discharge's next provider), the
    period the consent is valid (start and end inclusive; Part 2 requires an expiry), the day
    the client signed, and what may be disclosed."""

    recipient: str
    start: date
    end: date
    signed_on: date
    disclosed: str = ALL_SUD_RECORDS


@dataclass(frozen=True, slots=True)
class ConsentView:
    """A recorded consent as the API and the tracker show it."""

    id: str  # Consent.identifier value (also its server id)
    recipient: str
    recipient_reference: str
    start: date
    end: date
    signed_on: date
    disclosed: str
    recorded_at: datetime
    consent: str  # Consent/<id> on the FHIR server


def order_problems(order: ConsentOrder, today: date) -> list[Problem]:
    """Every reason the order cannot be recorded, each under the field it names."""
    found = [
        Problem(name, f"is before {EARLIEST.isoformat()}")
        for name, day in (("start", order.start), ("signed_on", order.signed_on))
        if day < EARLIEST
    ]
    if order.end < order.start:
        found.append(Problem("end", f"must not be before the start ({order.start.isoformat()})"))
    elif order.end < today:
        found.append(Problem("end", f"is past: the consent expired on {order.end.isoformat()}"))
    if order.signed_on > today:
        found.append(Problem("signed_on", "is in the future: record the day the client signed"))
    if not order.disclosed.strip():
        found.append(Problem("disclosed", "is required", "required"))
    elif len(order.disclosed) > MAX_DISCLOSED:
        found.append(Problem("disclosed", f"is longer than {MAX_DISCLOSED} characters"))
    return found


async def record_consent(
    engine: Engine,
    tenancy: Tenancy,
    referral_key: int,
    *,
    order: ConsentOrder,
    at: datetime,
) -> ConsentView:
    """Record the consent for the referral with row key ``referral_key`` (the caller checked
    that its organization owns it): InvalidInputError naming the field, nothing stored."""
    zone = tenancy.settings.program_zone()
    problems = order_problems(order, at.astimezone(zone).date())
    recipient = await tenancy.reference(order.recipient.strip())
    if recipient is None:
        message = f"no Organization {order.recipient!r} is registered on the FHIR server"
        problems.append(Problem("recipient", message, "not-found"))
    if problems:
        raise InvalidInputError.from_problems("the consent", problems)
    assert recipient is not None
    fallback = await tenancy.iop_reference()
    context = tenancy.settings.mapping_context()

    def write() -> ConsentView:
        with session_scope(engine) as session:
            row = _store(session, referral_key, order, (recipient, fallback), zone, context)
            _enqueue(session, row, context)
            return _view(row)

    return await asyncio.to_thread(write)


def _store(
    session: Session,
    referral_key: int,
    order: ConsentOrder,
    parties: tuple[str, str | None],
    zone: ZoneInfo,
    context: MappingContext,
) -> models.DisclosureConsentRecord:
    """The row; ``parties``: the recipient's and the IOP's Organization references."""
    recipient, iop = parties
    referral = session.get(models.Referral, referral_key)
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral_key))
    if referral is None or link is None:
        raise ReferralNotFound(f"no referral {referral_key}")
    settle_references(session, referral, link, context)  # the Patient of an API submission
    owner = referral.iop_organization
    custodian = owner if owner.startswith("Organization/") else iop
    if not (link.patient and link.patient.startswith("Patient/") and custodian):
        message = (
            "the client's Patient or the IOP's Organization is not known on the FHIR server "
            "yet: try again once the referral is delivered"
        )
        problem = Problem("referral", message)
        raise WorkflowNotReady("the consent cannot be written yet", problems=[problem])
    row = models.DisclosureConsentRecord(
        referral_id=referral.id, business_id=f"iop-consent-{uuid.uuid4().hex}",
        recipient=order.recipient.strip(), recipient_reference=recipient,
        patient=link.patient, custodian=custodian, start=order.start, end=order.end,
        signed_on=order.signed_on, disclosed=order.disclosed.strip(),
        signed_at=datetime.combine(order.signed_on, time(0), tzinfo=zone),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def _enqueue(
    session: Session, row: models.DisclosureConsentRecord, context: MappingContext
) -> None:
    """The Consent as a PUT of its own id (a retried delivery writes the same resource), with
    the Part 2 labels when the referral is Part 2, and the audit record of the recording."""
    resource = consent.to_fhir(
        disclosure_consent(row), id_system=context.consent_id_system,
        resource_id=row.business_id,
    )  # fmt: skip
    referral = session.get(models.Referral, row.referral_id)
    assert referral is not None
    resource = disclosure.labelled(session, referral, resource)
    target = literal_reference("Consent", row.business_id)
    outbox.enqueue(
        # keyed by the referral like its other writes: the tracker lists it with them
        session, aggregate_type=AGGREGATE_TYPE, aggregate_key=aggregate_key(referral.id),
        kind=outbox.MessageKind.RESOURCE,
        payload={"resource": resource, "request": {"method": "PUT", "url": target}},
    )  # fmt: skip
    entity = audit.Entity("Consent", row.business_id, context.consent_id_system)
    audit.record(
        session,
        audit.event(
            audit.RECORD_CONSENT, entity, organization=referral.iop_organization,
            recipient=row.recipient_reference, purpose=disclosure.TREATMENT,
        ),
    )  # fmt: skip


def disclosure_consent(row: models.DisclosureConsentRecord) -> DisclosureConsent:
    """The recorded consent as the mappers know it. Consent.dateTime is the day the client
    signed; the form has no time of day, so it is the start of that day on the program's clock
    (``signed_at``: our reader and R4 want a dateTime with a zone)."""
    return DisclosureConsent(
        identifier=row.business_id, status="active", patient=row.patient,
        date_time=row.signed_at, start=row.start,
        end=row.end, recipients=(row.recipient_reference,),
        purposes=(disclosure.TREATMENT,), custodian=row.custodian, disclosed=row.disclosed,
    )  # fmt: skip


def recorded_consents(
    session: Session, referral_key: int
) -> tuple[tuple[str, DisclosureConsent], ...]:
    """The referral's recorded consents by their Consent reference, oldest first: what the
    discharge's Part 2 check counts beside the referral's own Consents."""
    return tuple(
        (literal_reference("Consent", row.business_id), disclosure_consent(row))
        for row in _rows(session, referral_key)
    )


def list_consents(session: Session, referral_key: int) -> tuple[ConsentView, ...]:
    """The referral's recorded consents for its page, oldest first."""
    return tuple(_view(row) for row in _rows(session, referral_key))


def _rows(session: Session, referral_key: int) -> list[models.DisclosureConsentRecord]:
    record = models.DisclosureConsentRecord
    query = select(record).where(record.referral_id == referral_key).order_by(record.id)
    return list(session.scalars(query).all())


def _view(row: models.DisclosureConsentRecord) -> ConsentView:
    return ConsentView(
        row.business_id, row.recipient, row.recipient_reference, row.start, row.end,
        row.signed_on, row.disclosed, row.created_at,
        literal_reference("Consent", row.business_id),
    )  # fmt: skip
