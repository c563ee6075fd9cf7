"""One handoff as the case managers' tracker shows it: the timeline of the step-down (referral
received, decision, intake, sessions and no-shows, reconciliation, IOP discharge, aftercare
acknowledged, and the FUI 7- and 30-day deadlines), the medication reconciliation, the PHQ-9 and
GAD-7 trends with their severity bands, and the plan's weekly hours against the ASAM 2.1 band.

Read from the store only; the caller's ``Scope`` (``integration.tenancy.scope``) scopes
the one query that finds the referral, so another organization's referral is never read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_profiles.terminology import assessments
from fhir_profiles.terminology.clinical import ASAM_2_1_INTENSIVE_OUTPATIENT
from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.medications.workflow import (
    ReconciliationView,
    current_list,
    medication_differences,
)
from integration.tenancy.scope import Scope
from integration.tracker import handoffs
from integration.tracker.handoffs import HandoffView
from integration.workflow_errors import ReferralNotFound
from mappers.care_plan import IOP_WEEKLY_HOURS
from mappers.medication import ListSource
from mappers.schedule import PlannedModality

log = logging.getLogger(__name__)

INSTRUMENTS = (assessments.PHQ9, assessments.GAD7)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One dated event of a handoff; ``at`` is None when only the day is known."""

    on: date
    at: datetime | None
    kind: str
    label: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One score on a trend chart; ``day`` counts from the first score (the x axis)."""

    authored: datetime
    total: int
    severity: str
    day: int


@dataclass(frozen=True, slots=True)
class Trend:
    """One instrument's scores, oldest first, with its range and severity bands."""

    title: str
    max_total: int
    bands: tuple[tuple[int, int, str], ...]  # (lowest, highest, label), lowest band first
    points: tuple[TrendPoint, ...]

    @property
    def span_days(self) -> int:
        """Days from the first to the last score (at least 1, the width of the x axis)."""
        return max(1, self.points[-1].day) if self.points else 1


@dataclass(frozen=True, slots=True)
class PlanHours:
    """The treatment plan's weekly hours by modality, and the ASAM 2.1 band they should meet."""

    identifier: str
    level_of_care: str | None
    modalities: tuple[PlannedModality, ...]
    band: tuple[float, float] = IOP_WEEKLY_HOURS

    @property
    def hours(self) -> float:
        """Planned treatment hours a week (rounded off float noise)."""
        return round(sum(m.hours_per_week for m in self.modalities), 6)

    @property
    def band_applies(self) -> bool:
        """The 9-19 hours band is the rule of ASAM level 2.1 (intensive outpatient) only."""
        return self.level_of_care == ASAM_2_1_INTENSIVE_OUTPATIENT.code

    @property
    def in_band(self) -> bool:
        """Whether the weekly hours lie within the band, edges included."""
        return self.band[0] <= self.hours <= self.band[1]


@dataclass(frozen=True, slots=True)
class HandoffDetail:
    """Everything the tracker shows of one handoff."""

    handoff: HandoffView
    client_mrn: str
    package_problems: tuple[str, ...]  # why the package did not map: it can only be declined
    timeline: tuple[TimelineEvent, ...]
    reconciliation: ReconciliationView | None
    discharge_medications: int  # lines of the residential discharge list
    trends: tuple[Trend, ...]
    plan: PlanHours | None
    # The package as read (mappers.referral_package.summary), what could not be kept (losses)
    package: dict[str, Any] | None = None
    losses: tuple[dict[str, str], ...] = ()


def handoff_detail(
    session: Session, referral_key: int, *, scope: Scope, today: date
) -> HandoffDetail:
    """Timeline, reconciliation, trends and plan hours of one handoff of the organization."""
    where = (
        models.Referral.id == referral_key,
        models.Referral.iop_organization.in_(scope.organizations),
    )
    row = session.execute(handoffs.handoff_query(None).where(*where)).first()
    if row is None:
        # Another organization's referral is "not found" too: its existence is not disclosed.
        raise ReferralNotFound(f"no referral {referral_key}")
    referral, view = row[0], handoffs.handoff_view(row, today)
    link = session.scalar(select(ReferralLink).where(ReferralLink.referral_id == referral.id))
    discharge_list = current_list(session, referral, ListSource.RESIDENTIAL_DISCHARGE)
    problems = link.problems if link is not None else []
    return HandoffDetail(
        handoff=view,
        client_mrn=referral.client_mrn,
        package_problems=tuple(f"{p['path']}: {p['message']}" for p in problems),
        timeline=tuple(sorted(_timeline(session, referral, link, view), key=_in_order)),
        reconciliation=medication_differences(session, referral.id),
        discharge_medications=len(discharge_list.lines) if discharge_list else 0,
        trends=tuple(_trend(session, referral, instrument) for instrument in INSTRUMENTS),
        plan=_plan_hours(session, referral),
        package=link.package_summary if link is not None else None,
        losses=tuple(link.losses or ()) if link is not None else (),
    )


