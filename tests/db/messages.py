"""Builders of outbox payloads: referral-like transaction Bundles of conditional creates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from integration.db.store import session_scope
from integration.outbox import queue as outbox
from integration.outbox.queue import MessageKind
from mappers import bundle, condition, patient
from tests.builders import CONDITION_SYSTEM, MRN_SYSTEM, make_client, make_diagnosis


def make_referral_transaction(tag: str) -> dict[str, Any]:
    """Patient + one Condition, each a conditional create on its business identifier.

    The business identifiers are ``MRN-{tag}`` (Patient) and ``DX-{tag}`` (Condition).
    """
    client = make_client(mrn=f"MRN-{tag}")
    diagnosis = make_diagnosis(identifier=f"DX-{tag}")
    patient_url = f"urn:uuid:{uuid.uuid4()}"
    entries = [
        bundle.conditional_create_entry(
            patient.to_fhir(client, mrn_system=MRN_SYSTEM),
            full_url=patient_url,
            if_none_exist=bundle.identifier_query(MRN_SYSTEM, client.mrn),
        ),
        bundle.conditional_create_entry(
            condition.to_fhir(diagnosis, id_system=CONDITION_SYSTEM, subject_reference=patient_url),
            full_url=f"urn:uuid:{uuid.uuid4()}",
            if_none_exist=bundle.identifier_query(CONDITION_SYSTEM, diagnosis.identifier),
        ),
    ]
    return bundle.transaction(entries)


def transaction_response(*entries: tuple[str, str]) -> dict[str, Any]:
    """A transaction-response Bundle: one (status, location) per entry, as HAPI answers."""
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": status, "location": location}} for status, location in entries
        ],
    }


def enqueue_referral_transactions(engine: Engine, keys: Sequence[str]) -> list[int]:
    """One referral transaction per aggregate key (in order, so repeated keys queue behind each
    other), enqueued in one database transaction; returns the message ids."""
    with session_scope(engine) as session:
        return [
            outbox.enqueue(
                session,
                aggregate_type="referral",
                aggregate_key=key,
                kind=MessageKind.TRANSACTION,
                payload=make_referral_transaction(f"{key}-{n}"),
            ).id
            for n, key in enumerate(keys)
        ]
