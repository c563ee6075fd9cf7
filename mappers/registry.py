"""The explicit registry of ``from_fhir`` mappers, keyed by resourceType.

Each entry adapts one concept's ``from_fhir`` (in its module, or its ``*_reader`` module) to a
shared ``MappingContext`` (the business identifier systems a deployment uses), so callers such as
``iop-bridge map`` can map any supported resource without knowing which module handles it. Two
resource types carry two IOP concepts each and are routed by content: Encounter by class (a
session is AMB or VR; anything else is a residential stay), QuestionnaireResponse by its
questionnaire canonical.

The concept mappers read well-typed FHIR JSON; untrusted JSON of another shape (``"code": 5``,
``"coding": {}``) can make one fail with TypeError, LookupError or AttributeError. ``from_fhir``
turns such a failure into a MappingError (an InvalidInputError) naming the resource type and
each element whose type is wrong, as the R4 structure tells (``shape_problems``). A failure on a
resource that is well-formed FHIR is a bug in the mapper and is raised as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

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
from mappers import medication_request as our_medication_request
from mappers.errors import MappingError, Problem
from mappers.foreign import condition as foreign_condition
from mappers.foreign import consent as foreign_consent
from mappers.foreign import generic, medication_request, screening, screening_observations, stay
from mappers.foreign import patient as foreign_patient
from mappers.foreign import referral as foreign_referral
from mappers.foreign.identity import has_system
from mappers.loss import Mapped

T = TypeVar("T")

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
    medication_request_id_system: str = canonical.MEDICATION_REQUEST_ID_SYSTEM
    medication_list_id_system: str = canonical.MEDICATION_LIST_ID_SYSTEM
    practitioner_role_id_system: str = canonical.PRACTITIONER_ROLE_ID_SYSTEM
    referral_id_system: str = canonical.REFERRAL_ID_SYSTEM
    task_id_system: str = canonical.TASK_ID_SYSTEM
    consent_id_system: str = canonical.CONSENT_ID_SYSTEM


FromFhir = Callable[[Mapping[str, Any], MappingContext], Mapped[Any]]


def _encounter(resource: Mapping[str, Any], context: MappingContext) -> Mapped[Any]:
    kind = resource.get("class")
    code = kind.get("code") if isinstance(kind, Mapping) else kind
    if code is not None and not isinstance(code, str):
        # Which concept this is cannot be told: name the element rather than guess.
        problems = shape_problems(resource) or [
            Problem("Encounter.class", "must be a Coding with a code", "structure")
        ]
        raise MappingError.from_problems("Encounter", problems)
    if code in _SESSION_CLASSES and has_system(resource, context.session_id_system):
        return encounter.from_fhir(resource, id_system=context.session_id_system)
    if code in _SESSION_CLASSES:
        # IOP sessions are the IOP's own records; another system's visit is not one of them.
        raise MappingError.from_problems("Encounter", [stay.not_a_session(resource)])
    if has_system(resource, context.residential_stay_id_system):
        return residential.from_fhir(resource, id_system=context.residential_stay_id_system)
    return stay.from_fhir(resource)


def _questionnaire_response(resource: Mapping[str, Any], context: MappingContext) -> Mapped[Any]:
    questionnaire = resource.get("questionnaire")
    if questionnaire == asam_intake.INTAKE_QUESTIONNAIRE:
        return asam_intake.from_fhir(resource, id_system=context.intake_id_system)
    ours = has_system(resource, context.assessment_id_system)
    if questionnaire in assessment.QUESTIONNAIRES.values() and ours:
        return assessment.from_fhir(resource, id_system=context.assessment_id_system)
    return screening.from_fhir(resource)  # another system's: PHQ-9/GAD-7 found by LOINC


Reader = Callable[[Mapping[str, Any], str], Mapped[Any]]


def _ours_or_foreign(
    system: Callable[[MappingContext], str],
    ours: Reader,
    foreign: Callable[[Mapping[str, Any], Reader], Mapped[Any]] = generic.adopt,
) -> FromFhir:
    """Our reader for a resource in one of our identifier systems (our own dialect, read
    exactly); else ``foreign`` (by default our reader under the sender's identifier,
    mappers.foreign.generic; or a foreign reader of its own)."""

    def read(resource: Mapping[str, Any], context: MappingContext) -> Mapped[Any]:
        id_system = system(context)
        if has_system(resource, id_system):
            return ours(resource, id_system)
        return foreign(resource, ours)

    return read


def _foreign_plan(resource: Mapping[str, Any], system: str) -> Mapped[Any]:
    """Another system's plan: the 9-19 h/week band is a warning, not a refusal."""
    return care_plan_reader.from_fhir(resource, plan_id_system=system, band_is_warning=True)


def _only(reader: Callable[[Mapping[str, Any]], Mapped[Any]]) -> Any:
    """A foreign reader that needs nothing of ours."""
    return lambda resource, _ours: reader(resource)


