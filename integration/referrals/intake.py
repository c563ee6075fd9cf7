"""Step-down referrals submitted by EHR systems through the API: checked, recorded as a referral
and forwarded to the FHIR server through the outbox, once.

Steps: ``parties`` (I/O: which Organizations on the FHIR server the caller and the IOP are),
``mappers.referral_package.submission.check_submission`` (pure: every problem with its path), then
``record_submission`` in ONE database transaction: the referral with its package, exactly as the
inbound sync stores a referral it reads from the server (``referrals.package.add_referral``),
and one TRANSACTION outbox message with the canonical Bundle. The message shares the aggregate
of the referral's later Task changes (``REFERRAL_AGGREGATE``, keyed by the referral's row
key), so the worker delivers the package before any accept or decline can be applied to its
Task.

Idempotency: the referral's identifier (the Task's, which the ServiceRequest carries too) is
unique in the store. The same package again is the same canonical Bundle as the one recorded
with the first submission: nothing new is stored or sent. A different package under that
identifier is refused (409) naming it. Two identical submissions racing each other: one insert
wins, the other sees its row after the unique-key violation and answers like a repeat.

The Patient, ServiceRequest and Task get their server ids on delivery; until then the referral's
link has no Patient or ServiceRequest reference. The worker fills them when it settles the
delivery (``referrals.package.settle_delivered``, from the sync records it writes for every
delivered entry by its business identifier).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from integration.db import repositories as repo
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import REFERRAL_AGGREGATE as AGGREGATE
from integration.db.referral_lookup import aggregate_key
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.outbox import queue as outbox
from integration.referrals.identity import IdentityRefused, demographic_problems, namespace_problems
from integration.referrals.package import NewReferral, add_referral
from integration.settings import Settings
from integration.tenancy.organizations import OrganizationDirectory
from integration.tenancy.service import Tenancy
from mappers.errors import InvalidInputError, IopBridgeError, Problem, raise_if_problems
from mappers.fhir_write import readable_id_problems
from mappers.referral_package.builder import IntakePackage, package_bundle
from mappers.referral_package.submission import CheckedSubmission, Parties, check_submission

log = logging.getLogger(__name__)


class ReferralConflict(IopBridgeError):
    """A referral with this identifier exists and is not the package submitted now."""

    http_status = 409
    issue_code = "conflict"


@dataclass(frozen=True, slots=True)
class Submitted:
    """The referral a submission is about, and whether this submission recorded it."""

    referral_id: str
    created: bool


async def parties(directory: OrganizationDirectory, settings: Settings, caller: str) -> Parties:
    """The caller's organization (requester) and the IOP (owner), looked up on the FHIR server."""
    system = settings.organization_id_system
    return Parties(
        requester_key=(system, caller),
        requester_ref=await directory.reference(caller),
        owner_key=(system, settings.organization_id),
        owner_ref=await directory.reference(settings.organization_id),
    )


async def submit_referral(
    engine: Engine,
    fhir: FhirClient,
    tenancy: Tenancy,
    *,
    caller: str,
    submission: IntakePackage | Any,
    now: datetime,
) -> Submitted:
    """The whole submission: parties (I/O), the Bundle built from a domain package or taken as
    sent, every check, then the one recording transaction."""
    settings = tenancy.settings
    context = settings.mapping_context()
    who = await parties(tenancy.directory, settings, caller)
    document = submission
    if isinstance(submission, IntakePackage):
        document = package_bundle(
            submission, requester=_registered(who, "requester"), requester_key=caller,
            owner=_registered(who, "owner"), context=context,
        )  # fmt: skip
    checked = check_submission(document, who, context)
    raise_if_problems("the referral", _held_back_problems(checked, now))
    defaults = [*dataclasses.astuple(context), settings.organization_id_system]
    refused = namespace_problems(checked.bundle, caller, settings.organization_namespaces, defaults)
    refused = refused or await demographic_problems(fhir, checked.bundle)
    if refused:
        raise IdentityRefused("the referral's identifiers are refused", problems=refused)
    owner = _registered(who, "owner")
    return await asyncio.to_thread(record_submission, engine, checked, owner=owner, now=now)


