"""The discharge's one outbox transaction: the summary as a self-contained document Bundle, and
the aftercare ServiceRequest and Task that hand the client over to the next provider.

Every resource in the document is rendered by the concept mappers with a ``urn:uuid`` fullUrl
derived from the summary identifier and what it stands for (``SummaryUrls``), so a retry builds
the same document. The ServiceRequest and Task reference the server's resources. Each write is
conditional: the document on Bundle.identifier (HAPI 8.8 supports it as a conditional create,
live-tested), the ServiceRequest and the Task on their identifiers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from fhir_profiles.terminology.workflow import MEDICATION_DISCHARGE
from integration.discharges.clinical_record import ClinicalRecord
from integration.medications.workflow import URN_NAMESPACE
from mappers import (
    assessment,
    bundle,
    care_plan,
    condition,
    encounter,
    medication,
    medication_request,
    patient,
    practitioner_role,
    referral_task,
)
from mappers import referral as referral_mapper
from mappers.discharge import (
    DischargeSummary,
    DocumentedMedications,
    FinalScore,
    aftercare_referral,
)
from mappers.discharge_document import DOCUMENT_ID_SYSTEM, to_document_bundle
from mappers.discharge_reference import to_document_reference
from mappers.registry import MappingContext
from mappers.sender_copy import sender_copy

DISCHARGE_SUFFIX = "-DISCHARGE"


AFTERCARE_SUFFIX = "-AFTERCARE"


class SummaryUrls:
    """Stable urn:uuid fullUrls for one summary: the same summary always gets the same ones."""

    def __init__(self, summary_id: str) -> None:
        self.summary_id = summary_id
        self.document_identifier = self.of("document-identifier")

    def of(self, key: str) -> str:
        return f"urn:uuid:{uuid.uuid5(URN_NAMESPACE, f'{self.summary_id}|{key}')}"

    def uuid(self, key: str) -> str:
        return self.of(key).removeprefix("urn:uuid:")


def handoff_transaction(
    summary: DischargeSummary,
    record: ClinicalRecord,
    urls: SummaryUrls,
    *,
    at: datetime,
    context: MappingContext,
    iop_identifier: str,
) -> dict[str, Any]:
    """The document (conditional on Bundle.identifier), the aftercare ServiceRequest and Task
    (conditional on their identifiers), the IOP's PractitionerRole (on its identifier, the IOP
    Organization's ``iop_identifier``); the ServiceRequest's supportingInfo is the document."""
    role = _program_role(record, iop_identifier, context)
    in_document, entries = _document_entries(summary, record, urls, context, role)
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
    offered = to_document_reference(summary, document, document_url=document_url, created=at)
    writes = [
        (document, document_url, DOCUMENT_ID_SYSTEM, urls.document_identifier),
        (referral_mapper.to_fhir(handoff.referral, id_system=context.referral_id_system),
         request_url, context.referral_id_system, aftercare_id),
        (referral_task.to_fhir(handoff.task, id_system=context.task_id_system),
         urls.of("transaction/task"), context.task_id_system, aftercare_id),
        # The same document offered as a DocumentReference (PACIO TOC, US Core); its search
        # parameter ``identifier`` covers masterIdentifier (R4 DocumentReference search).
        (offered, urls.of("transaction/document-reference"), DOCUMENT_ID_SYSTEM,
         urls.document_identifier),
        # The IOP's PractitionerRole: the aftercare referral's requester (BSeR) and the
        # DocumentReference's author; created once, matched by every later discharge. Last:
        # the document stays the first entry (integration.discharges.views reads it there).
        (role(record.iop_organization), summary.author, context.practitioner_role_id_system,
         iop_identifier),
    ]  # fmt: skip
    return bundle.transaction(
        bundle.conditional_create_entry(
            resource, full_url=url, if_none_exist=bundle.identifier_query(system, value)
        )
        for resource, url, system, value in writes
    )


def _document_entries(
    summary: DischargeSummary,
    record: ClinicalRecord,
    urls: SummaryUrls,
    context: MappingContext,
    role: Callable[[str], dict[str, Any]],
) -> tuple[DischargeSummary, dict[str, dict[str, Any]]]:
    """The summary with document references, and every resource it references by fullUrl."""
    subject = full_url_of(summary.subject, record, urls)
    entries: dict[str, dict[str, Any]] = {
        subject: _as_sent(record, summary.subject, urls)
        or patient.to_fhir(record.client, mrn_system=context.mrn_system)
    }
    for ref, organization in record.organizations.items():
        entries[urls.of(ref)] = _organization_copy(organization)
    # The author (PACIO TOC: not an Organization): the IOP's role, of the Organization's copy.
    entries[urls.of(summary.author)] = role(urls.of(record.iop_organization))
    diagnoses = []
    for documented in summary.diagnoses:
        url = full_url_of(documented.reference, record, urls)
        diagnoses.append(replace(documented, reference=url))
        entries[url] = _as_sent(record, documented.reference, urls) or condition.to_fhir(
            documented.diagnosis, id_system=context.condition_id_system, subject_reference=subject
        )
    entries |= _medication_entries(summary.medications, subject, urls, context)
    phq9, gad7 = (
        _document_score(score, record, urls, subject, entries, context)
        for score in (summary.phq9, summary.gad7)
    )
    plan = summary.plan_of_care
    if plan is not None and record.plan is not None:
        plan = replace(plan, reference=urls.of(plan.reference))
        entries[plan.reference] = care_plan.to_fhir(
            record.plan[1], plan_id_system=context.care_plan_id_system, subject_reference=subject,
            condition_references=[d.reference for d in diagnoses],
        )  # fmt: skip
    session = None if summary.encounter is None else urls.of(summary.encounter)
    if session is not None and record.encounter is not None:
        entries[session] = encounter.to_fhir(
            record.encounter[1], id_system=context.session_id_system, subject_reference=subject
        )
    in_document = replace(
        summary,
        encounter=session,
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
    medications: DocumentedMedications, subject: str, urls: SummaryUrls, context: MappingContext
) -> dict[str, dict[str, Any]]:
    """The reconciled List and its MedicationRequests (category ``discharge``: the list the
    client leaves the IOP with), by document fullUrl."""
    med_list = medications.medication_list
    requests = [urls.of(f"MedicationRequest|{e.identifier}") for e in med_list.entries]
    found = {
        medications.reference: medication.list_to_fhir(
            med_list, id_system=context.medication_list_id_system, subject_reference=subject,
            entry_references=requests,
        )
    }  # fmt: skip
    for url, entry in zip(requests, med_list.entries, strict=True):
        found[url] = medication_request.to_fhir(
            entry, id_system=context.medication_request_id_system, subject_reference=subject,
            category=MEDICATION_DISCHARGE, authored_on=med_list.date,
        )  # fmt: skip
    return found


def _document_score(
    score: FinalScore | None,
    record: ClinicalRecord,
    urls: SummaryUrls,
    subject: str,
    entries: dict[str, dict[str, Any]],
    context: MappingContext,
) -> FinalScore | None:
    """The score with its document reference; its QuestionnaireResponse added to ``entries``."""
    if score is None:
        return None
    moved = replace(score, reference=full_url_of(score.reference, record, urls))
    entries[moved.reference] = _as_sent(record, score.reference, urls) or assessment.to_fhir(
        score.assessment, id_system=context.assessment_id_system, subject_reference=subject
    )
    return moved


def full_url_of(reference: str, record: ClinicalRecord, urls: SummaryUrls) -> str:
    """The fullUrl of what ``reference`` names in the document: a stable urn:uuid, for what
    iop-bridge writes anew and for a referring program's own resource alike.

    A document holds everything its Composition references as subject, author, custodian or
    section entry (R4 documents.html 3.3.1, Document Content: those SHALL be in the Bundle), so
    the sender's Patient, Conditions and responses cannot stay mere references to the server:
    the document holds copies. Under their server URL as fullUrl they would not stay
    resolvable: HAPI stores references to its own base as relative ones (``Patient/7``), and
    a relative reference from an entry whose fullUrl is a urn:uuid (our Composition) resolves
    to nothing (R4 bundle.html#references; HAPI's validator says so, live-tested). So every
    entry has a urn:uuid and the copies' references to each other are swapped for those
    (``moved_in``). Outside the document, the aftercare ServiceRequest references the sender's
    Conditions on the server itself (mappers.discharge.aftercare_referral)."""
    return urls.of(record.aliases.get(reference, reference))


def moved_in(record: ClinicalRecord, urls: SummaryUrls) -> Callable[[str], str | None]:
    """A reference inside a sender's copy -> the fullUrl of what it names in the document."""
    held = {record.patient, *record.as_sent}

    def moved(reference: str) -> str | None:
        target = record.aliases.get(reference, reference)
        return urls.of(target) if target in held else None

    return moved


def _as_sent(record: ClinicalRecord, reference: str, urls: SummaryUrls) -> dict[str, Any] | None:
    """The referring program's resource as it wrote it, when the document includes it so."""
    found = record.as_sent.get(reference)
    return None if found is None else sender_copy(found, moved_in(record, urls))


def _program_role(
    record: ClinicalRecord, identifier: str, context: MappingContext
) -> Callable[[str], dict[str, Any]]:
    """The IOP's PractitionerRole (keyed on the IOP Organization's identifier value) of the
    Organization a reference names: the server's, or its copy in the document."""
    name = str(record.organizations.get(record.iop_organization, {}).get("name", ""))
    return lambda organization: practitioner_role.to_fhir(
        identifier=identifier, id_system=context.practitioner_role_id_system,
        organization_reference=organization, organization_name=name,
    )  # fmt: skip


# Organization elements copied into the document: who they are, not the server's bookkeeping.
_ORGANIZATION_KEYS = ("identifier", "active", "type", "name", "alias", "telecom", "address")


def _organization_copy(resource: Mapping[str, Any]) -> dict[str, Any]:
    copy = {"resourceType": "Organization"}
    return copy | {k: resource[k] for k in _ORGANIZATION_KEYS if k in resource}
