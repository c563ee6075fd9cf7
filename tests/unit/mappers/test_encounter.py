from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given

from mappers import encounter
from mappers.encounter import Attendance, Delivery, Session, SessionKind
from mappers.errors import MappingError
from tests.builders.sessions import (
    IOP_ORGANIZATION,
    REFERRAL,
    SESSION_SYSTEM,
    SUBJECT,
    make_session,
)
from tests.strategies.encounter import corrupted, sessions

SNOMED = "http://snomed.info/sct"
MODALITY = "http://iop-bridge.example/fhir/CodeSystem/iop-modality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _session_fhir(session: Session | None = None, **links: str) -> dict[str, Any]:
    return encounter.to_fhir(
        session or make_session(), id_system=SESSION_SYSTEM, subject_reference=SUBJECT, **links
    )


def _problem_paths(resource: Any, mapper: Any, system: str) -> set[str]:
    with pytest.raises(MappingError) as caught:
        mapper.from_fhir(resource, id_system=system)
    return {p.path for p in caught.value.problems}


# --- Session: content ---------------------------------------------------------------------------


def test_to_fhir__attended_group_session_content() -> None:
    resource = _session_fhir()
    assert resource["meta"] == {"profile": [encounter.SESSION_PROFILE]}
    assert resource["identifier"] == [{"system": SESSION_SYSTEM, "value": "SES-TEST-0001"}]
    assert resource["status"] == "finished"
    assert resource["class"] == {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"}
    assert resource["type"] == [
        {
            "coding": [
                {
                    "system": SNOMED,
                    "code": "76168009",
                    "display": "Group psychotherapy (regime/therapy)",
                },
                {"system": MODALITY, "code": "group-therapy", "display": "Group therapy"},
            ],
            "text": "Group therapy",
        }
    ]
    assert resource["subject"] == {"reference": SUBJECT}
    assert resource["period"] == {
        "start": "2024-10-07T18:00:00-04:00",
        "end": "2024-10-07T21:00:00-04:00",
    }
    assert "extension" not in resource and "basedOn" not in resource


@pytest.mark.parametrize(
    ("kind", "snomed"),
    [
        (SessionKind.INDIVIDUAL, "18512000"),
        (SessionKind.GROUP, "76168009"),
        (SessionKind.FAMILY, "108313002"),
    ],
)
def test_to_fhir__therapy_kinds_carry_verified_snomed(kind: SessionKind, snomed: str) -> None:
    codings = _session_fhir(make_session(kind=kind))["type"][0]["coding"]
    assert codings[0]["system"] == SNOMED and codings[0]["code"] == snomed


def test_to_fhir__psychoeducation_is_not_given_a_snomed_code() -> None:
    concept = _session_fhir(make_session(kind=SessionKind.PSYCHOEDUCATION))["type"][0]
    assert concept == {
        "coding": [{"system": MODALITY, "code": "psychoeducation", "display": "Psychoeducation"}],
        "text": "Psychoeducation",
    }


def test_to_fhir__virtual_session_is_class_vr() -> None:
    resource = _session_fhir(make_session(delivery=Delivery.VIRTUAL))
    assert resource["class"] == {"system": ACT_CODE, "code": "VR", "display": "virtual"}


def test_to_fhir__no_show_is_cancelled_with_reason_cancelled_noshow() -> None:
    resource = _session_fhir(make_session(attendance=Attendance.NO_SHOW))
    assert resource["status"] == "cancelled"
    assert resource["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/encounter-reasonCancelled",
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/appointmentstatus",
                        "code": "noshow",
                        "display": "No Show",
                    }
                ],
                "text": "Client did not attend",
            },
        }
    ]


def test_to_fhir__cancelled_and_scheduled_statuses() -> None:
    cancelled = _session_fhir(make_session(attendance=Attendance.CANCELLED))
    assert cancelled["status"] == "cancelled" and "extension" not in cancelled
    assert _session_fhir(make_session(attendance=Attendance.SCHEDULED))["status"] == "planned"