def _timeline(
    session: Session, referral: models.Referral, link: ReferralLink | None, view: HandoffView
) -> Iterator[TimelineEvent]:
    if view.residential_discharge:
        yield TimelineEvent(view.residential_discharge, None, "discharge", "Residential discharge")
    yield _at(referral.received_at, "received", "Referral received", referral.business_id)
    if referral.decided_at and referral.decision:
        declined = referral.decision == models.Decision.DECLINED
        label = "Referral declined" if declined else "Referral accepted"
        yield _at(referral.decided_at, referral.decision, label, referral.decision_reason)
    if referral.status == "cancelled" and link and link.last_modified:
        label = "Cancelled by the referring program"
        yield _at(link.last_modified, "cancelled", label, link.status_reason)
    if view.intake_scheduled:
        detail = f"intake appointment on {view.intake_scheduled.isoformat()}"
        yield TimelineEvent(view.intake_scheduled, None, "intake", "Intake scheduled", detail)
    yield from _session_events(session, referral, view)
    yield from _closing_events(session, referral)
    for days, state in ((7, view.follow_up_7), (30, view.follow_up_30)):
        if view.residential_discharge:
            on = view.residential_discharge + timedelta(days=days)
            yield TimelineEvent(
                on, None, f"deadline-{state}", f"{days}-day follow-up window ends", state.value
            )


_SESSION_LABELS = {
    models.Attendance.ATTENDED: "IOP session attended",
    models.Attendance.NO_SHOW: "No-show",
    models.Attendance.CANCELLED: "Session cancelled",
    models.Attendance.SCHEDULED: "Session scheduled",
}


def _session_events(
    session: Session, referral: models.Referral, view: HandoffView
) -> Iterator[TimelineEvent]:
    query = (
        select(models.SessionRecord)
        .where(models.SessionRecord.referral_id == referral.id)
        .order_by(models.SessionRecord.starts_at, models.SessionRecord.id)
    )
    first_seen = False
    for record in session.scalars(query):
        attendance = models.Attendance(record.attendance)
        label, kind = _SESSION_LABELS[attendance], attendance.value
        if attendance is models.Attendance.ATTENDED and not first_seen:
            first_seen, label, kind = True, "First IOP session attended", "first-session"
        discharged = view.residential_discharge
        days = None if discharged is None else (record.starts_at.date() - discharged).days
        yield _at(
            record.starts_at,
            kind,
            label,
            None if days is None else f"day {days} after residential discharge",
        )


def _closing_events(session: Session, referral: models.Referral) -> Iterator[TimelineEvent]:
    reconciled = current_list(session, referral, ListSource.RECONCILED)
    if reconciled is not None:
        yield _at(reconciled.recorded_at, "reconciled", "Medications reconciled")
    query = select(models.DischargeRecord).where(models.DischargeRecord.referral_id == referral.id)
    discharge = session.scalar(query)
    if discharge is not None:
        detail = f"aftercare with {discharge.next_provider}"
        yield _at(discharge.discharged_at, "iop-discharge", "Discharged from the IOP", detail)
        if discharge.acknowledged_at:
            label = "Aftercare acknowledged"
            yield _at(discharge.acknowledged_at, "acknowledged", label, "by the next provider")


def _at(moment: datetime, kind: str, label: str, detail: str | None = None) -> TimelineEvent:
    return TimelineEvent(moment.date(), moment, kind, label, detail)


def _in_order(event: TimelineEvent) -> tuple[date, time]:
    # Day-only events open their day; a window's deadline closes it (the day itself counts).
    if event.at is not None:
        return event.on, event.at.time()
    return event.on, time.max if event.kind.startswith("deadline") else time.min


def _trend(
    session: Session, referral: models.Referral, instrument: assessments.Instrument
) -> Trend:
    records = repo.assessment_trend(session, referral, instrument=instrument.key)
    first = records[0].authored if records else None
    points = tuple(
        TrendPoint(r.authored, r.total, r.severity, (r.authored - first).days if first else 0)
        for r in records
    )
    return Trend(instrument.key.upper(), instrument.max_total, severity_bands(instrument), points)


def severity_bands(instrument: assessments.Instrument) -> tuple[tuple[int, int, str], ...]:
    """(lowest, highest, label) of each severity band, lowest band first."""
    bands = sorted(assessments.SEVERITY_BANDS[instrument.key])
    highs = [low - 1 for low, _ in bands[1:]] + [instrument.max_total]
    return tuple((low, high, label) for (low, label), high in zip(bands, highs, strict=True))


def _plan_hours(session: Session, referral: models.Referral) -> PlanHours | None:
    """The newest plan's hours. Plans are stored as the domain TreatmentPlan in JSON
    (``level_of_care``, ``modalities[]`` with ``sessions_per_week`` and ``hours_per_session``)."""
    query = (
        select(models.PlanRecord)
        .where(models.PlanRecord.referral_id == referral.id)
        .order_by(models.PlanRecord.updated_at.desc(), models.PlanRecord.id.desc())
    )
    record = session.scalars(query.limit(1)).first()
    if record is None:
        return None
    try:
        modalities = tuple(
            PlannedModality(
                str(m["modality"]), int(m["sessions_per_week"]), float(m["hours_per_session"])
            )
            for m in record.plan["modalities"]
        )
    except (KeyError, TypeError, ValueError):
        log.warning("tracker: plan record %s has no readable modalities", record.id)
        return None
    level = record.plan.get("level_of_care")
    return PlanHours(record.business_id, str(level) if level else None, modalities)
