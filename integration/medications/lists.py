"""A referral's medication lists in the store: the residential discharge list, the IOP intake
list and the reconciled list, each line keeping its whole MedicationEntry as JSON in
``medication_line.detail`` (migration 0004: the columns hold no structured dose, times a day or
identifier, which reconciliation compares and the server keys on).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from integration.db import repositories as repo
from integration.db.models import ListSource as StoredSource
from integration.db.models import MedicationLine, MedicationListRecord, Referral
from integration.db.referral_lookup import find_referral
from mappers.errors import Problem, raise_if_problems
from mappers.medication import SOURCE_TEXT, Dose, ListSource, MedicationEntry, MedicationList
from mappers.reconciliation import Change


def record_discharge_list(
    session: Session, referral_key: int, discharge: MedicationList, at: datetime
) -> MedicationListRecord:
    """Store (or replace) the residential discharge list of the referral's package."""
    referral = find_referral(session, referral_key)
    return _store_list(session, referral, discharge, ListSource.RESIDENTIAL_DISCHARGE, at)


def store_discharge_list(
    session: Session, referral: Referral, discharge: MedicationList, at: datetime
) -> MedicationListRecord:
    """``record_discharge_list`` for a referral already at hand (the inbound package's)."""
    return _store_list(session, referral, discharge, ListSource.RESIDENTIAL_DISCHARGE, at)


def record_intake_list(
    session: Session, referral_key: int, intake: MedicationList, at: datetime
) -> MedicationListRecord:
    """Store (or replace, same identifier) the IOP intake list; the newest recorded is current."""
    referral = find_referral(session, referral_key)
    return _store_list(session, referral, intake, ListSource.IOP_INTAKE, at)


def _store_list(
    session: Session,
    referral: Referral,
    med_list: MedicationList,
    source: ListSource,
    at: datetime,
) -> MedicationListRecord:
    problems = med_list.problems()
    if med_list.source not in (None, source):
        problems.append(
            Problem("MedicationList.source", f"expected {source}, not {med_list.source}")
        )
    record = repo.get_medication_list(session, referral, med_list.identifier)
    if record is not None and record.source != source:
        message = "is already the identifier of another kind of list of this referral"
        problems.append(Problem("MedicationList.identifier", message, "duplicate"))
    raise_if_problems("MedicationList", problems)
    lines = [_list_line(i, entry) for i, entry in enumerate(med_list.entries)]
    return save_list(session, referral, med_list.identifier, source, at, lines)


def save_list(
    session: Session,
    referral: Referral,
    business_id: str,
    source: ListSource,
    at: datetime,
    lines: list[MedicationLine],
) -> MedicationListRecord:
    """Insert the list, or replace the lines of the one stored under ``business_id``."""
    record = repo.get_medication_list(session, referral, business_id)
    if record is None:
        record = repo.add_medication_list(
            session,
            referral,
            business_id=business_id,
            source=StoredSource(source.value),
            recorded_at=at,
            lines=(),
        )
    else:
        record.lines.clear()
        session.flush()  # delete the old lines first: (list_id, position) is unique
        record.recorded_at = at
    record.lines.extend(lines)
    session.flush()
    return record


def _list_line(position: int, entry: MedicationEntry) -> MedicationLine:
    """A line of a discharge or intake list: the columns for queries, the entry in ``detail``."""
    return stored_line(position, entry, None, {"current": entry_json(entry)})


def stored_line(
    position: int, shown: MedicationEntry, change: Change | None, detail: dict[str, Any]
) -> MedicationLine:
    return MedicationLine(
        position=position,
        rxnorm_code=shown.rxnorm_code,
        display=shown.medication[:255],  # detail keeps the full text
        dose_text=None if shown.dose_text is None else shown.dose_text[:255],
        status="stopped" if change is Change.STOPPED else shown.status,
        change=None if change is None else change.value,
        detail=detail,
    )


def entry_json(entry: MedicationEntry) -> dict[str, Any]:
    """A MedicationEntry as plain JSON (every field; dates ISO 8601)."""
    return {
        "identifier": entry.identifier,
        "medication": entry.medication,
        "rxnorm_code": entry.rxnorm_code,
        "status": entry.status,
        "dose_text": entry.dose_text,
        "dose": None
        if entry.dose is None
        else {"value": entry.dose.value, "unit": entry.dose.unit},
        "times_per_day": entry.times_per_day,
        "start": None if entry.start is None else entry.start.isoformat(),
        "end": None if entry.end is None else entry.end.isoformat(),
        "ndc_code": entry.ndc_code,
    }


def entry_from_json(data: Mapping[str, Any]) -> MedicationEntry:
    """The MedicationEntry ``entry_json`` wrote."""
    dose = data.get("dose")
    return MedicationEntry(
        identifier=str(data["identifier"]),
        medication=str(data["medication"]),
        rxnorm_code=data.get("rxnorm_code"),
        status=str(data.get("status", "active")),
        dose_text=data.get("dose_text"),
        dose=None if dose is None else Dose(float(dose["value"]), str(dose["unit"])),
        times_per_day=data.get("times_per_day"),
        start=None if data.get("start") is None else date.fromisoformat(data["start"]),
        end=None if data.get("end") is None else date.fromisoformat(data["end"]),
        ndc_code=data.get("ndc_code"),  # absent from entries stored before NDCs were kept
    )


def _current_of(line: MedicationLine, list_id: str) -> MedicationEntry | None:
    """The line's entry; a line stored without detail (before migration 0004) is rebuilt from
    its columns, without structured dose, under a positional identifier."""
    if line.detail is None:
        return MedicationEntry(
            f"{list_id}-{line.position}", line.display, line.rxnorm_code, line.status,
            line.dose_text,
        )  # fmt: skip
    current = line.detail.get("current")
    return None if current is None else entry_from_json(current)


def load_list(record: MedicationListRecord) -> MedicationList:
    """The stored list as a MedicationList (a reconciled list: its current entries only).

    The list's own title and date are not stored: the title is the one of its kind, the date
    when it was recorded."""
    source = ListSource(record.source)
    entries = (_current_of(line, record.business_id) for line in record.lines)
    return MedicationList(
        record.business_id,
        SOURCE_TEXT[source],
        source,
        record.recorded_at,
        tuple(e for e in entries if e is not None),
    )