def test_to_fhir__referral_and_program_links() -> None:
    resource = _session_fhir(
        service_provider_reference=IOP_ORGANIZATION, based_on_reference=REFERRAL
    )
    assert resource["basedOn"] == [{"reference": REFERRAL}]
    assert resource["serviceProvider"] == {"reference": IOP_ORGANIZATION}


# --- Session: round trip ------------------------------------------------------------------------


@pytest.mark.parametrize("attendance", list(Attendance))
def test_round_trip__each_attendance_is_identity(attendance: Attendance) -> None:
    session = make_session(attendance=attendance)
    mapped = encounter.from_fhir(_session_fhir(session), id_system=SESSION_SYSTEM)
    assert mapped.value == session
    assert mapped.losses == ()


def test_round_trip__returns_subject_referral_and_program_links() -> None:
    resource = _session_fhir(
        service_provider_reference=IOP_ORGANIZATION, based_on_reference=REFERRAL
    )
    mapped = encounter.from_fhir(resource, id_system=SESSION_SYSTEM)
    assert mapped.links == {
        "subject": SUBJECT,
        "serviceProvider": IOP_ORGANIZATION,
        "basedOn": REFERRAL,
    }


@given(sessions())
def test_round_trip__any_valid_session_is_identity(session: Session) -> None:
    mapped = encounter.from_fhir(_session_fhir(session), id_system=SESSION_SYSTEM)
    assert mapped.value == session
    assert mapped.losses == ()


# --- Session: foreign input ---------------------------------------------------------------------


def test_from_fhir__foreign_content_is_reported_not_dropped() -> None:
    foreign = _session_fhir(make_session(attendance=Attendance.NO_SHOW))
    foreign["extension"].append({"url": "http://ehr.example/ext/room", "valueString": "B2"})
    foreign["identifier"].insert(0, {"system": "http://ehr.example/visit", "value": "V9"})
    foreign["type"][0]["coding"].append(
        {"system": "http://www.ama-assn.org/go/cpt", "code": "90853"}
    )
    foreign["type"].append({"text": "Evening track"})
    foreign["period"]["extension"] = [{"url": "http://ehr.example/ext/x", "valueBoolean": True}]
    foreign["subject"]["display"] = "Synthetic Client"
    foreign["contained"] = [{"resourceType": "Location", "id": "room"}]
    foreign["participant"] = [{"individual": {"reference": "Practitioner/pr1"}}]
    foreign["text"] = {"status": "generated", "div": "<div>x</div>"}
    mapped = encounter.from_fhir(foreign, id_system=SESSION_SYSTEM)
    assert mapped.value == make_session(attendance=Attendance.NO_SHOW)
    assert {loss.path for loss in mapped.losses} == {
        "Encounter.extension[1]",
        "Encounter.identifier[0]",
        "Encounter.type[0].coding[2]",
        "Encounter.type[1]",
        "Encounter.period.extension",
        "Encounter.subject.display",
        "Encounter.contained",
        "Encounter.participant",
        "Encounter.text",
    }


def test_from_fhir__snomed_only_type_is_enough() -> None:
    foreign = _session_fhir(make_session(kind=SessionKind.FAMILY))
    foreign["type"] = [{"coding": [{"system": SNOMED, "code": "108313002"}]}]
    mapped = encounter.from_fhir(foreign, id_system=SESSION_SYSTEM)
    assert mapped.value.kind is SessionKind.FAMILY
    assert mapped.losses == ()


def test_from_fhir__reason_cancelled_other_than_noshow_stays_a_cancellation() -> None:
    foreign = _session_fhir(make_session(attendance=Attendance.NO_SHOW))
    foreign["extension"][0]["valueCodeableConcept"] = {"text": "Facilitator ill"}
    mapped = encounter.from_fhir(foreign, id_system=SESSION_SYSTEM)
    assert mapped.value.attendance is Attendance.CANCELLED
    assert [loss.path for loss in mapped.losses] == ["Encounter.extension[0]"]


