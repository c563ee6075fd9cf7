"""The discharge summary read back from a document Bundle (``mappers.discharge_reader``)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappers.discharge import CourseOfTreatment
from mappers.discharge_reader import discharge_from_document
from mappers.errors import MappingError
from tests.builders.discharge import (
    BUNDLE_ID,
    COMPOSITION_ID,
    composition_of,
    make_aftercare,
    make_discharge_summary,
    make_document,
    make_summary_without_sud,
    urn,
)
from tests.strategies.referral import texts


def _read_problems(bundle: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        discharge_from_document(bundle)
    return {p.path: p.message for p in caught.value.problems}


# --- discharge_from_document --------------------------------------------------------------------


def test_from_document__round_trip_without_losses() -> None:
    summary = make_discharge_summary()
    mapped = discharge_from_document(make_document(summary))
    assert mapped.value == summary
    assert mapped.losses == ()
    assert mapped.links["Bundle.identifier"] == f"urn:uuid:{BUNDLE_ID}"
    assert mapped.links["composition"] == f"urn:uuid:{COMPOSITION_ID}"


def test_from_document__minimal_summary_round_trips() -> None:
    summary = replace(make_summary_without_sud(), plan_of_care=None, phq9=None, gad7=None,
                      aftercare=make_aftercare(support_groups=()),
                      course=CourseOfTreatment(4, 10, 0))  # fmt: skip
    assert discharge_from_document(make_document(summary)).value == summary


def test_from_document__unknown_section_entry_and_element_are_lost() -> None:
    bundle = make_document()
    composition = composition_of(bundle)
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
        "Composition.section[8]",
        f"Bundle.entry[{extra}]",
    }


def test_from_document__nested_losses_carry_the_entry_path() -> None:
    bundle = make_document()
    bundle["entry"][3]["resource"]["note"] = [{"text": "reviewed"}]
    losses = {loss.path for loss in discharge_from_document(bundle).losses}
    assert losses == {"Bundle.entry[3].resource.note"}


def test_from_document__not_a_document_is_named() -> None:
    bundle = make_document()
    bundle["type"] = "collection"
    del bundle["identifier"]
    bundle["entry"] = bundle["entry"][1:]
    problems = _read_problems(bundle)
    assert {"Bundle.type", "Bundle.identifier", "Bundle.entry[0]"} <= set(problems)


def test_from_document__missing_required_section_is_named() -> None:
    bundle = make_document()
    del composition_of(bundle)["section"][0]
    assert "Composition.section" in _read_problems(bundle)


def test_from_document__foreign_narrative_in_a_read_section_is_named() -> None:
    bundle = make_document()
    composition_of(bundle)["section"][5]["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><b>see the letter</b></div>'
    )
    assert set(_read_problems(bundle)) == {"Composition.section[5].text.div"}


def test_from_document__problems_inside_included_resources_carry_entry_paths() -> None:
    bundle = make_document()
    del bundle["entry"][3]["resource"]["code"]
    assert "Bundle.entry[3].resource.code" in _read_problems(bundle)


def test_from_document__section_reference_outside_the_document_is_named() -> None:
    bundle = make_document()
    composition_of(bundle)["section"][3]["entry"] = [{"reference": "CarePlan/elsewhere"}]
    assert set(_read_problems(bundle)) == {"Composition.section[3].entry[0]"}


def test_from_document__does_not_change_its_input() -> None:
    bundle = make_document()
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
    assert discharge_from_document(make_document(summary)).value == summary


def test_from_document__a_document_sent_before_pacio_toc_still_reads() -> None:
    # C-CDA discharge instructions (8653-8), no allergies section: what we sent until 2026-12
    bundle = make_document()
    composition = composition_of(bundle)
    composition["section"] = [
        s
        for s in composition["section"]
        if s["code"].get("coding", [{}])[0].get("code") != "48765-2"
    ]
    for section in composition["section"]:
        for coding in section["code"].get("coding", []):
            if coding["code"] == "69730-0":
                coding.update(code="8653-8", display="Hospital discharge instructions")
    mapped = discharge_from_document(bundle)
    assert mapped.value == make_discharge_summary()
    assert {loss.path for loss in mapped.losses} == {"Composition.section[5].code"}


def test_from_document__the_encounter_round_trips() -> None:
    summary = replace(make_discharge_summary(), encounter=urn(11))  # held by the document
    assert discharge_from_document(make_document(summary)).value == summary


def test_from_document__an_encounter_outside_the_document_is_kept_as_given() -> None:
    document = make_document()
    document["entry"][0]["resource"]["encounter"] = {"reference": "Encounter/iop-episode"}
    assert discharge_from_document(document).value.encounter == "Encounter/iop-episode"
