"""Workflow 3 (DESIGN.md): IOP discharge, the discharge summary document and the aftercare
referral to the next provider, tracked until the next provider acknowledges it.

``discharge`` runs three named steps:

1. ``store_facts``: which records the summary is made of, from the store (the referral's
   ServiceRequest, the latest PHQ-9 and GAD-7, the treatment plan).
2. ``read_clinical_record``: their content, read from the FHIR server in one batch. The store
   keeps workflow state, not the clinical record: assessment_record holds totals, not the item
   answers a QuestionnaireResponse needs; diagnoses, demographics and the Part 2 Consent are not
   stored at all. They came with the referral package (the ServiceRequest's subject,
   reasonReference and supportingInfo); a plan or score the store names but the server lacks is a
   WorkflowNotReady, never silently left out.
3. ``discharge_client`` (one database transaction): the summary (problems = the referral's
   diagnoses, medications = the reconciled list from the store, plan of care, final scores, the
   course counted from session_record), the Part 2 check, the document Bundle and the aftercare
   ServiceRequest + Task, the discharge_record and ONE transaction outbox message: the document
   (``POST Bundle`` conditional on Bundle.identifier, which HAPI 8.8 supports as a conditional
   create, live-tested), the ServiceRequest and the Task (conditional on their identifiers).

Part 2 (42 CFR 2.31, 2.32): a summary with an SUD diagnosis carries the DS4P labels and the
redisclosure notice (the mappers add the labels), and is refused, with nothing stored, unless a
Consent of the referral (ServiceRequest.supportingInfo) covers the next provider for treatment
on the day of the handoff.

The document is self-contained: every resource in it is rendered by the concept mappers with a
``urn:uuid`` fullUrl derived from the summary identifier and what it stands for, so a retry
builds the same document. The ServiceRequest and Task reference the server's resources.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db import repositories as repo
from integration.db.base import utcnow
from integration.db.inbound_table import ReferralLink
from integration.fhir_client import FhirClient
from integration.outbox import MessageKind, enqueue
from integration.store import session_scope
from integration.workflows.medications import (
    URN_NAMESPACE,
    WorkflowNotReady,
    current_list,
    find_referral,
    load_list,
)
from mappers import (
    assessment,
    bundle,
    care_plan,
    condition,
    consent,
    medication,
    patient,
    referral_task,
)
from mappers import referral as referral_mapper
from mappers.assessment import Assessment
from mappers.care_plan import TreatmentPlan
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.discharge import (
    AftercarePlan,
    CourseOfTreatment,
    DischargeSummary,
    DocumentedDiagnosis,
    DocumentedMedications,
    FinalScore,
    PlanOfCare,
    aftercare_referral,
)
from mappers.discharge_document import DOCUMENT_ID_SYSTEM, to_document_bundle
from mappers.errors import IopBridgeError, MappingError, Problem
from mappers.loss import Mapped
from mappers.medication import ListSource
from mappers.patient import Client
from mappers.registry import MappingContext

T = TypeVar("T")
AGGREGATE_TYPE = "discharge"
DISCHARGE_SUFFIX = "-DISCHARGE"
AFTERCARE_SUFFIX = "-AFTERCARE"
TREATMENT = "TREAT"  # v3-ActReason purpose of use the consent must permit
# 42 CFR 2.32(a)(2), the short form; a program's compliance office supplies its current text.
DEFAULT_PART2_NOTICE = "42 CFR part 2 prohibits unauthorized disclosure of these records."
INSTRUMENTS = ("phq-9", "gad-7")
# The next provider has taken the handoff: SDOHCC task statuses at or past "accepted".
ACKNOWLEDGED = frozenset({"accepted", "in-progress", "on-hold", "completed"})


class AlreadyDischarged(IopBridgeError):
    """The referral's client was already discharged; the handoff exists."""

    http_status = 409
    issue_code = "duplicate"


class DisclosureRefused(IopBridgeError):
    """SUD records may not go to this recipient: no consent permits it (42 CFR Part 2)."""

    http_status = 403
    issue_code = "forbidden"


# --- step 1: what the store says the summary is made of -----------------------------------------


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """Which records make up the summary: business identifiers and references, no content."""

    referral_id: str
    service_request: str | None  # "ServiceRequest/<id>" as the inbound sync recorded it
    assessments: tuple[str, ...]  # QuestionnaireResponse identifiers: latest PHQ-9, GAD-7
    plan: str | None  # the treatment plan's identifier


