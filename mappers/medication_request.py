"""A medication the client takes <-> FHIR R4 MedicationRequest, our own dialect: what iop-bridge
sends (``to_fhir``) and reads back exactly (``from_fhir``).

Why MedicationRequest: US Core has not profiled MedicationStatement since v4 and receivers read a
patient's medications as MedicationRequests; the profile is ``iop-medicationrequest``, on US Core
9.0.0 MedicationRequest (StructureDefinition-us-core-medicationrequest.yml). What we fill:

- ``intent`` ``plan`` (R4 valueset-medicationrequest-intent: "an intention to ensure something
  occurs without providing an authorization for others to act"): the IOP records the medications
  the client takes, it does not order them, so no requester is claimed (US Core's us-core-21
  asks for one only with the order intents). US Core's own example of a reported medication
  (medicationrequest-self-tylenol) has the same shape.
- ``reportedBoolean`` true (US Core must-support ``reported[x]``): a secondary record (the
  residential program's discharge list, the client's list at intake), not the prescriber's.
- ``category`` (US Core slice ``category:us-core``, required binding to R4
  medicationrequest-category): ``community`` for what the client takes at home between
  sessions, ``discharge`` for a discharge list (``fhir_profiles.terminology.workflow``).
- ``status``: the MedicationStatement status of the entry, as its nearest request status (the
  inverse of the table ``mappers.foreign.medication_request`` reads senders' requests with).
- ``medicationCodeableConcept``, ``subject``, ``reasonReference``, ``authoredOn`` (when the list
  was recorded) and one ``dosageInstruction`` (the statement's dosage; the start and end of
  taking it as ``timing.repeat.boundsPeriod``, R4 Timing).

The entry itself is ``mappers.medication.MedicationEntry``; the statement reader
(``mappers.medication_reader``) does the element-level reading, on the request rewritten as a
statement, and every problem and loss is reported at the request's own path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.workflow import MEDICATION_COMMUNITY, MEDICATION_DISCHARGE
from mappers import medication, medication_reader
from mappers.errors import MappingError, Problem, raise_if_problems
from mappers.fhir_write import datetime_problems, format_datetime
from mappers.loss import Loss, Mapped, unmapped_top_level

MR: Final = "MedicationRequest"
PROFILE: Final = structure_definition_url("iop-medicationrequest")
INTENT: Final = "plan"
CATEGORIES: Final = (MEDICATION_COMMUNITY, MEDICATION_DISCHARGE)
# MedicationStatement.status -> MedicationRequest.status (both required bindings in R4).
REQUEST_STATUS: Final = {
    "active": "active", "on-hold": "on-hold", "not-taken": "cancelled",
    "completed": "completed", "entered-in-error": "entered-in-error", "stopped": "stopped",
    "intended": "draft", "unknown": "unknown",
}  # fmt: skip
_STATEMENT_STATUS: Final = {request: statement for statement, request in REQUEST_STATUS.items()}


def to_fhir(
    entry: medication.MedicationEntry,
    *,
    id_system: str,
    subject_reference: str,
    category: Code,
    authored_on: datetime | None = None,
    reason_references: Sequence[str] = (),
    resource_id: str | None = None,
) -> dict[str, Any]:
    """Fill MedicationRequest.meta.profile, identifier, status, intent, category, reported,
    medicationCodeableConcept, subject, authoredOn, reasonReference and dosageInstruction."""
    problems = [] if category in CATEGORIES else [Problem("category", f"{category} is not ours")]
    if authored_on is not None:
        problems += datetime_problems(authored_on, "authored_on")
    raise_if_problems("MedicationEntry", problems)
    statement = medication.to_fhir(
        entry, id_system=id_system, subject_reference=subject_reference,
        reason_references=reason_references,
    )  # fmt: skip
    resource: dict[str, Any] = {"resourceType": MR}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["meta"] = {"profile": [PROFILE]}
    resource["identifier"] = statement["identifier"]
    resource["status"] = REQUEST_STATUS[entry.status]
    resource["intent"] = INTENT
    resource["category"] = [category.codeable_concept()]
    resource["reportedBoolean"] = True
    resource["medicationCodeableConcept"] = statement["medicationCodeableConcept"]
    resource["subject"] = statement["subject"]
    if authored_on is not None:
        resource["authoredOn"] = format_datetime(authored_on)
    if "reasonReference" in statement:
        resource["reasonReference"] = statement["reasonReference"]
    dosage = dict(statement.get("dosage", [{}])[0])
    if "effectivePeriod" in statement:
        timing = dosage.setdefault("timing", {})
        bounds = {"boundsPeriod": statement["effectivePeriod"]}
        timing["repeat"] = timing.get("repeat", {}) | bounds
    if dosage:
        resource["dosageInstruction"] = [dosage]
    return resource


# Read here (checked, or rewritten for the statement reader); anything else is a loss.
_READ: Final = frozenset(
    {"resourceType", "id", "meta", "identifier", "status", "intent", "category", "reportedBoolean"}
    | {"medicationCodeableConcept", "subject", "authoredOn", "reasonReference"}
    | {"dosageInstruction", "modifierExtension"}
)
_BOUNDS: Final = "dosageInstruction[0].timing.repeat.boundsPeriod"
_RENAMES: Final = {
    "MedicationStatement.effectivePeriod": f"{MR}.{_BOUNDS}",
    "MedicationStatement.dosage": f"{MR}.dosageInstruction",
    "MedicationStatement": MR,
}


def from_fhir(resource: Any, *, id_system: str) -> Mapped[medication.MedicationEntry]:
    """Read a MedicationEntry from a MedicationRequest ``to_fhir`` wrote; links ``subject`` and
    ``reasonReference[i]``. The category and authoredOn belong to the list the entry is on."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    if not isinstance(resource, Mapping) or resource.get("resourceType") != MR:
        raise MappingError.from_problems(MR, [Problem(f"{MR}.resourceType", f"expected {MR}")])
    if resource.get("intent") != INTENT:
        problems.append(Problem(f"{MR}.intent", f"{resource.get('intent')!r} is not {INTENT!r}"))
    if resource.get("reportedBoolean") is not True:
        losses.append(Loss(f"{MR}.reported[x]", "not a reported record: read as one"))
    losses += _category_losses(resource.get("category"))
    losses += unmapped_top_level(resource, _READ, type_name=MR)
    status = resource.get("status")
    if status not in _STATEMENT_STATUS:
        problems.append(Problem(f"{MR}.status", f"{status!r} is not a request status"))
    raise_if_problems(MR, problems)
    statement = _as_statement(resource, str(status), problems)
    raise_if_problems(MR, problems)
    mapped = medication_reader.read_rewritten(
        statement, id_system=id_system, what=MR, renames=_RENAMES
    )
    return Mapped(mapped.value, mapped.links, (*losses, *mapped.losses))


