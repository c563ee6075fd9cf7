"""Medication reconciliation: the residential discharge list against the IOP intake list
(DESIGN.md workflow 2), and its two FHIR R4 List renderings.

Matching. Entries are matched by RxNorm code (an RxCUI names one drug product, strength
included). Entries left over where at least one side has no RxNorm code are matched by
normalised medication text (case-folded, whitespace collapsed), and the line says so
(``matched_by``). Entries with different RxNorm codes are different drugs, even when the
ingredient is the same: telling them apart needs RxNorm relationships iop-bridge does not have.
Nothing is guessed: the same RxNorm code twice on one list, the same uncoded text twice on one
list, or a text that matches more than one entry is a Problem naming the list and the index.

Change of a matched pair: ``continued`` when the structured dose (Dose) and times per day are
equal, ``dose-changed`` otherwise (both entries are kept). A missing structured dose on one
side only counts as a difference: "same dose" is then not known, and the case manager sees both.

FHIR shapes (R4 list.html):

- the reconciled list (``to_fhir``) is a ``snapshot`` List of what the client takes now:
  continued and dose-changed lines (the intake entry, i.e. the intake dose) and new lines.
  Stopped medications are NOT in it: a snapshot is "the list as it is at a point in time", so a
  stopped statement there would read as current to any receiver that ignores statement status.
- the differences (``changes_to_fhir``) are a ``changes`` List, the mode R4 defines for "what
  changes have been made or recommended", e.g. a discharge medication list. One entry per line,
  ``entry.flag`` from R4 list-item-flag (example binding): continued 01 Unchanged, dose-changed
  02 Changed, stopped 05 Ceased, new 04 Prescribed. A stopped line's entry is ``deleted`` (R4
  lst-2 allows ``deleted`` only in changes mode); a dose-changed line is two entries, the
  discharge dose ``deleted`` and the intake dose, both flagged Changed, so both doses travel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.workflow import (
    FLAG_CEASED,
    FLAG_CHANGED,
    FLAG_PRESCRIBED,
    FLAG_UNCHANGED,
    LIST_MEDICATIONS,
)
from mappers import medication
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import reference, reference_problems
from mappers.fhir_write import datetime_problems, format_datetime, identifier_problems
from mappers.medication import ListSource, MedicationEntry, MedicationList

RECONCILED_TITLE = "Reconciled medication list"
CHANGES_TITLE = "Medication reconciliation: changes"
CHANGES_TEXT = "Medication reconciliation changes"


class Change(StrEnum):
    """What happened to one medication between residential discharge and IOP intake."""

    CONTINUED = "continued"
    DOSE_CHANGED = "dose-changed"
    STOPPED = "stopped"
    NEW = "new"


class MatchedBy(StrEnum):
    """How a discharge entry and an intake entry were found to be the same medication."""

    RXNORM = "rxnorm"
    TEXT = "text"  # at least one side had no RxNorm code


FLAGS: Mapping[Change, Code] = {
    Change.CONTINUED: FLAG_UNCHANGED,
    Change.DOSE_CHANGED: FLAG_CHANGED,
    Change.STOPPED: FLAG_CEASED,
    Change.NEW: FLAG_PRESCRIBED,
}


@dataclass(frozen=True, slots=True)
class ReconciliationLine:
    """One medication and its change, with the entry from each list that has it."""

    change: Change
    discharge_entry: MedicationEntry | None
    intake_entry: MedicationEntry | None
    matched_by: MatchedBy | None = None  # None for stopped and new lines

    @property
    def current_entry(self) -> MedicationEntry | None:
        """What the client takes now: the intake entry, unless the medication was stopped."""
        return None if self.change is Change.STOPPED else self.intake_entry


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The reconciled list, the lines behind it for the case manager, and both inputs."""

    reconciled: MedicationList
    lines: tuple[ReconciliationLine, ...]
    discharge: MedicationList
    intake: MedicationList

    def count(self, change: Change) -> int:
        """How many lines have ``change``."""
        return sum(1 for line in self.lines if line.change is change)


