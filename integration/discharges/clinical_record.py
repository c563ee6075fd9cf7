"""The discharge's inputs (DESIGN.md workflow 3, steps 1 and 2): which records the summary is made
of, from the store, and their content, read back from the FHIR server.

The store keeps workflow state, not the clinical record: assessment_record holds totals, not the
item answers a QuestionnaireResponse needs; diagnoses, demographics and the Part 2 Consent are not
stored at all. They came with the referral package (the ServiceRequest's subject,
reasonReference and supportingInfo), which is read back by those references with the inbound
readers, whoever wrote it (``package_record``). A client that cannot be read, or a plan the
store names but the server lacks, is a WorkflowNotReady; a diagnosis or score the document
cannot hold is said in its narrative, never silently left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.referral_lookup import find_referral
from integration.discharges.package_record import PackageRecord, Part, read_package, sendable
from integration.fhir.client import FhirClient
from integration.workflow_errors import WorkflowNotReady
from mappers import assessment, bundle, care_plan_reader, encounter
from mappers.assessment import Assessment
from mappers.care_plan import TreatmentPlan
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.discharge import FinalScore, score_line
from mappers.encounter import Session as IopSession
from mappers.errors import MappingError, Problem
from mappers.fhir_reference import split_literal_reference
from mappers.loss import Mapped
from mappers.patient import Client
from mappers.registry import MappingContext

T = TypeVar("T")
INSTRUMENTS = ("phq-9", "gad-7")


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """Which records make up the summary: business identifiers and references, no content."""

    business_id: str  # the referral's business identifier
    service_request: str | None  # "ServiceRequest/<id>" as the inbound sync recorded it
    assessments: tuple[str, ...]  # QuestionnaireResponse identifiers: latest PHQ-9, GAD-7
    plan: str | None  # the treatment plan's identifier
    session: str | None = None  # the last attended session's identifier (Composition.encounter)


def store_facts(session: Session, referral_key: int) -> StoreFacts:
    """Read the referral's ServiceRequest, latest PHQ-9 / GAD-7 and plan from the store."""
    referral = find_referral(session, referral_key)
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral.id))
    scores = [_latest_assessment(session, referral, name) for name in INSTRUMENTS]
    plan_query = select(models.PlanRecord.business_id).where(
        models.PlanRecord.referral_id == referral.id
    )
    plan = session.scalar(plan_query.order_by(models.PlanRecord.updated_at.desc()).limit(1))
    return StoreFacts(
        referral.business_id,
        link.service_request if link is not None else None,
        tuple(s for s in scores if s is not None),
        plan,
        _last_attended_session(session, referral),
    )


def _last_attended_session(session: Session, referral: models.Referral) -> str | None:
    record = models.SessionRecord
    query = select(record.business_id).where(
        record.referral_id == referral.id, record.attendance == models.Attendance.ATTENDED
    )
    return session.scalar(query.order_by(record.starts_at.desc(), record.id.desc()).limit(1))


def _latest_assessment(session: Session, referral: models.Referral, instrument: str) -> str | None:
    record = models.AssessmentRecord
    query = select(record.business_id).where(
        record.referral_id == referral.id, record.instrument == instrument
    )
    return session.scalar(query.order_by(record.authored.desc(), record.id.desc()).limit(1))


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
    encounter: tuple[str, IopSession] | None = None  # the last attended session, when on the server
    # The referring program's own resources the document includes as they are (its Patient,
    # Conditions, PHQ-9/GAD-7 responses), by their key: "Type/id" on the server, or the fullUrl
    # they have in a document the sender stored (PACIO TOC). Our own dialect is written anew.
    as_sent: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Other keys of the client's Patient: the copy a sender's own document holds (PACIO TOC),
    # read as the same client (same identifier) -> ``patient``
    aliases: Mapping[str, str] = field(default_factory=dict)
    problem_notes: tuple[str, ...] = ()  # what of the diagnoses the document cannot hold
    result_notes: tuple[str, ...] = ()  # what of the final scores the document cannot hold


