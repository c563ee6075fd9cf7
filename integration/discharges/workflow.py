"""Workflow 3 (DESIGN.md): IOP discharge, the discharge summary document and the aftercare
referral to the next provider (tracked until acknowledged by ``integration.discharges.aftercare``).

``discharge`` runs three named steps:

1. ``store_facts``: which records the summary is made of, from the store (the referral's
   ServiceRequest, the latest PHQ-9 and GAD-7, the treatment plan);
2. ``read_clinical_record``: their content, read from the FHIR server in one batch (both in
   ``integration.discharges.clinical_record``);
3. ``discharge_client`` (one database transaction): the summary (problems = the referral's
   diagnoses, medications = the reconciled list from the store, plan of care, final scores, the
   course counted from session_record), the Part 2 check, the discharge_record and ONE
   transaction outbox message (``integration.discharges.handoff_bundle``): the document
   Bundle, the aftercare ServiceRequest and the Task.

Part 2 (42 CFR 2.31, 2.32): a summary with an SUD diagnosis carries the DS4P labels and the
redisclosure notice (the mappers add the labels), and is refused, with nothing stored, unless a
Consent of the referral (ServiceRequest.supportingInfo) or one the IOP recorded for it
(``integration.discharges.consents``) covers the next provider for treatment on the day of the
handoff.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.referral_lookup import (
    DISCHARGE_AGGREGATE,
    aggregate_key,
    find_referral,
    identifier_stem,
)
from integration.db.store import session_scope
from integration.discharges import consents
from integration.discharges.clinical_record import ClinicalRecord, read_clinical_record, store_facts
from integration.discharges.handoff_bundle import (
    AFTERCARE_SUFFIX,
    DISCHARGE_SUFFIX,
    SummaryUrls,
    handoff_transaction,
)
from integration.fhir.client import FhirClient
from integration.medications.lists import load_list
from integration.medications.workflow import current_list
from integration.outbox.queue import MessageKind, enqueue
from integration.privacy import audit, disclosure
from integration.workflow_errors import AlreadyDischarged, WorkflowNotReady
from mappers import security_labels
from mappers.discharge import (
    DISCHARGE_SUMMARY_ID_SYSTEM,
    AftercarePlan,
    CourseOfTreatment,
    DischargeSummary,
    DocumentedDiagnosis,
    DocumentedMedications,
    FinalScore,
    PlanOfCare,
)
from mappers.medication import ListSource
from mappers.registry import MappingContext

T = TypeVar("T")
AGGREGATE_TYPE = DISCHARGE_AGGREGATE
TREATMENT = "TREAT"  # v3-ActReason purpose of use the consent must permit
# 42 CFR 2.32(a)(2), the short form; a program's compliance office supplies its current text.
DEFAULT_PART2_NOTICE = disclosure.REDISCLOSURE_NOTICE


# --- step 3: the summary, the Part 2 check, the document and the aftercare handoff ---------------


@dataclass(frozen=True, slots=True)
class DischargeResult:
    """What the discharge stored and enqueued."""

    referral_id: str  # the referral's business identifier (Referral.business_id)
    summary_identifier: str
    document_identifier: str  # Bundle.identifier.value, urn:uuid:<uuid>
    aftercare_identifier: str  # of the ServiceRequest and the Task
    has_substance_use: bool
    consent: str | None  # the Consent reference that permitted an SUD disclosure
    outbox_message_id: int


def discharge_client(
    session: Session,
    referral_key: int,
    *,
    record: ClinicalRecord,
    discharged_at: datetime,
    aftercare: AftercarePlan,
    at: datetime,
    course_summary: str | None = None,
    part2_notice: str = DEFAULT_PART2_NOTICE,
    context: MappingContext | None = None,
) -> DischargeResult:
    """Build the summary, check Part 2 consent, store the discharge and enqueue the document,
    ServiceRequest and Task, all in the caller's transaction (nothing on any refusal)."""
    context = context or MappingContext()
    referral, reconciled = _dischargeable(session, referral_key)
    stem = identifier_stem(session, referral)
    summary_id = stem + DISCHARGE_SUFFIX
    urls = SummaryUrls(summary_id)
    summary = DischargeSummary(
        identifier=summary_id,
        subject=record.patient,
        author=urls.of("transaction/author"),  # the IOP's PractitionerRole (handoff_bundle)
        custodian=record.iop_organization,
        discharged=discharged_at,
        course=course_of_treatment(session, referral, discharged_at, course_summary),
        diagnoses=tuple(
            DocumentedDiagnosis(ref, dx, ref in record.as_sent) for ref, dx in record.diagnoses
        ),
        medications=DocumentedMedications(urls.of("List"), load_list(reconciled)),
        aftercare=aftercare,
        plan_of_care=_plan_of_care(record),
        phq9=_score(record, "phq-9"),
        gad7=_score(record, "gad-7"),
        # PACIO TOC (US Core Encounter): the last attended session, when the server has it.
        encounter=None if record.encounter is None else record.encounter[0],
        problem_notes=record.problem_notes,
        result_notes=record.result_notes,
    )
    # Part 2 by what the summary says, or by the referral's package: a sender's Part 2 label
    # makes the client's records Part 2 whatever the diagnoses say, and the document may hold
    # the sender's labelled resources as the sender wrote them (handoff_bundle).
    part2 = summary.has_substance_use or disclosure.is_part2(session, referral.id)
    summary = replace(summary, part2_notice=disclosure.notice(part2, part2_notice))
    # the consents the IOP recorded for this referral count beside the referral's own
    recorded = consents.recorded_consents(session, referral.id)
    record = replace(record, consents=record.consents + recorded)
    permitted_by = check_disclosure(
        session, summary, record, at=at, owner=referral.iop_organization, part2=part2
    )
    transaction = handoff_transaction(
        summary, record, urls, at=at, context=context, iop_identifier=referral.iop_organization
    )
    part2 = part2 or security_labels.contains_sud([transaction])
    transaction = security_labels.label(transaction, sud_derived=part2)
    repo.record_discharge(
        session, referral, discharged_at=discharged_at, next_provider=aftercare.next_provider
    )
    message = enqueue(
        session,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_key=aggregate_key(referral.id),
        kind=MessageKind.TRANSACTION,
        payload=transaction,
    )
    audit.changed(
        session, audit.DISCHARGE, _summary_entity(summary), organization=referral.iop_organization
    )
    return DischargeResult(
        referral.business_id, summary_id, urls.document_identifier, stem + AFTERCARE_SUFFIX,
        summary.has_substance_use, permitted_by, message.id,
    )  # fmt: skip