def _held_back_problems(checked: CheckedSubmission, now: datetime) -> list[Problem]:
    """What a FHIR Bundle may carry but the API does not take (domain JSON is held to the same
    by its schema): a referral id that cannot be read back (it names the referral in URLs,
    the Location header and audit records) and a birth date in the future (a day of slack for
    the sender's time zone)."""
    found = readable_id_problems(checked.task.identifier, "Task.identifier")
    if checked.package.client.birth_date > (now + timedelta(days=1)).date():
        found.append(Problem("Patient.birthDate", "is in the future", "value"))
    return found


def _registered(who: Parties, party: str) -> str:
    """The party's server reference; InvalidInputError when it is not on the FHIR server."""
    ref = who.requester_ref if party == "requester" else who.owner_ref
    if ref is not None:
        return ref
    key = who.requester_key if party == "requester" else who.owner_key
    message = f"no Organization with identifier {'|'.join(key)} is registered on the FHIR server"
    problem = Problem(party, message, "not-found")
    raise InvalidInputError.from_problems(f"the referral's {party}", [problem])


def record_submission(
    engine: Engine, checked: CheckedSubmission, *, owner: str, now: datetime
) -> Submitted:
    """Store the referral and enqueue its Bundle in one transaction; a repeat stores nothing."""
    for attempt in (1, 2):
        try:
            with session_scope(engine) as session:
                existing = _existing(session, checked)
                if existing is not None:
                    return existing
                _store(session, checked, owner, now)
                return Submitted(checked.task.identifier, created=True)
        except IntegrityError:
            if attempt == 2:
                raise
            # a concurrent submission of the same identifier committed first: compare with it
    raise AssertionError("unreachable")


def _existing(session: Session, checked: CheckedSubmission) -> Submitted | None:
    """None for a new identifier; the referral for the same package; else ReferralConflict."""
    identifier = checked.task.identifier
    # Scoped to the caller (the Task's requester): another referrer's referral under the same
    # identifier is not this one, and its existence is not told (issue 15 finding 4).
    referral = repo.get_referral(session, identifier, sender=checked.task.requester)
    if referral is None:
        return None
    sent = submitted_bundles(session, referral.id)
    if not sent:
        detail = "was received from the FHIR server, not submitted through this API"
    elif checked.bundle not in sent:
        detail = "was submitted before with a different package"
    else:
        return Submitted(identifier, created=False)
    problem = Problem("Task.identifier", f"referral {identifier!r} {detail}", "duplicate")
    raise ReferralConflict(f"referral {identifier!r} already exists", problems=[problem])


def submitted_bundle(session: Session, referral_key: int) -> dict[str, Any] | None:
    """The Bundle recorded with the referral's submission (its first transaction message)."""
    found = submitted_bundles(session, referral_key)
    return found[0] if found else None


def submitted_bundles(session: Session, referral_key: int) -> list[dict[str, Any]]:
    """The Bundles submitted for this referral (one sender's), oldest first."""
    query = (
        select(OutboxMessage.payload)
        .where(
            OutboxMessage.aggregate_type == AGGREGATE,
            OutboxMessage.aggregate_key == aggregate_key(referral_key),
            OutboxMessage.kind == str(outbox.MessageKind.TRANSACTION),
        )
        .order_by(OutboxMessage.id)
    )
    return [dict(payload) for payload in session.scalars(query)]


def _store(session: Session, checked: CheckedSubmission, owner: str, now: datetime) -> None:
    """The referral rows the inbound sync would write, and the one outbox message."""
    # No server ids yet: the worker settles them from the answers to this delivery.
    new = NewReferral(checked.identifier, owner, checked.task, checked.package)
    referral, _ = add_referral(session, new, now)
    outbox.enqueue(
        session,
        aggregate_type=AGGREGATE,
        aggregate_key=aggregate_key(referral.id),
        kind=outbox.MessageKind.TRANSACTION,
        payload=checked.bundle,
        now=now,
    )
    session.flush()
    log.info("referral %s submitted through the API (outbox)", referral.id)
