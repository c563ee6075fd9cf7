from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappers.discharge import (
    CRISIS_LINE_988,
    AftercarePlan,
    CourseOfTreatment,
    DischargeSummary,
    aftercare_referral,
    read_narrative,
)
from mappers.discharge_document import to_document_bundle
from mappers.discharge_reader import discharge_from_document
from mappers.errors import MappingError
from tests.builders import make_diagnosis
from tests.builders.discharge import (
    BUNDLE_ID,
    CARE_PLAN,
    COMPOSITION_ID,
    DX_ALCOHOL,
    DX_DEPRESSION,
    GAD7,
    MED_LIST,
    NEXT_PROVIDER,
    PATIENT,
    PHQ9,
    TIMESTAMP,
    document_entries,
    make_aftercare,
    make_discharge_summary,
    urn,
)
from tests.builders.referrals import EASTERN
from tests.strategies.referral import texts

LOINC = "http://loinc.org"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _document(summary: DischargeSummary | None = None, **kwargs: Any) -> dict[str, Any]:
    summary = summary or make_discharge_summary()
    kwargs.setdefault("entries", document_entries(summary))
    return to_document_bundle(
        summary,
        composition_id=COMPOSITION_ID,
        bundle_identifier=BUNDLE_ID,
        timestamp=TIMESTAMP,
        **kwargs,
    )


