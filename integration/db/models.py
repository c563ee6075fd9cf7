"""Domain records of the three workflows (DESIGN.md): referral, intake, plan, sessions,
assessments, medication lists and discharge. Each carries its business identifier, unique.

Statuses are plain strings guarded by CHECK constraints (portable to SQLite, and a new value is
a one-line migration instead of an ALTER TYPE on PostgreSQL).
"""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from integration.db.base import Base, JsonDocument, UtcDateTime, utcnow

# FHIR R4 Task.status (valueset-task-status): the referral's closed loop mirrors its Task.
TASK_STATUSES = (
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
)


class Decision(StrEnum):
    """The case manager's answer to a step-down referral."""

    ACCEPTED = "accepted"
    DECLINED = "declined"


class Attendance(StrEnum):
    """Whether the client came to a session (mirrors mappers.encounter.Attendance)."""

    SCHEDULED = "scheduled"
    ATTENDED = "attended"
    NO_SHOW = "no-show"
    CANCELLED = "cancelled"


class ListSource(StrEnum):
    """Which medication list of the step-down (mirrors mappers.medication.ListSource)."""

    RESIDENTIAL_DISCHARGE = "residential-discharge"
    IOP_INTAKE = "iop-intake"
    RECONCILED = "reconciled"


class MedicationChange(StrEnum):
    """What reconciliation decided for one medication line."""

    CONTINUED = "continued"
    DOSE_CHANGED = "dose-changed"
    STOPPED = "stopped"
    NEW = "new"


def one_of(column: str, values: tuple[str, ...] | type[StrEnum]) -> str:
    """A CHECK clause limiting ``column`` to ``values`` (NULL passes, as SQL CHECK does)."""
    allowed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({allowed})"


class Timestamps:
    """created_at / updated_at, set by the store's clock."""

    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class Referral(Timestamps, Base):
    """A step-down referral from residential care (ServiceRequest + Task on the FHIR server)."""

    __tablename__ = "referral"
    __table_args__ = (
        UniqueConstraint("sender", "business_id"),
        CheckConstraint(one_of("status", TASK_STATUSES), name="status"),
        CheckConstraint(one_of("decision", Decision), name="decision"),
        # a window met needs a discharge date: the tracker's counts rely on it
        CheckConstraint(
            "follow_up_within IS NULL"
            " OR (follow_up_within IN (7, 30) AND residential_discharge_date IS NOT NULL)",
            name="follow_up_within",
        ),
        # the tracker lists "my organization's referrals in this status, newest first", and
        # counts its follow-up flags as ranges of this index alone (tracker.views.flag_counts)
        Index(
            "ix_referral_organization_status_follow_up",
            "iop_organization",
            "status",
            "follow_up_within",
            "residential_discharge_date",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The sender's identifier (its Task's), unique per sender (the Task's requester as the FHIR
    # server knows it): two referrers may use the same value without colliding or learning of
    # each other (issue 13, issue 15 finding 4).
    sender: Mapped[str] = mapped_column(String(255), server_default="")
    business_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    client_mrn: Mapped[str] = mapped_column(String(64), index=True)
    # Shown to the IOP's case managers beside the MRN (the tracker); never logged or audited.
    client_name: Mapped[str | None] = mapped_column(String(255))
    client_birth_date: Mapped[date | None] = mapped_column(Date)
    client_language: Mapped[str | None] = mapped_column(String(64))  # BCP-47 code or text
    iop_organization: Mapped[str] = mapped_column(String(128))
    residential_discharge_date: Mapped[date | None] = mapped_column(Date)
    task_server_id: Mapped[str | None] = mapped_column(String(64))
    task_version_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    decision: Mapped[str | None] = mapped_column(String(16))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The shortest HEDIS FUI window (7 or 30 days after residential_discharge_date) that the
    # first attended IOP session fell within; NULL when it met neither (no attended session,
    # a later one) or there is no discharge date. Kept by repositories.record_session
    # (mappers.follow_up.follow_up_within) so the tracker counts flags without per-row date
    # arithmetic.
    follow_up_within: Mapped[int | None] = mapped_column(Integer)


class Intake(Timestamps, Base):
    """The IOP intake a referral leads to: one per referral."""

    __tablename__ = "intake"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), unique=True)
    scheduled_date: Mapped[date | None] = mapped_column(Date)
    scheduled_time: Mapped[time | None] = mapped_column(Time)  # program-local wall time
    scheduled_delivery: Mapped[str | None] = mapped_column(String(16))  # in-person | virtual
    first_attended_date: Mapped[date | None] = mapped_column(Date)


