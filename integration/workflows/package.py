"""A step-down referral package: read it from the FHIR server, map it, store it as a referral.

The package hangs off the Task (SDOHCC/BSeR, fhir-domain-reference.md 1.1-1.2): Task.focus is the
ServiceRequest; its subject is the Patient, reasonReference the Conditions, supportingInfo the
residential stay (Encounter), the PHQ-9/GAD-7 responses, the discharge medication List (whose
entries are MedicationStatements) and the Part 2 Consent. Reading takes three round trips: the
ServiceRequest, then one batch of everything it references, then one batch of the List's
statements. Mapping never raises: what fails is gathered as problems, each naming its resource.
Storing writes the referral with the whole mapped package, or (when anything failed to map) the
referral alone with its problems, never part of a package.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_profiles.terminology.systems import V2_IDENTIFIER_TYPE
from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.errors import FhirNotFound
from integration.fhir_client import FhirClient
from integration.workflows import medications
from mappers import medication, referral_task, registry
from mappers.assessment import Assessment
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.errors import MappingError, Problem
from mappers.loss import Loss
from mappers.medication import MedicationEntry, MedicationList
from mappers.patient import Client
from mappers.referral import Referral
from mappers.referral_task import ReferralTask
from mappers.registry import MappingContext
from mappers.residential import ResidentialStay

# "Type/id" or "Type/id/_history/n": a reference to a resource on this same server.
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_PLAC = (V2_IDENTIFIER_TYPE, "PLAC")  # BSeR slices Task.identifier by v2-0203 type
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PackageProblem:
    """One thing wrong with the package: which resource, where in it, and what."""

    resource: str  # "Type/id" (or the reference that could not be read)
    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        """The stored form (referral_link.problems)."""
        return {"resource": self.resource, "path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class FetchedPackage:
    """The Task and every resource of its package that could be read, keyed by ``Type/id``."""

    task: Mapping[str, Any]
    resources: Mapping[str, Mapping[str, Any]]
    problems: tuple[PackageProblem, ...] = ()


@dataclass(frozen=True, slots=True)
class MappedPackage:
    """The package as domain values, with the server references the store keeps."""

    task: ReferralTask
    service_request: Referral
    client: Client
    diagnoses: tuple[Diagnosis, ...] = ()
    stay: ResidentialStay | None = None
    assessments: tuple[Assessment, ...] = ()
    medications: MedicationList | None = None
    consent: DisclosureConsent | None = None
    losses: tuple[dict[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class TaskChange:
    """One Task version and what was read for it, ready to be stored in one transaction."""

    task: Mapping[str, Any]
    organization: str  # the IOP's Organization reference
    identifier: tuple[str, str] | None
    mapped: ReferralTask | None
    package: MappedPackage | None
    problems: tuple[PackageProblem, ...]
    fetched: bool  # a new referral for us: its package was read


async def prepare(
    fhir: FhirClient, context: MappingContext, organization: str, task: Mapping[str, Any]
) -> TaskChange:
    """Map the Task; for a ``requested`` Task owned by ``organization`` read and map its package."""
    identifier = task_identifier(task, context)
    mapped, problems, _ = map_task(task, identifier[0]) if identifier else (None, [], [])
    owner = relative_reference(task.get("owner"))
    if task.get("status") != "requested" or owner != organization or identifier is None:
        return TaskChange(task, organization, identifier, mapped, None, tuple(problems), False)
    fetched = await fetch_package(fhir, task)
    package = None
    if mapped is not None:
        package, more = map_package(fetched, mapped, context)
        problems += more
    return TaskChange(task, organization, identifier, mapped, package, tuple(problems), True)


def task_identifier(task: Mapping[str, Any], context: MappingContext) -> tuple[str, str] | None:
    """The Task's business identifier: ours (context.task_id_system), else the PLAC-typed one
    (BSeR: the placer's identifier is 1..1), else None."""
    entries = [i for i in task.get("identifier") or [] if isinstance(i, dict)]
    usable = [i for i in entries if isinstance(i.get("system"), str) and i.get("value")]
    for item in usable:
        if item["system"] == context.task_id_system:
            return str(item["system"]), str(item["value"])
    for item in usable:
        codings = (item.get("type") or {}).get("coding") or []
        if any((c.get("system"), c.get("code")) == _PLAC for c in codings if isinstance(c, dict)):
            return str(item["system"]), str(item["value"])
    return None


def relative_reference(value: Any) -> str | None:
    """``Type/id`` of a Reference (or reference string) to this server; None otherwise."""
    target = value.get("reference") if isinstance(value, Mapping) else value
    match = _RELATIVE.match(target) if isinstance(target, str) else None
    return f"{match.group(1)}/{match.group(2)}" if match else None


async def fetch_package(fhir: FhirClient, task: Mapping[str, Any]) -> FetchedPackage:
    """Read Task.focus, then what the ServiceRequest references, then the List's statements."""
    resources: dict[str, Mapping[str, Any]] = {}
    problems: list[PackageProblem] = []
    focus = relative_reference(task.get("focus"))
    if focus is None or not focus.startswith("ServiceRequest/"):
        problems.append(_problem("Task", "Task.focus", "no ServiceRequest on this server"))
        return FetchedPackage(task, resources, tuple(problems))
    await _read_batch(fhir, [focus], resources, problems)
    request = resources.get(focus)
    if request is None:
        return FetchedPackage(task, resources, tuple(problems))
    await _read_batch(fhir, _request_targets(task, request, problems), resources, problems)
    statements = [
        ref
        for key, found in list(resources.items())
        if key.startswith("List/")
        for ref in _list_items(found, key, problems)
    ]
    await _read_batch(fhir, statements, resources, problems)
    return FetchedPackage(task, resources, tuple(problems))


def _request_targets(
    task: Mapping[str, Any], request: Mapping[str, Any], problems: list[PackageProblem]
) -> list[str]:
    """The Patient, Conditions and supporting information the ServiceRequest points at."""
    targets: list[str] = []
    named = [("ServiceRequest.subject", request.get("subject")), ("Task.for", task.get("for"))]
    named += [
        (f"ServiceRequest.{element}[{i}]", item)
        for element in ("reasonReference", "supportingInfo")
        for i, item in enumerate(request.get(element) or [])
    ]
    for path, value in named:
        target = relative_reference(value)
        if target is None:
            if value is not None:
                problems.append(_problem("ServiceRequest", path, "not a reference to this server"))
        elif target not in targets:
            targets.append(target)
    return targets


def _list_items(found: Mapping[str, Any], key: str, problems: list[PackageProblem]) -> list[str]:
    items = []
    for i, entry in enumerate(found.get("entry") or []):
        target = relative_reference((entry or {}).get("item"))
        if target is None:
            problems.append(_problem(key, f"List.entry[{i}].item", "not a reference to here"))
        else:
            items.append(target)
    return items


async def _read_batch(
    fhir: FhirClient,
    targets: Sequence[str],
    into: dict[str, Mapping[str, Any]],
    problems: list[PackageProblem],
) -> None:
    """GET each target in one batch Bundle (FHIR R4 http.html#transaction: batch)."""
    wanted = [t for t in targets if t not in into]
    if not wanted:
        return
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": target}} for target in wanted],
    }
    response = await fhir.transaction(batch)
    answers = response.get("entry") or []
    for index, target in enumerate(wanted):
        answer = answers[index] if index < len(answers) else {}
        found = answer.get("resource")
        status = str((answer.get("response") or {}).get("status", ""))
        if isinstance(found, dict) and status.startswith("2"):
            into[target] = found
        else:
            problems.append(
                _problem(target, target, f"could not be read ({status or 'no answer'})")
            )