async def read_clinical_record(
    fhir: FhirClient,
    facts: StoreFacts,
    *,
    iop_organization: str,
    next_provider: str,
    context: MappingContext,
) -> ClinicalRecord:
    """The ServiceRequest, the package it references read back with the inbound readers
    (``package_record``), then one batch: the Organizations, our own responses the package
    does not hold (by our identifiers), the CarePlan, the last session."""
    request = await _service_request(fhir, facts, context)
    package = await read_package(fhir, f"ServiceRequest/{request.get('id')}", context)
    own_scores = [a for a in facts.assessments if package.assessment(a) is None]
    searches = {_search(QR, context.assessment_id_system, a): a for a in own_scores}
    if facts.plan is not None:
        searches[_search(CAREPLAN, context.care_plan_id_system, facts.plan)] = facts.plan
    wanted = [iop_organization, next_provider, *searches]
    # The last attended session names the document's encounter when the server has it; the
    # document is complete without one (R4 Composition.encounter 0..1). Our own responses
    # are optional too: a score the document cannot hold is said in its narrative.
    optional = [] if facts.session is None else [_search(ENCOUNTER, context.session_id_system,
                                                        facts.session)]  # fmt: skip
    found = await _batch_get(fhir, list(dict.fromkeys(wanted + optional)))
    required = [u for u in wanted if not u.startswith(QR)]
    missing = [
        Problem(u, "is not on the FHIR server", "not-found") for u in required if not found.get(u)
    ]
    patient = package.patient()
    if patient is None or patient.value is None:
        why = "no Patient" if patient is None else patient.why_not
        missing.append(Problem("ServiceRequest.subject", f"the client cannot be read: {why}"))
    if missing:
        what = f"the clinical record of referral {facts.business_id!r} is incomplete on the server"
        raise WorkflowNotReady(what, problems=missing)
    assert patient is not None
    record = _map_record(found, (patient.key, patient.value), searches, iop_organization, context)
    record = replace(record, encounter=_encounter(found, optional, context))
    return with_package(record, package, facts)


QR, CAREPLAN, ENCOUNTER = "QuestionnaireResponse", "CarePlan", "Encounter"


def _encounter(
    found: Mapping[str, dict[str, Any] | None], urls: Sequence[str], context: MappingContext
) -> tuple[str, IopSession] | None:
    """The session Encounter that was found, with its server reference."""
    for url in urls:
        resource = found.get(url)
        if resource is not None:
            read = partial(encounter.from_fhir, id_system=context.session_id_system)
            return f"{ENCOUNTER}/{resource.get('id')}", _value(found, url, read)
    return None


def _search(resource_type: str, system: str, value: str) -> str:
    return f"{resource_type}?{bundle.identifier_query(system, value)}"