def normalised(text: str) -> str:
    """Medication text for matching: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


def reconcile(
    discharge: MedicationList,
    intake: MedicationList,
    *,
    reconciled_identifier: str,
    at: datetime,
) -> Reconciliation:
    """Compare the discharge list with the intake list; raise a MappingError naming every
    ambiguity (list and index) instead of guessing."""
    problems = _prefixed(discharge.problems(), "discharge") + _prefixed(intake.problems(), "intake")
    problems += identifier_problems(reconciled_identifier, "reconciled_identifier")
    problems += datetime_problems(at, "at")
    problems += _duplicates(discharge, "discharge") + _duplicates(intake, "intake")
    raise_if_problems("Medication reconciliation", problems)
    pairs = _match_codes(discharge.entries, intake.entries)
    text_pairs = _match_texts(discharge.entries, intake.entries, pairs, problems)
    raise_if_problems("Medication reconciliation", problems)
    lines = _lines(discharge.entries, intake.entries, pairs, text_pairs)
    current = tuple(e for e in (line.current_entry for line in lines) if e is not None)
    reconciled = MedicationList(
        reconciled_identifier, RECONCILED_TITLE, ListSource.RECONCILED, at, current
    )
    return Reconciliation(reconciled, lines, discharge, intake)


def _prefixed(found: list[Problem], name: str) -> list[Problem]:
    return [Problem(p.path.replace("MedicationList", name, 1), p.message, p.code) for p in found]


def _duplicates(med_list: MedicationList, name: str) -> list[Problem]:
    """The same RxNorm code, or the same uncoded text, twice on one list cannot be matched."""
    found: list[Problem] = []
    first: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(med_list.entries):
        if entry.rxnorm_code is not None:
            key, field = ("rxnorm", entry.rxnorm_code), "rxnorm_code"
            what = f"RxNorm {entry.rxnorm_code}"
        else:
            key, field = ("text", normalised(entry.medication)), "medication"
            what = f"uncoded medication {entry.medication!r}"
        if key in first:
            message = f"{what} is also at entries[{first[key]}]: cannot tell which one to match"
            found.append(Problem(f"{name}.entries[{index}].{field}", message, "business-rule"))
        first.setdefault(key, index)
    return found


def _match_codes(
    discharge: Sequence[MedicationEntry], intake: Sequence[MedicationEntry]
) -> dict[int, int]:
    """discharge index -> intake index for entries with the same RxNorm code."""
    by_code = {e.rxnorm_code: i for i, e in enumerate(intake) if e.rxnorm_code is not None}
    return {
        d: by_code[e.rxnorm_code]
        for d, e in enumerate(discharge)
        if e.rxnorm_code is not None and e.rxnorm_code in by_code
    }


def _match_texts(
    discharge: Sequence[MedicationEntry],
    intake: Sequence[MedicationEntry],
    coded: Mapping[int, int],
    problems: list[Problem],
) -> dict[int, int]:
    """Pairs by normalised text among the entries left, where one side at least is uncoded;
    an entry with more than one candidate is a Problem on either side (the rule is symmetric)."""
    taken = set(coded.values())
    candidates = [
        (d, i)
        for d, left in enumerate(discharge)
        if d not in coded
        for i, right in enumerate(intake)
        if i not in taken
        and (left.rxnorm_code is None or right.rxnorm_code is None)
        and normalised(left.medication) == normalised(right.medication)
    ]
    per_discharge: dict[int, list[int]] = {}
    per_intake: dict[int, list[int]] = {}
    for d, i in candidates:
        per_discharge.setdefault(d, []).append(i)
        per_intake.setdefault(i, []).append(d)
    sides = (("discharge", per_discharge, "intake"), ("intake", per_intake, "discharge"))
    for name, per, other in sides:
        for index, matches in sorted(per.items()):
            if len(matches) > 1:
                where = ", ".join(f"{other}.entries[{m}]" for m in matches)
                message = f"its text matches {where}: cannot tell which one it is"
                path = f"{name}.entries[{index}].medication"
                problems.append(Problem(path, message, "business-rule"))
    return {d: i for d, i in candidates if len(per_discharge[d]) == len(per_intake[i]) == 1}


def _same_dose(left: MedicationEntry, right: MedicationEntry) -> bool:
    return left.dose == right.dose and left.times_per_day == right.times_per_day


def _lines(
    discharge: Sequence[MedicationEntry],
    intake: Sequence[MedicationEntry],
    coded: Mapping[int, int],
    texts: Mapping[int, int],
) -> tuple[ReconciliationLine, ...]:
    """Discharge order first (continued, dose-changed, stopped), then new lines in intake order."""
    lines: list[ReconciliationLine] = []
    for d, left in enumerate(discharge):
        i = coded.get(d, texts.get(d))
        if i is None:
            lines.append(ReconciliationLine(Change.STOPPED, left, None))
            continue
        right = intake[i]
        change = Change.CONTINUED if _same_dose(left, right) else Change.DOSE_CHANGED
        how = MatchedBy.RXNORM if d in coded else MatchedBy.TEXT
        lines.append(ReconciliationLine(change, left, right, how))
    matched = set(coded.values()) | set(texts.values())
    lines += [
        ReconciliationLine(Change.NEW, None, right)
        for i, right in enumerate(intake)
        if i not in matched
    ]
    return tuple(lines)


# --- FHIR R4 List renderings -------------------------------------------------------------------


def to_fhir(
    reconciliation: Reconciliation,
    *,
    id_system: str,
    subject_reference: str,
    discharge_references: Sequence[str],
    intake_references: Sequence[str],
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Fill the reconciled snapshot List (identifier, status, mode, title, code, subject, date,
    entry.item): one MedicationRequest reference per current medication."""
    refs = _references(reconciliation, discharge_references, intake_references)
    current = [line.current_entry for line in reconciliation.lines]
    items = [refs["intake"][entry.identifier] for entry in current if entry is not None]
    return medication.list_to_fhir(
        reconciliation.reconciled,
        id_system=id_system,
        subject_reference=subject_reference,
        entry_references=items,
        resource_id=resource_id,
    )