FROM_FHIR: Mapping[str, FromFhir] = MappingProxyType(
    {
        "Patient": _ours_or_foreign(
            lambda c: c.mrn_system,
            lambda r, s: patient.from_fhir(r, mrn_system=s),
            _only(foreign_patient.from_fhir),
        ),
        "Condition": _ours_or_foreign(
            lambda c: c.condition_id_system,
            lambda r, s: condition.from_fhir(r, id_system=s),
            _only(foreign_condition.from_fhir),
        ),
        "Goal": _ours_or_foreign(
            lambda c: c.goal_id_system, lambda r, s: goal_reader.from_fhir(r, goal_id_system=s)
        ),
        "CarePlan": _ours_or_foreign(
            lambda c: c.care_plan_id_system,
            lambda r, s: care_plan_reader.from_fhir(r, plan_id_system=s),
            lambda r, _: generic.care_plan(r, _foreign_plan),
        ),
        "Encounter": _encounter,
        "QuestionnaireResponse": _questionnaire_response,
        "Observation": lambda r, c: screening_observations.from_fhir(r),
        "MedicationStatement": _ours_or_foreign(
            lambda c: c.medication_statement_id_system,
            lambda r, s: medication_reader.from_fhir(r, id_system=s),
        ),
        "MedicationRequest": _ours_or_foreign(
            lambda c: c.medication_request_id_system,
            lambda r, s: our_medication_request.from_fhir(r, id_system=s),
            lambda r, _: medication_request.from_fhir(r),
        ),
        "List": _ours_or_foreign(
            lambda c: c.medication_list_id_system,
            lambda r, s: medication_reader.list_from_fhir(r, id_system=s),
        ),
        "ServiceRequest": _ours_or_foreign(
            lambda c: c.referral_id_system,
            lambda r, s: referral.from_fhir(r, id_system=s),
            _only(foreign_referral.from_fhir),
        ),
        "Task": _ours_or_foreign(
            lambda c: c.task_id_system, lambda r, s: referral_task.from_fhir(r, id_system=s)
        ),
        "Consent": _ours_or_foreign(
            lambda c: c.consent_id_system,
            lambda r, s: consent_reader.from_fhir(r, id_system=s),
            _only(foreign_consent.from_fhir),
        ),
    }
)


def from_fhir(resource: Any, context: MappingContext) -> Mapped[Any]:
    """Map any supported resource to its domain value, links and loss report."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    mapper = FROM_FHIR.get(str(resource_type))
    if mapper is None:
        problem = Problem("resourceType", _not_mapped(resource_type), "not-supported")
        raise MappingError.from_problems("resource", [problem])
    try:  # what guarded() does, without a closure and a frame for every resource read
        return mapper(resource, context)
    except _WRONG_SHAPE as error:
        _raise_shape_problems(resource, error)
        raise


# Read where something references them, never on their own.
_PARTIES = frozenset({"Organization", "Practitioner", "PractitionerRole", "HealthcareService",
                      "Location", "Endpoint", "RelatedPerson", "CareTeam"})  # fmt: skip


def _not_mapped(resource_type: Any) -> str:
    if resource_type in _PARTIES:
        return f"{resource_type!r} is a party: read where a referral or consent references it"
    if resource_type == "Medication":
        return "'Medication' is read through the MedicationRequest that references it"
    supported = ", ".join(sorted(FROM_FHIR))
    return f"{resource_type!r} is not part of an IOP referral (iop-bridge maps: {supported})"


def guarded(resource: Mapping[str, Any], read: Callable[[], Mapped[T]]) -> Mapped[T]:
    """Run a reader of ``resource``; a TypeError/LookupError/AttributeError caused by an element
    of the wrong JSON type becomes a MappingError naming each such path. For readers called
    directly rather than through :func:`from_fhir` (e.g. a List read with its statements)."""
    try:
        return read()
    except _WRONG_SHAPE as error:
        _raise_shape_problems(resource, error)
        raise  # well-formed FHIR a mapper cannot read: a bug, not bad input


def _raise_shape_problems(resource: Mapping[str, Any], error: Exception) -> None:
    """Raise the MappingError naming each element of the wrong JSON type that made a reader
    fail with ``error``; return when there is none (the caller re-raises ``error``)."""
    problems = shape_problems(resource)
    if problems:
        raise MappingError.from_problems(str(resource.get("resourceType")), problems) from error


# What a mapper meets when an element has another JSON type than FHIR gives it.
_WRONG_SHAPE = (TypeError, LookupError, AttributeError)


def shape_problems(resource: Mapping[str, Any]) -> list[Problem]:
    """Every element of ``resource`` that does not have its R4 type (fhir.resources' R4B models:
    the same structure for every type mapped here), each with its path; [] when well-formed."""
    from fhir.resources.R4B import get_fhir_model_class  # on failures only: a costly import
    from pydantic import ValidationError

    kind = str(resource.get("resourceType"))
    try:
        get_fhir_model_class(kind).model_validate(resource)
    except ValidationError as invalid:
        errors = invalid.errors(include_url=False, include_input=False)
        # The message names the expected type, never the value given (it may be PHI).
        return [Problem(_path(kind, e["loc"]), e["msg"], "structure") for e in errors]
    except Exception as error:  # a validator that the same input broke: still the input's fault
        message = f"cannot be read: an element has an unexpected type ({type(error).__name__})"
        return [Problem(kind, message, "structure")]
    return []


def _path(kind: str, location: tuple[int | str, ...]) -> str:
    """``('code', 'coding', 0, 'code')`` -> ``Condition.code.coding[0].code`` (pydantic's own
    steps, such as ``root`` or ``function-after[...]``, left out)."""
    path = kind
    for step in location:
        if isinstance(step, int):
            path += f"[{step}]"
        elif step != "root" and "[" not in step:
            path += f".{step}"
    return path
