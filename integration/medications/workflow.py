"""Workflow 2 (DESIGN.md): the residential discharge medication list reconciled against the IOP
intake list, stored line by line with its change, and sent back to the FHIR server.

Steps: ``record_discharge_list`` / ``record_intake_list`` store a list (each line keeps its whole
MedicationEntry as JSON in ``medication_line.detail``, migration 0004: the columns hold no
structured dose, times a day or identifier, which reconciliation compares and the server keys
on); ``reconcile_referral`` loads the referral's current discharge and intake lists, runs
``mappers.reconciliation.reconcile``, replaces the referral's reconciled list and enqueues ONE
transaction outbox message in the same database transaction; ``medication_differences`` is the
case manager's view (tracker, CLI).

What the message writes (one FHIR transaction: all of it or nothing, on HAPI too), each medication
a MedicationRequest on ``iop-medicationrequest`` (US Core MedicationRequest; intent ``plan``,
reported, ``mappers.medication_request``): US Core has not profiled MedicationStatement since v4
and receivers read MedicationRequests. Senders' MedicationStatements are still read inbound.

- the discharge medications, category ``discharge``: conditional CREATE on their identifiers in
  our MedicationRequest namespace. They are the residential program's list as the IOP received
  it (its own resources on the server may be MedicationStatements, or requests in the sender's
  identifiers); the first reconciliation records them once, a re-run matches and changes
  nothing; the changes List references them.
- the intake medications (category ``community``), the reconciled snapshot List and the changes
  List: conditional UPDATE (``PUT Type?identifier=...``). They are ours, their identifiers are
  stable per referral, and a re-run after the intake list changed updates them in place: the
  server keeps earlier versions in ``_history``, nothing is duplicated, and no receiver ever
  sees two "current" reconciled lists for one client (which new identifiers per run would leave
  behind).
- every subject is the conditional reference ``Patient?identifier=<MRN system>|<MRN>`` (R4
  http.html#trules), resolved by the server inside the transaction: the store knows the client's
  MRN, not the Patient's server id. An MRN the server does not know fails the whole transaction.

Why the changes List too: the snapshot says only what the client takes now; the changes List
(flags Unchanged / Changed / Ceased / Prescribed, the stopped medications and the old doses as
``deleted`` entries) tells the residential program and the next provider what the IOP changed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.workflow import MEDICATION_COMMUNITY, MEDICATION_DISCHARGE
from integration.db.inbound_table import ReferralLink
from integration.db.models import MedicationLine, MedicationListRecord, Referral
from integration.db.referral_lookup import (
    MEDICATIONS_AGGREGATE,
    aggregate_key,
    find_referral,
    identifier_stem,
)
from integration.medications.lists import (
    entry_from_json,
    entry_json,
    load_list,
    save_list,
    stored_line,
)
from integration.outbox.queue import MessageKind, enqueue
from integration.privacy import audit, disclosure
from integration.workflow_errors import WorkflowNotReady
from mappers import bundle, medication_request, reconciliation
from mappers.errors import Problem
from mappers.medication import ListSource, MedicationEntry, MedicationList
from mappers.reconciliation import Change, MatchedBy, Reconciliation, ReconciliationLine
from mappers.registry import MappingContext

AGGREGATE_TYPE = MEDICATIONS_AGGREGATE
RECONCILED_SUFFIX = "-RECONCILED"
CHANGES_SUFFIX = "-RECONCILED-CHANGES"
# Fixed namespace for the transaction's urn:uuid fullUrls: the same entry always gets the same
# placeholder, so a message's payload is reproducible (and readable in tests).
URN_NAMESPACE = uuid.UUID("6f0c7a52-3c1e-4d7e-9d8e-1f6b8f0c2a41")
_PLACEHOLDER_SUBJECT = f"urn:uuid:{uuid.uuid5(URN_NAMESPACE, 'subject')}"


def _reconciled_line(position: int, rec: ReconciliationLine) -> MedicationLine:
    """A reconciled line: the medication now (or, stopped, as it was) and both sides' entries."""
    current, previous = rec.current_entry, rec.discharge_entry
    detail = {
        "current": None if current is None else entry_json(current),
        "previous": None if previous is None else entry_json(previous),
        "matched_by": None if rec.matched_by is None else rec.matched_by.value,
    }
    shown = current or previous
    assert shown is not None  # every line has one side at least
    return stored_line(position, shown, rec.change, detail)


