"""IOP discharge summary <- FHIR R4 document Bundle: the reader of what
``mappers.discharge_document`` writes (R4 documents.html, composition.html).

Every entry is resolved by its fullUrl and mapped by its concept mapper; problems and losses are
named with the entry's path. Sections are recognised by their LOINC code (the Part 2 notice by
its text-only code) and read by ``mappers.discharge_section_readers``; the narrative is read
back in the shape ``mappers.discharge`` renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fhir_profiles.terminology.documents import (
    DISCHARGE_SUMMARY,
    SECTION_AFTERCARE,
    SECTION_AFTERCARE_CCDA,
    SECTION_COURSE,
    SECTION_MEDICATIONS,
    SECTION_PROBLEMS,
)
from mappers.discharge import PART2_SECTION_TEXT, DischargeSummary
from mappers.discharge_document import SECTION_CODES, SECTION_TITLES
from mappers.discharge_section_readers import SECTION_READERS
from mappers.discharge_section_readers import ReadSystems as ReadSystems  # in our signature
from mappers.document_entries import DocumentEntries
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_coding import read_known_coding
from mappers.fhir_read import (
    modifier_extension_problems,
    read_datetime,
    read_fixed_code,
    read_list,
    read_str,
    require_resource_type,
)
from mappers.fhir_reference import read_reference_to, read_required_reference
from mappers.fhir_write import format_datetime
from mappers.loss import Loss, Mapped, unmapped_keys, unmapped_top_level

_BUNDLE_MAPPED = frozenset({"identifier", "type", "timestamp", "entry"})
_COMPOSITION_MAPPED = frozenset(
    {"text", "identifier", "status", "type", "subject", "date", "author", "title", "custodian"}
    | {"event", "section", "language", "category", "attester", "encounter"}
)
# Section codes of documents we sent before PACIO TOC (C-CDA discharge instructions).
_LEGACY_SECTION_CODES = {SECTION_AFTERCARE_CCDA.code: SECTION_AFTERCARE.code}


def discharge_from_document(
    bundle: Any, *, systems: ReadSystems | None = None
) -> Mapped[DischargeSummary]:
    """Read a DischargeSummary from a document Bundle: Bundle.identifier, timestamp and entry;
    Composition.identifier, status, type, subject, author, custodian, title, event and sections
    with the Conditions, List + MedicationStatements and QuestionnaireResponses they reference.
    Links: ``Bundle.identifier``, ``Bundle.timestamp``, ``Composition.date``, ``composition``."""
    systems = systems or ReadSystems()
    problems: list[Problem] = []
    fhir = require_resource_type(bundle, "Bundle", problems)
    losses = unmapped_top_level(fhir, _BUNDLE_MAPPED, type_name="Bundle")
    read_fixed_code(fhir.get("type"), "Bundle.type", "document", problems)
    links = _read_bundle_links(fhir, problems, losses)
    doc = DocumentEntries(read_list(fhir.get("entry"), "Bundle.entry", problems), problems, losses)
    first = read_list(fhir.get("entry"), "Bundle.entry", [])[:1]
    composition = first[0].get("resource") if first and isinstance(first[0], dict) else None
    if not isinstance(composition, dict) or composition.get("resourceType") != "Composition":
        problems.append(Problem("Bundle.entry[0]", "a document starts with a Composition (bdl-11)"))
        raise_if_problems("Bundle", problems)
    assert isinstance(composition, dict)
    links["composition"] = str(first[0].get("fullUrl"))
    fields = _read_header(composition, doc, systems.discharge)
    fields |= _read_sections(composition.get("section"), doc, systems)
    if "Composition.date" in composition:
        links["Composition.date"] = str(composition["date"])
    raise_if_problems("Bundle", problems)
    summary = _assemble(fields)
    losses += doc.unread()
    return Mapped(summary, links, tuple(losses))


def _read_bundle_links(
    fhir: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> dict[str, str]:
    identifier = fhir.get("identifier")
    if not isinstance(identifier, dict) or not identifier.get("value"):
        problems.append(Problem("Bundle.identifier", "a document has one (bdl-9)", "required"))
        identifier = {}
    else:
        losses += unmapped_keys(identifier, {"system", "value"}, path="Bundle.identifier")
    when = read_datetime(fhir.get("timestamp"), "Bundle.timestamp", problems, losses)
    links = {"Bundle.identifier": str(identifier.get("value", ""))}
    if when is not None:
        links["Bundle.timestamp"] = format_datetime(when)
    return links


def _read_header(
    composition: Mapping[str, Any], doc: DocumentEntries, id_system: str
) -> dict[str, Any]:
    problems, losses, path = doc.problems, doc.losses, "Composition"
    losses += unmapped_top_level(composition, _COMPOSITION_MAPPED, type_name=path)
    problems += modifier_extension_problems(composition, path)
    identifier = composition.get("identifier")
    if not isinstance(identifier, dict) or identifier.get("system") != id_system:
        problems.append(Problem(f"{path}.identifier", f"no identifier in system {id_system}"))
        identifier = {}
    losses += unmapped_keys(identifier, {"system", "value"}, path=f"{path}.identifier")
    read_fixed_code(composition.get("status"), f"{path}.status", "final", problems)
    known = {(DISCHARGE_SUMMARY.system, DISCHARGE_SUMMARY.code): True}
    kind, inner = read_known_coding(composition.get("type"), f"{path}.type", known, problems)
    losses += inner
    if kind is None:
        problems.append(Problem(f"{path}.type", "expected LOINC 18842-5 Discharge summary"))
    fields: dict[str, Any] = {"identifier": identifier.get("value")}
    fields["title"] = read_str(composition.get("title"), f"{path}.title", problems, required=True)
    for name, kind_name in (("subject", "Patient"), ("custodian", "Organization")):
        target = read_required_reference(composition, path, name, kind_name, problems, losses)
        found = target and doc.resolve(target, kind_name, f"{path}.{name}")
        fields[name] = target if found else None
    fields["author"] = _read_author(composition, doc)
    fields["discharged"] = _read_event(composition.get("event"), problems, losses)
    encounter = composition.get("encounter")
    fields["encounter"] = (
        _read_encounter(encounter, f"{path}.encounter", doc) if encounter is not None else None
    )
    return fields


def _read_encounter(value: Any, at: str, doc: DocumentEntries) -> str | None:
    """The encounter: the IOP's session in documents we send (its content is not modelled); a
    reference outside the document is kept as given."""
    target = read_reference_to(value, at, ("Encounter",), doc.problems, doc.losses)
    if target and target in doc.by_url:
        return target if doc.resolve(target, "Encounter", at) else None
    return target


def _read_author(composition: Mapping[str, Any], doc: DocumentEntries) -> str | None:
    authors = read_list(composition.get("author"), "Composition.author", doc.problems)
    if not authors:
        doc.problems.append(Problem("Composition.author", "is required", "required"))
        return None
    doc.losses += [
        Loss(f"Composition.author[{i}]", "only the first author is kept")
        for i in range(1, len(authors))
    ]
    at = "Composition.author[0]"
    # A PractitionerRole, as PACIO TOC asks; an Organization in documents sent before.
    kinds = ("PractitionerRole", "Organization")
    target = read_reference_to(authors[0], at, kinds, doc.problems, doc.losses)
    if not target:
        return None
    found = doc.by_url.get(target)
    kind = found[1].get("resourceType") if found else None
    return target if doc.resolve(target, kind if kind in kinds else kinds[0], at) else None


def _read_event(value: Any, problems: list[Problem], losses: list[Loss]) -> datetime | None:
    events = read_list(value, "Composition.event", problems)
    period = events[0].get("period") if events and isinstance(events[0], dict) else None
    if not isinstance(period, dict):
        problems.append(Problem("Composition.event[0].period.end", "the discharge is required"))
        return None
    losses += [
        Loss(f"Composition.event[{i}]", "only the first event is kept")
        for i in range(1, len(events))
    ]
    losses += unmapped_keys(events[0], {"period"}, path="Composition.event[0]")
    losses += unmapped_keys(period, {"end"}, path="Composition.event[0].period")
    return read_datetime(period.get("end"), "Composition.event[0].period.end", problems, losses)


def _section_key(section: Any) -> str | None:
    """The section kind: its LOINC section code, or ``part2`` for the text-only notice."""
    concept = section.get("code") if isinstance(section, dict) else None
    if not isinstance(concept, dict):
        return None
    if concept == {"text": PART2_SECTION_TEXT}:
        return "part2"
    codings = concept.get("coding")
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and coding.get("system") == DISCHARGE_SUMMARY.system:
            code = coding.get("code")
            code = _LEGACY_SECTION_CODES.get(code, code) if isinstance(code, str) else code
            if isinstance(code, str) and code in SECTION_CODES:
                return code
    return None


def _section_losses(section: Mapping[str, Any], key: str, at: str) -> list[Loss]:
    losses = unmapped_keys(section, {"title", "code", "text", "entry", "emptyReason"}, path=at)
    expected = PART2_SECTION_TEXT if key == "part2" else SECTION_TITLES[key]
    if section.get("title") != expected:
        losses.append(Loss(f"{at}.title", f"regenerated as {expected!r}"))
    if key != "part2" and section.get("code") != SECTION_CODES[key].codeable_concept():
        losses.append(Loss(f"{at}.code", "regenerated from the section kind"))
    text = section.get("text")
    if isinstance(text, dict) and text.get("status") != "generated":
        losses.append(Loss(f"{at}.text", "narrative not generated by iop-bridge is regenerated"))
    return losses


def _read_sections(value: Any, doc: DocumentEntries, systems: ReadSystems) -> dict[str, Any]:
    """Each known section once, by code; others are lost; the required ones must be there."""
    fields: dict[str, Any] = {"diagnoses": (), "plan_of_care": None, "phq9": None, "gad7": None}
    fields["part2_notice"] = None
    seen: set[str] = set()
    for index, section in enumerate(read_list(value, "Composition.section", doc.problems)):
        at = f"Composition.section[{index}]"
        key = _section_key(section)
        if key is None or key in seen:
            reason = "section not modelled by iop-bridge" if key is None else "a repeated section"
            doc.losses.append(Loss(at, reason))
            continue
        seen.add(key)
        doc.losses += _section_losses(section, key, at)
        fields |= SECTION_READERS[key](section, at, doc, systems)
    for code in (SECTION_COURSE, SECTION_PROBLEMS, SECTION_MEDICATIONS, SECTION_AFTERCARE):
        if code.code not in seen:
            message = f"no {SECTION_TITLES[code.code]!r} section (LOINC {code.code})"
            doc.problems.append(Problem("Composition.section", message, "required"))
    return fields


def _assemble(fields: Mapping[str, Any]) -> DischargeSummary:
    """The summary from what was read; its own rules are checked with Composition paths."""
    summary = DischargeSummary(
        fields["identifier"], fields["subject"], fields["author"], fields["custodian"],
        fields["discharged"], fields["course"], fields["diagnoses"], fields["medications"],
        fields["aftercare"], fields["plan_of_care"], fields["phq9"], fields["gad7"],
        fields["part2_notice"], fields["title"], fields["encounter"],
    )  # fmt: skip
    raise_if_problems("Bundle", summary.problems())
    return summary
