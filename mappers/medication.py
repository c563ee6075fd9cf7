"""Medication list <-> FHIR R4 MedicationStatement, gathered in a List.

- The drug is medicationCodeableConcept: an RxNorm coding (reference 2.6) when the code is
  known and the sender's NDC coding when one came with it (``http://hl7.org/fhir/sid/ndc``),
  always with ``text``; a drug without any code is sent text-only.
- One Dosage: ``text`` (the sig as written), doseAndRate[0].doseQuantity, and
  timing.repeat ``frequency`` per ``period`` 1 ``periodUnit`` d (R4 Timing). A dose unit that is
  a plain UCUM code (mg, g, ug, mL) also carries system and code; a count unit such as
  "tablet" is sent as ``unit`` text only (UCUM has no tablet unit, and HAPI warns on
  annotations such as ``{tablet}``).
- The List has status ``current`` (or a later status), mode ``snapshot`` and
  code list-example-use-codes#medications "Medication List" (R4 List.code, example binding).
  No verified code tells a residential discharge list from an IOP intake or a reconciled list,
  so that kind rides in List.code.text, one fixed text per kind, recognised on input.

The readers (``from_fhir``, ``list_from_fhir``) are in ``mappers.medication_reader``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.part2 import SUD_CODES
from fhir_profiles.terminology.systems import NDC, RXNORM, UCUM
from fhir_profiles.terminology.workflow import LIST_MEDICATIONS
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import (
    is_reference_to,
    reference,
    reference_problems,
)
from mappers.fhir_write import datetime_problems, format_datetime, identifier_problems, number

# MedicationStatement.status, required binding (R4 valueset-medication-statement-status.html).
STATEMENT_STATUSES = frozenset(
    {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown"}
    | {"not-taken"}
)
# List.status, required binding (R4 valueset-list-status.html).
LIST_STATUSES = frozenset({"current", "retired", "entered-in-error"})
# What a medication List's entries reference: our MedicationRequests (what we send now), and
# MedicationStatements (what senders and our earlier versions sent).
ITEM_TYPES = ("MedicationRequest", "MedicationStatement")
# Dose units sent with their UCUM code: the unit text is the UCUM code itself.
UCUM_DOSE_UNITS = frozenset({"mg", "g", "ug", "mL"})
# An NDC as senders write it: the FDA's 10 digits in three hyphenated segments (4-4-2, 5-3-2,
# 5-4-1) or the 11-digit 5-4-2 billing form, with or without hyphens.
_NDC = re.compile(r"\d{4}-\d{4}-\d{2}|\d{5}-\d{3,4}-\d{1,2}|\d{10,11}")


def is_ndc(code: str) -> bool:
    """Whether ``code`` is shaped like a National Drug Code."""
    # The pattern allows only digits and hyphens: the digits are the rest (no loop per char).
    return _NDC.fullmatch(code) is not None and len(code) - code.count("-") in (10, 11)


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
    ndc_code: str | None = None  # the sender's NDC for the same drug, kept beside RxNorm

    @property
    def is_moud(self) -> bool:
        """A medication for opioid/alcohol use disorder (methadone, buprenorphine for OUD,
        naltrexone): a Part 2 record by itself (``fhir_profiles.terminology.part2``)."""
        return self.rxnorm_code is not None and (RXNORM, self.rxnorm_code) in SUD_CODES

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
        if self.ndc_code is not None and not is_ndc(self.ndc_code):
            found.append(Problem("MedicationEntry.ndc_code", "is not a 10- or 11-digit NDC"))
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
    codings: list[dict[str, str]] = []
    if entry.rxnorm_code is not None:
        codings.append({"system": RXNORM, "code": entry.rxnorm_code, "display": entry.medication})
    if entry.ndc_code is not None:
        codings.append({"system": NDC, "code": entry.ndc_code})
    concept: dict[str, Any] = {"coding": codings} if codings else {}
    resource["medicationCodeableConcept"] = concept | {"text": entry.medication}
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
    entry.item; ``entry_references`` name the MedicationRequests (or MedicationStatements), one
    per entry, in order."""
    problems = med_list.problems()
    problems += reference_problems(subject_reference, "Patient", "List.subject.reference")
    if len(entry_references) != len(med_list.entries):
        count = f"{len(entry_references)} for {len(med_list.entries)} entries"
        problems.append(Problem("entry_references", f"one reference per entry is needed: {count}"))
    for i, target in enumerate(entry_references):
        problems += item_problems(target, f"entry_references[{i}]")
    if len(set(entry_references)) != len(entry_references):
        problems.append(Problem("entry_references", "a medication is listed twice"))
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


def item_problems(target: str, field: str) -> list[Problem]:
    """A medication List entry must reference a MedicationRequest or MedicationStatement."""
    if is_reference_to(target, ITEM_TYPES):
        return []
    return [Problem(field, f"must reference one of {', '.join(ITEM_TYPES)}: {target!r}")]