def _dischargeable(
    session: Session, referral_key: int
) -> tuple[models.Referral, models.MedicationListRecord]:
    """The referral and its reconciled list; refused when discharged already or not reconciled."""
    referral = find_referral(session, referral_key)
    business_id = referral.business_id
    query = select(models.DischargeRecord.id).where(
        models.DischargeRecord.referral_id == referral.id
    )
    if session.scalar(query) is not None:
        raise AlreadyDischarged(f"referral {business_id!r} was already discharged")
    reconciled = current_list(session, referral, ListSource.RECONCILED)
    if reconciled is None:
        raise WorkflowNotReady(f"referral {business_id!r}: reconcile the medication list first")
    return referral, reconciled


def course_of_treatment(
    session: Session, referral: models.Referral, discharged_at: datetime, summary: str | None
) -> CourseOfTreatment:
    """Weeks from the first held session to discharge (at least 1), sessions attended, and
    sessions missed (no-shows; cancelled and still scheduled sessions count as neither)."""
    rows = session.execute(
        select(models.SessionRecord.starts_at, models.SessionRecord.attendance).where(
            models.SessionRecord.referral_id == referral.id,
            models.SessionRecord.starts_at <= discharged_at,
        )
    ).all()
    attended = sum(1 for _, a in rows if a == models.Attendance.ATTENDED)
    missed = sum(1 for _, a in rows if a == models.Attendance.NO_SHOW)
    held = [s for s, a in rows if a in (models.Attendance.ATTENDED, models.Attendance.NO_SHOW)]
    first = min(held, default=discharged_at)
    days = (discharged_at.date() - first.date()).days + 1  # both days count
    return CourseOfTreatment(max(1, math.ceil(days / 7)), attended, missed, summary)


def _plan_of_care(record: ClinicalRecord) -> PlanOfCare | None:
    if record.plan is None:
        return None
    ref, plan = record.plan
    activities = ", ".join(f"{m.modality} {m.sessions_per_week}x a week" for m in plan.modalities)
    level = f"ASAM {plan.level_of_care} " if plan.level_of_care else ""
    text = f"{level}plan from {plan.start.isoformat()} for {plan.weeks} weeks"
    hours = f"{plan.total_hours_per_week:g} hours a week"
    return PlanOfCare(ref, f"{text}: {activities} ({hours})" if activities else text)


def _score(record: ClinicalRecord, instrument: str) -> FinalScore | None:
    found = [(ref, a) for ref, a in record.scores if a.instrument == instrument]
    return FinalScore(*found[0]) if found else None


def check_disclosure(
    session: Session,
    summary: DischargeSummary,
    record: ClinicalRecord,
    *,
    at: datetime,
    owner: str | None = None,
    part2: bool | None = None,
) -> str | None:
    """The Part 2 gate (``integration.privacy.disclosure``): None when no SUD record is in the
    summary (``part2``, by default whether it names an SUD); else the Consent that permits
    disclosing it to the next provider for treatment on the day of ``at``; else
    DisclosureRefused. Audited either way."""
    request = disclosure.Disclosure(
        _summary_entity(summary), summary.aftercare.next_provider, at,
        part2=summary.has_substance_use if part2 is None else part2, purpose=TREATMENT,
        organization=owner,
    )  # fmt: skip
    return disclosure.authorize(session, request, record.consents, record.unreadable_consents)


def _summary_entity(summary: DischargeSummary) -> audit.Entity:
    return audit.Entity("Composition", summary.identifier, DISCHARGE_SUMMARY_ID_SYSTEM)


# --- the whole discharge -------------------------------------------------------------------------


async def discharge(
    engine: Engine,
    fhir: FhirClient,
    referral_key: int,
    *,
    iop_organization: str,
    discharged_at: datetime,
    aftercare: AftercarePlan,
    at: datetime,
    course_summary: str | None = None,
    context: MappingContext | None = None,
) -> DischargeResult:
    """Discharge the referral's client: the three steps, the last in one DB transaction."""
    context = context or MappingContext()
    facts = await asyncio.to_thread(in_session, engine, store_facts, referral_key)
    record = await read_clinical_record(
        fhir,
        facts,
        iop_organization=iop_organization,
        next_provider=aftercare.next_provider,
        context=context,
    )

    def write(session: Session, referral: int) -> DischargeResult:
        return discharge_client(
            session, referral, record=record, discharged_at=discharged_at, aftercare=aftercare,
            at=at, course_summary=course_summary, context=context,
        )  # fmt: skip

    return await asyncio.to_thread(in_session, engine, write, referral_key)


def in_session(engine: Engine, step: Callable[[Session, int], T], referral_key: int) -> T:
    """Run one step of a workflow for the referral in its own unit of work."""
    with session_scope(engine) as session:
        return step(session, referral_key)
