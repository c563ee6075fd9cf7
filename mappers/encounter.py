"""IOP session <-> FHIR R4 Encounter (class AMB or VR; type individual/group/family/psychoed.).

Three representation choices, each forced by R4 (http://hl7.org/fhir/R4/encounter.html):

- No-show. Encounter.status is required-bound to encounter-status, which has ``cancelled`` but
  no no-show. A no-show is sent as ``cancelled`` plus the R4 core extension
  ``encounter-reasonCancelled`` ("If the encounter was cancelled after it was planned, why?")
  coded ``http://hl7.org/fhir/appointmentstatus#noshow``: FHIR's own code for "the patient did
  not appear" (R4 Appointment.status). A plain cancellation has no such extension, so the two
  round-trip, and a receiver that ignores the extension still sees a correct status.
- The plan link. R4 Encounter.basedOn allows only ServiceRequest and episodeOfCare only an
  EpisodeOfCare, so no conformant Encounter element points at a CarePlan (R4 has no core
  extension for it either: event-basedOn is defined for Condition only). The link is kept on the
  plan side, CarePlan.activity.outcomeReference (Reference(Any), "the result/outcome of the
  activity"), filled by the CarePlan mapper; here only the referral (basedOn ServiceRequest) and
  the program (serviceProvider Organization) are linked, and returned in Mapped.links.
- Psychoeducation. No SNOMED CT concept is verified as equivalent (fhir-domain-reference.md 2.2
  calls 410224008 "Mental health care education" a judgment call: it names education about
  mental health care, not the psychoeducation group format), so that kind is coded only with
  our iop-modality code and text. The other kinds carry the verified SNOMED CT therapy code and
  the iop-modality code; either one is enough on input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology import clinical, local, workflow
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.systems import ENCOUNTER_REASON_CANCELLED_EXTENSION, V3_ACT_CODE
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_coding import read_known_coding
from mappers.fhir_read import (
    PERIOD_KEYS,
    open_resource,
    read_datetime,
    read_identifier_list,
    read_list,
    read_str,
)
from mappers.fhir_reference import read_reference, reference, reference_problems
from mappers.fhir_write import datetime_problems, format_datetime, identifier_problems
from mappers.loss import Loss, Mapped, unmapped_keys

SESSION_PROFILE = structure_definition_url("iop-session-encounter")
# A no-show is R4 appointmentstatus `noshow` "No Show" ("Some or all of the participant(s) have
# not/did not appear for the appointment (usually the patient)") in the core reasonCancelled
# extension; code, extension URL and their sources are in fhir_profiles.terminology.
NO_SHOW = workflow.APPOINTMENT_NO_SHOW


class SessionKind(StrEnum):
    """The format of an IOP session."""

    INDIVIDUAL = "individual"
    GROUP = "group"
    FAMILY = "family"
    PSYCHOEDUCATION = "psychoeducation"


class Delivery(StrEnum):
    """Where the client took part: on site, or by telehealth."""

    IN_PERSON = "in-person"
    VIRTUAL = "virtual"


class Attendance(StrEnum):
    """Whether the session took place with the client."""

    SCHEDULED = "scheduled"
    ATTENDED = "attended"
    NO_SHOW = "no-show"
    CANCELLED = "cancelled"


# Encounter.type codings per kind: verified SNOMED CT (reference 2.2) first, then iop-modality.
KIND_CODES: Mapping[SessionKind, tuple[Code, ...]] = {
    SessionKind.INDIVIDUAL: (
        clinical.SNOMED_INDIVIDUAL_PSYCHOTHERAPY,
        local.MODALITY_INDIVIDUAL_THERAPY,
    ),
    SessionKind.GROUP: (clinical.SNOMED_GROUP_PSYCHOTHERAPY, local.MODALITY_GROUP_THERAPY),
    SessionKind.FAMILY: (clinical.SNOMED_FAMILY_PSYCHOTHERAPY, local.MODALITY_FAMILY_THERAPY),
    SessionKind.PSYCHOEDUCATION: (local.MODALITY_PSYCHOEDUCATION,),
}
_KIND_BY_CODING = {(c.system, c.code): kind for kind, codes in KIND_CODES.items() for c in codes}

# Encounter.class (v3 ActEncounterCode, extensible binding; reference 2.3).
DELIVERY_CLASS: Mapping[Delivery, Code] = {
    Delivery.IN_PERSON: clinical.ENCOUNTER_CLASS_AMBULATORY,
    Delivery.VIRTUAL: clinical.ENCOUNTER_CLASS_VIRTUAL,
}
_DELIVERY_BY_CODING = {(c.system, c.code): d for d, c in DELIVERY_CLASS.items()}

# Encounter.status per attendance; no-show adds the reasonCancelled extension.
ATTENDANCE_STATUS: Mapping[Attendance, str] = {
    Attendance.SCHEDULED: "planned",
    Attendance.ATTENDED: "finished",
    Attendance.NO_SHOW: "cancelled",
    Attendance.CANCELLED: "cancelled",
}


@dataclass(frozen=True, slots=True)
class Session:
    """One scheduled IOP session and whether the client attended it."""

    identifier: str
    kind: SessionKind
    delivery: Delivery
    attendance: Attendance
    start: datetime
    end: datetime

    def problems(self) -> list[Problem]:
        """Every reason this session cannot be sent as an Encounter, each with its field."""
        found = identifier_problems(self.identifier, "Session.identifier")
        for name, value, allowed in (
            ("kind", self.kind, SessionKind),
            ("delivery", self.delivery, Delivery),
            ("attendance", self.attendance, Attendance),
        ):
            if value not in set(allowed):
                found.append(Problem(f"Session.{name}", f"{value!r} is not a known value"))
        found += datetime_problems(self.start, "Session.start")
        found += datetime_problems(self.end, "Session.end")
        if not found and self.end <= self.start:
            found.append(Problem("Session.end", "must be after Session.start"))
        return found


def to_fhir(
    session: Session,
    *,
    id_system: str,
    subject_reference: str,
    service_provider_reference: str | None = None,
    based_on_reference: str | None = None,
) -> dict[str, Any]:
    """Fill Encounter.meta.profile, extension (no-show), identifier, status, class, type,
    subject, basedOn, period and serviceProvider from a Session."""
    problems = session.problems() + reference_problems(
        subject_reference, "Patient", "Encounter.subject.reference"
    )
    if service_provider_reference is not None:
        problems += reference_problems(
            service_provider_reference, "Organization", "Encounter.serviceProvider.reference"
        )
    if based_on_reference is not None:
        problems += reference_problems(
            based_on_reference, "ServiceRequest", "Encounter.basedOn[0].reference"
        )
    raise_if_problems("Session", problems)
    resource: dict[str, Any] = {"resourceType": "Encounter", "meta": {"profile": [SESSION_PROFILE]}}
    if session.attendance is Attendance.NO_SHOW:
        concept = NO_SHOW.codeable_concept("Client did not attend")
        resource["extension"] = [
            {"url": ENCOUNTER_REASON_CANCELLED_EXTENSION, "valueCodeableConcept": concept}
        ]
    resource["identifier"] = [{"system": id_system, "value": session.identifier}]
    resource["status"] = ATTENDANCE_STATUS[session.attendance]
    resource["class"] = DELIVERY_CLASS[session.delivery].coding()
    codes = KIND_CODES[session.kind]
    resource["type"] = [{"coding": [c.coding() for c in codes], "text": codes[-1].display}]
    resource["subject"] = reference(subject_reference)
    if based_on_reference is not None:
        resource["basedOn"] = [reference(based_on_reference)]
    resource["period"] = period_json(session.start, session.end)
    if service_provider_reference is not None:
        resource["serviceProvider"] = reference(service_provider_reference)
    return resource


_MAPPED = frozenset(
    {"extension", "identifier", "status", "class", "type", "subject", "basedOn"}
    | {"period", "serviceProvider"}
)


def from_fhir(resource: Any, *, id_system: str) -> Mapped[Session]:
    """Read a Session from Encounter.identifier, status (+ reasonCancelled), class, type, period;
    subject, basedOn and serviceProvider are returned as links."""
    problems: list[Problem] = []
    encounter, losses = open_resource(resource, "Encounter", _MAPPED, problems)
    identifier = read_identifier_list(
        encounter.get("identifier"), id_system, "Encounter.identifier", problems, losses
    )
    attendance = _read_attendance(encounter, problems, losses)
    delivery = _read_delivery(encounter.get("class"), problems, losses)
    kind = read_type(
        encounter.get("type"), _KIND_BY_CODING, "an IOP session kind", problems, losses
    )
    start, end = read_period(encounter.get("period"), problems, losses, end_required=True)
    links = read_links(encounter, problems, losses)
    raise_if_problems("Encounter", problems)
    assert identifier and attendance and delivery and kind and start and end
    session = Session(identifier, kind, delivery, attendance, start, end)
    raise_if_problems("Encounter", session.problems())
    return Mapped(session, links, tuple(losses))


def period_json(start: datetime, end: datetime | None) -> dict[str, str]:
    """Encounter.period with FHIR dateTimes."""
    period = {"start": format_datetime(start)}
    if end is not None:
        period["end"] = format_datetime(end)
    return period


def read_period(
    period: Any, problems: list[Problem], losses: list[Loss], *, end_required: bool
) -> tuple[datetime | None, datetime | None]:
    """Read Encounter.period.start and end (dateTimes with timezone)."""
    if not isinstance(period, dict):
        problems.append(Problem("Encounter.period", "is required", "required"))
        return None, None
    losses += unmapped_keys(period, PERIOD_KEYS, path="Encounter.period")
    start = read_datetime(period.get("start"), "Encounter.period.start", problems, losses)
    end = None
    if end_required or period.get("end") is not None:
        end = read_datetime(period.get("end"), "Encounter.period.end", problems, losses)
    if start is not None and end is not None and end <= start:
        problems.append(Problem("Encounter.period.end", "must be after Encounter.period.start"))
    return start, end


def read_type(
    concepts: Any,
    known: Mapping[tuple[str, str], Any],
    what: str,
    problems: list[Problem],
    losses: list[Loss],
    *,
    owned_systems: frozenset[str] = frozenset(),
) -> Any:
    """Take the first Encounter.type with a recognised coding; report every other type as lost."""
    entries = read_list(concepts, "Encounter.type", problems)
    before = len(problems)
    for index, concept in enumerate(entries):
        path = f"Encounter.type[{index}]"
        value, inner = read_known_coding(
            concept, path, known, problems, owned_systems=owned_systems
        )
        if value is not None:
            losses += inner
            if len(entries) > 1:
                losses += [
                    Loss(f"Encounter.type[{i}]", "type not modelled by iop-bridge")
                    for i in range(len(entries))
                    if i != index
                ]
            return value
    if len(problems) == before:  # a refused code in an owned system already says what is wrong
        problems.append(Problem("Encounter.type", f"no coding for {what}", "required"))
    return None


def read_links(
    encounter: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> dict[str, str]:
    """Read Encounter.subject (required), serviceProvider and the first basedOn as links."""
    links: dict[str, str] = {}
    subject = encounter.get("subject")
    if subject is None:
        problems.append(Problem("Encounter.subject", "is required", "required"))
    elif target := read_reference(subject, "Encounter.subject", "Patient", problems, losses):
        links["subject"] = target
    provider = encounter.get("serviceProvider")
    if provider is not None and (
        target := read_reference(
            provider, "Encounter.serviceProvider", "Organization", problems, losses
        )
    ):
        links["serviceProvider"] = target
    based_on = read_list(encounter.get("basedOn"), "Encounter.basedOn", problems)
    if based_on and (
        target := read_reference(
            based_on[0], "Encounter.basedOn[0]", "ServiceRequest", problems, losses
        )
    ):
        links["basedOn"] = target
    if len(based_on) > 1:
        losses += [
            Loss(f"Encounter.basedOn[{i}]", "only one referral is kept")
            for i in range(1, len(based_on))
        ]
    return links


def _read_attendance(
    encounter: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> Attendance | None:
    status = read_str(encounter.get("status"), "Encounter.status", problems, required=True)
    no_show = False
    extensions = read_list(encounter.get("extension"), "Encounter.extension", problems)
    for index, extension in enumerate(extensions):
        path = f"Encounter.extension[{index}]"
        is_reason = isinstance(extension, dict) and extension.get("url") == (
            ENCOUNTER_REASON_CANCELLED_EXTENSION
        )
        if is_reason and status == "cancelled" and _is_no_show(extension, path, losses):
            no_show = True
        else:
            losses.append(Loss(path, "extension not modelled by iop-bridge"))
    by_status = {"planned": Attendance.SCHEDULED, "finished": Attendance.ATTENDED}
    if status == "cancelled":
        return Attendance.NO_SHOW if no_show else Attendance.CANCELLED
    if status in by_status:
        return by_status[status]
    if status is not None:
        problems.append(
            Problem("Encounter.status", f"{status!r} is not planned, finished or cancelled")
        )
    return None


def _is_no_show(extension: Mapping[str, Any], path: str, losses: list[Loss]) -> bool:
    """True if a reasonCancelled extension says no-show; its other codings are losses."""
    concept = extension.get("valueCodeableConcept")
    if not isinstance(concept, dict):
        return False
    known = {(NO_SHOW.system, NO_SHOW.code): True}
    found, inner = read_known_coding(concept, f"{path}.valueCodeableConcept", known, [])
    if found:
        losses += inner
        losses += unmapped_keys(extension, {"url", "valueCodeableConcept"}, path=path)
    return bool(found)


def _read_delivery(value: Any, problems: list[Problem], losses: list[Loss]) -> Delivery | None:
    if not isinstance(value, dict):
        problems.append(Problem("Encounter.class", "is required", "required"))
        return None
    delivery = _DELIVERY_BY_CODING.get((str(value.get("system")), str(value.get("code"))))
    if delivery is None:
        problems.append(
            Problem(
                "Encounter.class",
                f"{value.get('code')!r} is not {V3_ACT_CODE} AMB or VR (an IOP session)",
                "code-invalid",
            )
        )
    losses += unmapped_keys(value, {"system", "code", "display"}, path="Encounter.class")
    return delivery
