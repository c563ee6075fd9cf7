"""The discharge's inputs (DESIGN.md workflow 3, steps 1 and 2): which records the summary is made
of, from the store, and their content, read from the FHIR server in one batch.

The store keeps workflow state, not the clinical record: assessment_record holds totals, not the
item answers a QuestionnaireResponse needs; diagnoses, demographics and the Part 2 Consent are not
stored at all. They came with the referral package (the ServiceRequest's subject,
reasonReference and supportingInfo); a plan or score the store names but the server lacks is a
WorkflowNotReady, never silently left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.referral_lookup import find_referral
from integration.fhir.client import FhirClient
from integration.workflow_errors import WorkflowNotReady
from mappers import (
    assessment,
    bundle,
    care_plan_reader,
    condition,
    consent_reader,
    encounter,
    patient,
)
from mappers.assessment import Assessment
from mappers.care_plan import TreatmentPlan
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.encounter import Session as IopSession
from mappers.errors import MappingError, Problem
from mappers.fhir_reference import literal_reference, split_literal_reference
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
    # The last attended session names the document's encounter when the server has it; the
    # document is complete without one (R4 Composition.encounter 0..1).
    optional = [] if facts.session is None else [_search(ENCOUNTER, context.session_id_system,
                                                        facts.session)]  # fmt: skip
    found = await _batch_get(fhir, list(dict.fromkeys(wanted + optional)))
    missing = [
        Problem(u, "is not on the FHIR server", "not-found") for u in wanted if not found.get(u)
    ]
    if subject is None or None in reasons:
        message = "subject and reasonReference must reference this server"
        missing.append(Problem("ServiceRequest", message))
    if missing:
        what = f"the clinical record of referral {facts.business_id!r} is incomplete on the server"
        raise WorkflowNotReady(what, problems=missing)
    assert subject is not None
    diagnoses = [r for r in reasons if r is not None]
    record = _map_record(found, subject, diagnoses, consents, searches, iop_organization, context)
    return replace(record, encounter=_encounter(found, optional, context))


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
    subject: str,
    reasons: Sequence[str],
    consents: Sequence[str],
    searches: Mapping[str, str],
    iop_organization: str,
    context: MappingContext,
) -> ClinicalRecord:
    """Domain values of what was read; a resource that does not map raises naming it."""
    read_consent = partial(consent_reader.from_fhir, id_system=context.consent_id_system)
    readable, unreadable = [], []
    for ref in consents:
        try:
            readable.append((ref, _value(found, ref, read_consent)))
        except MappingError as error:
            unreadable.append((ref, "; ".join(p.message for p in error.problems)))
    read_score = partial(assessment.from_fhir, id_system=context.assessment_id_system)
    read_plan = partial(care_plan_reader.from_fhir, plan_id_system=context.care_plan_id_system)
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
    parts = split_literal_reference(target) if isinstance(target, str) else None
    return literal_reference(*parts) if parts else None
