"""US Core QuestionnaireResponse must-support elements, checked by us.

HAPI cannot build US Core's QuestionnaireResponse profile here (it derives from SDC's
sdc-questionnaireresponse, a package this machine cannot fetch: HAPI-0705), so the live tier
validates our responses against our own R4-based profiles only. This test checks what US Core
9.0.0 marks must support (StructureDefinition-us-core-questionnaireresponse.yml: questionnaire,
status, subject 1..1 to a Patient, authored, author, item, item.linkId, item.answer.value[x])
on every response our mappers write.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from mappers import asam_intake, assessment
from mappers.questionnaire_response import AUTHOR_TYPES, STATUSES
from tests.builders.sessions import ASSESSMENT_SYSTEM
from tests.strategies.assessment import assessments, intake_assessments

SUBJECT = "Patient/p1"
CLINICIAN = "Organization/iop"


def _answers(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in items:
        found += item.get("answer", [])
        found += _answers(item.get("item", []))
    return found


def _link_ids(items: list[dict[str, Any]]) -> list[Any]:
    return [i.get("linkId") for i in items] + [
        x for i in items for x in _link_ids(i.get("item", []))
    ]


def assert_us_core_must_support(resource: dict[str, Any], *, author: str) -> None:
    assert isinstance(resource["questionnaire"], str) and resource["questionnaire"]
    assert resource["status"] in STATUSES  # required binding, R4 questionnaire-answers-status
    assert resource["subject"]["reference"].startswith("Patient/")  # US Core: 1..1, a Patient
    assert resource["authored"]
    assert resource["author"] == {"reference": author}
    assert author.split("/")[0] in AUTHOR_TYPES
    assert resource["item"], "item is must support"
    assert all(isinstance(link, str) and link for link in _link_ids(resource["item"]))
    answers = _answers(resource["item"])
    assert answers and all(any(k.startswith("value") for k in a) for a in answers)


@settings(max_examples=40, deadline=None)
@given(assessments())
def test_phq9_gad7__carry_every_us_core_must_support_element(value: Any) -> None:
    resource = assessment.to_fhir(value, id_system=ASSESSMENT_SYSTEM, subject_reference=SUBJECT)
    # self-report instruments: the patient is the author unless someone else is named
    assert_us_core_must_support(resource, author=SUBJECT)


@settings(max_examples=40, deadline=None)
@given(intake_assessments())
def test_asam_intake__carries_every_us_core_must_support_element(value: Any) -> None:
    resource = asam_intake.to_fhir(
        value, id_system=ASSESSMENT_SYSTEM, subject_reference=SUBJECT, author_reference=CLINICIAN
    )
    assert_us_core_must_support(resource, author=CLINICIAN)
