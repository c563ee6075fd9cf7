"""Our MedicationRequest dialect: US Core's shape (intent plan, reported, category), read back
exactly, and told apart from a sender's request by its identifier system."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given

from fhir_profiles.canonical import MEDICATION_REQUEST_ID_SYSTEM
from fhir_profiles.terminology.workflow import (
    LIST_MEDICATIONS,
    MEDICATION_COMMUNITY,
    MEDICATION_DISCHARGE,
)
from mappers import medication_request, registry
from mappers.errors import MappingError
from mappers.medication import MedicationEntry
from tests.builders.referrals import make_sertraline
from tests.strategies.medication import medication_entries

SYSTEM = MEDICATION_REQUEST_ID_SYSTEM
SUBJECT = "Patient/p1"
AT = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def _request(entry: MedicationEntry, **kw: Any) -> dict[str, Any]:
    kw.setdefault("category", MEDICATION_COMMUNITY)
    return medication_request.to_fhir(entry, id_system=SYSTEM, subject_reference=SUBJECT, **kw)


@given(medication_entries())
def test_round_trip__is_the_identity_without_losses(entry: MedicationEntry) -> None:
    mapped = medication_request.from_fhir(_request(entry, authored_on=AT), id_system=SYSTEM)
    assert mapped.value == entry
    assert mapped.losses == ()
    assert mapped.links["subject"] == SUBJECT


def test_to_fhir__us_core_shape_of_a_reported_medication() -> None:
    resource = _request(make_sertraline(), category=MEDICATION_DISCHARGE, authored_on=AT)
    assert resource["meta"]["profile"] == [medication_request.PROFILE]
    assert (resource["intent"], resource["reportedBoolean"]) == ("plan", True)
    assert resource["category"] == [MEDICATION_DISCHARGE.codeable_concept()]
    assert resource["authoredOn"] == "2026-11-03T09:00:00Z"
    assert "requester" not in resource  # us-core-21 asks for one with orders only
    assert "dosage" not in resource and resource["dosageInstruction"]


def test_to_fhir__taking_dates_are_the_timing_bounds() -> None:
    entry = make_sertraline(start=date(2026, 10, 1), end=date(2026, 12, 1))
    repeat = _request(entry)["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["boundsPeriod"] == {"start": "2026-10-01", "end": "2026-12-01"}


@pytest.mark.parametrize(("ours", "theirs"), sorted(medication_request.REQUEST_STATUS.items()))
def test_to_fhir__statement_status_as_its_request_status(ours: str, theirs: str) -> None:
    assert _request(make_sertraline(status=ours))["status"] == theirs


def test_to_fhir__refuses_a_category_of_another_kind() -> None:
    with pytest.raises(MappingError, match="category"):
        _request(make_sertraline(), category=LIST_MEDICATIONS)


def test_from_fhir__an_order_is_not_our_dialect() -> None:
    resource = _request(make_sertraline()) | {"intent": "order"}
    with pytest.raises(MappingError, match=r"MedicationRequest\.intent"):
        medication_request.from_fhir(resource, id_system=SYSTEM)


def test_from_fhir__problems_at_the_request_paths() -> None:
    resource = _request(make_sertraline())
    resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = -1
    with pytest.raises(MappingError, match=r"MedicationRequest\.dosageInstruction\[0\]"):
        medication_request.from_fhir(resource, id_system=SYSTEM)


def test_from_fhir__unknown_elements_and_categories_are_losses() -> None:
    resource = _request(make_sertraline()) | {"priority": "routine"}
    resource["category"].append({"text": "behavioral health"})
    lost = {loss.path for loss in medication_request.from_fhir(resource, id_system=SYSTEM).losses}
    assert lost == {"MedicationRequest.priority", "MedicationRequest.category[1]"}


def test_registry__reads_ours_exactly_and_a_senders_with_the_foreign_reader() -> None:
    ours = _request(make_sertraline())
    assert registry.from_fhir(ours, registry.MappingContext()).value == make_sertraline()
    theirs = ours | {"identifier": [{"system": "urn:ehr:rx", "value": "77"}]}
    mapped = registry.from_fhir(theirs, registry.MappingContext())
    assert mapped.value.identifier == "77"
    assert any(loss.path == "MedicationRequest.intent" for loss in mapped.losses)