def _as_statement(
    resource: Mapping[str, Any], status: str, problems: list[Problem]
) -> dict[str, Any]:
    """The request as the MedicationStatement the statement reader reads."""
    statement: dict[str, Any] = {"resourceType": "MedicationStatement"}
    statement["status"] = _STATEMENT_STATUS[status]
    for key in ("identifier", "modifierExtension", "medicationCodeableConcept", "subject"):
        if key in resource:
            statement[key] = resource[key]
    if "reasonReference" in resource:
        statement["reasonReference"] = resource["reasonReference"]
    dosages = resource.get("dosageInstruction")
    if not isinstance(dosages, list) or not dosages or not isinstance(dosages[0], dict):
        if dosages is not None:
            statement["dosage"] = dosages  # the statement reader names what is wrong
        return statement
    first: dict[str, Any] = dosages[0]
    timing = first.get("timing")
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if isinstance(timing, dict) and isinstance(repeat, dict) and "boundsPeriod" in repeat:
        statement["effectivePeriod"] = repeat["boundsPeriod"]
        timing = _replaced(timing, "repeat", _replaced(repeat, "boundsPeriod", {}))
        first = _replaced(first, "timing", timing)
    if first or len(dosages) > 1:
        statement["dosage"] = [first, *dosages[1:]]
    return statement


def _replaced(element: Mapping[str, Any], key: str, value: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``element`` with ``key`` set to ``value``, or without it when it is empty."""
    copy = {k: v for k, v in element.items() if k != key}
    return copy | ({key: value} if value else {})


_OUR_CATEGORIES: Final = frozenset((c.system, c.code) for c in CATEGORIES)


def _category_losses(value: Any) -> list[Loss]:
    """Our category is regenerated from the list; any other is reported."""
    lost = []
    for index, concept in enumerate(value if isinstance(value, list) else []):
        codings = concept.get("coding") if isinstance(concept, dict) else None
        pairs = {(c.get("system"), c.get("code")) for c in codings or [] if isinstance(c, dict)}
        if not pairs & _OUR_CATEGORIES:
            lost.append(Loss(f"{MR}.category[{index}]", "not a category iop-bridge writes"))
    return lost
