"""The discharge summary domain type and the aftercare referral (``mappers.discharge``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import pytest

from mappers.discharge import CRISIS_LINE_988, AftercarePlan, CourseOfTreatment, aftercare_referral
from mappers.errors import MappingError
from tests.builders import make_diagnosis
from tests.builders.discharge import (
    NEXT_PROVIDER,
    TIMESTAMP,
    make_discharge_summary,
    make_summary_without_sud,
    urn,
)
from tests.builders.referrals import EASTERN


def test_summary_problems__every_field_is_named() -> None:
    summary = make_discharge_summary(
        identifier=" ",
        course=CourseOfTreatment(0, -1, 0, " "),
        phq9=replace(make_discharge_summary().gad7),  # a GAD-7 where the PHQ-9 belongs
        title="",
    )
    paths = {p.path for p in summary.problems()}
    assert paths == {
        "DischargeSummary.identifier",
        "DischargeSummary.course.weeks",
        "DischargeSummary.course.sessions_attended",
        "DischargeSummary.course.summary",
        "DischargeSummary.phq9.assessment.instrument",
        "DischargeSummary.title",
    }


# --- Aftercare referral -------------------------------------------------------------------------


def test_aftercare_referral__request_and_task_to_the_next_provider() -> None:
    summary = make_discharge_summary(
        subject="Patient/iop-test-0001",
        author="PractitionerRole/iop-role",
        diagnoses=(replace(make_discharge_summary().diagnoses[0], reference="Condition/dx-1"),
                   replace(make_discharge_summary().diagnoses[1], reference=urn(5))),
    )  # fmt: skip
    made = aftercare_referral(
        summary,
        referral_identifier="AFTER-TEST-0001",
        task_identifier="AFTERTASK-TEST-0001",
        referral_reference="ServiceRequest/after-1",
        document_reference="Bundle/discharge-doc-1",
        authored_on=TIMESTAMP,
        requested_start=date(2024, 12, 27),
    )
    referral, task = made.referral, made.task
    assert (referral.status, referral.level_of_care) == ("active", "1.0")
    # BSeR: the IOP's PractitionerRole requests; the next provider is its Organization.
    assert referral.performer == NEXT_PROVIDER
    assert referral.requester == task.requester == "PractitionerRole/iop-role"
    assert referral.supporting_info == ("Bundle/discharge-doc-1",)
    assert referral.reasons == ("Condition/dx-1",)  # the urn:uuid one is document-local
    assert (task.status, task.business_status) == ("requested", "2.0")
    assert task.focus == "ServiceRequest/after-1" and task.owner == NEXT_PROVIDER
    assert task.patient == "Patient/iop-test-0001"


def test_aftercare_referral__invalid_summary_is_refused() -> None:
    with pytest.raises(MappingError):
        aftercare_referral(
            make_discharge_summary(part2_notice=None),
            referral_identifier="A-1",
            task_identifier="T-1",
            referral_reference="ServiceRequest/a",
            document_reference="Bundle/b",
            authored_on=datetime(2024, 12, 20, 16, 0, tzinfo=EASTERN),
        )


def test_aftercare_plan__default_crisis_line_is_988() -> None:
    plan = AftercarePlan(NEXT_PROVIDER, "Clinic", "Plan", "Follow-up")
    assert plan.crisis_line == CRISIS_LINE_988 and plan.problems("p") == []


def test_summary__has_substance_use_follows_icd10_f1x() -> None:
    summary = make_discharge_summary()
    assert summary.has_substance_use
    opioid = replace(summary.diagnoses[1], diagnosis=make_diagnosis(icd10_code="F11.20"))
    assert replace(make_summary_without_sud(), diagnoses=(opioid,)).has_substance_use
    assert not make_summary_without_sud().has_substance_use
