"""The case manager states the IOP intake medication list against the residential discharge
list, line by line (continue / change the dose / stop) plus new medications, and the referral's
list is reconciled (workflow 2, ``medications.reconcile_referral``). The tracker's form, the API
and the CLI give the same fields:

- ``line-<position>``: ``continue`` | ``change-dose`` | ``stop`` for each discharge line;
- ``dose-<position>``: the new dose of a changed line, ``<number> <unit>`` (e.g. ``100 mg``),
  and ``times-<position>``: how many times a day (optional: as often as before);
- ``new-<n>-medication``, ``new-<n>-rxnorm`` (optional, an RxCUI), ``new-<n>-dose``,
  ``new-<n>-times`` for up to MAX_NEW new medications.

A changed dose is structured (value and unit) because reconciliation compares the structured
dose and frequency (``mappers.reconciliation._same_dose``): a dose only in text could not be told
apart from the one before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from integration.db import models
from integration.db.referral_lookup import identifier_stem
from integration.medications import lists as medication_lists
from integration.medications import workflow as medications
from mappers.errors import InvalidInputError, Problem
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from mappers.registry import MappingContext

CONTINUE, CHANGE_DOSE, STOP = "continue", "change-dose", "stop"
CHOICES = (CONTINUE, CHANGE_DOSE, STOP)
MAX_NEW = 3
_DOSE = re.compile(r"(\d{1,5}(?:\.\d{1,3})?)\s*([A-Za-z][A-Za-z/]{0,15})")


@dataclass(frozen=True, slots=True)
class Reconcile:
    """The intake list as stated: the discharge entries kept (changed where the dose changed)
    and the new ones."""

    kept: tuple[MedicationEntry, ...]


def parse_reconcile(
    fields: Mapping[str, str | None], discharge: MedicationList, intake_id: str
) -> Reconcile:
    """The stated intake list; InvalidInputError naming each field that is wrong."""
    problems: list[Problem] = []
    kept: list[MedicationEntry] = []
    for position, entry in enumerate(discharge.entries):
        stated = _line(fields, position, entry, problems)
        if stated is not None:
            kept.append(replace(stated, identifier=f"{intake_id}-{position}"))
    for n in range(1, MAX_NEW + 1):
        new = _new(fields, n, problems)
        if new is not None:
            kept.append(replace(new, identifier=f"{intake_id}-N{n}"))
    if problems:
        raise InvalidInputError.from_problems("the reconciliation", problems)
    return Reconcile(tuple(kept))


def reconcile(
    session: Session,
    referral: models.Referral,
    fields: Mapping[str, str | None],
    *,
    at: datetime,
    context: MappingContext,
) -> None:
    """Record the stated intake list and reconcile it against the discharge list (queued)."""
    record = medications.current_list(session, referral, ListSource.RESIDENTIAL_DISCHARGE)
    if record is None:
        # A referral may come without a medication list (a BSeR referral carries none; the
        # tracker says "none in the package"): the stated list is reconciled against an empty
        # discharge list, stored as such, so every medication the case manager states is new.
        none_sent = MedicationList(
            f"{identifier_stem(session, referral)}-discharge-medications",
            "Residential discharge medications: none in the referral package",
            ListSource.RESIDENTIAL_DISCHARGE, at, (),
        )  # fmt: skip
        record = medication_lists.store_discharge_list(session, referral, none_sent, at)
    intake_id = f"{identifier_stem(session, referral)}-INTAKE"
    stated = parse_reconcile(fields, medication_lists.load_list(record), intake_id)
    intake = MedicationList(
        intake_id, "IOP intake medications", ListSource.IOP_INTAKE, at, stated.kept
    )
    medication_lists.record_intake_list(session, referral.id, intake, at)
    medications.reconcile_referral(session, referral.id, at=at, context=context)


def _line(
    fields: Mapping[str, str | None], position: int, entry: MedicationEntry, problems: list[Problem]
) -> MedicationEntry | None:
    name = f"line-{position}"
    choice = (fields.get(name) or CONTINUE).strip()
    if choice not in CHOICES:
        problems.append(Problem(name, f"{choice[:30]!r} is not one of {', '.join(CHOICES)}"))
        return None
    if choice == STOP:
        return None
    if choice == CONTINUE:
        return entry
    dose, times = _dose(fields, f"dose-{position}", f"times-{position}", problems, required=True)
    if dose is None:
        return None
    times = entry.times_per_day if times is None else times  # not given: as often as before
    if (dose, times) == (entry.dose, entry.times_per_day):
        problems.append(Problem(f"dose-{position}", "is the dose before: choose continue"))
        return None
    return replace(entry, dose=dose, times_per_day=times, dose_text=_sig(dose, times))


def _new(
    fields: Mapping[str, str | None], n: int, problems: list[Problem]
) -> MedicationEntry | None:
    prefix = f"new-{n}-"
    medication = (fields.get(prefix + "medication") or "").strip()
    rxnorm = (fields.get(prefix + "rxnorm") or "").strip() or None
    given_dose = (fields.get(prefix + "dose") or "").strip()
    if not medication:
        if rxnorm or given_dose:
            problems.append(Problem(prefix + "medication", "name the new medication", "required"))
        return None
    if len(medication) > 200:
        problems.append(Problem(prefix + "medication", "at most 200 characters"))
    if rxnorm is not None and not (rxnorm.isdigit() and len(rxnorm) <= 10):
        problems.append(Problem(prefix + "rxnorm", "an RxNorm code (RxCUI) is all digits"))
    dose, times = _dose(fields, prefix + "dose", prefix + "times", problems, required=False)
    return MedicationEntry(
        "new", medication[:200], rxnorm, dose=dose, times_per_day=times,
        dose_text=_sig(dose, times) if dose else None,
    )  # fmt: skip


def _dose(
    fields: Mapping[str, str | None],
    name: str,
    times_name: str,
    problems: list[Problem],
    *,
    required: bool,
) -> tuple[Dose | None, int | None]:
    text = (fields.get(name) or "").strip()
    times_text = (fields.get(times_name) or "").strip()
    times = None
    if times_text:
        if not (times_text.isdigit() and 1 <= int(times_text) <= 12):
            problems.append(Problem(times_name, "times a day: a whole number from 1 to 12"))
        else:
            times = int(times_text)
    if not text:
        if required:
            problems.append(Problem(name, "give the new dose, e.g. 100 mg", "required"))
        return None, times
    match = _DOSE.fullmatch(text)
    if match is None:
        problems.append(Problem(name, f"{text[:30]!r} is not a dose like 100 mg"))
        return None, times
    return Dose(float(match.group(1)), match.group(2)), times


def _sig(dose: Dose | None, times: int | None) -> str | None:
    if dose is None:
        return None
    amount = f"{dose.value:g} {dose.unit}"
    return f"{amount} {times} times a day" if times else amount
