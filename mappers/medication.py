"""Medication list <-> FHIR R4 MedicationStatement, gathered in a List.

- The drug is medicationCodeableConcept: an RxNorm coding (reference 2.6) when the code is
  known, always with ``text``; a drug without a verified code is sent text-only.
- One Dosage: ``text`` (the sig as written), doseAndRate[0].doseQuantity, and
  timing.repeat ``frequency`` per ``period`` 1 ``periodUnit`` d (R4 Timing). A dose unit that is
  a plain UCUM code (mg, g, ug, mL) also carries system and code; a count unit such as
  "tablet" is sent as ``unit`` text only (UCUM has no tablet unit, and HAPI warns on
  annotations such as ``{tablet}``).
- The List has status ``current`` (or a later status), mode ``snapshot`` and
  code list-example-use-codes#medications "Medication List" (R4 List.code, example binding).
  No verified code tells a residential discharge list from an IOP intake or a reconciled list,
  so that kind rides in List.code.text, one fixed text per kind, recognised on input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from fhir_profiles.terminology.code import Code, Evidence
from fhir_profiles.terminology.systems import RXNORM, UCUM
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_common import (
    CODING_KEYS,
    CONCEPT_KEYS,
    PERIOD_KEYS,
    datetime_problems,
    format_datetime,
    identifier_problems,
    modifier_extension_problems,
    read_datetime,
    read_identifier_list,
    read_known_coding,
    read_list,
    read_list_in,
    reference,
    reference_problems,
    unmapped_keys,
)
from mappers.fhir_read import read_str, read_str_in, require_resource_type
from mappers.loss import Loss, Mapped, unmapped_top_level
from mappers.referral import (
    read_code,
    read_reference_list,
    read_reference_to,
    read_required_reference,
)
from mappers.schedule import indexed_links, number, read_day

# MedicationStatement.status, required binding (R4 valueset-medication-statement-status.html).
STATEMENT_STATUSES = frozenset(
    {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown"}
    | {"not-taken"}
)
# List.status, required binding (R4 valueset-list-status.html).
LIST_STATUSES = frozenset({"current", "retired", "entered-in-error"})
# Dose units sent with their UCUM code: the unit text is the UCUM code itself.
UCUM_DOSE_UNITS = frozenset({"mg", "g", "ug", "mL"})
# TODO(fhir_profiles): move to terminology.workflow. Checked in R4 valuesets.xml
# (hapi-fhir-validation-resources-r4 8.12.1), CodeSystem list-example-use-codes.
LIST_MEDICATIONS = Code(
    "http://terminology.hl7.org/CodeSystem/list-example-use-codes",
    "medications",
    "Medication List",
    "http://hl7.org/fhir/R4/codesystem-list-example-codes.html",
    Evidence.SPEC,
)


class ListSource(StrEnum):
    """Which list this is in the step-down workflow (DESIGN.md workflow 2)."""

    RESIDENTIAL_DISCHARGE = "residential-discharge"
    IOP_INTAKE = "iop-intake"
    RECONCILED = "reconciled"


SOURCE_TEXT: Mapping[ListSource, str] = {
    ListSource.RESIDENTIAL_DISCHARGE: "Residential discharge medication list",
    ListSource.IOP_INTAKE: "IOP intake medication list",
    ListSource.RECONCILED: "Reconciled medication list",
}
_SOURCE_BY_TEXT = {text: source for source, text in SOURCE_TEXT.items()}
_LIST_SOURCES = frozenset(ListSource)


@dataclass(frozen=True, slots=True)
class Dose:
    """One structured dose, e.g. 50 mg or 1 tablet."""

    value: float
    unit: str


@dataclass(frozen=True, slots=True)
class MedicationEntry:
    """One medication the client takes (or took), as a MedicationStatement."""

    identifier: str
    medication: str  # the drug as text; the RxNorm display when coded
    rxnorm_code: str | None = None  # None: no verified RxNorm code, text only
    status: str = "active"
    dose_text: str | None = None  # the sig as written, e.g. "50 mg by mouth once daily"
    dose: Dose | None = None
    times_per_day: int | None = None
    start: date | None = None
    end: date | None = None

    @classmethod
    def of(cls, code: Code, identifier: str, **fields: Any) -> MedicationEntry:
        """An entry coded with a verified RxNorm Code from fhir_profiles."""
        return cls(identifier, code.display, code.code, **fields)

    def problems(self) -> list[Problem]:
        """Every reason this entry cannot be sent as a MedicationStatement, each with its field."""
        found = identifier_problems(self.identifier, "MedicationEntry.identifier")
        if not self.medication.strip():
            found.append(Problem("MedicationEntry.medication", "is required", "required"))
        if self.rxnorm_code is not None and not self.rxnorm_code.isdigit():
            found.append(Problem("MedicationEntry.rxnorm_code", "an RxCUI is all digits"))
        if self.status not in STATEMENT_STATUSES:
            found.append(Problem("MedicationEntry.status", f"{self.status!r} is not allowed"))
        if self.dose_text is not None and not self.dose_text.strip():
            found.append(Problem("MedicationEntry.dose_text", "must not be blank"))
        found += dose_problems(self.dose, "MedicationEntry.dose")
        if self.times_per_day is not None and self.times_per_day < 1:
            found.append(Problem("MedicationEntry.times_per_day", "must be 1 or more"))
        if self.start is not None and self.end is not None and self.end < self.start:
            found.append(Problem("MedicationEntry.end", "must not be before start"))
        return found

    @property
    def has_dosage(self) -> bool:
        """Whether any dosage field is filled (then one Dosage is sent)."""
        return self.dose_text is not None or self.dose is not None or self.times_per_day is not None


def dose_problems(dose: Dose | None, path: str) -> list[Problem]:
    """A dose is a positive finite amount with a non-blank unit."""
    if dose is None:
        return []
    found = []
    if not math.isfinite(dose.value) or dose.value <= 0:
        found.append(Problem(f"{path}.value", f"{dose.value!r} is not a positive amount"))
    if not dose.unit.strip():
        found.append(Problem(f"{path}.unit", "is required", "required"))
    return found


def to_fhir(
    entry: MedicationEntry,
    *,
    id_system: str,
    subject_reference: str,
    reason_references: Sequence[str] = (),
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Fill MedicationStatement.identifier, status, medicationCodeableConcept (RxNorm or text),
    effectivePeriod, subject, reasonReference and dosage (text, timing, doseQuantity)."""
    problems = entry.problems() + reference_problems(
        subject_reference, "Patient", "MedicationStatement.subject.reference"
    )
    for i, target in enumerate(reason_references):
        problems += reference_problems(target, "Condition", f"reason_references[{i}]")
    raise_if_problems("MedicationEntry", problems)
    resource: dict[str, Any] = {"resourceType": "MedicationStatement"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["identifier"] = [{"system": id_system, "value": entry.identifier}]
    resource["status"] = entry.status
    concept: dict[str, Any] = {"text": entry.medication}
    if entry.rxnorm_code is not None:
        coding = {"system": RXNORM, "code": entry.rxnorm_code, "display": entry.medication}
        concept = {"coding": [coding], "text": entry.medication}
    resource["medicationCodeableConcept"] = concept
    period = {}
    if entry.start:
        period["start"] = entry.start.isoformat()
    if entry.end:
        period["end"] = entry.end.isoformat()
    if period:
        resource["effectivePeriod"] = period
    resource["subject"] = reference(subject_reference)
    if reason_references:
        resource["reasonReference"] = [reference(r) for r in reason_references]
    if entry.has_dosage:
        resource["dosage"] = [_dosage_json(entry)]
    return resource


def _dosage_json(entry: MedicationEntry) -> dict[str, Any]:
    dosage: dict[str, Any] = {}
    if entry.dose_text is not None:
        dosage["text"] = entry.dose_text
    if entry.times_per_day is not None:
        repeat = {"frequency": entry.times_per_day, "period": 1, "periodUnit": "d"}
        dosage["timing"] = {"repeat": repeat}
    if entry.dose is not None:
        quantity: dict[str, Any] = {"value": number(entry.dose.value), "unit": entry.dose.unit}
        if entry.dose.unit in UCUM_DOSE_UNITS:
            quantity |= {"system": UCUM, "code": entry.dose.unit}
        dosage["doseAndRate"] = [{"doseQuantity": quantity}]
    return dosage


_STATEMENT_MAPPED = frozenset(
    {"identifier", "modifierExtension", "status", "medicationCodeableConcept", "subject"}
    | {"effectivePeriod", "reasonReference", "dosage"}
)


def from_fhir(resource: Any, *, id_system: str) -> Mapped[MedicationEntry]:
    """Read a MedicationEntry from MedicationStatement.identifier, status,
    medicationCodeableConcept, effectivePeriod and dosage; links ``subject`` and
    ``reasonReference[i]``."""
    problems: list[Problem] = []
    fhir = require_resource_type(resource, "MedicationStatement", problems)
    losses = unmapped_top_level(fhir, _STATEMENT_MAPPED, type_name="MedicationStatement")
    problems += modifier_extension_problems(fhir, "MedicationStatement")
    path = "MedicationStatement"
    identifier = read_identifier_list(
        fhir.get("identifier"), id_system, f"{path}.identifier", problems, losses
    )
    status = read_code(fhir.get("status"), f"{path}.status", STATEMENT_STATUSES, problems)
    drug = _read_medication(fhir, problems, losses)
    start, end = _read_effective(fhir.get("effectivePeriod"), problems, losses)
    subject = read_required_reference(fhir, path, "subject", "Patient", problems, losses)
    reasons = read_reference_list(
        fhir.get("reasonReference"), f"{path}.reasonReference", ("Condition",), problems, losses
    )
    dose_text, dose, times = _read_dosage(fhir.get("dosage"), problems, losses)
    raise_if_problems("MedicationStatement", problems)
    assert identifier and status and drug
    entry = MedicationEntry(
        identifier, drug[0], drug[1], status, dose_text, dose, times, start, end
    )
    raise_if_problems("MedicationStatement", entry.problems())
    links = {"subject": subject}
    if reasons:
        links |= indexed_links("reasonReference", enumerate(reasons))
    return Mapped(entry, links, tuple(losses))


def _read_medication(
    fhir: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> tuple[str, str | None] | None:
    """Text (or the RxNorm display) and the first RxNorm code; other codings are lost."""
    path = "MedicationStatement.medicationCodeableConcept"
    concept = fhir.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        problems.append(Problem(path, "is required (a coded or text medication)", "required"))
        return None
    losses += unmapped_keys(concept, CONCEPT_KEYS, path=path)
    code = display = None
    for index, coding in enumerate(read_list_in(concept, "coding", path, problems)):
        at = f"{path}.coding[{index}]"
        if code is None and isinstance(coding, dict) and coding.get("system") == RXNORM:
            code = read_str_in(coding, "code", at, problems, required=True)
            display = coding.get("display")
            losses += unmapped_keys(coding, CODING_KEYS, path=at)
        else:
            losses.append(Loss(at, "coding outside RxNorm (or a second RxNorm coding)"))
    text = concept.get("text", display)
    if display is not None and display != text:
        losses.append(Loss(f"{path}.coding.display", "differs from text; the text is kept"))
    text = read_str(text, f"{path}.text", problems, required=True)
    return None if text is None else (text, code)


def _read_effective(
    period: Any, problems: list[Problem], losses: list[Loss]
) -> tuple[date | None, date | None]:
    path = "MedicationStatement.effectivePeriod"
    if period is None:
        return None, None
    if not isinstance(period, dict):
        problems.append(Problem(path, "expected a Period", "structure"))
        return None, None
    losses += unmapped_keys(period, PERIOD_KEYS, path=path)
    start = read_day(period.get("start"), f"{path}.start", problems, losses)
    end = read_day(period.get("end"), f"{path}.end", problems, losses)
    if start is not None and end is not None and end < start:
        problems.append(Problem(f"{path}.end", "is before the start"))
    return start, end


def _read_dosage(
    value: Any, problems: list[Problem], losses: list[Loss]
) -> tuple[str | None, Dose | None, int | None]:
    """The first Dosage: text, a daily frequency and the first doseQuantity."""
    path = "MedicationStatement.dosage"
    dosages = read_list(value, path, problems)
    if not dosages:
        return None, None, None
    if len(dosages) > 1:
        losses += [Loss(f"{path}[{i}]", "only one dosage is kept") for i in range(1, len(dosages))]
    path += "[0]"
    dosage = dosages[0]
    if not isinstance(dosage, dict):
        problems.append(Problem(path, "expected a Dosage", "structure"))
        return None, None, None
    problems += modifier_extension_problems(dosage, path)
    losses += unmapped_keys(dosage, _DOSAGE_MAPPED, path=path)
    text = read_str_in(dosage, "text", path, problems, required=False)
    times = _read_timing(dosage.get("timing"), f"{path}.timing", problems, losses)
    dose = _read_dose(dosage.get("doseAndRate"), f"{path}.doseAndRate", problems, losses)
    return text, dose, times


_DOSAGE_MAPPED = frozenset({"text", "timing", "doseAndRate", "modifierExtension"})
_DAILY_REPEAT = frozenset({"frequency", "period", "periodUnit"})


def _read_timing(timing: Any, path: str, problems: list[Problem], losses: list[Loss]) -> int | None:
    """N times a day; any other timing is reported as lost (the dosage text still says it)."""
    if timing is None:
        return None
    if not isinstance(timing, dict):
        problems.append(Problem(path, "expected a Timing", "structure"))
        return None
    repeat = timing.get("repeat")
    if (
        len(timing) == 1
        and isinstance(repeat, dict)
        and repeat.keys() == _DAILY_REPEAT
        and repeat["period"] == 1
        and repeat["periodUnit"] == "d"
        and type(repeat["frequency"]) is int
        and repeat["frequency"] >= 1
    ):
        return int(repeat["frequency"])
    losses.append(Loss(path, "only a plain N-times-a-day timing is modelled"))
    return None


def _read_dose(value: Any, path: str, problems: list[Problem], losses: list[Loss]) -> Dose | None:
    entries = read_list(value, path, problems)
    if not entries:
        return None
    if len(entries) > 1:
        losses += [Loss(f"{path}[{i}]", "only one dose is kept") for i in range(1, len(entries))]
    first = entries[0] if isinstance(entries[0], dict) else {}
    losses += unmapped_keys(first, _DOSE_AND_RATE_MAPPED, path=f"{path}[0]")
    quantity = first.get("doseQuantity")
    if not isinstance(quantity, dict):
        return None  # doseRange or a rate: lost above
    at = f"{path}[0].doseQuantity"
    losses += unmapped_keys(quantity, _QUANTITY_MAPPED, path=at)
    amount = quantity.get("value")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
        problems.append(Problem(f"{at}.value", f"expected a positive number, got {amount!r}"))
        return None
    unit_text = quantity.get("unit", quantity.get("code"))
    unit = read_str(unit_text, f"{at}.unit", problems, required=True)
    if unit is None:
        return None
    # What to_fhir sends: system and code for a UCUM unit, neither for a count unit.
    if unit in UCUM_DOSE_UNITS:
        as_sent = quantity.get("system") == UCUM and quantity.get("code") == unit
    else:
        as_sent = "system" not in quantity and "code" not in quantity
    if not as_sent:
        losses.append(Loss(f"{at}.code", "unit code not kept; the unit text is"))
    return Dose(float(amount), unit)


_DOSE_AND_RATE_MAPPED = frozenset({"doseQuantity"})
_QUANTITY_MAPPED = frozenset({"value", "unit", "system", "code"})


@dataclass(frozen=True, slots=True)
class MedicationList:
    """A point-in-time medication list: a residential discharge, IOP intake or reconciled one."""

    identifier: str
    title: str  # e.g. "Residential discharge medications"
    source: ListSource | None  # None: a list from elsewhere that does not say which kind
    date: datetime
    entries: tuple[MedicationEntry, ...] = ()
    status: str = "current"

    def problems(self) -> list[Problem]:
        """Every reason this list cannot be sent as a List, each with its field."""
        found = identifier_problems(self.identifier, "MedicationList.identifier")
        if not self.title.strip():
            found.append(Problem("MedicationList.title", "is required", "required"))
        if self.source is not None and self.source not in _LIST_SOURCES:
            found.append(Problem("MedicationList.source", f"{self.source!r} is not known"))
        found += datetime_problems(self.date, "MedicationList.date")
        if self.status not in LIST_STATUSES:
            found.append(Problem("MedicationList.status", f"{self.status!r} is not allowed"))
        for index, entry in enumerate(self.entries):
            entry_problems = entry.problems()
            if entry_problems:
                prefix = f"MedicationList.entries[{index}]"
                found += [
                    Problem(p.path.replace("MedicationEntry", prefix, 1), p.message, p.code)
                    for p in entry_problems
                ]
        if len({e.identifier for e in self.entries}) != len(self.entries):
            found.append(Problem("MedicationList.entries", "two entries share an identifier"))
        return found


def list_to_fhir(
    med_list: MedicationList,
    *,
    id_system: str,
    subject_reference: str,
    entry_references: Sequence[str],
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Fill List.identifier, status, mode (snapshot), title, code, subject, date and
    entry.item; ``entry_references`` name the MedicationStatements, one per entry, in order."""
    problems = med_list.problems()
    problems += reference_problems(subject_reference, "Patient", "List.subject.reference")
    if len(entry_references) != len(med_list.entries):
        count = f"{len(entry_references)} for {len(med_list.entries)} entries"
        problems.append(Problem("entry_references", f"one reference per entry is needed: {count}"))
    for i, target in enumerate(entry_references):
        problems += reference_problems(target, "MedicationStatement", f"entry_references[{i}]")
    if len(set(entry_references)) != len(entry_references):
        problems.append(Problem("entry_references", "a statement is listed twice"))
    raise_if_problems("MedicationList", problems)
    resource: dict[str, Any] = {"resourceType": "List"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["identifier"] = [{"system": id_system, "value": med_list.identifier}]
    resource["status"] = med_list.status
    resource["mode"] = "snapshot"
    resource["title"] = med_list.title
    text = None if med_list.source is None else SOURCE_TEXT[med_list.source]
    resource["code"] = LIST_MEDICATIONS.codeable_concept(text)
    resource["subject"] = reference(subject_reference)
    resource["date"] = format_datetime(med_list.date)
    if entry_references:
        resource["entry"] = [{"item": reference(r)} for r in entry_references]
    return resource


_LIST_MAPPED = frozenset(
    {"identifier", "modifierExtension", "status", "mode", "title", "code", "subject", "date"}
    | {"entry"}
)


def list_from_fhir(
    resource: Any, *, id_system: str, statements: Mapping[str, MedicationEntry] | None = None
) -> Mapped[MedicationList]:
    """Read a MedicationList from List.identifier, status, mode, title, code, date and entry;
    links ``subject`` and ``entry[i]``. ``statements`` (the caller's entries keyed by
    reference) fills MedicationList.entries; without it the entries stay empty."""
    problems: list[Problem] = []
    fhir = require_resource_type(resource, "List", problems)
    losses = unmapped_top_level(fhir, _LIST_MAPPED, type_name="List")
    problems += modifier_extension_problems(fhir, "List")
    identifier = read_identifier_list(
        fhir.get("identifier"), id_system, "List.identifier", problems, losses
    )
    status = read_code(fhir.get("status"), "List.status", LIST_STATUSES, problems)
    # A working or changes list is not a point-in-time list (R4 list.html#mode).
    read_code(fhir.get("mode"), "List.mode", ("snapshot",), problems)
    title = read_str_in(fhir, "title", "List", problems, required=True)
    source = _read_source(fhir.get("code"), problems, losses)
    subject = read_required_reference(fhir, "List", "subject", "Patient", problems, losses)
    when = read_datetime(fhir.get("date"), "List.date", problems, losses)
    items = _read_entries(fhir.get("entry"), problems, losses)
    entries: tuple[MedicationEntry, ...] = ()
    if statements is not None:
        for index, item in enumerate(items):
            if item not in statements:
                at = f"List.entry[{index}].item.reference"
                problems.append(Problem(at, f"{item!r} is not among the statements passed in"))
        entries = tuple(statements[item] for item in items if item in statements)
    raise_if_problems("List", problems)
    assert identifier and status and title and when
    med_list = MedicationList(identifier, title, source, when, entries, status)
    raise_if_problems("List", med_list.problems())
    links = {"subject": subject}
    if items:
        links |= indexed_links("entry", enumerate(items))
    return Mapped(med_list, links, tuple(losses))


_LIST_CODE_KNOWN = {(LIST_MEDICATIONS.system, LIST_MEDICATIONS.code): True}


def _read_source(concept: Any, problems: list[Problem], losses: list[Loss]) -> ListSource | None:
    """The list kind from List.code.text; the medications coding is regenerated."""
    if concept is None:
        return None
    losses += read_known_coding(concept, "List.code", _LIST_CODE_KNOWN, problems)[1]
    text = concept.get("text") if isinstance(concept, dict) else None
    source = _SOURCE_BY_TEXT.get(text) if isinstance(text, str) else None
    if source is None and text is not None and text != LIST_MEDICATIONS.display:
        losses.append(Loss("List.code.text", "not one of iop-bridge's list kinds"))
    return source


def _read_entries(value: Any, problems: list[Problem], losses: list[Loss]) -> list[str]:
    """entry.item references, which must be MedicationStatements; entry flags etc. are lost."""
    items: list[str] = []
    for index, entry in enumerate(read_list(value, "List.entry", problems)):
        path = f"List.entry[{index}]"
        if not isinstance(entry, dict) or entry.get("item") is None:
            problems.append(Problem(f"{path}.item", "is required", "required"))
            continue
        losses += unmapped_keys(entry, _LIST_ENTRY_MAPPED, path=path)
        kinds = ("MedicationStatement",)
        target = read_reference_to(entry["item"], f"{path}.item", kinds, problems, losses)
        if target in items:
            problems.append(Problem(f"{path}.item", f"{target!r} is listed twice"))
        elif target:
            items.append(target)
    return items


_LIST_ENTRY_MAPPED = frozenset({"item"})
