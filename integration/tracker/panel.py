"""What the referral page needs beside its history to act (issue 17): who the client is (name,
age, preferred language: case managers are authorized to see them; nothing here is logged), the
intake appointment, the actions the referral's state allows, the medication lines a
reconciliation is stated against, and the delivery state of every FHIR write queued for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import REFERRAL_AGGREGATES, aggregate_key
from integration.medications.workflow import current_list
from integration.referrals import actions as referral_actions
from integration.tracker.handoffs import age_on
from mappers.medication import ListSource

MAX_DELIVERIES = 30  # newest first; the page is not an outbox browser


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """The client beside the MRN."""

    name: str | None
    birth_date: date | None
    age: int | None
    language: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One queued FHIR write and where it is: queued, sending, delivered, or failed (why)."""

    what: str
    queued_at: datetime
    state: str  # queued | sending | delivered | failed
    attempts: int
    error: str | None  # status code, HAPI code, error class: never server text


@dataclass(frozen=True, slots=True)
class MedicationChoice:
    """A line of the residential discharge list, for the reconciliation form."""

    position: int
    medication: str
    rxnorm_code: str | None
    dose: str | None


@dataclass(frozen=True, slots=True)
class ActionPanel:
    """Everything the referral page's forms need."""

    business_id: str
    client: ClientFacts
    intake_date: date | None
    intake_time: time | None
    intake_delivery: str | None
    offered: referral_actions.Offered
    deliveries: tuple[Delivery, ...]
    discharge_lines: tuple[MedicationChoice, ...]
    # accept needs the residential discharge date first (referrals.actions): the form asks it
    needs_discharge_date: bool = False


def action_panel(session: Session, referral: models.Referral, today: date) -> ActionPanel:
    """The panel of one referral the caller may see (the caller has scoped it already)."""
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral.id))
    intake = session.scalar(select(models.Intake).where(models.Intake.referral_id == referral.id))
    discharge_list = current_list(session, referral, ListSource.RESIDENTIAL_DISCHARGE)
    lines = discharge_list.lines if discharge_list else []
    return ActionPanel(
        business_id=referral.business_id,
        client=_client(referral, today),
        intake_date=intake.scheduled_date if intake else None,
        intake_time=intake.scheduled_time if intake else None,
        intake_delivery=intake.scheduled_delivery if intake else None,
        offered=referral_actions.offered(
            session, referral, mapped=link is not None and not link.problems
        ),
        deliveries=tuple(_deliveries(session, referral.id)),
        discharge_lines=tuple(
            MedicationChoice(line.position, line.display, line.rxnorm_code, line.dose_text)
            for line in sorted(lines, key=lambda line: line.position)
        ),
        needs_discharge_date=referral.residential_discharge_date is None,
    )


def _client(referral: models.Referral, today: date) -> ClientFacts:
    born = referral.client_birth_date
    return ClientFacts(referral.client_name, born, age_on(born, today), referral.client_language)


def _deliveries(session: Session, referral_key: int) -> list[Delivery]:
    """The referral's own outbox messages, newest first (its aggregates are keyed by its row
    key: another sender's referral under the same business id has its own)."""
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.aggregate_type.in_(REFERRAL_AGGREGATES),
            OutboxMessage.aggregate_key == aggregate_key(referral_key),
        )
        .order_by(OutboxMessage.id.desc())
        .limit(MAX_DELIVERIES)
    )
    return [
        Delivery(
            describe(message.payload),
            message.created_at,
            _state(message.status),
            message.attempts,
            message.last_error,
        )
        for message in session.scalars(query)
    ]


def _state(status: str) -> str:
    return {"pending": "queued", "in-flight": "sending", "dead": "failed"}.get(status, status)


def describe(payload: Mapping[str, Any]) -> str:
    """A message's write in a few words, from its payload (codes and types only, no PHI)."""
    if payload.get("resourceType") == "Task":  # the performer's Task elements (step-down)
        owned = payload.get("set") or {}
        codings = (owned.get("businessStatus") or {}).get("coding") or [{}]
        business = codings[0].get("display") or codings[0].get("code")
        return f"Task {owned.get('status')}" + (f" ({business})" if business else "")
    if "resource" in payload:
        request = payload.get("request") or {}
        return f"{payload['resource'].get('resourceType')} ({request.get('method', 'write')})"
    entries = payload.get("entry")
    if isinstance(entries, list):
        kinds = sorted({str((e.get("resource") or {}).get("resourceType")) for e in entries})
        return f"transaction: {len(entries)} entries ({', '.join(kinds)})"
    return str(payload.get("resourceType") or "FHIR write")