def store_facts(session: Session, referral_id: str) -> StoreFacts:
    """Read the referral's ServiceRequest, latest PHQ-9 / GAD-7 and plan from the store."""
    referral = find_referral(session, referral_id)
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral.id))
    scores = [_latest_assessment(session, referral, name) for name in INSTRUMENTS]
    plan_query = select(models.PlanRecord.business_id).where(
        models.PlanRecord.referral_id == referral.id
    )
    plan = session.scalar(plan_query.order_by(models.PlanRecord.updated_at.desc()).limit(1))
    return StoreFacts(
        referral_id,
        link.service_request if link is not None else None,
        tuple(s for s in scores if s is not None),
        plan,
    )


def _latest_assessment(session: Session, referral: models.Referral, instrument: str) -> str | None:
    record = models.AssessmentRecord
    query = select(record.business_id).where(
        record.referral_id == referral.id, record.instrument == instrument
    )
    return session.scalar(query.order_by(record.authored.desc(), record.id.desc()).limit(1))


# --- step 2: their content, from the FHIR server ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClinicalRecord:
    """The referral's clinical record as domain values, each with its server reference."""

    patient: str  # "Patient/<id>"
    client: Client
    iop_organization: str
    organizations: Mapping[str, Mapping[str, Any]]  # reference -> Organization (IOP, next)
    diagnoses: tuple[tuple[str, Diagnosis], ...] = ()
    consents: tuple[tuple[str, DisclosureConsent], ...] = ()
    unreadable_consents: tuple[tuple[str, str], ...] = ()  # (reference, why not)
    scores: tuple[tuple[str, Assessment], ...] = ()
    plan: tuple[str, TreatmentPlan] | None = None


async def read_clinical_record(
    fhir: FhirClient,
    facts: StoreFacts,
    *,
    iop_organization: str,
    next_provider: str,
    context: MappingContext,
) -> ClinicalRecord:
    """The ServiceRequest, then one batch: Patient, Conditions, Consents, Organizations, and
    the QuestionnaireResponses and CarePlan searched by their identifiers."""
    request = await _service_request(fhir, facts, context)
    subject = _relative(request.get("subject"))
    reasons = [_relative(r) for r in request.get("reasonReference") or []]
    infos = [_relative(r) for r in request.get("supportingInfo") or []]
    consents = [r for r in infos if r and r.startswith("Consent/")]
    reads = [subject, *reasons, *consents, iop_organization, next_provider]
    searches = {_search(QR, context.assessment_id_system, a): a for a in facts.assessments}
    if facts.plan is not None:
        searches[_search(CAREPLAN, context.care_plan_id_system, facts.plan)] = facts.plan
    wanted = [r for r in reads if r] + list(searches)
    found = await _batch_get(fhir, list(dict.fromkeys(wanted)))
    missing = [
        Problem(u, "is not on the FHIR server", "not-found") for u in wanted if not found.get(u)
    ]
    if subject is None or None in reasons:
        message = "subject and reasonReference must reference this server"
        missing.append(Problem("ServiceRequest", message))
    if missing:
        what = f"the clinical record of referral {facts.referral_id!r} is incomplete on the server"
        raise WorkflowNotReady(what, problems=missing)
    assert subject is not None
    diagnoses = [r for r in reasons if r is not None]
    return _map_record(found, subject, diagnoses, consents, searches, iop_organization, context)


QR, CAREPLAN = "QuestionnaireResponse", "CarePlan"


def _search(resource_type: str, system: str, value: str) -> str:
    return f"{resource_type}?{bundle.identifier_query(system, value)}"


async def _service_request(
    fhir: FhirClient, facts: StoreFacts, context: MappingContext
) -> Mapping[str, Any]:
    """By the reference the inbound sync kept, else by the referral's business identifier."""
    if facts.service_request is not None:
        return await fhir.read(*facts.service_request.split("/", 1))
    token = bundle.identifier_token(context.referral_id_system, facts.referral_id)
    found = [r async for r in fhir.search_all("ServiceRequest", {"identifier": token})]
    if len(found) != 1:
        raise WorkflowNotReady(
            f"referral {facts.referral_id!r}: {len(found)} ServiceRequests on the server, not 1"
        )
    return found[0]