async def read_task(fhir: FhirClient, task_id: str) -> dict[str, Any] | None:
    """The current Task, or None when it is gone (a notification for a since deleted Task)."""
    try:
        return await fhir.read("Task", task_id)
    except FhirNotFound:
        return None


def map_task(
    task: Mapping[str, Any], id_system: str
) -> tuple[ReferralTask | None, list[PackageProblem], list[Loss]]:
    """The Task as a ReferralTask, or the problems that stop it."""
    ref = f"Task/{task.get('id')}"
    try:
        mapped = referral_task.from_fhir(task, id_system=id_system)
    except MappingError as error:
        return None, _problems(ref, error.problems), []
    return mapped.value, [], list(mapped.losses)


def map_package(
    fetched: FetchedPackage, task: ReferralTask, context: MappingContext
) -> tuple[MappedPackage | None, list[PackageProblem]]:
    """Map every fetched resource; the package, or every problem found (never half of one)."""
    problems = list(fetched.problems)
    values: dict[str, Any] = {}
    losses: list[dict[str, str]] = []
    statements = {
        k: r for k, r in fetched.resources.items() if k.startswith("MedicationStatement/")
    }
    entries = _map_statements(statements, context, problems, losses)
    for key, resource in fetched.resources.items():
        if key in statements:
            continue
        try:
            if key.startswith("List/"):
                mapped: Any = medication.list_from_fhir(
                    resource, id_system=context.medication_list_id_system, statements=entries
                )
            else:
                mapped = registry.from_fhir(resource, context)
        except MappingError as error:
            problems += _problems(key, error.problems)
            continue
        values[key] = mapped.value
        losses += [{"resource": key, "path": x.path, "reason": x.reason} for x in mapped.losses]
    if problems:
        return None, problems
    return _assemble(values, task, tuple(losses), problems)


