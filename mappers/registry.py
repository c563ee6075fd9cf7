"""The explicit registry of ``from_fhir`` mappers, keyed by resourceType.

Each entry adapts one concept's ``from_fhir`` (in its module, or its ``*_reader`` module) to a
shared ``MappingContext`` (the business identifier systems a deployment uses), so callers such as
``iop-bridge map`` can map any supported resource without knowing which module handles it. Two
resource types carry two IOP concepts each and are routed by content: Encounter by class (a
session is AMB or VR; anything else is a residential stay), QuestionnaireResponse by its
questionnaire canonical.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fhir_profiles import canonical
from mappers import (
    asam_intake,
    assessment,
    care_plan_reader,
    condition,
    consent_reader,
    encounter,
    goal_reader,
    medication_reader,
    patient,
    referral,
    referral_task,
    residential,
)
from mappers.errors import MappingError, Problem
from mappers.loss import Mapped

_SESSION_CLASSES = frozenset({"AMB", "VR"})


@dataclass(frozen=True, slots=True)
class MappingContext:
    """Identifier systems that tell our business identifiers apart from everyone else's."""

    mrn_system: str = canonical.MRN_SYSTEM
    condition_id_system: str = canonical.CONDITION_ID_SYSTEM
    goal_id_system: str = canonical.GOAL_ID_SYSTEM
    care_plan_id_system: str = canonical.CARE_PLAN_ID_SYSTEM
    session_id_system: str = canonical.SESSION_ID_SYSTEM
    residential_stay_id_system: str = canonical.RESIDENTIAL_STAY_ID_SYSTEM
    assessment_id_system: str = canonical.ASSESSMENT_ID_SYSTEM
    intake_id_system: str = canonical.INTAKE_ID_SYSTEM
    medication_statement_id_system: str = canonical.MEDICATION_STATEMENT_ID_SYSTEM
    medication_list_id_system: str = canonical.MEDICATION_LIST_ID_SYSTEM
    referral_id_system: str = canonical.REFERRAL_ID_SYSTEM
    task_id_system: str = canonical.TASK_ID_SYSTEM
    consent_id_system: str = canonical.CONSENT_ID_SYSTEM


FromFhir = Callable[[Mapping[str, Any], MappingContext], Mapped[Any]]


def _encounter(resource: Mapping[str, Any], context: MappingContext) -> Mapped[Any]:
    if (resource.get("class") or {}).get("code") in _SESSION_CLASSES:
        return encounter.from_fhir(resource, id_system=context.session_id_system)
    return residential.from_fhir(resource, id_system=context.residential_stay_id_system)


def _questionnaire_response(resource: Mapping[str, Any], context: MappingContext) -> Mapped[Any]:
    questionnaire = resource.get("questionnaire")
    if questionnaire == asam_intake.INTAKE_QUESTIONNAIRE:
        return asam_intake.from_fhir(resource, id_system=context.intake_id_system)
    if questionnaire in assessment.QUESTIONNAIRES.values():
        return assessment.from_fhir(resource, id_system=context.assessment_id_system)
    known = ", ".join(
        sorted([*assessment.QUESTIONNAIRES.values(), asam_intake.INTAKE_QUESTIONNAIRE])
    )
    problem = Problem(
        "QuestionnaireResponse.questionnaire",
        f"{questionnaire!r} is not a questionnaire iop-bridge maps (known: {known})",
        "not-supported",
    )
    raise MappingError.from_problems("QuestionnaireResponse", [problem])


FROM_FHIR: Mapping[str, FromFhir] = MappingProxyType(
    {
        "Patient": lambda r, c: patient.from_fhir(r, mrn_system=c.mrn_system),
        "Condition": lambda r, c: condition.from_fhir(r, id_system=c.condition_id_system),
        "Goal": lambda r, c: goal_reader.from_fhir(r, goal_id_system=c.goal_id_system),
        "CarePlan": lambda r, c: care_plan_reader.from_fhir(
            r, plan_id_system=c.care_plan_id_system
        ),
        "Encounter": _encounter,
        "QuestionnaireResponse": _questionnaire_response,
        "MedicationStatement": lambda r, c: medication_reader.from_fhir(
            r, id_system=c.medication_statement_id_system
        ),
        "List": lambda r, c: medication_reader.list_from_fhir(
            r, id_system=c.medication_list_id_system
        ),
        "ServiceRequest": lambda r, c: referral.from_fhir(r, id_system=c.referral_id_system),
        "Task": lambda r, c: referral_task.from_fhir(r, id_system=c.task_id_system),
        "Consent": lambda r, c: consent_reader.from_fhir(r, id_system=c.consent_id_system),
    }
)


def from_fhir(resource: Any, context: MappingContext) -> Mapped[Any]:
    """Map any supported resource to its domain value, links and loss report."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    mapper = FROM_FHIR.get(str(resource_type))
    if mapper is None:
        supported = ", ".join(sorted(FROM_FHIR))
        problem = Problem(
            "resourceType", f"{resource_type!r} is not mapped (supported: {supported})",
            "not-supported",
        )  # fmt: skip
        raise MappingError.from_problems("resource", [problem])
    return mapper(resource, context)
