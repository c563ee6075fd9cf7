"""The owned-fields outbox kind against HAPI: only our elements change, theirs survive."""

from __future__ import annotations

from typing import Any

import pytest

from integration.fhir.client import FhirClient
from integration.outbox.queue import ClaimedMessage, MessageKind
from integration.outbox.worker import deliver_message
from mappers import bundle

pytestmark = [pytest.mark.live, pytest.mark.anyio]
SYSTEM = "http://iop-bridge.example/fhir/sid/live-owned"


def _message(payload: dict[str, Any]) -> ClaimedMessage:
    fields = ClaimedMessage.__dataclass_fields__
    values: dict[str, Any] = {name: None for name in fields}
    values |= {"id": 1, "kind": MessageKind.OWNED_FIELDS, "payload": payload, "attempts": 1}
    return ClaimedMessage(**values)


async def test_owned_fields__changes_only_the_named_elements(fhir: FhirClient, unique: str) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": unique}],
               "gender": "unknown", "birthDate": "1990-01-01"}  # fmt: skip
    created = await fhir.create(patient, if_none_exist=bundle.identifier_query(SYSTEM, unique))
    payload = {"resourceType": "Patient", "identifier": {"system": SYSTEM, "value": unique},
               "set": {"gender": "other"}, "remove": ["birthDate"]}  # fmt: skip
    [delivered] = await deliver_message(fhir, _message(payload))
    stored = await fhir.read("Patient", created.resource["id"])
    assert delivered.label == "updated"
    assert stored["gender"] == "other"
    assert "birthDate" not in stored
    assert stored["identifier"] == patient["identifier"]
    assert stored["meta"]["versionId"] == "2"


async def test_owned_fields__add_appends_to_a_shared_element_once(
    fhir: FhirClient, unique: str
) -> None:
    theirs = {"text": "Transport arranged by the residential program"}
    ours = {"time": "2026-11-02T09:00:00Z", "text": "Intake scheduled for 2026-11-04"}
    task = {
        "resourceType": "Task", "identifier": [{"system": SYSTEM, "value": unique}],
        "status": "accepted", "intent": "order", "note": [theirs],
    }  # fmt: skip
    created = await fhir.create(task, if_none_exist=bundle.identifier_query(SYSTEM, unique))
    payload = {"resourceType": "Task", "identifier": {"system": SYSTEM, "value": unique},
               "set": {}, "remove": [], "add": {"note": [ours]}}  # fmt: skip
    await deliver_message(fhir, _message(payload))
    await deliver_message(fhir, _message(payload))  # a redelivery adds nothing
    stored = await fhir.read("Task", created.resource["id"])
    assert stored["note"] == [theirs, ours]  # the requester's note survives, ours once
