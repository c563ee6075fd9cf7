from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_profiles.terminology.workflow import SDOHCC_REFERRAL_TASK_STATUSES
from mappers import referral_task
from mappers.errors import MappingError
from mappers.referral_task import IllegalTransitionError, ReferralTask, transition
from tests.builders.referrals import (
    EASTERN,
    FIRST_SESSION,
    IOP_ORGANIZATION,
    TASK_SYSTEM,
    make_referral_task,
)
from tests.strategies.encounter import corrupted
from tests.strategies.referral import referral_tasks

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
SDOHCC_TEMP = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
PLAC = {
    "coding": [{"system": V2_0203, "code": "PLAC", "display": "Placer Identifier"}],
    "text": "Placer Identifier",
}
ACCEPTED_AT = datetime(2024, 10, 4, 9, 0, tzinfo=EASTERN)


def _task(value: ReferralTask | None = None) -> dict[str, Any]:
    return referral_task.to_fhir(value or make_referral_task(), id_system=TASK_SYSTEM)


def _task_problems(resource: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        referral_task.from_fhir(resource, id_system=TASK_SYSTEM)
    return {p.path: p.message for p in caught.value.problems}


# --- Task ---------------------------------------------------------------------------------------


def test_to_fhir__requested_task_content() -> None:
    resource = _task()
    assert resource["identifier"][0]["type"] == PLAC
    assert resource["status"] == "requested" and "statusReason" not in resource
    assert resource["businessStatus"] == {
        "coding": [{"system": BSER, "code": "2.0", "display": "Service Request Created"}],
        "text": "Service Request Created",
    }
    assert resource["intent"] == "order"
    assert resource["code"]["coding"] == [
        {
            "system": "http://hl7.org/fhir/CodeSystem/task-code",
            "code": "fulfill",
            "display": "Fulfill the focal request",
        }
    ]
    assert resource["focus"] == {"reference": "ServiceRequest/step-down-0001"}
    assert resource["for"] == {"reference": "Patient/iop-test-0001"}
    assert resource["owner"] == {"reference": IOP_ORGANIZATION}
    assert "output" not in resource and "lastModified" not in resource


def test_to_fhir__completed_task_carries_output_and_last_modified() -> None:
    done = make_referral_task(
        status="completed",
        business_status="7.0",
        last_modified=datetime(2024, 10, 7, 21, 0, tzinfo=EASTERN),
        resulting_activity=FIRST_SESSION,
    )
    resource = _task(done)
    assert resource["lastModified"] == "2024-10-07T21:00:00-04:00"
    # SDOHCC TaskForReferralManagement: output typed with resulting-activity
    resulting_activity = {
        "system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
        "code": "resulting-activity",
        "display": "Resulting Activity",
    }
    assert resource["output"] == [
        {
            "type": {"coding": [resulting_activity], "text": "Resulting activity"},
            "valueReference": {"reference": FIRST_SESSION},
        }
    ]


def test_from_fhir__the_text_only_output_type_we_sent_before_still_reads() -> None:
    done = make_referral_task(
        status="completed", business_status="7.0", resulting_activity=FIRST_SESSION
    )
    resource = _task(done)
    resource["output"][0]["type"] = {"text": "Resulting activity"}
    mapped = referral_task.from_fhir(resource, id_system=TASK_SYSTEM)
    assert mapped.value.resulting_activity == FIRST_SESSION
    assert mapped.losses == ()


@pytest.mark.parametrize("status", ["rejected", "cancelled", "on-hold", "failed"])
def test_to_fhir__status_needing_a_reason_is_refused_without_one(status: str) -> None:
    with pytest.raises(MappingError, match=r"ReferralTask\.status_reason: is required"):
        _task(make_referral_task(status=status))


def test_to_fhir__bad_task_names_every_field() -> None:
    bad = make_referral_task(
        status="ready",
        business_status="9.9",
        focus="CarePlan/c1",
        owner="Location/p1",  # R4 Task.owner: Organization, Practitioner(Role), ... never Location
        last_modified=datetime(2024, 10, 1, 0, 0, tzinfo=EASTERN),
    )
    with pytest.raises(MappingError) as caught:
        _task(bad)
    assert {p.path for p in caught.value.problems} == {
        "ReferralTask.status",
        "ReferralTask.business_status",
        "ReferralTask.focus",
        "ReferralTask.owner",
    }
    with pytest.raises(MappingError, match=r"last_modified: must not be before"):
        _task(make_referral_task(last_modified=datetime(2024, 10, 1, 0, 0, tzinfo=EASTERN)))


@given(referral_tasks())
def test_round_trip__any_valid_task_is_identity(task: ReferralTask) -> None:
    mapped = referral_task.from_fhir(_task(task), id_system=TASK_SYSTEM)
    assert mapped.value == task
    assert mapped.losses == ()


def test_from_fhir__rejected_task_without_status_reason_is_named() -> None:
    resource = _task(make_referral_task(status="rejected", status_reason="No evening slots"))
    del resource["statusReason"]
    assert _task_problems(resource) == {
        "Task.statusReason.text": "is required when the status is 'rejected'"
    }


def test_from_fhir__foreign_task_content_is_reported_not_dropped() -> None:
    foreign = _task(make_referral_task(status="rejected", status_reason="Full"))
    foreign["statusReason"]["coding"] = [{"system": "http://ehr.example/r", "code": "cap"}]
    foreign["businessStatus"]["coding"].append({"system": "http://ehr.example/b", "code": "n"})
    foreign["output"] = [{"type": {"text": "Letter"}, "valueString": "sent"}]
    foreign["priority"] = "routine"
    foreign["partOf"] = [{"reference": "Task/parent"}]
    mapped = referral_task.from_fhir(foreign, id_system=TASK_SYSTEM)
    assert mapped.value == make_referral_task(status="rejected", status_reason="Full")
    assert {loss.path for loss in mapped.losses} == {
        "Task.statusReason.coding",
        "Task.businessStatus.coding[1]",
        "Task.output[0]",
        "Task.priority",
        "Task.partOf",
    }


def test_from_fhir__sdohcc_typed_output_is_read_and_its_coding_reported() -> None:
    foreign = _task(make_referral_task(status="completed", resulting_activity=FIRST_SESSION))
    foreign["output"][0]["type"] = {
        "coding": [{"system": SDOHCC_TEMP, "code": "resulting-activity"}]
    }
    mapped = referral_task.from_fhir(foreign, id_system=TASK_SYSTEM)
    assert mapped.value.resulting_activity == FIRST_SESSION
    assert [loss.path for loss in mapped.losses] == ["Task.output[0].type"]


def test_from_fhir__bare_task_names_every_missing_element() -> None:
    assert set(_task_problems({"resourceType": "Task"})) == {
        "Task.identifier",
        "Task.status",
        "Task.intent",  # Task.code is 0..1 in R4: its absence is read, a wrong code refused
        "Task.focus",
        "Task.for",
        "Task.requester",
        "Task.authoredOn",
    }


@pytest.mark.parametrize(
    ("element", "value", "path"),
    [
        ("resourceType", "ServiceRequest", "Task.resourceType"),
        ("status", "received", "Task.status"),
        ("intent", "plan", "Task.intent"),
        (
            "code",
            {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "approve"}]},
            "Task.code",
        ),
        (
            "businessStatus",
            {"coding": [{"system": BSER, "code": "8.0"}]},
            "Task.businessStatus.coding[0].code",
        ),
        ("lastModified", "2024-10-01T00:00:00Z", "Task.lastModified"),
        ("focus", {"reference": "CarePlan/c"}, "Task.focus.reference"),
        (
            "output",
            [
                {
                    "type": {"text": "Resulting activity"},
                    "valueReference": {"reference": "Procedure/p"},
                }
            ],
            "Task.output[0].valueReference.reference",
        ),
    ],
)
def test_from_fhir__unmappable_task_values_are_named(element: str, value: Any, path: str) -> None:
    resource = _task()
    resource[element] = value
    assert set(_task_problems(resource)) == {path}