async def _batch_get(fhir: FhirClient, urls: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """GET every url in one batch (R4 http.html#transaction); a search answers its one match."""
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }
    answers = (await fhir.transaction(batch)).get("entry") or []
    found: dict[str, dict[str, Any] | None] = {}
    for url, answer in zip(urls, answers, strict=False):
        resource = answer.get("resource")
        ok = str((answer.get("response") or {}).get("status", "")).startswith("2")
        if ok and isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            matches = [e.get("resource") for e in resource.get("entry") or []]
            resource = matches[0] if len(matches) == 1 else None
        found[url] = resource if ok and isinstance(resource, dict) else None
    return found


def _map_record(
    found: Mapping[str, dict[str, Any] | None],
    subject: str,
    reasons: Sequence[str],
    consents: Sequence[str],
    searches: Mapping[str, str],
    iop_organization: str,
    context: MappingContext,
) -> ClinicalRecord:
    """Domain values of what was read; a resource that does not map raises naming it."""
    read_consent = partial(consent.from_fhir, id_system=context.consent_id_system)
    readable, unreadable = [], []
    for ref in consents:
        try:
            readable.append((ref, _value(found, ref, read_consent)))
        except MappingError as error:
            unreadable.append((ref, "; ".join(p.message for p in error.problems)))
    read_score = partial(assessment.from_fhir, id_system=context.assessment_id_system)
    read_plan = partial(care_plan.from_fhir, plan_id_system=context.care_plan_id_system)
    read_dx = partial(condition.from_fhir, id_system=context.condition_id_system)
    ids = {url: f"{url.split('?')[0]}/{(found[url] or {}).get('id')}" for url in searches}
    plans = [(ids[url], _value(found, url, read_plan)) for url in ids if url.startswith(CAREPLAN)]
    return ClinicalRecord(
        patient=subject,
        client=_value(found, subject, partial(patient.from_fhir, mrn_system=context.mrn_system)),
        iop_organization=iop_organization,
        organizations={r: dict(v or {}) for r, v in found.items() if r.startswith("Organization/")},
        diagnoses=tuple((r, _value(found, r, read_dx)) for r in reasons),
        consents=tuple(readable),
        unreadable_consents=tuple(unreadable),
        scores=tuple((ids[u], _value(found, u, read_score)) for u in ids if u.startswith(QR)),
        plan=plans[0] if plans else None,
    )


def _value(found: Mapping[str, Any], url: str, read: Callable[[Any], Mapped[T]]) -> T:
    """The domain value of the resource read for ``url``; its problems named under ``url``."""
    try:
        return read(found[url]).value
    except MappingError as error:
        problems = [Problem(f"{url}: {p.path}", p.message, p.code) for p in error.problems]
        raise MappingError(f"{url} on the FHIR server cannot be used", problems=problems) from None


def _relative(value: Any) -> str | None:
    """``Type/id`` of a reference to this server (a version suffix dropped), else None."""
    target = value.get("reference") if isinstance(value, Mapping) else None
    parts = target.split("/") if isinstance(target, str) else []
    return f"{parts[0]}/{parts[1]}" if len(parts) in (2, 4) and parts[0][:1].isupper() else None


# --- step 3: the summary, the Part 2 check, the document and the aftercare handoff ---------------


@dataclass(frozen=True, slots=True)
class DischargeResult:
    """What the discharge stored and enqueued."""

    referral_id: str
    summary_identifier: str
    document_identifier: str  # Bundle.identifier.value, urn:uuid:<uuid>
    aftercare_identifier: str  # of the ServiceRequest and the Task
    has_substance_use: bool
    consent: str | None  # the Consent reference that permitted an SUD disclosure
    outbox_message_id: int


