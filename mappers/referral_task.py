"""Referral closed loop <-> FHIR R4 Task (SDOHCC TaskForReferralManagement pattern), and its
state machine.

Shape (fhir-domain-reference.md 1.1, 1.2): identifier typed PLAC (BSeR); status from the SDOHCC
10-code subset of task-status; statusReason.text for rejected / cancelled / on-hold / failed;
businessStatus a BSeR milestone; intent ``order``; code task-code#fulfill; focus the
ServiceRequest; for the Patient; authoredOn; lastModified; requester and owner Organizations;
output the resulting activity, here the Encounter of the first attended IOP session.

Task.output.type: SDOHCC's temporary code ``resulting-activity`` (reference 1.1; display
verified, ``fhir_profiles.terminology.workflow.SDOHCC_RESULTING_ACTIVITY``) with our text. The
text-only type sent before is still read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from fhir_profiles.terminology.systems import (
    BSER_TASK_BUSINESS_STATUS,
    SDOHCC_TEMPORARY_CODES,
    TASK_CODE,
)
from fhir_profiles.terminology.workflow import (
    BSER_ACCEPTED,
    BSER_BUSINESS_STATUSES,
    BSER_CREATED,
    BSER_DECLINED,
    BSER_FULFILLMENT_CANCELLED,
    BSER_FULFILLMENT_COMPLETED,
    SDOHCC_REFERRAL_TASK_STATUSES,
    SDOHCC_RESULTING_ACTIVITY,
    SDOHCC_STATUSES_NEEDING_REASON,
    TASK_FULFILL,
)
from mappers.errors import InvalidInputError, Problem, raise_if_problems
from mappers.fhir_coding import read_known_coding
from mappers.fhir_read import (
    open_resource,
    read_code,
    read_datetime,
    read_fixed_code,
    read_list,
    read_optional_datetime,
    read_str_in,
)
from mappers.fhir_reference import (
    PARTY_TYPES,
    read_reference_to,
    read_required_reference,
    reference,
    reference_problems,
    typed_reference_problems,
)
from mappers.fhir_write import datetime_problems, format_datetime, identifier_problems
from mappers.loss import Loss, Mapped, unmapped_keys
from mappers.referral import placer_identifier, read_placer_identifier

BUSINESS_STATUSES = {c.code: c for c in BSER_BUSINESS_STATUSES}
OUTPUT_TYPE_TEXT = "Resulting activity"
# What we send now, and the text-only type we sent before (both read without loss).
_OUTPUT_TYPES = (
    SDOHCC_RESULTING_ACTIVITY.codeable_concept(OUTPUT_TYPE_TEXT),
    {"text": OUTPUT_TYPE_TEXT},
)
TERMINAL_STATUSES = frozenset({"rejected", "cancelled", "failed", "completed", "entered-in-error"})
# Allowed Task.status moves (SDOHCC status table, reference 1.1): requested -> accepted ->
# in-progress -> completed; declining is requested -> rejected; either side may cancel; on-hold
# pauses started work; failed means the work was attempted. `failed` from `accepted` covers an
# intake that was attempted but never happened. Terminal states have no way out; every state
# may go to entered-in-error (handled in `allowed_next`).
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "draft": frozenset({"requested", "cancelled"}),
    "requested": frozenset({"accepted", "rejected", "cancelled"}),
    "accepted": frozenset({"in-progress", "cancelled", "failed"}),
    "in-progress": frozenset({"on-hold", "completed", "failed", "cancelled"}),
    "on-hold": frozenset({"in-progress", "cancelled", "failed"}),
}
# The BSeR milestone a status change implies when the caller names none (reference 1.2).
DEFAULT_BUSINESS_STATUS = {
    "requested": BSER_CREATED.code,
    "accepted": BSER_ACCEPTED.code,
    "rejected": BSER_DECLINED.code,
    "cancelled": BSER_FULFILLMENT_CANCELLED.code,
    "completed": BSER_FULFILLMENT_COMPLETED.code,
}


class IllegalTransitionError(InvalidInputError):
    """A Task status change the referral state machine does not allow."""

    http_status = 409
    issue_code = "business-rule"


@dataclass(frozen=True, slots=True)
class ReferralTask:
    """The closed-loop tracker of one referral: who must act, and how far it has got."""

    identifier: str
    status: str
    focus: str  # ServiceRequest reference
    patient: str  # Task.for, a Patient reference
    requester: str  # Organization reference
    authored_on: datetime
    last_modified: datetime | None = None
    owner: str | None = None  # Organization reference; None = not yet claimed
    status_reason: str | None = None
    business_status: str | None = None  # BSeR TaskBusinessStatusCS code
    resulting_activity: str | None = None  # Encounter reference (first attended session)

    def problems(self) -> list[Problem]:
        """Every reason this task cannot be sent as a Task, each with its field."""
        found = identifier_problems(self.identifier, "ReferralTask.identifier")
        if self.status not in SDOHCC_REFERRAL_TASK_STATUSES:
            found.append(Problem("ReferralTask.status", f"{self.status!r} is not allowed"))
        found += reason_problems(self.status, self.status_reason, "ReferralTask.status_reason")
        if self.business_status is not None and self.business_status not in BUSINESS_STATUSES:
            found.append(
                Problem("ReferralTask.business_status", f"{self.business_status!r} is not BSeR")
            )
        found += reference_problems(self.focus, "ServiceRequest", "ReferralTask.focus")
        found += reference_problems(self.patient, "Patient", "ReferralTask.patient")
        found += typed_reference_problems(self.requester, PARTY_TYPES, "ReferralTask.requester")
        if self.owner is not None:
            found += typed_reference_problems(self.owner, PARTY_TYPES, "ReferralTask.owner")
        if self.resulting_activity is not None:
            found += reference_problems(
                self.resulting_activity, "Encounter", "ReferralTask.resulting_activity"
            )
        found += datetime_problems(self.authored_on, "ReferralTask.authored_on")
        if self.last_modified is not None:
            found += datetime_problems(self.last_modified, "ReferralTask.last_modified")
        if not found:
            found += order_problems(self.authored_on, self.last_modified, "ReferralTask")
        return found


def reason_problems(status: str, reason: str | None, field: str) -> list[Problem]:
    """SDOHCC: statusReason.text is expected for rejected, cancelled, on-hold and failed."""
    if reason is not None and not reason.strip():
        return [Problem(field, "must not be blank (use None for none)")]
    if status in SDOHCC_STATUSES_NEEDING_REASON and reason is None:
        return [Problem(field, f"is required when the status is {status!r}", "required")]
    return []


def order_problems(authored: datetime, modified: datetime | None, path: str) -> list[Problem]:
    """R4 Task invariant inv-1: lastModified must not be before authoredOn."""
    if modified is not None and modified < authored:
        return [Problem(f"{path}.last_modified", "must not be before authored_on (inv-1)")]
    return []


def allowed_next(status: str) -> frozenset[str]:
    """The statuses a task in ``status`` may move to (entered-in-error from any other state)."""
    moves = TRANSITIONS.get(status, frozenset())
    return moves if status == "entered-in-error" else moves | {"entered-in-error"}


def transition(
    task: ReferralTask,
    new_status: str,
    *,
    at: datetime,
    reason: str | None = None,
    business_status: str | None = None,
    owner: str | None = None,
    resulting_activity: str | None = None,
) -> ReferralTask:
    """The task after a status change at ``at`` (Task.status, statusReason, businessStatus,
    lastModified, and optionally owner and output). Staying in the same non-terminal status
    records a new milestone. Raises IllegalTransitionError naming both states if not allowed."""
    same = new_status == task.status and task.status not in TERMINAL_STATUSES
    if not same and new_status not in allowed_next(task.status):
        allowed = ", ".join(sorted(allowed_next(task.status))) or "none (terminal state)"
        message = f"illegal Task.status transition {task.status} -> {new_status}"
        detail = f"{task.status} -> {new_status} is not allowed; from {task.status}: {allowed}"
        raise IllegalTransitionError(
            message, problems=[Problem("Task.status", detail, "business-rule")]
        )
    if business_status is None and not same:
        business_status = DEFAULT_BUSINESS_STATUS.get(new_status)
    updated = replace(
        task,
        status=new_status,
        status_reason=reason,
        business_status=business_status or task.business_status,
        last_modified=at,
        owner=owner or task.owner,
        resulting_activity=resulting_activity or task.resulting_activity,
    )
    problems = datetime_problems(at, "at")
    if not problems and task.last_modified is not None and at < task.last_modified:
        problems.append(Problem("at", "is before the task's last modification"))
    raise_if_problems("ReferralTask transition", problems or updated.problems())
    return updated


def to_fhir(
    task: ReferralTask, *, id_system: str, resource_id: str | None = None
) -> dict[str, Any]:
    """Fill Task.identifier (PLAC), status, statusReason, businessStatus, intent, code, focus,
    for, authoredOn, lastModified, requester, owner and output (resulting activity)."""
    raise_if_problems("ReferralTask", task.problems())
    resource: dict[str, Any] = {"resourceType": "Task"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["identifier"] = [placer_identifier(id_system, task.identifier)]
    resource["status"] = task.status
    if task.status_reason is not None:
        resource["statusReason"] = {"text": task.status_reason}
    if task.business_status is not None:
        resource["businessStatus"] = BUSINESS_STATUSES[task.business_status].codeable_concept()
    resource["intent"] = "order"
    resource["code"] = TASK_FULFILL.codeable_concept()
    resource["focus"] = reference(task.focus)
    resource["for"] = reference(task.patient)
    resource["authoredOn"] = format_datetime(task.authored_on)
    if task.last_modified is not None:
        resource["lastModified"] = format_datetime(task.last_modified)
    resource["requester"] = reference(task.requester)
    if task.owner is not None:
        resource["owner"] = reference(task.owner)
    if task.resulting_activity is not None:
        resource["output"] = [output_json(task.resulting_activity)]
    return resource


INTAKE_SCHEDULED_TEXT = "Intake scheduled for {day}"


def intake_scheduled_note(day: date, *, at: datetime) -> dict[str, Any]:
    """The Task.note sent with BSeR 5.1.1 (Service Request Event Scheduled): R4 Task has no
    element for the appointment, so its date travels as a dated Annotation the referrer sees."""
    return {"time": format_datetime(at), "text": INTAKE_SCHEDULED_TEXT.format(day=day.isoformat())}


def output_json(activity: str) -> dict[str, Any]:
    """One Task.output: the resulting activity (an Encounter reference), SDOHCC-typed."""
    return {
        "type": SDOHCC_RESULTING_ACTIVITY.codeable_concept(OUTPUT_TYPE_TEXT),
        "valueReference": reference(activity),
    }


_MAPPED = frozenset(
    {"identifier", "modifierExtension", "status", "statusReason", "businessStatus", "intent"}
    | {"code", "focus", "for", "authoredOn", "lastModified", "requester", "owner", "output"}
)


def from_fhir(resource: Any, *, id_system: str) -> Mapped[ReferralTask]:
    """Read a ReferralTask from Task.identifier, status, statusReason, businessStatus, intent,
    code, focus, for, authoredOn, lastModified, requester, owner and output."""
    problems: list[Problem] = []
    fhir, losses = open_resource(resource, "Task", _MAPPED, problems)
    identifier = read_placer_identifier(fhir, id_system, "Task", problems, losses)
    status = read_code(fhir.get("status"), "Task.status", SDOHCC_REFERRAL_TASK_STATUSES, problems)
    reason = _read_status_reason(fhir.get("statusReason"), problems, losses)
    if status is not None:
        problems += reason_problems(status, reason, "Task.statusReason.text")
    business = _read_business_status(fhir.get("businessStatus"), problems, losses)
    read_fixed_code(fhir.get("intent"), "Task.intent", "order", problems)
    _read_code(fhir.get("code"), problems, losses)
    focus = read_required_reference(fhir, "Task", "focus", "ServiceRequest", problems, losses)
    patient = read_required_reference(fhir, "Task", "for", "Patient", problems, losses)
    requester = ""
    if fhir.get("requester") is None:
        problems.append(Problem("Task.requester", "is required", "required"))
    else:
        requester = read_reference_to(
            fhir["requester"], "Task.requester", PARTY_TYPES, problems, losses
        )
    owner = None
    if fhir.get("owner") is not None:
        owner = read_reference_to(fhir["owner"], "Task.owner", PARTY_TYPES, problems, losses)
    authored = read_datetime(fhir.get("authoredOn"), "Task.authoredOn", problems, losses)
    modified = read_optional_datetime(
        fhir.get("lastModified"), "Task.lastModified", problems, losses
    )
    if authored is not None and modified is not None and modified < authored:
        problems.append(Problem("Task.lastModified", "is before Task.authoredOn (R4 inv-1)"))
    activity = _read_output(fhir.get("output"), problems, losses)
    raise_if_problems("Task", problems)
    assert identifier and status and authored
    task = ReferralTask(
        identifier, status, focus, patient, requester, authored, modified, owner,
        reason, business, activity,
    )  # fmt: skip
    # Validated once: every check of ReferralTask.problems() was made above, on the element it
    # came from (tests/unit/mappers/test_validated_once.py pins that), so not run again here.
    return Mapped(task, {}, tuple(losses))


def _read_status_reason(value: Any, problems: list[Problem], losses: list[Loss]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(Problem("Task.statusReason", "expected a CodeableConcept", "structure"))
        return None
    losses += unmapped_keys(value, _STATUS_REASON_KEYS, path="Task.statusReason")
    if value.get("text") is None:
        return None  # a coded reason without text: lost above, and SDOHCC's rule names it
    return read_str_in(value, "text", "Task.statusReason", problems, required=True)


_STATUS_REASON_KEYS = frozenset({"text"})
_BUSINESS_STATUS_BY_CODING = {(BSER_TASK_BUSINESS_STATUS, code): code for code in BUSINESS_STATUSES}
_BSER_SYSTEMS = frozenset({BSER_TASK_BUSINESS_STATUS})
_FULFILL_KNOWN = {(TASK_CODE, TASK_FULFILL.code): True}
_OUTPUT_KEYS = frozenset({"type", "valueReference"})


def _read_business_status(value: Any, problems: list[Problem], losses: list[Loss]) -> str | None:
    """The BSeR milestone; a businessStatus in another system is reported as lost."""
    if value is None:
        return None
    code, inner = read_known_coding(
        value,
        "Task.businessStatus",
        _BUSINESS_STATUS_BY_CODING,
        problems,
        owned_systems=_BSER_SYSTEMS,
    )
    if code is None:
        if isinstance(value, dict):
            losses.append(Loss("Task.businessStatus", "no BSeR business status coding"))
        return None
    losses += inner
    return str(code)


def _read_code(value: Any, problems: list[Problem], losses: list[Loss]) -> None:
    """Task.code, when given, must say task-code#fulfill: any other Task is not a referral to
    fulfil. R4 Task.code is 0..1 and senders often leave it out: its focus (a ServiceRequest)
    already says what is asked."""
    if value is None:
        return
    found, inner = read_known_coding(value, "Task.code", _FULFILL_KNOWN, problems)
    if found is None and isinstance(value, dict):
        problems.append(Problem("Task.code", "expected task-code#fulfill", "code-invalid"))
    losses += inner


def _read_output(value: Any, problems: list[Problem], losses: list[Loss]) -> str | None:
    """The first resulting-activity output pointing at an Encounter; other outputs are lost."""
    kept: str | None = None
    for index, item in enumerate(read_list(value, "Task.output", problems)):
        path = f"Task.output[{index}]"
        if kept is not None or not _is_resulting_activity(item) or "valueReference" not in item:
            losses.append(Loss(path, "output not modelled by iop-bridge"))
            continue
        losses += unmapped_keys(item, _OUTPUT_KEYS, path=path)
        if item["type"] not in _OUTPUT_TYPES:
            losses.append(Loss(f"{path}.type", "sent back as SDOHCC resulting-activity"))
        target = read_reference_to(
            item["valueReference"], f"{path}.valueReference", ("Encounter",), problems, losses
        )
        kept = target or None
    return kept


def _is_resulting_activity(output: Any) -> bool:
    """Typed by our text, or by the SDOHCC temporary code ``resulting-activity``."""
    concept = output.get("type") if isinstance(output, dict) else None
    if not isinstance(concept, dict):
        return False
    codings = concept.get("coding")
    codings = codings if isinstance(codings, list) else []
    return concept.get("text") == OUTPUT_TYPE_TEXT or any(
        isinstance(c, dict)
        and (c.get("system"), c.get("code")) == (SDOHCC_TEMPORARY_CODES, "resulting-activity")
        for c in codings
    )