def current_list(
    session: Session, referral: Referral, source: ListSource
) -> MedicationListRecord | None:
    """The referral's newest recorded list of this kind."""
    query = (
        select(MedicationListRecord)
        .where(MedicationListRecord.referral_id == referral.id)
        .where(MedicationListRecord.source == source.value)
        .order_by(MedicationListRecord.recorded_at.desc(), MedicationListRecord.id.desc())
        .limit(1)
    )
    return session.scalar(query)


# --- reconciliation -----------------------------------------------------------------------------


def reconcile_referral(
    session: Session,
    referral_key: int,
    *,
    at: datetime,
    context: MappingContext | None = None,
) -> Reconciliation:
    """Reconcile the referral's current discharge and intake lists; store the reconciled list
    with each line's change and enqueue its transaction, both in the caller's transaction."""
    context = context or MappingContext()
    referral = find_referral(session, referral_key)
    discharge, intake = _inputs(session, referral)
    stem = identifier_stem(session, referral)  # stable per referral: a re-run updates in place
    result = reconciliation.reconcile(
        discharge, intake, reconciled_identifier=stem + RECONCILED_SUFFIX, at=at
    )
    lines = [_reconciled_line(i, rec) for i, rec in enumerate(result.lines)]
    save_list(session, referral, result.reconciled.identifier, ListSource.RECONCILED, at, lines)
    payload = reconciliation_transaction(
        result,
        patient=_patient_reference(session, referral, context),
        changes_identifier=stem + CHANGES_SUFFIX,
        context=context,
    )
    payload = disclosure.labelled(session, referral, payload)  # 42 CFR Part 2 labels
    enqueue(
        session,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_key=aggregate_key(referral.id),
        kind=MessageKind.TRANSACTION,
        payload=payload,
    )
    listed = audit.Entity("List", result.reconciled.identifier, context.medication_list_id_system)
    audit.changed(session, audit.RECONCILE, listed, organization=referral.iop_organization)
    return result


def _inputs(session: Session, referral: Referral) -> tuple[MedicationList, MedicationList]:
    """The current discharge and intake lists; WorkflowNotReady when one is missing or was
    stored without its entries."""
    lists = [current_list(session, referral, s) for s in _INPUTS]
    missing = [s.value for s, found in zip(_INPUTS, lists, strict=True) if found is None]
    what = f"referral {referral.business_id!r} cannot be reconciled"
    if missing:
        raise WorkflowNotReady(f"{what} yet: no {' or '.join(missing)} list")
    incomplete = [
        Problem(f"{found.business_id}.lines[{line.position}]", _NO_DETAIL, "business-rule")
        for found in lists
        if found is not None
        for line in found.lines
        if line.detail is None
    ]
    if incomplete:
        raise WorkflowNotReady(what, problems=incomplete)
    discharge, intake = (load_list(found) for found in lists if found is not None)
    return discharge, intake


_INPUTS = (ListSource.RESIDENTIAL_DISCHARGE, ListSource.IOP_INTAKE)
# Reconciling such a line would compare doses that were never stored, and send statements
# under identifiers made up here instead of the sender's: store the list with its entries.
_NO_DETAIL = (
    "stored without its entry (identifier, structured dose): store the list with "
    "record_discharge_list / record_intake_list"
)


def _patient_reference(session: Session, referral: Referral, context: MappingContext) -> str:
    """The client's Patient: the one the referral's package named on the server (a sender's
    Patient carries the sender's MRN system, never ours); else, for a submitted referral not yet
    settled, our Patient by its MRN (a conditional reference, R4 http.html#trules)."""
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral.id))
    if link is not None and link.patient:
        return str(link.patient)
    return f"Patient?{bundle.identifier_query(context.mrn_system, referral.client_mrn)}"


def reconciliation_transaction(
    result: Reconciliation, *, patient: str, changes_identifier: str, context: MappingContext
) -> dict[str, Any]:
    """The transaction Bundle: discharge MedicationRequests (conditional create), intake
    MedicationRequests and both Lists (conditional update), every subject the client's Patient
    (``patient``: a reference or a conditional reference by MRN)."""
    request_system = context.medication_request_id_system
    list_system = context.medication_list_id_system
    discharge_urls = [_urn(request_system, e.identifier) for e in result.discharge.entries]
    intake_urls = [_urn(request_system, e.identifier) for e in result.intake.entries]
    discharged = _Requests(request_system, patient, MEDICATION_DISCHARGE, result.discharge.date)
    taken = _Requests(request_system, patient, MEDICATION_COMMUNITY, result.intake.date)
    entries = [
        bundle.conditional_create_entry(
            discharged.of(e),
            full_url=url,
            if_none_exist=bundle.identifier_query(request_system, e.identifier),
        )
        for e, url in zip(result.discharge.entries, discharge_urls, strict=True)
    ]
    entries += [
        _conditional_update(taken.of(e), url, request_system)
        for e, url in zip(result.intake.entries, intake_urls, strict=True)
    ]
    refs: dict[str, Any] = {
        "id_system": list_system,
        "subject_reference": _PLACEHOLDER_SUBJECT,
        "discharge_references": discharge_urls,
        "intake_references": intake_urls,
    }
    for resource in (
        reconciliation.to_fhir(result, **refs),
        reconciliation.changes_to_fhir(result, identifier=changes_identifier, **refs),
    ):
        value = resource["identifier"][0]["value"]
        resource["subject"] = {"reference": patient}
        entries.append(_conditional_update(resource, _urn(list_system, value), list_system))
    return bundle.transaction(entries)


