"""Residential stay (the ASAM 3.x episode a client steps down from) <-> FHIR R4 Encounter.

Encounter.class: the reference (2.3) leaves the class of an SUD residential stay UNVERIFIED. The
R4 v3 ActEncounterCode definitions decide it here: AMB is care "on a nonresident basis", which a
residential stay is not; IMP is an encounter where the patient is "admitted ... assigned to a
location where patients generally stay at least overnight and provided with room, board, and
continuous nursing service"; its specialisation NONAC "inpatient non-acute" ("any category of
inpatient encounter except 'acute'") is the closest: residential treatment is admitted, overnight,
with room and board, and not acute care. NONAC keeps it apart from acute inpatient stays (a
hospital withdrawal admission) while a receiver that asks for IMP by subsumption still finds it.
Any other class on input is read but reported as a loss, since NONAC is what we send back.

The ASAM level is an Encounter.type coding in the Colorado BHA system (reference 2.1: keep it
separate from the class); discharge goes to Encounter.hospitalization.dischargeDisposition
(R4 discharge-disposition, example binding; reference 2.7). The stay is ``finished`` once
discharged and ``in-progress`` before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_profiles.canonical import structure_definition_url
from fhir_profiles.terminology import clinical, workflow
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.systems import (
    COLORADO_BHA_ASAM_LEVEL_OF_CARE,
    DISCHARGE_DISPOSITION,
    V3_ACT_CODE,
)
from mappers.encounter import period_json, read_links, read_period, read_type
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_coding import CODING_KEYS, read_known_coding
from mappers.fhir_read import (
    open_resource,
    read_identifier_list,
    read_str,
)
from mappers.fhir_reference import reference, reference_problems
from mappers.fhir_write import datetime_problems, identifier_problems
from mappers.loss import Loss, Mapped, unmapped_keys

RESIDENTIAL_PROFILE = structure_definition_url("iop-residential-encounter")

# v3-ActCode NONAC "inpatient non-acute" (source in fhir_profiles.terminology.clinical).
ENCOUNTER_CLASS_NON_ACUTE = clinical.ENCOUNTER_CLASS_NON_ACUTE

# Residential levels only: a stay at 1.0-2.5 is not residential.
RESIDENTIAL_LEVELS: Mapping[str, Code] = {
    c.code: c for c in clinical.ASAM_LEVELS if c.code.startswith("3.")
}
DISPOSITIONS: Mapping[str, Code] = {
    c.code: c
    for c in (
        workflow.DISCHARGE_HOME,
        workflow.DISCHARGE_ALT_HOME,
        workflow.DISCHARGE_OTHER_HCF,
        workflow.DISCHARGE_HOSPICE,
        workflow.DISCHARGE_LONG_TERM_CARE,
        workflow.DISCHARGE_AGAINST_ADVICE,
        workflow.DISCHARGE_EXPIRED,
        workflow.DISCHARGE_PSYCHIATRIC_HOSPITAL,
        workflow.DISCHARGE_REHABILITATION,
        workflow.DISCHARGE_SNF,
        workflow.DISCHARGE_OTHER,
    )
}


@dataclass(frozen=True, slots=True)
class ResidentialStay:
    """A residential treatment episode; ``discharged`` is None while the client is still there."""

    identifier: str
    asam_level: str
    admitted: datetime
    discharged: datetime | None = None
    discharge_disposition: str | None = None

    def problems(self) -> list[Problem]:
        """Every reason this stay cannot be sent as an Encounter, each with its field."""
        found = identifier_problems(self.identifier, "ResidentialStay.identifier")
        if self.asam_level not in RESIDENTIAL_LEVELS:
            allowed = ", ".join(RESIDENTIAL_LEVELS)
            found.append(
                Problem(
                    "ResidentialStay.asam_level", f"{self.asam_level!r} is not one of {allowed}"
                )
            )
        found += datetime_problems(self.admitted, "ResidentialStay.admitted")
        if self.discharged is not None:
            found += datetime_problems(self.discharged, "ResidentialStay.discharged")
            if not found and self.discharged <= self.admitted:
                found.append(Problem("ResidentialStay.discharged", "must be after admission"))
        if self.discharge_disposition is not None:
            if self.discharged is None:
                found.append(
                    Problem("ResidentialStay.discharge_disposition", "needs a discharge time")
                )
            if self.discharge_disposition not in DISPOSITIONS:
                found.append(
                    Problem(
                        "ResidentialStay.discharge_disposition",
                        f"{self.discharge_disposition!r} is not a discharge-disposition code",
                    )
                )
        return found


def to_fhir(
    stay: ResidentialStay,
    *,
    id_system: str,
    subject_reference: str,
    service_provider_reference: str,
) -> dict[str, Any]:
    """Fill Encounter.meta.profile, identifier, status, class (NONAC), type (ASAM level),
    subject, period, hospitalization.dischargeDisposition and serviceProvider from a
    ResidentialStay."""
    problems = stay.problems()
    problems += reference_problems(subject_reference, "Patient", "Encounter.subject.reference")
    problems += reference_problems(
        service_provider_reference, "Organization", "Encounter.serviceProvider.reference"
    )
    raise_if_problems("ResidentialStay", problems)
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "meta": {"profile": [RESIDENTIAL_PROFILE]},
    }
    resource["identifier"] = [{"system": id_system, "value": stay.identifier}]
    resource["status"] = "in-progress" if stay.discharged is None else "finished"
    resource["class"] = ENCOUNTER_CLASS_NON_ACUTE.coding()
    level = RESIDENTIAL_LEVELS[stay.asam_level]
    resource["type"] = [level.codeable_concept(f"ASAM level {level.code}: {level.display}")]
    resource["subject"] = reference(subject_reference)
    resource["period"] = period_json(stay.admitted, stay.discharged)
    if stay.discharge_disposition is not None:
        disposition = DISPOSITIONS[stay.discharge_disposition]
        resource["hospitalization"] = {"dischargeDisposition": disposition.codeable_concept()}
    resource["serviceProvider"] = reference(service_provider_reference)
    return resource


_MAPPED = frozenset(
    {"identifier", "status", "class", "type", "subject", "period", "serviceProvider"}
    | {"hospitalization", "basedOn"}
)
_LEVEL_BY_CODING = {(c.system, c.code): c.code for c in RESIDENTIAL_LEVELS.values()}
_ASAM_SYSTEMS = frozenset({COLORADO_BHA_ASAM_LEVEL_OF_CARE})
_DISPOSITION_BY_CODING = {(c.system, c.code): c.code for c in DISPOSITIONS.values()}
_DISPOSITION_SYSTEMS = frozenset({DISCHARGE_DISPOSITION})
_HOSPITALIZATION_MAPPED = frozenset({"dischargeDisposition"})


def from_fhir(resource: Any, *, id_system: str) -> Mapped[ResidentialStay]:
    """Read a ResidentialStay from Encounter.identifier, status, class, type (ASAM), period and
    hospitalization.dischargeDisposition; subject and serviceProvider are returned as links."""
    problems: list[Problem] = []
    encounter, losses = open_resource(resource, "Encounter", _MAPPED, problems)
    identifier = read_identifier_list(
        encounter.get("identifier"), id_system, "Encounter.identifier", problems, losses
    )
    finished = _read_status(encounter, problems)
    _read_class(encounter.get("class"), problems, losses)
    level = read_type(
        encounter.get("type"),
        _LEVEL_BY_CODING,
        "a residential ASAM level of care",
        problems,
        losses,
        owned_systems=_ASAM_SYSTEMS,
    )
    admitted, discharged = read_period(
        encounter.get("period"), problems, losses, end_required=False
    )
    disposition = _read_hospitalization(encounter.get("hospitalization"), problems, losses)
    discharged, disposition = _unless_finished(finished, discharged, disposition, problems, losses)
    links = read_links(encounter, problems, losses)
    raise_if_problems("Encounter", problems)
    assert identifier and level and admitted
    stay = ResidentialStay(identifier, level, admitted, discharged, disposition)
    raise_if_problems("Encounter", stay.problems())
    return Mapped(stay, links, tuple(losses))


def _read_status(encounter: Mapping[str, Any], problems: list[Problem]) -> bool | None:
    """True for a finished stay, False for one in progress."""
    status = read_str(encounter.get("status"), "Encounter.status", problems, required=True)
    if status in ("finished", "in-progress"):
        return status == "finished"
    if status is not None:
        problems.append(
            Problem(
                "Encounter.status", f"{status!r} is not a residential stay (in-progress, finished)"
            )
        )
    return None


def _unless_finished(
    finished: bool | None,
    discharged: datetime | None,
    disposition: str | None,
    problems: list[Problem],
    losses: list[Loss],
) -> tuple[datetime | None, str | None]:
    """A finished stay needs its discharge time; one in progress has not been discharged yet."""
    if finished and discharged is None:
        problems.append(Problem("Encounter.period.end", "a finished stay needs its discharge time"))
    if finished is False:
        if discharged is not None:
            losses.append(Loss("Encounter.period.end", "end of a stay still in progress (planned)"))
        if disposition is not None:
            losses.append(
                Loss(
                    "Encounter.hospitalization.dischargeDisposition",
                    "disposition of a stay still in progress (planned)",
                )
            )
        return None, None
    return discharged, disposition


def _read_class(value: Any, problems: list[Problem], losses: list[Loss]) -> None:
    if not isinstance(value, dict):
        problems.append(Problem("Encounter.class", "is required", "required"))
        return
    losses += unmapped_keys(value, CODING_KEYS, path="Encounter.class")
    if (value.get("system"), value.get("code")) != (V3_ACT_CODE, ENCOUNTER_CLASS_NON_ACUTE.code):
        losses.append(Loss("Encounter.class", f"class {value.get('code')!r} is sent back as NONAC"))


def _read_hospitalization(value: Any, problems: list[Problem], losses: list[Loss]) -> str | None:
    """Read the discharge-disposition code; other hospitalization details are reported lost."""
    if value is None:
        return None
    path = "Encounter.hospitalization"
    if not isinstance(value, dict):
        problems.append(Problem(path, "expected a JSON object", "structure"))
        return None
    losses += unmapped_keys(value, _HOSPITALIZATION_MAPPED, path=path)
    concept = value.get("dischargeDisposition")
    if concept is None:
        return None
    code, inner = read_known_coding(
        concept,
        f"{path}.dischargeDisposition",
        _DISPOSITION_BY_CODING,
        problems,
        owned_systems=_DISPOSITION_SYSTEMS,
    )
    if code is None:
        losses.append(Loss(f"{path}.dischargeDisposition", "no discharge-disposition coding"))
        return None
    losses += inner
    return str(code)
