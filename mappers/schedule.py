"""One planned IOP modality <-> one FHIR R4 CarePlan.activity with a weekly scheduledTiming."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir_profiles.terminology.clinical import SNOMED_BY_MODALITY
from fhir_profiles.terminology.local import MODALITIES
from fhir_profiles.terminology.systems import IOP_MODALITY
from mappers.errors import Problem
from mappers.fhir_coding import has_coding_in, read_coded
from mappers.fhir_read import modifier_extension_problems, read_str, read_str_in
from mappers.fhir_write import number
from mappers.loss import Loss, unmapped_keys

# Timing.repeat.dayOfWeek, required binding (R4 valueset-days-of-week.html).
DAYS_OF_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Timing.repeat.when, required binding to EventTiming (R4 valueset-event-timing.html): MORN and
# EVE are "during the morning/evening, exact time by institution convention", which is what a
# 3-hour morning or evening IOP block is.
TIME_BLOCKS = {"morning": "MORN", "evening": "EVE"}
# R4 has no coded element for in-person vs virtual delivery on CarePlan.activity.detail (R5 adds
# Encounter.virtualService; fhir_profiles defines no extension yet), so delivery rides on
# detail.location as a display-only Reference, which R4 allows (references.html#Reference).
DELIVERY_DISPLAYS = {"in-person": "In person", "telehealth": "Telehealth"}
# CarePlan.activity.detail.status, required binding (R4 valueset-care-plan-activity-status.html).
ACTIVITY_STATUSES = frozenset(
    {"not-started", "scheduled", "in-progress", "on-hold", "completed", "cancelled", "stopped"}
    | {"unknown", "entered-in-error"}
)
HOURS_PER_DAY = 24


@dataclass(frozen=True, slots=True)
class PlannedModality:
    """A modality in the plan and its weekly schedule (e.g. group therapy, 3 evenings, 3 h)."""

    modality: str
    sessions_per_week: int
    hours_per_session: float
    days_of_week: tuple[str, ...] = ()
    time_block: str | None = None
    delivery: str | None = None
    status: str = "scheduled"

    @property
    def hours_per_week(self) -> float:
        """Planned hours a week: sessions per week times hours per session."""
        return self.sessions_per_week * self.hours_per_session

    def problems(self, path: str) -> list[Problem]:
        """Every impossible or unknown value, each named under ``path``."""
        found: list[Problem] = []
        for name, value, allowed in (
            ("modality", self.modality, MODALITIES),
            ("time_block", self.time_block, TIME_BLOCKS),
            ("delivery", self.delivery, DELIVERY_DISPLAYS),
            ("status", self.status, ACTIVITY_STATUSES),
        ):
            if value is not None and value not in allowed:
                found.append(Problem(f"{path}.{name}", f"{value!r} is not a known code"))
        sessions = self.sessions_per_week
        if isinstance(sessions, bool) or not isinstance(sessions, int) or sessions <= 0:
            found.append(
                Problem(f"{path}.sessions_per_week", f"{sessions!r} is not a positive count")
            )
        hours = self.hours_per_session
        if not 0 < hours <= HOURS_PER_DAY:
            found.append(
                Problem(f"{path}.hours_per_session", f"{hours!r} is not within 0-24 hours")
            )
        unknown = [d for d in self.days_of_week if d not in DAYS_OF_WEEK]
        if unknown or len(set(self.days_of_week)) != len(self.days_of_week):
            found.append(
                Problem(f"{path}.days_of_week", f"{self.days_of_week!r}: unknown or repeated days")
            )
        return found


def activity_to_fhir(planned: PlannedModality) -> dict[str, Any]:
    """Fill CarePlan.activity.detail code (iop-modality + verified SNOMED CT), status,
    scheduledTiming.repeat and location (delivery)."""
    modality = MODALITIES[planned.modality]
    codings = [modality.coding()]
    if planned.modality in SNOMED_BY_MODALITY:
        codings.append(SNOMED_BY_MODALITY[planned.modality].coding())
    # "frequency per period" with period 1 wk is the sessions a week (R4 datatypes.html#Timing).
    repeat: dict[str, Any] = {
        "frequency": planned.sessions_per_week,
        "period": 1,
        "periodUnit": "wk",
    }
    if planned.days_of_week:
        repeat["dayOfWeek"] = list(planned.days_of_week)
    if planned.time_block is not None:
        repeat["when"] = [TIME_BLOCKS[planned.time_block]]
    repeat["duration"] = number(planned.hours_per_session)
    repeat["durationUnit"] = "h"
    detail: dict[str, Any] = {
        "code": {"coding": codings, "text": modality.display},
        "status": planned.status,
        "scheduledTiming": {"repeat": repeat},
    }
    if planned.delivery is not None:
        detail["location"] = {"display": DELIVERY_DISPLAYS[planned.delivery]}
    return {"detail": detail}


def activity_from_fhir(
    activity: Mapping[str, Any], path: str, problems: list[Problem], losses: list[Loss]
) -> tuple[PlannedModality | None, dict[str, str]]:
    """Read a PlannedModality from one CarePlan.activity; return it and the FHIR path of each
    of its fields (to name problems found later)."""
    detail = activity["detail"]
    # R4 extensibility.html#modifierExtension: an unknown modifier may change the meaning.
    problems += modifier_extension_problems(activity, path)
    problems += modifier_extension_problems(detail, f"{path}.detail")
    losses += unmapped_keys(activity, _ACTIVITY_MAPPED, path=path)
    path = f"{path}.detail"
    losses += unmapped_keys(detail, _DETAIL_MAPPED, path=path)
    code = detail["code"]
    modality = read_coded(code, IOP_MODALITY, f"{path}.code", problems, losses, derived=_own(code))
    status = read_str_in(detail, "status", path, problems, required=True)
    delivery = _read_delivery(detail.get("location"), f"{path}.location", losses)
    timing = detail.get("scheduledTiming")
    if not isinstance(timing, dict) or not isinstance(timing.get("repeat"), Mapping):
        problems.append(Problem(f"{path}.scheduledTiming.repeat", "is required", "required"))
        return None, {}
    losses += unmapped_keys(timing, _TIMING_MAPPED, path=f"{path}.scheduledTiming")
    repeat_path = f"{path}.scheduledTiming.repeat"
    schedule = _read_repeat(timing["repeat"], repeat_path, problems, losses)
    if modality is None or status is None or schedule is None:
        return None, {}
    sessions, hours, days, block = schedule
    planned = PlannedModality(modality, sessions, hours, days, block, delivery, status)
    fields = {
        "modality": f"{path}.code",
        "sessions_per_week": f"{repeat_path}.frequency",
        "hours_per_session": f"{repeat_path}.duration",
        "days_of_week": f"{repeat_path}.dayOfWeek",
        "time_block": f"{repeat_path}.when",
        "delivery": f"{path}.location",
        "status": f"{path}.status",
    }
    return planned, fields


_ACTIVITY_MAPPED = frozenset({"detail", "modifierExtension"})
_DETAIL_MAPPED = frozenset({"code", "status", "scheduledTiming", "location", "modifierExtension"})
_TIMING_MAPPED = frozenset({"repeat"})


def _own(concept: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The SNOMED CT coding activity_to_fhir writes beside this concept's iop-modality code."""
    code = None
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and coding.get("system") == IOP_MODALITY:
            code = coding.get("code")
            break
    snomed = SNOMED_BY_MODALITY.get(code) if isinstance(code, str) else None
    return {(snomed.system, snomed.code)} if snomed is not None else set()