def _composition(bundle: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    return resource


def _send_problems(summary: DischargeSummary, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        _document(summary, **kwargs)
    return {p.path: p.message for p in caught.value.problems}


def _read_problems(bundle: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        discharge_from_document(bundle)
    return {p.path: p.message for p in caught.value.problems}


def _no_sud() -> DischargeSummary:
    depression = make_discharge_summary().diagnoses[1]
    return make_discharge_summary(diagnoses=(depression,), part2_notice=None)


# --- to_document_bundle: the Bundle -------------------------------------------------------------


def test_to_document_bundle__document_header() -> None:
    bundle = _document()
    assert bundle["type"] == "document"
    assert bundle["identifier"] == {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{BUNDLE_ID}"}
    assert bundle["timestamp"] == "2024-12-20T16:00:00-04:00"
    assert bundle["entry"][0]["fullUrl"] == f"urn:uuid:{COMPOSITION_ID}"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))  # bdl-7
    assert urls[1:] == list(document_entries(make_discharge_summary()))


def test_to_document_bundle__composition_header() -> None:
    composition = _composition(_document())
    assert composition["status"] == "final"
    assert composition["type"]["coding"] == [
        {"system": LOINC, "code": "18842-5", "display": "Discharge summary"}
    ]
    assert composition["subject"] == {"reference": PATIENT}
    assert composition["author"] == [{"reference": urn(2)}]
    assert composition["custodian"] == {"reference": urn(2)}
    assert composition["event"] == [{"period": {"end": "2024-12-20T15:30:00-04:00"}}]
    assert composition["date"] == "2024-12-20T16:00:00-04:00"
    assert "confidentiality" not in composition


def test_to_document_bundle__sections_codes_and_entries() -> None:
    sections = _composition(_document())["section"]
    codes = [s["code"].get("coding", [{}])[0].get("code") for s in sections]
    assert codes == ["8648-8", "11450-4", "10160-0", "18776-5", "30954-2", "8653-8", None]
    entries = [[e["reference"] for e in s.get("entry", [])] for s in sections]
    assert entries == [[], [DX_ALCOHOL, DX_DEPRESSION], [MED_LIST], [CARE_PLAN], [PHQ9, GAD7],
                       [NEXT_PROVIDER], []]  # fmt: skip
    assert sections[-1]["code"] == {"text": "42 CFR Part 2 redisclosure notice"}
    for section in sections:  # R4 cmp-1 and a readable narrative in every section
        assert section["text"]["status"] == "generated"
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


def test_to_document_bundle__results_show_recomputed_totals_and_severity() -> None:
    results = _composition(_document())["section"][4]
    read = read_narrative(results["text"])
    assert read is not None
    assert read[1] == ["PHQ-9 total 6 (mild), 2024-10-07", "GAD-7 total 4 (minimal), 2024-10-07"]


def test_to_document_bundle__aftercare_narrative_always_has_988() -> None:
    read = read_narrative(_composition(_document())["section"][5]["text"])
    assert read is not None
    paragraphs, groups = read
    assert f"Crisis line: {CRISIS_LINE_988}" in paragraphs
    assert groups == ["SMART Recovery, Tuesday evenings", "IOP alumni group, monthly"]


def test_to_document_bundle__narrative_escapes_markup() -> None:
    aftercare = make_aftercare(relapse_prevention="Call <sponsor> & leave")
    div = _composition(_document(make_discharge_summary(aftercare=aftercare)))["section"][5]
    assert "Call &lt;sponsor&gt; &amp; leave" in div["text"]["div"]


# --- Security labels ----------------------------------------------------------------------------


def test_to_document_bundle__sud_content_is_labelled() -> None:
    bundle = _document()
    on_bundle = [(c["system"], c["code"]) for c in bundle["meta"]["security"]]
    on_composition = [(c["system"], c["code"]) for c in _composition(bundle)["meta"]["security"]]
    assert on_bundle == [(CONFIDENTIALITY, "R"), (ACT_CODE, "ETH")]  # no refrain on a Bundle
    assert on_composition == [
        (CONFIDENTIALITY, "R"),
        (ACT_CODE, "ETH"),
        (ACT_CODE, "42CFRPart2"),
        (ACT_CODE, "NORDSCLCD"),
    ]


def test_to_document_bundle__no_sud_no_labels_and_no_notice() -> None:
    bundle = _document(_no_sud())
    assert "meta" not in bundle and "meta" not in _composition(bundle)
    assert len(_composition(bundle)["section"]) == 6


# --- to_document_bundle: problems ---------------------------------------------------------------


def test_to_document_bundle__sud_without_part2_notice_is_named() -> None:
    problems = _send_problems(make_discharge_summary(part2_notice=None))
    assert list(problems) == ["DischargeSummary.part2_notice"]
    assert "42 CFR 2.32" in problems["DischargeSummary.part2_notice"]


@pytest.mark.parametrize("crisis", [None, "Call the clinic"])
def test_to_document_bundle__missing_988_is_named(crisis: str | None) -> None:
    summary = make_discharge_summary(aftercare=make_aftercare(crisis_line=crisis))
    assert list(_send_problems(summary)) == ["DischargeSummary.aftercare.crisis_line"]


def test_to_document_bundle__reference_not_in_entries_is_named() -> None:
    summary = make_discharge_summary()
    entries = document_entries(summary)
    del entries[CARE_PLAN]
    problems = _send_problems(summary, entries=entries)
    assert list(problems) == ["DischargeSummary.plan_of_care.reference"]


def test_to_document_bundle__reference_to_wrong_type_is_named() -> None:
    summary = make_discharge_summary()
    entries = document_entries(summary)
    entries[PHQ9], entries[MED_LIST] = entries[MED_LIST], entries[PHQ9]
    problems = _send_problems(summary, entries=entries)
    assert set(problems) == {
        "DischargeSummary.phq9.reference",
        "DischargeSummary.medications.reference",
    }


def test_to_document_bundle__bad_ids_and_fullurls_are_named() -> None:
    summary = make_discharge_summary()
    entries = document_entries(summary) | {"Patient/relative": {"resourceType": "Patient"}}
    with pytest.raises(MappingError) as caught:
        to_document_bundle(
            summary,
            composition_id="NOT-A-UUID",
            bundle_identifier=BUNDLE_ID,
            timestamp=datetime(2024, 12, 20, 16, 0),
            entries=entries,
        )
    paths = {p.path for p in caught.value.problems}
    assert paths == {"composition_id", "timestamp", "entries['Patient/relative']"}


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


# --- discharge_from_document --------------------------------------------------------------------


def test_from_document__round_trip_without_losses() -> None:
    summary = make_discharge_summary()
    mapped = discharge_from_document(_document(summary))
    assert mapped.value == summary
    assert mapped.losses == ()
    assert mapped.links["Bundle.identifier"] == f"urn:uuid:{BUNDLE_ID}"
    assert mapped.links["composition"] == f"urn:uuid:{COMPOSITION_ID}"


def test_from_document__minimal_summary_round_trips() -> None:
    summary = replace(_no_sud(), plan_of_care=None, phq9=None, gad7=None,
                      aftercare=make_aftercare(support_groups=()),
                      course=CourseOfTreatment(4, 10, 0))  # fmt: skip
    assert discharge_from_document(_document(summary)).value == summary


def test_from_document__unknown_section_entry_and_element_are_lost() -> None:
    bundle = _document()
    composition = _composition(bundle)
    composition["confidentiality"] = "R"
    composition["section"].append(
        {
            "title": "Vital signs",
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
            },
        }
    )
    extra = len(bundle["entry"])
    bundle["entry"].append({"fullUrl": urn(99), "resource": {"resourceType": "Basic"}})
    losses = {loss.path for loss in discharge_from_document(bundle).losses}
    assert losses == {
        "Composition.confidentiality",
        "Composition.section[7]",
        f"Bundle.entry[{extra}]",
    }


def test_from_document__nested_losses_carry_the_entry_path() -> None:
    bundle = _document()
    bundle["entry"][3]["resource"]["note"] = [{"text": "reviewed"}]
    losses = {loss.path for loss in discharge_from_document(bundle).losses}
    assert losses == {"Bundle.entry[3].resource.note"}


def test_from_document__not_a_document_is_named() -> None:
    bundle = _document()
    bundle["type"] = "collection"
    del bundle["identifier"]
    bundle["entry"] = bundle["entry"][1:]
    problems = _read_problems(bundle)
    assert {"Bundle.type", "Bundle.identifier", "Bundle.entry[0]"} <= set(problems)


def test_from_document__missing_required_section_is_named() -> None:
    bundle = _document()
    del _composition(bundle)["section"][0]
    assert "Composition.section" in _read_problems(bundle)


def test_from_document__foreign_narrative_in_a_read_section_is_named() -> None:
    bundle = _document()
    _composition(bundle)["section"][5]["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><b>see the letter</b></div>'
    )
    assert set(_read_problems(bundle)) == {"Composition.section[5].text.div"}


def test_from_document__problems_inside_included_resources_carry_entry_paths() -> None:
    bundle = _document()
    del bundle["entry"][3]["resource"]["code"]
    assert "Bundle.entry[3].resource.code" in _read_problems(bundle)


def test_from_document__section_reference_outside_the_document_is_named() -> None:
    bundle = _document()
    _composition(bundle)["section"][3]["entry"] = [{"reference": "CarePlan/elsewhere"}]
    assert set(_read_problems(bundle)) == {"Composition.section[3].entry[0]"}


def test_from_document__does_not_change_its_input() -> None:
    bundle = _document()
    before = copy.deepcopy(bundle)
    discharge_from_document(bundle)
    assert bundle == before


@given(
    texts,
    st.lists(texts, max_size=3),
    texts.map(lambda t: f"{t} or call or text 988"),
    st.integers(1, 20),
    st.integers(0, 60),
)
def test_from_document__free_text_round_trips(
    relapse: str, groups: list[str], crisis: str, weeks: int, missed: int
) -> None:
    aftercare = make_aftercare(
        relapse_prevention=f"<{relapse}> & more", support_groups=tuple(groups), crisis_line=crisis
    )
    summary = make_discharge_summary(
        aftercare=aftercare, course=CourseOfTreatment(weeks, weeks * 3, missed, relapse)
    )
    assert discharge_from_document(_document(summary)).value == summary


# --- Aftercare referral -------------------------------------------------------------------------


def test_aftercare_referral__request_and_task_to_the_next_provider() -> None:
    summary = make_discharge_summary(
        subject="Patient/iop-test-0001",
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
    assert referral.performer == NEXT_PROVIDER and referral.requester == urn(2)
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
    assert replace(_no_sud(), diagnoses=(opioid,)).has_substance_use
    assert not _no_sud().has_substance_use
