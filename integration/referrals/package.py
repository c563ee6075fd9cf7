"""A step-down referral package stored as a referral (the mapping itself is pure, in
``mappers.referral_package.mapping``).

The package is read from the FHIR server by ``integration.referrals.package_fetch`` or submitted
through the API (``integration.referrals.intake``). Storing writes the referral with the whole
mapped package, or (when anything failed to map) the referral alone with its problems, never
part of a package.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.referral_lookup import REFERRAL_AGGREGATE
from integration.db.sync_table import SyncRecord
from integration.medications import lists as medication_lists
from integration.outbox.queue import ClaimedMessage
from integration.privacy import disclosure
from mappers.fhir_reference import literal_reference
from mappers.referral_package.mapping import MappedPackage, PackageProblem
from mappers.referral_package.summary import summarize
from mappers.referral_task import ReferralTask
from mappers.registry import MappingContext

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TaskChange:
    """One Task version and what was read for it, ready to be stored in one transaction."""

    task: Mapping[str, Any]
    organization: str  # the IOP's Organization reference
    identifier: tuple[str, str] | None
    mapped: ReferralTask | None
    package: MappedPackage | None
    problems: tuple[PackageProblem, ...]
    fetched: bool  # a new referral for us: its package was read
    # why a new Task was not taken in (mappers.task_owner: its owner PractitionerRole is not the
    # IOP's), kept on the version's inbound_event row; None when nothing was refused
    refused: str | None = None


# --- Storing a new referral (in the inbound transaction) ------------------------------------


@dataclass(frozen=True, slots=True)
class NewReferral:
    """What a new referral is stored from: a Task read from the FHIR server (with its server
    id and version) or a package submitted through the API (neither yet: it is delivered later)."""

    identifier: tuple[str, str]  # the Task's business identifier, the sender's
    organization: str  # the IOP's Organization reference
    task: ReferralTask | None
    package: MappedPackage | None
    problems: tuple[PackageProblem, ...] = ()
    task_server_id: str | None = None
    task_version_id: str | None = None


def store_referral(session: Session, change: TaskChange, now: datetime) -> None:
    """The referral of a Task read from the server (the inbound sync)."""
    assert change.identifier is not None
    new = NewReferral(
        change.identifier, change.organization, change.mapped, change.package, change.problems,
        str(change.task.get("id")), task_version(change.task),
    )  # fmt: skip
    referral, _ = add_referral(session, new, now)
    log.info(
        "referral %s received (Task/%s, %s problems)",
        referral.id,
        referral.task_server_id,
        len(change.problems),
    )


def add_referral(
    session: Session, new: NewReferral, now: datetime
) -> tuple[models.Referral, ReferralLink]:
    """The referral, its link, and (when the package mapped) intake, assessments, medications
    (flushes). Without a server id (a submission) the link keeps no Patient or ServiceRequest:
    the mapped package's references are stand-ins for a Bundle's entries and mean nothing
    outside it; the worker settles them from the server's answers to the delivery."""
    package, task = new.package, new.task
    stay = package.stay if package else None
    referral = repo.add_referral(
        session,
        business_id=new.identifier[1],
        sender=task.requester if task is not None else "",
        status="requested",
        client_mrn=package.client.mrn if package else "",
        **_client_facts(package),
        iop_organization=new.organization,
        residential_discharge_date=stay.discharged.date() if stay and stay.discharged else None,
        task_server_id=new.task_server_id,
        task_version_id=new.task_version_id,
        received_at=now,
    )
    link = ReferralLink(
        referral_id=referral.id,
        task_identifier_system=new.identifier[0],
        task_identifier_value=new.identifier[1],
        problems=[p.as_json() for p in new.problems],
        losses=list(package.losses) if package else [],
        package_summary=summarize(package) if package else None,
    )
    if task is not None:
        copy_task(link, task)
    if new.task_server_id is None:
        link.service_request = link.patient = None
    session.add(link)
    if package is not None:
        _store_package(session, referral, package, now)
        # Labels on everything later sent about this client follow from this flag (Part 2).
        disclosure.remember_part2(session, referral.id, part2=package.part2)
    session.flush()
    return referral, link


def _client_facts(package: MappedPackage | None) -> dict[str, Any]:
    """The client's name, birth date and language for the tracker's pages (none unmapped)."""
    if package is None:
        return {}
    client = package.client
    name = " ".join((*client.given_names, client.family_name))[:255]
    return {
        "client_name": name,
        "client_birth_date": client.birth_date,
        "client_language": client.preferred_language,
    }