_DELIVERY_BY_DISPLAY = {display: code for code, display in DELIVERY_DISPLAYS.items()}


def _read_delivery(location: Any, path: str, losses: list[Loss]) -> str | None:
    if location is None:
        return None
    if isinstance(location, dict) and len(location) == 1 and "display" in location:
        delivery = _DELIVERY_BY_DISPLAY.get(location["display"])
        if delivery is not None:
            return delivery
    losses.append(Loss(path, "location other than in person / telehealth not modelled"))
    return None


# The Timing.repeat elements a weekly schedule uses; any other (count, bounds, timeOfDay) is lost.
_WEEKLY_KEYS = frozenset({"frequency", "period", "periodUnit"})
_REPEAT_KEYS = _WEEKLY_KEYS | {"dayOfWeek", "when", "duration", "durationUnit"}


def _read_repeat(
    repeat: Mapping[str, Any], path: str, problems: list[Problem], losses: list[Loss]
) -> tuple[int, float, tuple[str, ...], str | None] | None:
    losses += unmapped_keys(repeat, _REPEAT_KEYS, path=path)
    days = repeat.get("dayOfWeek") or []
    if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
        problems.append(Problem(f"{path}.dayOfWeek", "expected a list of day codes", "structure"))
        days = []
    sessions = _read_sessions(repeat, path, len(days), problems)
    hours = _read_hours(repeat, path, problems)
    block = _read_block(repeat.get("when") or [], f"{path}.when", losses)
    if sessions is None or hours is None:
        return None
    return sessions, hours, tuple(days), block


def _read_sessions(
    repeat: Mapping[str, Any], path: str, day_count: int, problems: list[Problem]
) -> int | None:
    frequency = repeat.get("frequency")
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    if frequency is None and period is None and day_count:
        # Only dayOfWeek given: one session on each listed day (as fhir_profiles' example does).
        return day_count
    if isinstance(frequency, bool) or not (frequency is None or isinstance(frequency, int)):
        problems.append(Problem(f"{path}.frequency", f"expected an integer, got {frequency!r}"))
        return None
    if period != 1 or unit != "wk":
        problems.append(
            Problem(
                path,
                f"expected a weekly schedule (period 1, periodUnit wk), got {period!r} {unit!r}",
            )
        )
        return None
    # R4 Timing.repeat.frequency: "if no frequency is stated, ... once per period".
    return 1 if frequency is None else frequency


_PER_HOUR = {"h": 1, "min": 60}