def changes_to_fhir(
    reconciliation: Reconciliation,
    *,
    id_system: str,
    identifier: str,
    subject_reference: str,
    discharge_references: Sequence[str],
    intake_references: Sequence[str],
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Fill the differences as a List in mode ``changes``: identifier, status, mode, title, code,
    subject, date, note (text matches) and entry (flag, deleted, item) per line."""
    problems = identifier_problems(identifier, "identifier")
    problems += reference_problems(subject_reference, "Patient", "subject_reference")
    raise_if_problems("Medication reconciliation changes", problems)
    refs = _references(reconciliation, discharge_references, intake_references)
    resource: dict[str, Any] = {"resourceType": "List"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["identifier"] = [{"system": id_system, "value": identifier}]
    resource["status"] = "current"
    resource["mode"] = "changes"
    resource["title"] = CHANGES_TITLE
    resource["code"] = LIST_MEDICATIONS.codeable_concept(CHANGES_TEXT)
    resource["subject"] = reference(subject_reference)
    resource["date"] = format_datetime(reconciliation.reconciled.date)
    text_lines = [line for line in reconciliation.lines if line.matched_by is MatchedBy.TEXT]
    notes = [_text_match_note(line) for line in text_lines]
    if notes:
        resource["note"] = [{"text": note} for note in notes]
    entries = [e for line in reconciliation.lines for e in _change_entries(line, refs)]
    if entries:
        resource["entry"] = entries
    return resource


def _text_match_note(line: ReconciliationLine) -> str:
    assert line.discharge_entry is not None and line.intake_entry is not None
    return (
        f"Matched by medication text, not RxNorm code: {line.discharge_entry.medication!r} "
        f"(discharge) and {line.intake_entry.medication!r} (intake)"
    )


def _change_entries(
    line: ReconciliationLine, refs: Mapping[str, Mapping[str, str]]
) -> list[dict[str, Any]]:
    flag = FLAGS[line.change].codeable_concept()
    entries = []
    if line.discharge_entry is not None and line.change in (Change.STOPPED, Change.DOSE_CHANGED):
        item = reference(refs["discharge"][line.discharge_entry.identifier])
        entries.append({"flag": flag, "deleted": True, "item": item})
    if line.intake_entry is not None:
        item = reference(refs["intake"][line.intake_entry.identifier])
        entries.append({"flag": flag, "item": item})
    return entries


def _references(
    reconciliation: Reconciliation,
    discharge_references: Sequence[str],
    intake_references: Sequence[str],
) -> dict[str, dict[str, str]]:
    """Entry identifier -> MedicationRequest reference, per input list; raises on a mismatch."""
    problems: list[Problem] = []
    found: dict[str, dict[str, str]] = {}
    for name, med_list, refs in (
        ("discharge", reconciliation.discharge, discharge_references),
        ("intake", reconciliation.intake, intake_references),
    ):
        field = f"{name}_references"
        if len(refs) != len(med_list.entries):
            count = f"{len(refs)} for {len(med_list.entries)} entries"
            problems.append(Problem(field, f"one reference per entry is needed: {count}"))
        for index, target in enumerate(refs):
            problems += medication.item_problems(target, f"{field}[{index}]")
        found[name] = {e.identifier: r for e, r in zip(med_list.entries, refs, strict=False)}
    raise_if_problems("Medication reconciliation references", problems)
    return found