@dataclass(frozen=True, slots=True)
class _Requests:
    """How one list's medications are written: its category and date, the client by MRN."""

    system: str
    patient: str
    category: Code
    authored_on: datetime

    def of(self, entry: MedicationEntry) -> dict[str, Any]:
        resource = medication_request.to_fhir(
            entry, id_system=self.system, subject_reference=_PLACEHOLDER_SUBJECT,
            category=self.category, authored_on=self.authored_on,
        )  # fmt: skip
        resource["subject"] = {"reference": self.patient}  # the mapper checks literal ones only
        return resource


def _conditional_update(resource: dict[str, Any], full_url: str, system: str) -> dict[str, Any]:
    """A transaction entry that updates the one resource with this identifier, or creates it."""
    value = resource["identifier"][0]["value"]
    match = bundle.identifier_query(system, value)
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}?{match}"},
    }


def _urn(system: str, value: str) -> str:
    return f"urn:uuid:{uuid.uuid5(URN_NAMESPACE, f'{system}|{value}')}"


# --- the case manager's view --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """One line of the reconciliation as the case manager reads it."""

    change: str  # continued | dose-changed | stopped | new
    medication: str
    rxnorm_code: str | None
    before: str | None  # the residential discharge dose (None: new, or no dose given)
    after: str | None  # the IOP dose (None: stopped, or no dose given)
    matched_by: str | None  # rxnorm | text; "text" deserves a second look

    def describe(self) -> str:
        """One human line, e.g. ``dose changed: Sertraline 50 MG: 50 mg daily -> 100 mg daily``."""
        label = self.change.replace("-", " ")
        if self.change == Change.DOSE_CHANGED:
            return f"{label}: {self.medication}: {self.before} -> {self.after}"
        dose = self.after if self.change != Change.STOPPED else self.before
        note = " (matched by name, not RxNorm code)" if self.matched_by == MatchedBy.TEXT else ""
        return f"{label}: {self.medication}" + (f" ({dose})" if dose else "") + note


@dataclass(frozen=True, slots=True)
class ReconciliationView:
    """The referral's stored reconciliation: when, and every difference in list order."""

    referral_id: str  # the referral's business identifier (Referral.business_id)
    reconciled_at: datetime
    differences: tuple[Difference, ...]

    def count(self, change: str) -> int:
        """How many lines have ``change``."""
        return sum(1 for d in self.differences if d.change == change)


def medication_differences(session: Session, referral_key: int) -> ReconciliationView | None:
    """The stored reconciliation of the referral for the tracker; None if never run."""
    referral = find_referral(session, referral_key)
    record = current_list(session, referral, ListSource.RECONCILED)
    if record is None:
        return None
    differences = tuple(_difference(line) for line in record.lines)
    return ReconciliationView(referral.business_id, record.recorded_at, differences)


def _difference(line: MedicationLine) -> Difference:
    detail = line.detail or {}
    current, previous = detail.get("current"), detail.get("previous")
    return Difference(
        change=line.change or "",
        medication=line.display,
        rxnorm_code=line.rxnorm_code,
        before=None if previous is None else dose_description(entry_from_json(previous)),
        after=None if current is None else dose_description(entry_from_json(current)),
        matched_by=detail.get("matched_by"),
    )


def dose_description(entry: MedicationEntry) -> str | None:
    """The dose as the prescriber wrote it, else the structured dose and times a day."""
    if entry.dose_text is not None:
        return entry.dose_text
    parts = [] if entry.dose is None else [f"{entry.dose.value:g} {entry.dose.unit}"]
    if entry.times_per_day is not None:
        parts.append(f"{entry.times_per_day} times a day")
    return ", ".join(parts) or None