class PlanRecord(Timestamps, Base):
    """An individualized treatment plan (CarePlan), kept as the mapped domain plan in JSON."""

    __tablename__ = "plan_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_id: Mapped[str] = mapped_column(String(64), unique=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), index=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JsonDocument)


class SessionRecord(Timestamps, Base):
    """One IOP session and the client's attendance (Encounter)."""

    __tablename__ = "session_record"
    __table_args__ = (
        CheckConstraint(one_of("attendance", Attendance), name="attendance"),
        # attendance within 7 / 30 days of discharge: sessions of a referral by start
        Index("ix_session_record_referral_start", "referral_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_id: Mapped[str] = mapped_column(String(64), unique=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    intake_id: Mapped[int | None] = mapped_column(ForeignKey("intake.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attendance: Mapped[str] = mapped_column(String(16))


class AssessmentRecord(Timestamps, Base):
    """A scored PHQ-9 or GAD-7 (QuestionnaireResponse); the total is recomputed, not trusted."""

    __tablename__ = "assessment_record"
    __table_args__ = (
        # the sender's identifier value, unique per referral: two senders may use one value
        UniqueConstraint("referral_id", "business_id"),
        # the PHQ-9/GAD-7 trend of one referral
        Index("ix_assessment_record_trend", "referral_id", "instrument", "authored"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_id: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    instrument: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(32))
    authored: Mapped[datetime] = mapped_column(UtcDateTime())


class MedicationListRecord(Timestamps, Base):
    """One medication list of a referral: residential discharge, IOP intake, or reconciled."""

    __tablename__ = "medication_list_record"
    __table_args__ = (
        CheckConstraint(one_of("source", ListSource), name="source"),
        Index("ix_medication_list_record_referral_source", "referral_id", "source"),
        # a sender's list identifier, unique per referral: two senders may use one value
        UniqueConstraint("referral_id", "business_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    business_id: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    source: Mapped[str] = mapped_column(String(24))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lines: Mapped[list[MedicationLine]] = relationship(
        back_populates="medication_list",
        order_by="MedicationLine.position",
        cascade="all, delete-orphan",
    )


class MedicationLine(Base):
    """One medication on a list (MedicationStatement); ``change`` only on a reconciled list."""

    __tablename__ = "medication_line"
    __table_args__ = (
        UniqueConstraint("list_id", "position"),
        CheckConstraint(one_of("change", MedicationChange), name="change"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(
        ForeignKey("medication_list_record.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    rxnorm_code: Mapped[str | None] = mapped_column(String(16))  # None: text only, not coded
    display: Mapped[str] = mapped_column(String(255))
    dose_text: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24))  # MedicationStatement.status
    change: Mapped[str | None] = mapped_column(String(16))
    # The whole entry (structured dose, times a day, identifier) that the columns above cannot
    # hold and reconciliation compares: {"current", "previous", "matched_by"} (migration 0004).
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    medication_list: Mapped[MedicationListRecord] = relationship(back_populates="lines")


class DischargeRecord(Timestamps, Base):
    """IOP discharge and the aftercare handoff loop to the next provider (Task)."""

    __tablename__ = "discharge_record"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), unique=True)
    discharged_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_provider: Mapped[str] = mapped_column(String(255))
    aftercare_task_id: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)


class DisclosureConsentRecord(Timestamps, Base):
    """A client's Part 2 consent to disclose to a named recipient, recorded by the IOP's case
    manager (written to the FHIR server as a Consent through the outbox). The discharge's Part 2
    check counts it beside the referral's own Consents (integration.discharges.consents)."""

    __tablename__ = "disclosure_consent"
    __table_args__ = (
        UniqueConstraint("referral_id", "business_id"),
        CheckConstraint('"end" >= start', name="period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), index=True)
    business_id: Mapped[str] = mapped_column(String(64))  # Consent.identifier value
    recipient: Mapped[str] = mapped_column(String(128))  # organization identifier value
    recipient_reference: Mapped[str] = mapped_column(String(255))  # Organization/<id>
    patient: Mapped[str] = mapped_column(String(255))  # Patient/<id>, the client
    custodian: Mapped[str] = mapped_column(String(255))  # Organization/<id>, the IOP
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    signed_on: Mapped[date] = mapped_column(Date)  # on the program's calendar
    # Consent.dateTime: the start of the signing day on the program's clock (the form has no
    # time of day), kept as the instant so the Consent is the same whoever builds it
    signed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    disclosed: Mapped[str] = mapped_column(String(500))