def _store_package(
    session: Session, referral: models.Referral, package: MappedPackage, now: datetime
) -> None:
    session.add(models.Intake(referral_id=referral.id))
    for assessment in package.assessments:
        record = models.AssessmentRecord
        earlier = (
            select(record.id)
            .join(models.Referral, models.Referral.id == record.referral_id)
            .where(
                record.business_id == assessment.identifier,
                models.Referral.sender == referral.sender,
            )
            .limit(1)
        )
        if session.scalar(earlier):
            # the same response came with an earlier referral from this sender; another
            # sender's response under the same identifier value is a different one
            continue
        repo.add_assessment(
            session,
            referral,
            business_id=assessment.identifier,
            instrument=assessment.instrument,
            total=assessment.total,
            severity=assessment.severity,
            authored=assessment.authored,
        )
    meds = package.medications
    if meds is not None:
        # Workflow 2's way of storing a list: each line keeps its whole entry for reconciliation.
        # Each referral keeps its own (unique per referral): another sender's list under the
        # same identifier value is a different list, never a reason to skip this one.
        medication_lists.store_discharge_list(session, referral, meds, meds.date)


def copy_task(link: ReferralLink, task: ReferralTask) -> None:
    """Keep the Task's references and state on the referral's link row."""
    link.service_request, link.patient = task.focus, task.patient
    link.requester, link.owner = task.requester, task.owner
    link.authored_on, link.last_modified = task.authored_on, task.last_modified
    link.business_status, link.status_reason = task.business_status, task.status_reason
    link.resulting_activity = task.resulting_activity


def task_version(task: Mapping[str, Any]) -> str | None:
    version = (task.get("meta") or {}).get("versionId")
    return str(version) if version is not None else None


@dataclass(frozen=True, slots=True)
class LandedReferences:
    """Where a submitted referral's Patient, ServiceRequest and Task landed on the FHIR server,
    as the worker recorded from the answers to iop-bridge's own delivery (None: not yet)."""

    patient: str | None
    service_request: str | None
    task_server_id: str | None


def landed_references(
    session: Session, referral: models.Referral, link: ReferralLink, context: MappingContext
) -> LandedReferences:
    """The link's references, completed from the sync records; reads only (a GET uses it)."""
    patient = link.patient or _landed(session, "Patient", context.mrn_system, referral.client_mrn)
    service_request = link.service_request or _landed(
        session, "ServiceRequest", context.referral_id_system, referral.business_id
    )
    task = referral.task_server_id or _landed_id(
        session, "Task", link.task_identifier_system, link.task_identifier_value
    )
    return LandedReferences(patient, service_request, task)


def settle_references(
    session: Session, referral: models.Referral, link: ReferralLink, context: MappingContext
) -> None:
    """Fill the link's Patient and ServiceRequest and the Task id once the worker recorded
    where they landed (flushes; a no-op for referrals that came from the server). These come
    from the FHIR server's answers to iop-bridge's own delivery, never from a notification:
    any Task may claim a referral's identifier (mappers/task_trust.py)."""
    landed = landed_references(session, referral, link, context)
    link.patient, link.service_request = landed.patient, landed.service_request
    referral.task_server_id = landed.task_server_id
    session.flush()


def settle_delivered(
    session: Session, messages: Sequence[ClaimedMessage], *, context: MappingContext
) -> None:
    """The worker's ``on_delivered``: settle the references of each referral one of
    ``messages`` delivered, in the settle's own transaction (so no read has to)."""
    keys = {
        int(m.aggregate_key)
        for m in messages
        if m.aggregate_type == REFERRAL_AGGREGATE and m.aggregate_key.isdigit()
    }  # the referral's row key (referral_lookup.aggregate_key)
    if keys:
        settle_referrals(session, keys, context)


def settle_referrals(
    session: Session, referral_keys: Iterable[int], context: MappingContext
) -> None:
    """``settle_references`` for each of these referrals that still misses a reference."""
    rows = session.execute(
        select(models.Referral, ReferralLink)
        .join(ReferralLink, ReferralLink.referral_id == models.Referral.id)
        .where(models.Referral.id.in_(list(referral_keys)))
    )
    for referral, link in rows:
        if link.patient is None or link.service_request is None or not referral.task_server_id:
            settle_references(session, referral, link, context)


def _landed(session: Session, kind: str, system: str, value: str) -> str | None:
    server_id = _landed_id(session, kind, system, value)
    return literal_reference(kind, server_id) if server_id else None


def _landed_id(session: Session, kind: str, system: str, value: str) -> str | None:
    query = select(SyncRecord.server_id).where(
        SyncRecord.resource_type == kind,
        SyncRecord.identifier_system == system,
        SyncRecord.identifier_value == value,
    )
    return session.scalar(query)