async def _service_request(
    fhir: FhirClient, facts: StoreFacts, context: MappingContext
) -> Mapping[str, Any]:
    """By the reference the inbound sync kept, else by the referral's business identifier."""
    known = split_literal_reference(facts.service_request) if facts.service_request else None
    if known is not None:
        return await fhir.read(*known)
    token = bundle.identifier_token(context.referral_id_system, facts.business_id)
    found = [r async for r in fhir.search_all("ServiceRequest", {"identifier": token})]
    if len(found) != 1:
        raise WorkflowNotReady(
            f"referral {facts.business_id!r}: {len(found)} ServiceRequests on the server, not 1"
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
    subject: tuple[str, Client],
    searches: Mapping[str, str],
    iop_organization: str,
    context: MappingContext,
) -> ClinicalRecord:
    """The Organizations, our own responses found by our identifiers and the plan; the
    client is filled in from the package (``with_package``)."""
    read_score = partial(assessment.from_fhir, id_system=context.assessment_id_system)
    read_plan = partial(care_plan_reader.from_fhir, plan_id_system=context.care_plan_id_system)
    ids = {
        url: f"{url.split('?')[0]}/{(found[url] or {}).get('id')}"
        for url in searches if found.get(url)
    }  # fmt: skip
    plans = [(ids[url], _value(found, url, read_plan)) for url in ids if url.startswith(CAREPLAN)]
    return ClinicalRecord(
        patient=subject[0],
        client=subject[1],
        iop_organization=iop_organization,
        organizations={r: dict(v or {}) for r, v in found.items() if r.startswith("Organization/")},
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


# --- the package's part of the record ---------------------------------------------------------

_NAMES = {"phq-9": "PHQ-9", "gad-7": "GAD-7"}


def with_package(
    record: ClinicalRecord, package: PackageRecord, facts: StoreFacts
) -> ClinicalRecord:
    """The record with the package's diagnoses, consents and final scores. Our own dialect is
    written anew by the document; a sender's resource is included as it is, when it is
    well-formed R4 (``mappers.sender_copy``). What cannot be read or sent is said in the
    document (``problem_notes``, ``result_notes``), never a reason to refuse the discharge;
    only the client is needed."""
    as_sent: dict[str, Mapping[str, Any]] = {}
    patient = package.patient()
    assert patient is not None
    if patient.key not in package.ours:
        why = sendable(patient)
        if why is not None:
            problem = Problem(patient.key, f"cannot be sent as the sender wrote it: {why}")
            raise WorkflowNotReady("the referral's Patient is not well-formed", problems=[problem])
        as_sent[patient.key] = patient.resource
    diagnoses, problem_notes = [], []
    for part in package.of_kind("Condition"):
        why = _why_not(part, package)
        if why is not None:
            problem_notes.append(f"A diagnosis the referring program sent ({part.key}) is not "
                                 f"included: {why}")  # fmt: skip
            continue
        diagnoses.append((part.key, part.value))
        if part.key not in package.ours:
            as_sent[part.key] = part.resource
    scores, result_notes = _package_scores(record, package, facts, as_sent)
    consents = package.of_kind("Consent")
    return replace(
        record,
        diagnoses=tuple(diagnoses),
        consents=tuple((p.key, p.value) for p in consents if p.value is not None),
        unreadable_consents=tuple((p.key, p.why_not) for p in consents if p.why_not),
        scores=tuple(scores),
        as_sent=as_sent,
        aliases=_aliases(package, patient, record.client),
        problem_notes=tuple(problem_notes),
        result_notes=tuple(result_notes),
    )


def _aliases(package: PackageRecord, patient: Part, client: Client) -> dict[str, str]:
    """The sender's other copies of the client's Patient (same identifier) -> ``patient``."""
    return {
        p.key: patient.key
        for p in package.of_kind("Patient")
        if p.key != patient.key and isinstance(p.value, Client) and p.value.mrn == client.mrn
    }


def _package_scores(
    record: ClinicalRecord,
    package: PackageRecord,
    facts: StoreFacts,
    as_sent: dict[str, Mapping[str, Any]],
) -> tuple[list[tuple[str, Assessment]], list[str]]:
    """The final scores the store names: from the package (as recorded at intake), else our
    own responses found by our identifiers (already in ``record.scores``)."""
    scores, notes = list(record.scores), []
    for identifier in facts.assessments:
        part = package.assessment(identifier)
        if part is None:
            if not any(a.identifier == identifier for _, a in record.scores):
                notes.append("A final PHQ-9 or GAD-7 recorded for this client is not on the "
                             "FHIR server and is not included.")  # fmt: skip
            continue
        line = score_line(_NAMES[part.value.instrument], FinalScore(part.key, part.value))
        if part.kind == "Observation":
            # The results section holds QuestionnaireResponses (mappers.discharge_document);
            # the sender's screening Observation is named, its total recomputed from its items.
            notes.append(f"{line}: recomputed from the referring program's screening "
                         "Observation, which this document does not include.")  # fmt: skip
            continue
        why = _why_not(part, package)
        if why is not None:
            notes.append(f"{line}: the referring program's response is not included: {why}")
            continue
        scores.append((part.key, part.value))
        if part.key not in package.ours:
            as_sent[part.key] = part.resource
    return scores, notes


def _why_not(part: Part, package: PackageRecord) -> str | None:
    """Why a part cannot be in the document: unread, or a sender's resource not R4."""
    if part.why_not is not None or part.key in package.ours:
        return part.why_not
    return sendable(part)