@given(corrupted(_task(make_referral_task(status="completed", resulting_activity=FIRST_SESSION))))
def test_from_fhir__any_corrupted_task_maps_or_raises(resource: Any) -> None:
    try:
        mapped = referral_task.from_fhir(resource, id_system=TASK_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []


# --- Task state machine -------------------------------------------------------------------------


def test_transition__happy_path_to_completed_with_milestones() -> None:
    task = transition(make_referral_task(), "accepted", at=ACCEPTED_AT)
    assert (task.status, task.business_status, task.last_modified) == (
        "accepted",
        "3.0",
        ACCEPTED_AT,
    )
    task = transition(task, "accepted", at=ACCEPTED_AT, business_status="5.1.1")
    assert (task.status, task.business_status) == ("accepted", "5.1.1")
    attended = ACCEPTED_AT + timedelta(days=3)
    task = transition(task, "in-progress", at=attended, business_status="5.1.4")
    task = transition(task, "completed", at=attended, resulting_activity=FIRST_SESSION)
    assert (task.status, task.business_status) == ("completed", "7.0")
    assert task.resulting_activity == FIRST_SESSION
    assert task.status_reason is None


def test_transition__decline_sets_reason_and_bser_declined() -> None:
    task = transition(make_referral_task(), "rejected", at=ACCEPTED_AT, reason="No capacity")
    assert (task.status, task.status_reason, task.business_status) == (
        "rejected",
        "No capacity",
        "4.0",
    )


def test_transition__resuming_from_hold_clears_the_reason() -> None:
    held = make_referral_task(status="on-hold", status_reason="Client hospitalised")
    assert transition(held, "in-progress", at=ACCEPTED_AT).status_reason is None


def test_transition__completed_to_in_progress_is_illegal_and_names_both_states() -> None:
    done = make_referral_task(status="completed", business_status="7.0")
    with pytest.raises(IllegalTransitionError) as caught:
        transition(done, "in-progress", at=ACCEPTED_AT)
    assert "completed -> in-progress" in str(caught.value)
    assert caught.value.http_status == 409
    [problem] = caught.value.problems
    assert problem.path == "Task.status" and problem.code == "business-rule"
    assert "entered-in-error" in problem.message


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("requested", "completed"),
        ("requested", "in-progress"),
        ("accepted", "rejected"),
        ("on-hold", "completed"),
        ("draft", "accepted"),
        ("entered-in-error", "requested"),
    ],
)
def test_transition__skipping_states_is_illegal(start: str, target: str) -> None:
    task = make_referral_task(status=start, status_reason="r" if start == "on-hold" else None)
    with pytest.raises(IllegalTransitionError, match=f"{start} -> {target}"):
        transition(task, target, at=ACCEPTED_AT, reason="r")