def discharge_client(
    session: Session,
    referral_id: str,
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
    referral, reconciled = _dischargeable(session, referral_id)
    summary_id = referral.business_id + DISCHARGE_SUFFIX
    urls = _Urls(summary_id)
    summary = DischargeSummary(
        identifier=summary_id,
        subject=record.patient,
        author=record.iop_organization,
        custodian=record.iop_organization,
        discharged=discharged_at,
        course=course_of_treatment(session, referral, discharged_at, course_summary),
        diagnoses=tuple(DocumentedDiagnosis(ref, dx) for ref, dx in record.diagnoses),
        medications=DocumentedMedications(urls.of("List"), load_list(reconciled)),
        aftercare=aftercare,
        plan_of_care=_plan_of_care(record),
        phq9=_score(record, "phq-9"),
        gad7=_score(record, "gad-7"),
    )
    summary = replace(summary, part2_notice=part2_notice if summary.has_substance_use else None)
    permitted_by = check_disclosure(summary, record, at=at)
    transaction = _handoff_transaction(summary, record, urls, at=at, context=context)
    repo.record_discharge(
        session, referral, discharged_at=discharged_at, next_provider=aftercare.next_provider
    )
    message = enqueue(
        session,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_key=referral.business_id,
        kind=MessageKind.TRANSACTION,
        payload=transaction,
    )
    return DischargeResult(
        referral_id, summary_id, urls.document_identifier, referral.business_id + AFTERCARE_SUFFIX,
        summary.has_substance_use, permitted_by, message.id,
    )  # fmt: skip


def _dischargeable(
    session: Session, referral_id: str
) -> tuple[models.Referral, models.MedicationListRecord]:
    """The referral and its reconciled list; refused when discharged already or not reconciled."""
    referral = find_referral(session, referral_id)
    query = select(models.DischargeRecord.id).where(
        models.DischargeRecord.referral_id == referral.id
    )
    if session.scalar(query) is not None:
        raise AlreadyDischarged(f"referral {referral_id!r} was already discharged")
    reconciled = current_list(session, referral, ListSource.RECONCILED)
    if reconciled is None:
        raise WorkflowNotReady(f"referral {referral_id!r}: reconcile the medication list first")
    return referral, reconciled


class _Urls:
    """Stable urn:uuid fullUrls for one summary: the same summary always gets the same ones."""

    def __init__(self, summary_id: str) -> None:
        self.summary_id = summary_id
        self.document_identifier = self.of("document-identifier")

    def of(self, key: str) -> str:
        return f"urn:uuid:{uuid.uuid5(URN_NAMESPACE, f'{self.summary_id}|{key}')}"

    def uuid(self, key: str) -> str:
        return self.of(key).removeprefix("urn:uuid:")


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
    summary: DischargeSummary, record: ClinicalRecord, *, at: datetime
) -> str | None:
    """None when no SUD record is in the summary; else the Consent that permits disclosing it
    to the next provider for treatment on the day of ``at``; else DisclosureRefused."""
    if not summary.has_substance_use:
        return None
    recipient = summary.aftercare.next_provider
    problems: list[Problem] = []
    for ref, given in record.consents:
        decision = consent.covers(given, recipient=recipient, purpose=TREATMENT, at=at)
        if decision:
            return ref
        problems += [Problem(ref, reason, "forbidden") for reason in decision.reasons]
    problems += [
        Problem(ref, f"not readable as a Part 2 consent: {why}", "forbidden")
        for ref, why in record.unreadable_consents
    ]
    if not problems:
        problems.append(
            Problem("ServiceRequest.supportingInfo", "the referral carries no Consent", "forbidden")
        )
    raise DisclosureRefused(
        f"the discharge summary holds substance use disorder records (42 CFR Part 2) and no "
        f"consent of the referral permits disclosing them to {recipient} for treatment on "
        f"{at.date().isoformat()}",
        problems=problems,
    )


def _handoff_transaction(
    summary: DischargeSummary,
    record: ClinicalRecord,
    urls: _Urls,
    *,
    at: datetime,
    context: MappingContext,
) -> dict[str, Any]:
    """The document (conditional on Bundle.identifier), the aftercare ServiceRequest and Task
    (conditional on their identifiers); the ServiceRequest's supportingInfo is the document."""
    in_document, entries = _document_entries(summary, record, urls, context)
    document = to_document_bundle(
        in_document,
        composition_id=urls.uuid("composition"),
        bundle_identifier=urls.document_identifier.removeprefix("urn:uuid:"),
        timestamp=at,
        entries=entries,
    )
    aftercare_id = summary.identifier.removesuffix(DISCHARGE_SUFFIX) + AFTERCARE_SUFFIX
    document_url, request_url = urls.of("transaction/document"), urls.of("transaction/request")
    handoff = aftercare_referral(
        summary,
        referral_identifier=aftercare_id,
        task_identifier=aftercare_id,
        referral_reference=request_url,
        document_reference=document_url,
        authored_on=at,
    )
    writes = [
        (document, document_url, DOCUMENT_ID_SYSTEM, urls.document_identifier),
        (referral_mapper.to_fhir(handoff.referral, id_system=context.referral_id_system),
         request_url, context.referral_id_system, aftercare_id),
        (referral_task.to_fhir(handoff.task, id_system=context.task_id_system),
         urls.of("transaction/task"), context.task_id_system, aftercare_id),
    ]  # fmt: skip
    return bundle.transaction(
        bundle.conditional_create_entry(
            resource, full_url=url, if_none_exist=bundle.identifier_query(system, value)
        )
        for resource, url, system, value in writes
    )


