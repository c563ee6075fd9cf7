"""Step-down / aftercare referral <-> FHIR R4 ServiceRequest (the ask; the Task tracks the loop).

Shape (fhir-domain-reference.md 1.1 SDOHCC ServiceRequest, 1.2 BSeR ReferralServiceRequest):

- identifier: the referrer's business identifier, typed v2-0203 ``PLAC`` "Placer Identifier"
  as BSeR slices it (PLAC is in R4 v2-0203 and in the R4 identifier-type value set);
- intent is always ``order``; status is R4 request-status and owned by the requester;
- meta.profile claims US Core ServiceRequest (we have no profile of our own for it);
- category is SNOMED CT 409063005 Counselling with the text "Behavioral health": US Core's
  category slice has a required binding, and no verified code names behavioral health itself
  (SDOHCC's category slice is for SDOH domains, not this one);
- code is the requested level of care, an ASAM code in the Colorado BHA system (reference 2.1
  suggests ServiceRequest.code or orderDetail; code is 1..1-worthy and what receivers search);
- subject, requester, performer, reasonReference and supportingInfo are references that belong
  to the referral itself, so they live in the domain type rather than in ``Mapped.links``.

The placer identifier (PLAC) helpers here are shared with ``mappers.referral_task``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from fhir_profiles.terminology.categories import SERVICE_REQUEST_COUNSELING
from fhir_profiles.terminology.clinical import ASAM_LEVELS
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.systems import COLORADO_BHA_ASAM_LEVEL_OF_CARE
from fhir_profiles.terminology.workflow import IDENTIFIER_TYPE_PLAC
from fhir_profiles.us_core import US_CORE_PROFILE
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_coding import read_known_coding
from mappers.fhir_read import (
    open_resource,
    read_code,
    read_datetime,
    read_day,
    read_first_note,
    read_fixed_code,
    read_list,
    read_str_in,
)
from mappers.fhir_reference import (
    PARTY_TYPES,
    read_reference_list,
    read_reference_to,
    read_required_reference,
    reference,
    reference_problems,
    typed_reference_problems,
)
from mappers.fhir_write import datetime_problems, format_datetime, identifier_problems
from mappers.loss import Loss, Mapped, unmapped_keys

# ServiceRequest.status, required binding (R4 valueset-request-status.html).
REQUEST_STATUSES = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
CATEGORY_TEXT = "Behavioral health"
# US Core ServiceRequest.category:us-core (required binding): SNOMED CT Counselling, with our
# text kept. The earlier text-only category is still recognised on input.
CATEGORY: Final = SERVICE_REQUEST_COUNSELING.codeable_concept(CATEGORY_TEXT)
_CATEGORIES = ({"text": CATEGORY_TEXT}, CATEGORY)  # compared with only; to_fhir sends a copy
PROFILE: Final = US_CORE_PROFILE["ServiceRequest"]
ASAM_BY_CODE: Mapping[str, Code] = {c.code: c for c in ASAM_LEVELS}
# Another build of the Colorado BHA IG spells outpatient "1" (reference 2.1 CONFLICT).
_ASAM_KNOWN = {(c.system, c.code): c.code for c in ASAM_LEVELS} | {
    (COLORADO_BHA_ASAM_LEVEL_OF_CARE, "1"): "1.0"
}
_ASAM_SYSTEMS = frozenset({COLORADO_BHA_ASAM_LEVEL_OF_CARE})
# What the step-down package points at (DESIGN.md workflow 1; BSeR supportingInfo is a Bundle).
SUPPORTING_TYPES = (
    "Encounter",
    "QuestionnaireResponse",
    "List",
    "Consent",
    "Bundle",
    "DocumentReference",
    "Observation",
    "CarePlan",
    "Composition",
)


@dataclass(frozen=True, slots=True)
class Referral:
    """A referral to a level of care (IOP for a step-down, outpatient for aftercare)."""

    identifier: str
    status: str
    level_of_care: str  # ASAM code, e.g. "2.1" Intensive Outpatient
    subject: str  # Patient reference
    requester: str  # Organization reference (the referring program)
    performer: str  # Organization reference (the program asked to provide the care)
    authored_on: datetime
    requested_start: date | None = None
    reasons: tuple[str, ...] = ()  # Condition references
    supporting_info: tuple[str, ...] = ()  # the package: Encounter, responses, List, Consent
    note: str | None = None

    def problems(self, parties: Sequence[str] = ("Organization",)) -> list[Problem]:
        """Every reason this referral cannot be sent as a ServiceRequest, each with its field."""
        found = identifier_problems(self.identifier, "Referral.identifier")
        if self.status not in REQUEST_STATUSES:
            found.append(Problem("Referral.status", f"{self.status!r} is not a request-status"))
        if self.level_of_care not in ASAM_BY_CODE:
            found.append(
                Problem("Referral.level_of_care", f"{self.level_of_care!r} is not an ASAM level")
            )
        found += reference_problems(self.subject, "Patient", "Referral.subject")
        found += typed_reference_problems(self.requester, parties, "Referral.requester")
        found += typed_reference_problems(self.performer, parties, "Referral.performer")
        found += datetime_problems(self.authored_on, "Referral.authored_on")
        for index, target in enumerate(self.reasons):
            found += reference_problems(target, "Condition", f"Referral.reasons[{index}]")
        for index, target in enumerate(self.supporting_info):
            path = f"Referral.supporting_info[{index}]"
            found += typed_reference_problems(target, SUPPORTING_TYPES, path)
        if self.note is not None and not self.note.strip():
            found.append(Problem("Referral.note", "must not be blank (use None for none)"))
        return found


def to_fhir(
    referral: Referral, *, id_system: str, resource_id: str | None = None
) -> dict[str, Any]:
    """Fill ServiceRequest.identifier (PLAC), status, intent, category, code (ASAM), subject,
    occurrenceDateTime, authoredOn, requester, performer, reasonReference, supportingInfo, note."""
    raise_if_problems("Referral", referral.problems())
    resource: dict[str, Any] = {"resourceType": "ServiceRequest"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["meta"] = {"profile": [PROFILE]}
    resource["identifier"] = [placer_identifier(id_system, referral.identifier)]
    resource["status"] = referral.status
    resource["intent"] = "order"
    # A fresh concept per resource (callers may edit what they get), built rather than deep-copied.
    resource["category"] = [SERVICE_REQUEST_COUNSELING.codeable_concept(CATEGORY_TEXT)]
    resource["code"] = ASAM_BY_CODE[referral.level_of_care].codeable_concept()
    resource["subject"] = reference(referral.subject)
    if referral.requested_start is not None:
        # occurrence[x] dateTime at day precision: the requested first day (BSeR occurrence).
        resource["occurrenceDateTime"] = referral.requested_start.isoformat()
    resource["authoredOn"] = format_datetime(referral.authored_on)
    resource["requester"] = reference(referral.requester)
    resource["performer"] = [reference(referral.performer)]
    if referral.reasons:
        resource["reasonReference"] = [reference(r) for r in referral.reasons]
    if referral.supporting_info:
        resource["supportingInfo"] = [reference(r) for r in referral.supporting_info]
    if referral.note is not None:
        resource["note"] = [{"text": referral.note}]
    return resource


_MAPPED = frozenset(
    {"identifier", "modifierExtension", "status", "intent", "category", "code", "subject"}
    | {"occurrenceDateTime", "authoredOn", "requester", "performer", "reasonReference"}
    | {"supportingInfo", "note"}
)


def from_fhir(resource: Any, *, id_system: str) -> Mapped[Referral]:
    """Read a Referral from ServiceRequest.identifier, status, intent, category, code, subject,
    occurrenceDateTime, authoredOn, requester, performer, reasonReference, supportingInfo, note."""
    problems: list[Problem] = []
    fhir, losses = open_resource(resource, "ServiceRequest", _MAPPED, problems)
    identifier = read_placer_identifier(fhir, id_system, "ServiceRequest", problems, losses)
    status = read_code(fhir.get("status"), "ServiceRequest.status", REQUEST_STATUSES, problems)
    read_fixed_code(fhir.get("intent"), "ServiceRequest.intent", "order", problems)
    losses += [
        Loss(f"ServiceRequest.category[{i}]", "category not modelled by iop-bridge")
        for i, c in enumerate(read_list(fhir.get("category"), "ServiceRequest.category", problems))
        if c not in _CATEGORIES
    ]
    level = _read_level(fhir.get("code"), problems, losses)
    refs = _read_parties(fhir, problems, losses)
    start = read_day(
        fhir.get("occurrenceDateTime"), "ServiceRequest.occurrenceDateTime", problems, losses
    )
    authored = read_datetime(fhir.get("authoredOn"), "ServiceRequest.authoredOn", problems, losses)
    note = read_first_note(fhir.get("note"), "ServiceRequest.note", problems, losses)
    raise_if_problems("ServiceRequest", problems)
    assert identifier and status and level and authored
    referral = Referral(
        identifier, status, level, refs["subject"], refs["requester"], refs["performer"],
        authored, start, refs["reasons"], refs["supporting"], note,
    )  # fmt: skip
    # Validated once: every check of Referral.problems(PARTY_TYPES) (the reader accepts any
    # party R4 allows; we send Organizations) was made above, on the element it came from, so
    # it is not run again on the value (tests/unit/mappers/test_validated_once.py pins that).
    return Mapped(referral, {}, tuple(losses))


def _read_level(concept: Any, problems: list[Problem], losses: list[Loss]) -> str | None:
    """The ASAM level in ServiceRequest.code; a code outside the Colorado BHA list is refused."""
    if concept is None:
        problems.append(Problem("ServiceRequest.code", "is required", "required"))
        return None
    before = len(problems)
    level, inner = read_known_coding(
        concept, "ServiceRequest.code", _ASAM_KNOWN, problems, owned_systems=_ASAM_SYSTEMS
    )
    losses += inner
    if level is None and len(problems) == before:
        problems.append(
            Problem("ServiceRequest.code", "no ASAM level-of-care coding", "code-invalid")
        )
    return None if level is None else str(level)


def _read_parties(
    fhir: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> dict[str, Any]:
    """subject, requester, the first performer, reasonReference and supportingInfo."""
    subject = read_required_reference(
        fhir, "ServiceRequest", "subject", "Patient", problems, losses
    )
    requester = ""
    if fhir.get("requester") is None:
        problems.append(Problem("ServiceRequest.requester", "is required", "required"))
    else:
        requester = read_reference_to(
            fhir["requester"], "ServiceRequest.requester", PARTY_TYPES, problems, losses
        )
    performers = read_list(fhir.get("performer"), "ServiceRequest.performer", problems)
    performer = ""
    if not performers:
        problems.append(Problem("ServiceRequest.performer", "is required", "required"))
    else:
        performer = read_reference_to(
            performers[0], "ServiceRequest.performer[0]", PARTY_TYPES, problems, losses
        )
        if len(performers) > 1:
            losses += [
                Loss(f"ServiceRequest.performer[{i}]", "only one performer is kept")
                for i in range(1, len(performers))
            ]
    reasons = read_reference_list(
        fhir.get("reasonReference"),
        "ServiceRequest.reasonReference",
        ("Condition",),
        problems,
        losses,
    )
    supporting = read_reference_list(
        fhir.get("supportingInfo"),
        "ServiceRequest.supportingInfo",
        SUPPORTING_TYPES,
        problems,
        losses,
    )
    return {
        "subject": subject,
        "requester": requester,
        "performer": performer,
        "reasons": reasons,
        "supporting": supporting,
    }


# --- The placer identifier, shared with the Task (mappers.referral_task) -----------------------


_PLACER_IDENTIFIER_KEYS = frozenset({"system", "value", "type"})
# Only compared with, never sent: every resource gets its own copy from placer_identifier.
_PLAC_CONCEPT = IDENTIFIER_TYPE_PLAC.codeable_concept()


def placer_identifier(system: str, value: str) -> dict[str, Any]:
    """An Identifier typed v2-0203 PLAC, as BSeR requires for the initiator's identifier."""
    return {"type": IDENTIFIER_TYPE_PLAC.codeable_concept(), "system": system, "value": value}


def read_placer_identifier(
    fhir: Mapping[str, Any],
    system: str,
    type_name: str,
    problems: list[Problem],
    losses: list[Loss],
) -> str | None:
    """The value of the identifier in ``system``; its PLAC type is regenerated, not a loss."""
    path = f"{type_name}.identifier"
    entries = read_list(fhir.get("identifier"), path, problems)
    for index, item in enumerate(entries):
        if isinstance(item, dict) and item.get("system") == system:
            at = f"{path}[{index}]"
            if len(entries) > 1:
                losses += [
                    Loss(f"{path}[{i}]", f"identifier outside {system}")
                    for i in range(len(entries))
                    if i != index
                ]
            losses += unmapped_keys(item, _PLACER_IDENTIFIER_KEYS, path=at)
            if "type" in item and item["type"] != _PLAC_CONCEPT:
                losses.append(Loss(f"{at}.type", "identifier type other than PLAC not kept"))
            return read_str_in(item, "value", at, problems, required=True)
    problems.append(Problem(path, f"no identifier in system {system}", "required"))
    return None
