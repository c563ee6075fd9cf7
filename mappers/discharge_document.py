"""IOP discharge summary <-> FHIR R4 document Bundle (R4 documents.html, composition.html).

Shape:

- Bundle.type ``document``; Bundle.identifier ``urn:ietf:rfc:3986`` + ``urn:uuid:<id>`` (the
  document instance, bdl-9) and Bundle.timestamp (bdl-10); the first entry is the Composition
  (bdl-11), then the included resources the caller passes in ``entries`` (fullUrl -> resource),
  in the caller's order. References in the summary are those fullUrls (urn:uuid or absolute),
  so every reference resolves inside the document (R4 bundle.html#references).
- Composition (fullUrl ``urn:uuid:<composition_id>``, no resource id), by the current PACIO
  TOC TOCComposition (fhir_profiles.terminology.documents): language ``en-US``, status
  ``final``, type LOINC 18842-5, category 18761-7, identifier (the summary's business id),
  subject, encounter (when known), date (the timestamp), author, title, attester (the author,
  ``legal``), custodian, event.period.end (the discharge), and sections with LOINC codes
  (discharge instructions 69730-0; the required allergies section 48765-2 is empty with
  emptyReason ``unavailable``: the IOP records no allergies), each with a generated XHTML
  narrative (R4 cmp-1: a section holds text, entries or sub-sections; a document section's text
  is what a reader is shown) and entry references.
- Security labels (DS4P, fhir-domain-reference.md 3.2) when an SUD diagnosis is included: the
  Composition carries the Part 2 set (R, ETH, 42CFRPart2, NORDSCLCD). The Bundle carries only
  R + ETH: DS4P spec.md says privacy-revealing refrain tags (its example is NODSCLCD) SHALL NOT
  be in the high-watermark labels of a Bundle, and NORDSCLCD is a refrain tag of the same kind.
  Composition.confidentiality is left out (PACIO TOC sets it 0..0 and puts labels in meta).

The reader of such a document is ``mappers.discharge_reader``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from fhir_profiles.canonical import DISCHARGE_SUMMARY_ID_SYSTEM
from fhir_profiles.terminology.documents import (
    DISCHARGE_SUMMARY,
    EMPTY_UNAVAILABLE,
    SECTION_AFTERCARE,
    SECTION_ALLERGIES,
    SECTION_COURSE,
    SECTION_MEDICATIONS,
    SECTION_PLAN,
    SECTION_PROBLEMS,
    SECTION_RESULTS,
    TOC_CATEGORY,
)
from fhir_profiles.terminology.privacy import (
    CONFIDENTIALITY_RESTRICTED,
    PART2_SECURITY_LABELS,
    SENSITIVITY_ETH,
)
from mappers.condition import Diagnosis
from mappers.discharge import (
    PART2_SECTION_TEXT,
    DischargeSummary,
    aftercare_narrative,
    course_narrative,
    score_line,
)
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import reference
from mappers.fhir_write import datetime_problems, format_datetime, narrative

BUNDLE_LABELS: Final = (CONFIDENTIALITY_RESTRICTED, SENSITIVITY_ETH)
COMPOSITION_LABELS: Final = PART2_SECURITY_LABELS
DOCUMENT_ID_SYSTEM: Final = "urn:ietf:rfc:3986"  # Bundle.identifier of a document (documents.html)
SECTION_TITLES: Final = {
    SECTION_COURSE.code: "IOP course of treatment",
    SECTION_PROBLEMS.code: "Problems",
    SECTION_MEDICATIONS.code: "Medications",
    SECTION_PLAN.code: "Plan of care",
    SECTION_RESULTS.code: "Final PHQ-9 and GAD-7",
    SECTION_AFTERCARE.code: "Aftercare plan",
    SECTION_ALLERGIES.code: "Allergies",
}
ALLERGIES_TEXT: Final = "No allergy information: the IOP program does not record allergies."
LANGUAGE: Final = "en-US"  # Composition.language, 1..1 in PACIO TOC (BCP 47)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FULL_URL = re.compile(
    rf"urn:uuid:{_UUID.pattern}|https?://\S+/[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{{1,64}}"
)


def to_document_bundle(
    summary: DischargeSummary,
    *,
    composition_id: str,
    bundle_identifier: str,
    timestamp: datetime,
    entries: Mapping[str, Mapping[str, Any]],
    id_system: str = DISCHARGE_SUMMARY_ID_SYSTEM,
) -> dict[str, Any]:
    """Fill a document Bundle: meta.security, identifier, type, timestamp, and entry (fullUrl +
    resource): the Composition first, then ``entries`` (fullUrl -> the included resource)."""
    problems = summary.problems() + datetime_problems(timestamp, "timestamp")
    for name, value in (
        ("composition_id", composition_id),
        ("bundle_identifier", bundle_identifier),
    ):
        if not _UUID.fullmatch(value):
            problems.append(Problem(name, f"{value!r} is not a lowercase UUID"))
    composition_url = f"urn:uuid:{composition_id}"
    problems += _entry_problems(entries, composition_url)
    problems += _target_problems(summary, entries)
    raise_if_problems("DischargeSummary", problems)
    bundle: dict[str, Any] = {"resourceType": "Bundle"}
    if summary.has_substance_use:
        bundle["meta"] = {"security": [label.coding() for label in BUNDLE_LABELS]}
    bundle["identifier"] = {"system": DOCUMENT_ID_SYSTEM, "value": f"urn:uuid:{bundle_identifier}"}
    bundle["type"] = "document"
    bundle["timestamp"] = format_datetime(timestamp)
    composition = _composition(summary, timestamp, id_system)
    bundle["entry"] = [{"fullUrl": composition_url, "resource": composition}] + [
        {"fullUrl": url, "resource": dict(resource)} for url, resource in entries.items()
    ]
    return bundle


def _entry_problems(
    entries: Mapping[str, Mapping[str, Any]], composition_url: str
) -> list[Problem]:
    """Each fullUrl is a urn:uuid or an absolute RESTful URL, unique, holding a resource."""
    found: list[Problem] = []
    for url, resource in entries.items():
        at = f"entries[{url!r}]"
        if not _FULL_URL.fullmatch(url):
            found.append(Problem(at, "a fullUrl must be urn:uuid:<uuid> or an absolute URL"))
        if url == composition_url:
            found.append(Problem(at, "is the Composition's own fullUrl (bdl-7: fullUrls unique)"))
        if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
            found.append(Problem(at, "expected a FHIR resource with a resourceType", "structure"))
    return found


def _targets(summary: DischargeSummary) -> list[tuple[str, str, str]]:
    """(field, reference, expected resource type) for every reference the Composition makes."""
    found = [
        ("subject", summary.subject, "Patient"),
        ("author", summary.author, "PractitionerRole"),
        ("custodian", summary.custodian, "Organization"),
        ("medications.reference", summary.medications.reference, "List"),
        ("aftercare.next_provider", summary.aftercare.next_provider, "Organization"),
    ]
    found += [
        (f"diagnoses[{i}].reference", d.reference, "Condition")
        for i, d in enumerate(summary.diagnoses)
    ]
    if summary.plan_of_care is not None:
        found.append(("plan_of_care.reference", summary.plan_of_care.reference, "CarePlan"))
    if summary.encounter is not None:
        found.append(("encounter", summary.encounter, "Encounter"))
    for name, score in (("phq9", summary.phq9), ("gad7", summary.gad7)):
        if score is not None:
            found.append((f"{name}.reference", score.reference, "QuestionnaireResponse"))
    return found


def _target_problems(
    summary: DischargeSummary, entries: Mapping[str, Mapping[str, Any]]
) -> list[Problem]:
    """A document must hold what its Composition references, of the right type."""
    found: list[Problem] = []
    for field, target, kind in _targets(summary):
        path = f"DischargeSummary.{field}"
        resource = entries.get(target)
        if resource is None:
            found.append(Problem(path, f"{target!r} is not among the entries (a fullUrl)"))
        elif isinstance(resource, Mapping) and resource.get("resourceType") != kind:
            given = resource.get("resourceType")
            found.append(Problem(path, f"{target!r} is a {given}, expected a {kind}"))
    return found


def _composition(summary: DischargeSummary, timestamp: datetime, id_system: str) -> dict[str, Any]:
    # No Composition.id: its identity is the urn:uuid fullUrl (HAPI drops an id beside a urn:uuid
    # fullUrl when it stores the document, so an id would not survive a round trip anyway).
    composition: dict[str, Any] = {"resourceType": "Composition"}
    if summary.has_substance_use:
        composition["meta"] = {"security": [label.coding() for label in COMPOSITION_LABELS]}
    composition["language"] = LANGUAGE
    day = summary.discharged.date().isoformat()
    composition["text"] = narrative([summary.title, f"Discharged from the IOP on {day}"])
    composition["identifier"] = {"system": id_system, "value": summary.identifier}
    composition["status"] = "final"
    composition["type"] = DISCHARGE_SUMMARY.codeable_concept()
    composition["category"] = [TOC_CATEGORY.codeable_concept()]
    composition["subject"] = reference(summary.subject)
    if summary.encounter is not None:
        composition["encounter"] = reference(summary.encounter)
    composition["date"] = format_datetime(timestamp)
    composition["author"] = [reference(summary.author)]
    composition["title"] = summary.title
    # The author attests the document as final (legal): a receiver sees who stands behind it.
    composition["attester"] = [
        {"mode": "legal", "time": format_datetime(timestamp), "party": reference(summary.author)}
    ]
    composition["custodian"] = reference(summary.custodian)
    # event: the service documented, the IOP episode; its period ends at the discharge.
    composition["event"] = [{"period": {"end": format_datetime(summary.discharged)}}]
    composition["section"] = _sections(summary)
    return composition


def _section(code: str, text: dict[str, str], entries: Sequence[str] = ()) -> dict[str, Any]:
    section: dict[str, Any] = {"title": SECTION_TITLES[code]}
    section["code"] = SECTION_CODES[code].codeable_concept()
    section["text"] = text
    if entries:
        section["entry"] = [reference(target) for target in entries]
    return section


def _sections(summary: DischargeSummary) -> list[dict[str, Any]]:
    sections = [
        _section(SECTION_COURSE.code, course_narrative(summary.course)),
        _problems_section(summary),
        _medications_section(summary),
    ]
    if summary.plan_of_care is not None:
        plan = summary.plan_of_care
        sections.append(_section(SECTION_PLAN.code, narrative([plan.summary]), [plan.reference]))
    scores = [(n, s) for n, s in (("PHQ-9", summary.phq9), ("GAD-7", summary.gad7)) if s]
    if scores or summary.result_notes:
        lines = [score_line(name, score) for name, score in scores]
        refs = [score.reference for _, score in scores]
        text = narrative(summary.result_notes, lines)
        sections.append(_section(SECTION_RESULTS.code, text, refs))
    aftercare = summary.aftercare
    sections.append(
        _section(SECTION_AFTERCARE.code, aftercare_narrative(aftercare), [aftercare.next_provider])
    )
    sections.append(_allergies_section())  # PACIO TOC: 1..1, here always empty
    if summary.part2_notice is not None:
        sections.append(
            {
                "title": PART2_SECTION_TEXT,
                "code": {"text": PART2_SECTION_TEXT},
                "text": narrative([summary.part2_notice]),
            }
        )
    return sections


def _problems_section(summary: DischargeSummary) -> dict[str, Any]:
    items = [_problem_line(d.diagnosis) for d in summary.diagnoses]
    paragraphs = [*([] if items else ["No diagnoses recorded."]), *summary.problem_notes]
    text = narrative(paragraphs, items)
    return _section(SECTION_PROBLEMS.code, text, [d.reference for d in summary.diagnoses])


def _problem_line(diagnosis: Diagnosis) -> str:
    """``display (ICD-10-CM code), status``; a referring program's diagnosis may have neither
    code nor status (R4 Condition.clinicalStatus 0..1): said, never guessed."""
    code = f" (ICD-10-CM {diagnosis.icd10_code})" if diagnosis.icd10_code else ""
    return f"{diagnosis.display}{code}, {diagnosis.clinical_status or 'status not stated'}"


def _allergies_section() -> dict[str, Any]:
    """PACIO TOC requires the allergies section; the IOP records none, so it is empty with a
    reason (R4 cmp-2: emptyReason only without entries)."""
    section = _section(SECTION_ALLERGIES.code, narrative([ALLERGIES_TEXT]))
    section["emptyReason"] = EMPTY_UNAVAILABLE.codeable_concept()
    return section


def _medications_section(summary: DischargeSummary) -> dict[str, Any]:
    med_list = summary.medications.medication_list
    items = [
        e.medication if e.dose_text is None else f"{e.medication}: {e.dose_text}"
        for e in med_list.entries
    ]
    text = narrative([med_list.title] if items else [med_list.title, "No medications."], items)
    return _section(SECTION_MEDICATIONS.code, text, [summary.medications.reference])


SECTION_CODES: Final = {
    code.code: code
    for code in (
        *(SECTION_COURSE, SECTION_PROBLEMS, SECTION_MEDICATIONS),
        *(SECTION_PLAN, SECTION_RESULTS, SECTION_AFTERCARE, SECTION_ALLERGIES),
    )
}
