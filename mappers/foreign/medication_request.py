"""A sender's MedicationRequest (US Core: the discharge medication list is usually a set of
MedicationRequests, category ``discharge``) as a MedicationEntry.

The drug is ``medicationCodeableConcept`` or ``medicationReference`` to a Medication, contained
(``#id``) or a resource of the same package (R4 medicationrequest.html: medication[x]); the
RxNorm code and the NDC are kept with the medication, any other coding goes to the loss report,
the text always. The request is rewritten into our MedicationStatement dialect and read by
``mappers.medication_reader``: dosageInstruction is the statement's dosage, authoredOn its start.
Problems and losses are reported at the MedicationRequest's own paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappers import medication_reader
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import reference_tail
from mappers.foreign.identity import sender_identifier
from mappers.loss import Loss, Mapped
from mappers.medication import MedicationEntry

MR = "MedicationRequest"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
_STAND_IN = "urn:iop-bridge:foreign"
# R4 medicationrequest-status -> medication-statement-status (the nearest meaning).
_STATUS = {
    "active": "active", "on-hold": "on-hold", "cancelled": "not-taken",
    "completed": "completed", "entered-in-error": "entered-in-error", "stopped": "stopped",
    "draft": "intended", "unknown": "unknown",
}  # fmt: skip
_READ = frozenset({"resourceType", "id", "meta", "identifier", "status", "intent", "category",
                   "medicationCodeableConcept", "medicationReference", "subject", "authoredOn",
                   "dosageInstruction", "reasonReference", "contained", "text", "requester",
                   "encounter"})  # fmt: skip
_RENAMES = {
    "MedicationStatement.dosage": f"{MR}.dosageInstruction",
    "MedicationStatement.effectivePeriod.start": f"{MR}.authoredOn",
    "MedicationStatement.medicationCodeableConcept": f"{MR}.medication",
    "MedicationStatement": MR,
}


def from_fhir(
    resource: Mapping[str, Any], medications: Mapping[str, Mapping[str, Any]] | None = None
) -> Mapped[MedicationEntry]:
    """Read a MedicationEntry from a MedicationRequest; ``medications`` holds the package's
    Medication resources by reference (``Medication/id`` or a ``urn:uuid``)."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    found = sender_identifier(resource, MR, problems, losses)
    concept = _medication(resource, medications or {}, problems, losses)
    status = resource.get("status")
    if status not in _STATUS:
        problems.append(Problem(f"{MR}.status", f"{status!r} is not a request status"))
    losses += _category_losses(resource.get("category"))
    losses += [Loss(f"{MR}.{key}", "element not modelled by iop-bridge")
               for key in resource if key not in _READ]  # fmt: skip
    for key in ("requester", "encounter", "intent"):
        if key in resource:
            losses.append(Loss(f"{MR}.{key}", "element not modelled by iop-bridge"))
    raise_if_problems(MR, problems)
    assert found is not None and concept is not None
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "identifier": [{"system": _STAND_IN, "value": found.value}],
        "status": _STATUS[str(status)],
        "medicationCodeableConcept": concept,
        "subject": resource.get("subject"),
    }
    if isinstance(resource.get("authoredOn"), str):
        statement["effectivePeriod"] = {"start": resource["authoredOn"]}
    for key, ours in (("dosageInstruction", "dosage"), ("reasonReference", "reasonReference")):
        if key in resource:
            statement[ours] = resource[key]
    mapped = medication_reader.read_rewritten(
        statement, id_system=_STAND_IN, what=MR, renames=_RENAMES
    )
    return Mapped(mapped.value, mapped.links, (*losses, *mapped.losses))


def is_discharge(resource: Mapping[str, Any]) -> bool:
    """Whether the request is in the ``discharge`` category (medicationrequest-category)."""
    for concept in resource.get("category") or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("system") == CATEGORY_SYSTEM and coding.get("code") == "discharge":
                return True
    return False


def _medication(
    resource: Mapping[str, Any],
    medications: Mapping[str, Mapping[str, Any]],
    problems: list[Problem],
    losses: list[Loss],
) -> dict[str, Any] | None:
    """The drug as a CodeableConcept: given inline, or the code of the referenced Medication."""
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return _with_text(concept)
    target = (resource.get("medicationReference") or {}).get("reference")
    path = f"{MR}.medicationReference"
    if not isinstance(target, str):
        problems.append(Problem(f"{MR}.medication[x]", "is required", "required"))
        return None
    if target.startswith("#"):
        contained: dict[str, Mapping[str, Any]] = {
            f"#{c.get('id')}": c for c in resource.get("contained") or [] if isinstance(c, dict)
        }
        medication: Mapping[str, Any] | None = contained.get(target)
    else:
        medication = medications.get(target) or _by_tail(medications, target)
    if medication is None:
        display = (resource.get("medicationReference") or {}).get("display")
        if isinstance(display, str) and display.strip():
            losses.append(Loss(path, "the Medication is not in the package: its display is kept"))
            return {"text": display}
        problems.append(Problem(path, f"{target!r} is not in the package", "not-found"))
        return None
    code = medication.get("code")
    if not isinstance(code, dict):
        problems.append(Problem(f"{path} -> Medication.code", "is required", "required"))
        return None
    for key in medication:
        if key not in ("resourceType", "id", "meta", "code", "text"):
            losses.append(Loss(f"{path} -> Medication.{key}", "element not modelled"))
    return _with_text(code)


def _with_text(concept: Mapping[str, Any]) -> dict[str, Any]:
    """The concept with a text: the sender's, else the first coding's display."""
    copy = dict(concept)
    if not copy.get("text"):
        displays = [c.get("display") for c in copy.get("coding") or [] if isinstance(c, dict)]
        copy["text"] = next((d for d in displays if isinstance(d, str) and d.strip()), None)
    return copy


def _by_tail(medications: Mapping[str, Mapping[str, Any]], target: str) -> Mapping[str, Any] | None:
    """An absolute reference (``https://ehr.example/fhir/Medication/7``) by its ``Type/id``."""
    return medications.get(reference_tail(target))


def _category_losses(value: Any) -> list[Loss]:
    categories = value if isinstance(value, list) else []
    return [
        Loss(f"{MR}.category[{i}]", "category other than discharge not modelled")
        for i, concept in enumerate(categories)
        if not any(
            isinstance(c, dict) and c.get("system") == CATEGORY_SYSTEM
            and c.get("code") == "discharge"
            for c in (concept or {}).get("coding") or []
        )
    ]  # fmt: skip