def _read_hours(repeat: Mapping[str, Any], path: str, problems: list[Problem]) -> float | None:
    duration, unit = repeat.get("duration"), repeat.get("durationUnit")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        problems.append(
            Problem(f"{path}.duration", f"hours per session are required, got {duration!r}")
        )
        return None
    # durationUnit is a UCUM unit of time (R4 valueset-units-of-time.html); sessions are h or min.
    per_hour = _PER_HOUR.get(unit) if isinstance(unit, str) else None
    if per_hour is None:
        problems.append(Problem(f"{path}.durationUnit", f"expected 'h' or 'min', got {unit!r}"))
        return None
    return float(duration) / per_hour


_BLOCK_BY_EVENT = {event: block for block, event in TIME_BLOCKS.items()}


def _read_block(when: Any, path: str, losses: list[Loss]) -> str | None:
    block = None
    for index, event in enumerate(when if isinstance(when, list) else [when]):
        if block is None and event in _BLOCK_BY_EVENT:
            block = _BLOCK_BY_EVENT[event]
        else:
            losses.append(Loss(f"{path}[{index}]", "only one morning/evening block is kept"))
    return block


# --- The plan's other activities: progress review cadence and family involvement -------------
# Neither has a verified code, and fhir_profiles has no extension for them: each is an activity
# with a text-only detail.code, recognised on input by that exact text (and nothing else).
REVIEW_TEXT = "Progress review"
FAMILY_TEXT = "Family involvement"
_REVIEW_REPEAT = "{}.detail.scheduledTiming.repeat"


def review_activity(every_days: int, status: str) -> dict[str, Any]:
    """Fill a CarePlan.activity "Progress review" repeating once every ``every_days`` days."""
    repeat = {"frequency": 1, "period": every_days, "periodUnit": "d"}
    code = {"text": REVIEW_TEXT}
    return {"detail": {"code": code, "status": status, "scheduledTiming": {"repeat": repeat}}}


def family_activity(text: str, status: str) -> dict[str, Any]:
    """Fill a CarePlan.activity "Family involvement" whose detail.description is ``text``."""
    return {"detail": {"code": {"text": FAMILY_TEXT}, "status": status, "description": text}}


def activity_kind(activity: Any) -> str | None:
    """Tell a modality activity ("modality") from the review and family ones (their text)."""
    detail = activity.get("detail") if isinstance(activity, dict) else None
    if not isinstance(detail, dict):
        return None
    code = detail.get("code")
    if isinstance(code, Mapping) and has_coding_in(code.get("coding"), IOP_MODALITY):
        return "modality"
    for text in (REVIEW_TEXT, FAMILY_TEXT):
        if detail.get("code") == {"text": text} and set(activity) == {"detail"}:
            return text
    return None


def review_from_fhir(
    detail: Mapping[str, Any],
    path: str,
    status: str | None,
    problems: list[Problem],
    losses: list[Loss],
) -> tuple[int | None, str]:
    """Read the review cadence (once every N days); return it and the FHIR path of N."""
    losses += _auxiliary_losses(detail, _REVIEW_DETAIL_MAPPED, path, status)
    problems += modifier_extension_problems(detail, f"{path}.detail")
    here = _REVIEW_REPEAT.format(path)
    timing = detail.get("scheduledTiming")
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(timing, dict) or not isinstance(repeat, dict):
        problems.append(Problem(here, "is required", "required"))
        return None, here
    losses += unmapped_keys(timing, _TIMING_MAPPED, path=f"{path}.detail.scheduledTiming")
    losses += unmapped_keys(repeat, _WEEKLY_KEYS, path=here)
    period = repeat.get("period")
    if repeat.get("frequency", 1) != 1 or repeat.get("periodUnit") != "d":
        problems.append(Problem(here, "expected once every N days (frequency 1, periodUnit d)"))
    elif isinstance(period, bool) or not isinstance(period, int):
        problems.append(Problem(f"{here}.period", f"expected a whole number, got {period!r}"))
    else:
        return period, f"{here}.period"
    return None, here


def family_from_fhir(
    detail: Mapping[str, Any],
    path: str,
    status: str | None,
    problems: list[Problem],
    losses: list[Loss],
) -> tuple[str | None, str]:
    """Read the family involvement text; return it and its FHIR path."""
    losses += _auxiliary_losses(detail, _FAMILY_DETAIL_MAPPED, path, status)
    problems += modifier_extension_problems(detail, f"{path}.detail")
    here = f"{path}.detail.description"
    return read_str(detail.get("description"), here, problems, required=True), here


_REVIEW_DETAIL_MAPPED = frozenset({"code", "status", "modifierExtension", "scheduledTiming"})
_FAMILY_DETAIL_MAPPED = frozenset({"code", "status", "modifierExtension", "description"})


def _auxiliary_losses(
    detail: Mapping[str, Any], known: frozenset[str], path: str, status: str | None
) -> list[Loss]:
    """Unmapped keys of an auxiliary activity's detail (``known`` includes code and status)."""
    losses = unmapped_keys(detail, known, path=f"{path}.detail")
    if detail.get("status") != status:
        losses.append(Loss(f"{path}.detail.status", "differs from the plan's status; not kept"))
    return losses