def _document_entries(
    summary: DischargeSummary, record: ClinicalRecord, urls: _Urls, context: MappingContext
) -> tuple[DischargeSummary, dict[str, dict[str, Any]]]:
    """The summary with document references, and every resource it references by fullUrl."""
    subject = urls.of(summary.subject)
    entries: dict[str, dict[str, Any]] = {
        subject: patient.to_fhir(record.client, mrn_system=context.mrn_system)
    }
    for ref, organization in record.organizations.items():
        entries[urls.of(ref)] = _organization_copy(organization)
    diagnoses = []
    for documented in summary.diagnoses:
        url = urls.of(documented.reference)
        diagnoses.append(replace(documented, reference=url))
        entries[url] = condition.to_fhir(
            documented.diagnosis, id_system=context.condition_id_system, subject_reference=subject
        )
    entries |= _medication_entries(summary.medications, subject, urls, context)
    phq9, gad7 = (
        _document_score(score, urls, subject, entries, context)
        for score in (summary.phq9, summary.gad7)
    )
    plan = summary.plan_of_care
    if plan is not None and record.plan is not None:
        plan = replace(plan, reference=urls.of(plan.reference))
        entries[plan.reference] = care_plan.to_fhir(
            record.plan[1], plan_id_system=context.care_plan_id_system, subject_reference=subject,
            condition_references=[d.reference for d in diagnoses],
        )  # fmt: skip
    in_document = replace(
        summary,
        subject=subject,
        author=urls.of(summary.author),
        custodian=urls.of(summary.custodian),
        diagnoses=tuple(diagnoses),
        aftercare=replace(
            summary.aftercare, next_provider=urls.of(summary.aftercare.next_provider)
        ),
        plan_of_care=plan,
        phq9=phq9,
        gad7=gad7,
    )
    return in_document, entries


def _medication_entries(
    medications: DocumentedMedications, subject: str, urls: _Urls, context: MappingContext
) -> dict[str, dict[str, Any]]:
    """The reconciled List and its MedicationStatements, by document fullUrl."""
    med_list = medications.medication_list
    statements = [urls.of(f"MedicationStatement|{e.identifier}") for e in med_list.entries]
    found = {
        medications.reference: medication.list_to_fhir(
            med_list, id_system=context.medication_list_id_system, subject_reference=subject,
            entry_references=statements,
        )
    }  # fmt: skip
    for url, entry in zip(statements, med_list.entries, strict=True):
        found[url] = medication.to_fhir(
            entry, id_system=context.medication_statement_id_system, subject_reference=subject
        )
    return found


def _document_score(
    score: FinalScore | None,
    urls: _Urls,
    subject: str,
    entries: dict[str, dict[str, Any]],
    context: MappingContext,
) -> FinalScore | None:
    """The score with its document reference; its QuestionnaireResponse added to ``entries``."""
    if score is None:
        return None
    moved = replace(score, reference=urls.of(score.reference))
    entries[moved.reference] = assessment.to_fhir(
        score.assessment, id_system=context.assessment_id_system, subject_reference=subject
    )
    return moved


# Organization elements copied into the document: who they are, not the server's bookkeeping.
_ORGANIZATION_KEYS = ("identifier", "active", "type", "name", "alias", "telecom", "address")


def _organization_copy(resource: Mapping[str, Any]) -> dict[str, Any]:
    copy = {"resourceType": "Organization"}
    return copy | {k: resource[k] for k in _ORGANIZATION_KEYS if k in resource}


# --- the whole discharge, and the aftercare loop -------------------------------------------------