def test_from_fhir__reason_cancelled_on_a_finished_session_is_a_loss() -> None:
    foreign = _session_fhir(make_session(attendance=Attendance.NO_SHOW))
    foreign["status"] = "finished"
    mapped = encounter.from_fhir(foreign, id_system=SESSION_SYSTEM)
    assert mapped.value.attendance is Attendance.ATTENDED
    assert [loss.path for loss in mapped.losses] == ["Encounter.extension[0]"]


# --- Session: bad input -------------------------------------------------------------------------


@given(
    corrupted(
        _session_fhir(make_session(attendance=Attendance.NO_SHOW), based_on_reference=REFERRAL)
    )
)
def test_from_fhir__any_corrupted_element_maps_or_raises_mapping_error(resource: Any) -> None:
    try:
        mapped = encounter.from_fhir(resource, id_system=SESSION_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []


def test_from_fhir__wrong_resource_type_is_named() -> None:
    with pytest.raises(MappingError) as caught:
        encounter.from_fhir({"resourceType": "Appointment"}, id_system=SESSION_SYSTEM)
    assert any(
        p.path == "Encounter.resourceType" and "Appointment" in p.message
        for p in caught.value.problems
    )


def test_from_fhir__gathers_every_missing_element_with_its_path() -> None:
    bare = {"resourceType": "Encounter"}
    assert _problem_paths(bare, encounter, SESSION_SYSTEM) == {
        "Encounter.identifier",
        "Encounter.status",
        "Encounter.class",
        "Encounter.type",
        "Encounter.period",
        "Encounter.subject",
    }


def test_from_fhir__end_before_start_is_named() -> None:
    resource = _session_fhir()
    resource["period"]["end"] = "2024-10-07T17:00:00-04:00"
    assert _problem_paths(resource, encounter, SESSION_SYSTEM) == {"Encounter.period.end"}


@pytest.mark.parametrize(
    ("element", "value", "path"),
    [
        ("status", "in-progress", "Encounter.status"),
        ("class", {"system": ACT_CODE, "code": "HH"}, "Encounter.class"),
        ("type", [{"coding": [{"system": SNOMED, "code": "228557008"}]}], "Encounter.type"),
        ("subject", {"reference": "Group/g1"}, "Encounter.subject.reference"),
        ("basedOn", [{"reference": "CarePlan/plan1"}], "Encounter.basedOn[0].reference"),
        ("modifierExtension", [{"url": "http://x.example/m"}], "Encounter.modifierExtension[0]"),
    ],
)
def test_from_fhir__unmappable_values_are_named(element: str, value: Any, path: str) -> None:
    resource = _session_fhir()
    resource[element] = value
    assert _problem_paths(resource, encounter, SESSION_SYSTEM) == {path}


@pytest.mark.parametrize(
    "value", ["2024-10-07T18:00:00", "2024-10-07", "2024-10-07T18:00-04:00", 20241007]
)
def test_from_fhir__start_without_time_and_timezone_is_named(value: Any) -> None:
    resource = _session_fhir()
    resource["period"]["start"] = value
    assert _problem_paths(resource, encounter, SESSION_SYSTEM) == {"Encounter.period.start"}


def test_from_fhir__conflicting_kind_codings_are_named() -> None:
    resource = _session_fhir()
    resource["type"][0]["coding"][0]["code"] = "18512000"  # individual, next to group-therapy
    assert _problem_paths(resource, encounter, SESSION_SYSTEM) == {"Encounter.type[0].coding"}


def test_to_fhir__end_before_start_and_naive_times_are_refused() -> None:
    start = datetime(2024, 10, 7, 18, 0)
    with pytest.raises(MappingError) as caught:
        _session_fhir(make_session(start=start, end=start - timedelta(hours=1), identifier=" "))
    assert {p.path for p in caught.value.problems} == {
        "Session.identifier",
        "Session.start",
        "Session.end",
    }
    session = make_session()
    with pytest.raises(MappingError, match=r"Session\.end: must be after"):
        _session_fhir(make_session(end=session.start))


def test_to_fhir__basedon_must_be_a_service_request() -> None:
    with pytest.raises(MappingError, match=r"Encounter\.basedOn\[0\]\.reference"):
        _session_fhir(based_on_reference="CarePlan/plan1")