def _map_statements(
    statements: Mapping[str, Mapping[str, Any]],
    context: MappingContext,
    problems: list[PackageProblem],
    losses: list[dict[str, str]],
) -> dict[str, MedicationEntry]:
    entries: dict[str, MedicationEntry] = {}
    for key, resource in statements.items():
        try:
            mapped = registry.from_fhir(resource, context)
        except MappingError as error:
            problems += _problems(key, error.problems)
            continue
        entries[key] = mapped.value
        losses += [{"resource": key, "path": x.path, "reason": x.reason} for x in mapped.losses]
    return entries


def _assemble(
    values: Mapping[str, Any],
    task: ReferralTask,
    losses: tuple[dict[str, str], ...],
    problems: list[PackageProblem],
) -> tuple[MappedPackage | None, list[PackageProblem]]:
    """Pick each part of the package out of the mapped values; a missing core part is a problem."""
    request = values.get(task.focus)
    client = _one(values.values(), Client)
    if not isinstance(request, Referral):
        problems.append(_problem(task.focus, "ServiceRequest", "the referral was not read"))
    if client is None:
        problems.append(_problem("Patient", "ServiceRequest.subject", "no Patient was read"))
    if problems or not isinstance(request, Referral) or client is None:
        return None, problems
    return (
        MappedPackage(
            task=task,
            service_request=request,
            client=client,
            diagnoses=tuple(v for v in values.values() if isinstance(v, Diagnosis)),
            stay=_one(values.values(), ResidentialStay),
            assessments=tuple(v for v in values.values() if isinstance(v, Assessment)),
            medications=_one(values.values(), MedicationList),
            consent=_one(values.values(), DisclosureConsent),
            losses=losses,
        ),
        [],
    )


def _one(values: Iterable[Any], kind: type[T]) -> T | None:
    return next((v for v in values if isinstance(v, kind)), None)


def _problems(resource: str, found: Iterable[Problem]) -> list[PackageProblem]:
    return [PackageProblem(resource, p.path, p.message) for p in found]


def _problem(resource: str, path: str, message: str) -> PackageProblem:
    return PackageProblem(resource, path, message)


# --- Storing a new referral (in the inbound transaction) ------------------------------------


def store_referral(session: Session, change: TaskChange, now: datetime) -> None:
    """The referral, its link, and (when the package mapped) intake, assessments, medications."""
    package, task = change.package, change.mapped
    assert change.identifier is not None
    stay = package.stay if package else None
    referral = repo.add_referral(
        session,
        business_id=change.identifier[1],
        status="requested",
        client_mrn=package.client.mrn if package else "",
        iop_organization=change.organization,
        residential_discharge_date=stay.discharged.date() if stay and stay.discharged else None,
        task_server_id=str(change.task.get("id")),
        task_version_id=task_version(change.task),
        received_at=now,
    )
    link = ReferralLink(
        referral_id=referral.id,
        task_identifier_system=change.identifier[0],
        task_identifier_value=change.identifier[1],
        problems=[p.as_json() for p in change.problems],
        losses=list(package.losses) if package else [],
    )
    if task is not None:
        copy_task(link, task)
    session.add(link)
    if package is not None:
        _store_package(session, referral, package, now)
    session.flush()
    log.info(
        "referral %s received (Task/%s, %s problems)",
        referral.id,
        referral.task_server_id,
        len(change.problems),
    )


def _store_package(
    session: Session, referral: models.Referral, package: MappedPackage, now: datetime
) -> None:
    session.add(models.Intake(referral_id=referral.id))
    for assessment in package.assessments:
        if session.scalar(
            select(models.AssessmentRecord.id).where(
                models.AssessmentRecord.business_id == assessment.identifier
            )
        ):
            continue  # the same response came with an earlier referral of this client
        repo.add_assessment(
            session,
            referral,
            business_id=assessment.identifier,
            instrument=assessment.instrument,
            total=assessment.total,
            severity=assessment.severity,
            authored=assessment.authored,
        )
    meds = package.medications
    if meds is not None and repo.get_medication_list(session, meds.identifier) is None:
        # Workflow 2's way of storing a list: each line keeps its whole entry for reconciliation.
        medications.record_discharge_list(session, referral.business_id, meds, meds.date)


def copy_task(link: ReferralLink, task: ReferralTask) -> None:
    """Keep the Task's references and state on the referral's link row."""
    link.service_request, link.patient = task.focus, task.patient
    link.requester, link.owner = task.requester, task.owner
    link.authored_on, link.last_modified = task.authored_on, task.last_modified
    link.business_status, link.status_reason = task.business_status, task.status_reason
    link.resulting_activity = task.resulting_activity


def task_version(task: Mapping[str, Any]) -> str | None:
    version = (task.get("meta") or {}).get("versionId")
    return str(version) if version is not None else None