async def discharge(
    engine: Engine,
    fhir: FhirClient,
    referral_id: str,
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
    facts = await asyncio.to_thread(_in_session, engine, store_facts, referral_id)
    record = await read_clinical_record(
        fhir,
        facts,
        iop_organization=iop_organization,
        next_provider=aftercare.next_provider,
        context=context,
    )

    def write(session: Session, referral: str) -> DischargeResult:
        return discharge_client(
            session, referral, record=record, discharged_at=discharged_at, aftercare=aftercare,
            at=at, course_summary=course_summary, context=context,
        )  # fmt: skip

    return await asyncio.to_thread(_in_session, engine, write, referral_id)


def _in_session(engine: Engine, step: Callable[[Session, str], T], referral_id: str) -> T:
    with session_scope(engine) as session:
        return step(session, referral_id)


@dataclass(frozen=True, slots=True)
class AftercareStatus:
    """Where the handoff to the next provider stands."""

    referral_id: str
    task: str | None  # "Task/<id>"; None until the outbox has delivered it
    status: str | None  # Task.status as the next provider left it
    business_status: str | None
    acknowledged_at: datetime | None  # set once the Task is accepted (or further)


async def check_aftercare(
    fhir: FhirClient, engine: Engine, referral_id: str, *, context: MappingContext | None = None
) -> AftercareStatus:
    """Read the aftercare Task; record its id, and acknowledged_at once the next provider moved
    it to accepted or a later state (the Task's lastModified, else meta.lastUpdated)."""
    context = context or MappingContext()
    known = await asyncio.to_thread(_in_session, engine, _discharge_record, referral_id)
    task = await _aftercare_task(fhir, known, referral_id, context)
    if task is None:
        return AftercareStatus(referral_id, None, None, None, known.acknowledged_at)
    acknowledged = known.acknowledged_at
    if acknowledged is None and task.get("status") in ACKNOWLEDGED:
        acknowledged = _changed_at(task)

    def remember(session: Session, referral: str) -> None:
        stored = _discharge_record(session, referral)
        repo.record_aftercare_task(session, stored, task_id=str(task["id"]))
        if stored.acknowledged_at is None and acknowledged is not None:
            repo.acknowledge_discharge(session, stored, at=acknowledged)

    await asyncio.to_thread(_in_session, engine, remember, referral_id)
    codings = (task.get("businessStatus") or {}).get("coding") or [{}]
    return AftercareStatus(
        referral_id, f"Task/{task['id']}", task.get("status"), codings[0].get("code"), acknowledged
    )


async def poll_open_discharges(
    fhir: FhirClient, engine: Engine, *, context: MappingContext | None = None
) -> list[AftercareStatus]:
    """check_aftercare for every discharge not yet acknowledged (the loop's safety net)."""
    query = (
        select(models.Referral.business_id)
        .join(models.DischargeRecord, models.DischargeRecord.referral_id == models.Referral.id)
        .where(models.DischargeRecord.acknowledged_at.is_(None))
        .order_by(models.DischargeRecord.discharged_at)
    )

    def open_ones() -> list[str]:
        with session_scope(engine) as session:
            return list(session.scalars(query))

    return [
        await check_aftercare(fhir, engine, referral_id, context=context)
        for referral_id in await asyncio.to_thread(open_ones)
    ]


def _discharge_record(session: Session, referral_id: str) -> models.DischargeRecord:
    referral = find_referral(session, referral_id)
    query = select(models.DischargeRecord).where(models.DischargeRecord.referral_id == referral.id)
    found = session.scalar(query)
    if found is None:
        raise WorkflowNotReady(f"referral {referral_id!r} has no discharge")
    return found


async def _aftercare_task(
    fhir: FhirClient, known: models.DischargeRecord, referral_id: str, context: MappingContext
) -> dict[str, Any] | None:
    """By the id seen before, else by identifier (the id is the server's, known after delivery)."""
    if known.aftercare_task_id is not None:
        return await fhir.read("Task", known.aftercare_task_id)
    token = bundle.identifier_token(context.task_id_system, referral_id + AFTERCARE_SUFFIX)
    found = [t async for t in fhir.search_all("Task", {"identifier": token})]
    return found[0] if len(found) == 1 else None


def _changed_at(task: Mapping[str, Any]) -> datetime:
    """When the next provider's change was made: Task.lastModified (theirs) if it is a full
    instant, else meta.lastUpdated (the server's), else now."""
    for value in (task.get("lastModified"), (task.get("meta") or {}).get("lastUpdated")):
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            return moment
    return utcnow()
