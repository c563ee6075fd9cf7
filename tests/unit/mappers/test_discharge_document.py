"""The discharge summary document Bundle as ``mappers.discharge_document`` writes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from mappers.discharge import CRISIS_LINE_988, DischargeSummary, read_narrative
from mappers.discharge_document import to_document_bundle
from mappers.errors import MappingError
from tests.builders.discharge import (
    BUNDLE_ID,
    CARE_PLAN,
    COMPOSITION_ID,
    DX_ALCOHOL,
    DX_DEPRESSION,
    GAD7,
    IOP_ROLE,
    MED_LIST,
    NEXT_PROVIDER,
    PATIENT,
    PHQ9,
    composition_of,
    document_entries,
    make_aftercare,
    make_discharge_summary,
    make_document,
    make_summary_without_sud,
    urn,
)

LOINC = "http://loinc.org"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _send_problems(summary: DischargeSummary, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        make_document(summary, **kwargs)
    return {p.path: p.message for p in caught.value.problems}


# --- to_document_bundle: the Bundle -------------------------------------------------------------


def test_to_document_bundle__document_header() -> None:
    bundle = make_document()
    assert bundle["type"] == "document"
    assert bundle["identifier"] == {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{BUNDLE_ID}"}
    assert bundle["timestamp"] == "2024-12-20T16:00:00-04:00"
    assert bundle["entry"][0]["fullUrl"] == f"urn:uuid:{COMPOSITION_ID}"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))  # bdl-7
    assert urls[1:] == list(document_entries(make_discharge_summary()))


def test_to_document_bundle__composition_header() -> None:
    composition = composition_of(make_document())
    assert composition["status"] == "final"
    assert composition["type"]["coding"] == [
        {"system": LOINC, "code": "18842-5", "display": "Discharge summary"}
    ]
    assert composition["subject"] == {"reference": PATIENT}
    assert composition["author"] == [{"reference": IOP_ROLE}]  # PACIO TOC: not an Organization
    assert composition["custodian"] == {"reference": urn(2)}
    assert composition["event"] == [{"period": {"end": "2024-12-20T15:30:00-04:00"}}]
    assert composition["date"] == "2024-12-20T16:00:00-04:00"
    assert "confidentiality" not in composition
    # PACIO TOC header: language, category, attester (the author, legal)
    assert composition["language"] == "en-US"
    assert composition["category"][0]["coding"][0]["code"] == "18761-7"
    assert composition["attester"] == [
        {"mode": "legal", "time": composition["date"], "party": {"reference": IOP_ROLE}}
    ]


def test_to_document_bundle__sections_codes_and_entries() -> None:
    sections = composition_of(make_document())["section"]
    codes = [s["code"].get("coding", [{}])[0].get("code") for s in sections]
    # PACIO TOC (2025-12-31): discharge instructions 69730-0, allergies 48765-2 (empty)
    assert codes == [
        "8648-8", "11450-4", "10160-0", "18776-5", "30954-2", "69730-0", "48765-2", None
    ]  # fmt: skip
    entries = [[e["reference"] for e in s.get("entry", [])] for s in sections]
    assert entries == [[], [DX_ALCOHOL, DX_DEPRESSION], [MED_LIST], [CARE_PLAN], [PHQ9, GAD7],
                       [NEXT_PROVIDER], [], []]  # fmt: skip
    assert sections[-2]["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert sections[-1]["code"] == {"text": "42 CFR Part 2 redisclosure notice"}
    for section in sections:  # R4 cmp-1 and a readable narrative in every section
        assert section["text"]["status"] == "generated"
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')


def test_to_document_bundle__results_show_recomputed_totals_and_severity() -> None:
    results = composition_of(make_document())["section"][4]
    read = read_narrative(results["text"])
    assert read is not None
    assert read[1] == ["PHQ-9 total 6 (mild), 2024-10-07", "GAD-7 total 4 (minimal), 2024-10-07"]


def test_to_document_bundle__aftercare_narrative_always_has_988() -> None:
    read = read_narrative(composition_of(make_document())["section"][5]["text"])
    assert read is not None
    paragraphs, groups = read
    assert f"Crisis line: {CRISIS_LINE_988}" in paragraphs
    assert groups == ["SMART Recovery, Tuesday evenings", "IOP alumni group, monthly"]


def test_to_document_bundle__narrative_escapes_markup() -> None:
    aftercare = make_aftercare(relapse_prevention="Call <sponsor> & leave")
    div = composition_of(make_document(make_discharge_summary(aftercare=aftercare)))["section"][5]
    assert "Call &lt;sponsor&gt; &amp; leave" in div["text"]["div"]


# --- Security labels ----------------------------------------------------------------------------


def test_to_document_bundle__sud_content_is_labelled() -> None:
    bundle = make_document()
    on_bundle = [(c["system"], c["code"]) for c in bundle["meta"]["security"]]
    on_composition = [(c["system"], c["code"]) for c in composition_of(bundle)["meta"]["security"]]
    assert on_bundle == [(CONFIDENTIALITY, "R"), (ACT_CODE, "ETH")]  # no refrain on a Bundle
    assert on_composition == [
        (CONFIDENTIALITY, "R"),
        (ACT_CODE, "ETH"),
        (ACT_CODE, "42CFRPart2"),
        (ACT_CODE, "NORDSCLCD"),
    ]


def test_to_document_bundle__no_sud_no_labels_and_no_notice() -> None:
    bundle = make_document(make_summary_without_sud())
    assert "meta" not in bundle and "meta" not in composition_of(bundle)
    assert len(composition_of(bundle)["section"]) == 7


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


def test_to_document_bundle__the_encounter_must_be_in_the_document() -> None:
    summary = make_discharge_summary(encounter=urn(11))
    entries = document_entries(summary)
    del entries[urn(11)]
    problems = _send_problems(summary, entries=entries)
    assert list(problems) == ["DischargeSummary.encounter"]


def test_to_document_bundle__an_organization_author_is_refused() -> None:
    # PACIO TOC: author only Practitioner(Role), Patient, Device, RelatedPerson.
    summary = make_discharge_summary(author=urn(2))
    problems = _send_problems(summary, entries=document_entries(summary))
    assert list(problems) == ["DischargeSummary.author"]


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
