"""Medication list <- FHIR R4 MedicationStatement and List: ``from_fhir`` and ``list_from_fhir``,
the readers of what ``mappers.medication`` writes.

Only one Dosage with a plain N-times-a-day timing and one doseQuantity is modelled; the List
kind is recognised by its fixed List.code.text. What is not modelled is reported as lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from fhir_profiles.terminology.systems import NDC, RXNORM, UCUM
from fhir_profiles.terminology.workflow import LIST_MEDICATIONS
from mappers.errors import MappingError, Problem, raise_if_problems
from mappers.fhir_coding import CODING_KEYS, CONCEPT_KEYS, read_known_coding
from mappers.fhir_read import (
    PERIOD_KEYS,
    modifier_extension_problems,
    open_resource,
    read_code,
    read_datetime,
    read_day,
    read_identifier_list,
    read_list,
    read_list_in,
    read_str,
    read_str_in,
)
from mappers.fhir_reference import (
    indexed_links,
    read_reference_list,
    read_reference_to,
    read_required_reference,
)
from mappers.loss import Loss, Mapped, moved_path, unmapped_keys
from mappers.medication import (
    ITEM_TYPES,
    LIST_STATUSES,
    SOURCE_TEXT,
    STATEMENT_STATUSES,
    UCUM_DOSE_UNITS,
    Dose,
    ListSource,
    MedicationEntry,
    MedicationList,
    is_ndc,
)

_SOURCE_BY_TEXT = {text: source for source, text in SOURCE_TEXT.items()}


_STATEMENT_MAPPED = frozenset(
    {"identifier", "modifierExtension", "status", "medicationCodeableConcept", "subject"}
    | {"effectivePeriod", "reasonReference", "dosage"}
)


def from_fhir(resource: Any, *, id_system: str) -> Mapped[MedicationEntry]:
    """Read a MedicationEntry from MedicationStatement.identifier, status,
    medicationCodeableConcept, effectivePeriod and dosage; links ``subject`` and
    ``reasonReference[i]``."""
    problems: list[Problem] = []
    fhir, losses = open_resource(resource, "MedicationStatement", _STATEMENT_MAPPED, problems)
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
        identifier, drug[0], drug[1], status, dose_text, dose, times, start, end, drug[2]
    )
    raise_if_problems("MedicationStatement", entry.problems())
    links = {"subject": subject}
    if reasons:
        links |= indexed_links("reasonReference", enumerate(reasons))
    return Mapped(entry, links, tuple(losses))


def _read_medication(
    fhir: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> tuple[str, str | None, str | None] | None:
    """Text (or the RxNorm, else the NDC display), the first RxNorm code and the first NDC
    (US Core's medication binding is RxNorm, but US EHRs often send the dispensed package's
    NDC beside it or alone); any other coding is lost."""
    path = "MedicationStatement.medicationCodeableConcept"
    concept = fhir.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        problems.append(Problem(path, "is required (a coded or text medication)", "required"))
        return None
    losses += unmapped_keys(concept, CONCEPT_KEYS, path=path)
    kept: dict[str, tuple[str | None, Any, str]] = {}  # system -> (code, display, path)
    for index, coding in enumerate(read_list_in(concept, "coding", path, problems)):
        at = f"{path}.coding[{index}]"
        system = coding.get("system") if isinstance(coding, dict) else None
        if system not in (RXNORM, NDC) or system in kept:
            losses.append(Loss(at, "coding outside RxNorm and NDC (or a second one of them)"))
            continue
        code = read_str_in(coding, "code", at, problems, required=True)
        if system == NDC and code is not None and not is_ndc(code):
            losses.append(Loss(at, f"{code!r} is not a 10- or 11-digit NDC"))
            continue
        kept[system] = (code, coding.get("display"), at)
        losses += unmapped_keys(coding, CODING_KEYS, path=at)
    displays = [kept[s][1] for s in (RXNORM, NDC) if s in kept and kept[s][1] is not None]
    text = concept.get("text", displays[0] if displays else None)
    for _, display, at in kept.values():
        if display is not None and display != text:
            losses.append(Loss(f"{at}.display", "differs from text; the text is kept"))
    text = read_str(text, f"{path}.text", problems, required=True)
    codes = {system: code for system, (code, _, _) in kept.items()}
    return None if text is None else (text, codes.get(RXNORM), codes.get(NDC))


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
    fhir, losses = open_resource(resource, "List", _LIST_MAPPED, problems)
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
    """entry.item references, MedicationRequests or MedicationStatements; flags etc. are lost."""
    items: list[str] = []
    for index, entry in enumerate(read_list(value, "List.entry", problems)):
        path = f"List.entry[{index}]"
        if not isinstance(entry, dict) or entry.get("item") is None:
            problems.append(Problem(f"{path}.item", "is required", "required"))
            continue
        losses += unmapped_keys(entry, _LIST_ENTRY_MAPPED, path=path)
        target = read_reference_to(entry["item"], f"{path}.item", ITEM_TYPES, problems, losses)
        if target in items:
            problems.append(Problem(f"{path}.item", f"{target!r} is listed twice"))
        elif target:
            items.append(target)
    return items


_LIST_ENTRY_MAPPED = frozenset({"item"})


def read_rewritten(
    statement: Mapping[str, Any], *, id_system: str, what: str, renames: Mapping[str, str]
) -> Mapped[MedicationEntry]:
    """Read a MedicationStatement rewritten from another shape (a MedicationRequest), every
    problem and loss renamed back to the original's paths (``renames``, ``moved_path``)."""
    try:
        mapped = from_fhir(statement, id_system=id_system)
    except MappingError as error:
        moved = [Problem(moved_path(p.path, renames), p.message, p.code) for p in error.problems]
        raise MappingError.from_problems(what, moved) from None
    losses = tuple(Loss(moved_path(x.path, renames), x.reason) for x in mapped.losses)
    return Mapped(mapped.value, mapped.links, losses)