def test_transition__reason_required_for_cancel() -> None:
    with pytest.raises(MappingError, match=r"status_reason: is required when the status is"):
        transition(make_referral_task(), "cancelled", at=ACCEPTED_AT)


def test_transition__time_must_not_go_backwards_or_be_naive() -> None:
    task = transition(make_referral_task(), "accepted", at=ACCEPTED_AT)
    with pytest.raises(MappingError, match=r"at: is before"):
        transition(task, "in-progress", at=ACCEPTED_AT - timedelta(minutes=1))
    with pytest.raises(MappingError, match=r"at: needs a timezone"):
        transition(task, "in-progress", at=datetime(2024, 10, 5, 9, 0))


@given(referral_tasks(), st.sampled_from(SDOHCC_REFERRAL_TASK_STATUSES))
def test_transition__allowed_moves_give_valid_tasks_and_terminal_states_stay(
    task: ReferralTask, target: str
) -> None:
    at = (task.last_modified or task.authored_on) + timedelta(hours=1)
    try:
        moved = transition(task, target, at=at, reason="synthetic reason")
    except IllegalTransitionError:
        assert target not in referral_task.allowed_next(task.status)
        assert task.status in referral_task.TERMINAL_STATUSES or target != task.status
    else:
        assert moved.status == target and moved.problems() == []
        assert task.status not in referral_task.TERMINAL_STATUSES or target == "entered-in-error"


def test_allowed_next__terminal_states_only_reach_entered_in_error() -> None:
    for status in ("rejected", "cancelled", "failed", "completed"):
        assert referral_task.allowed_next(status) == {"entered-in-error"}
    assert referral_task.allowed_next("entered-in-error") == frozenset()
    assert referral_task.allowed_next("requested") == {
        "accepted",
        "rejected",
        "cancelled",
        "entered-in-error",
    }
