"""A step-down referral package mapped to domain values, pure: the package hangs off the Task
(SDOHCC/BSeR, fhir-domain-reference.md 1.1-1.2) and is read from the FHIR server by
``integration.referrals.package_fetch`` or taken from a submitted Bundle
(``mappers.referral_package.submission``). Mapping never raises: what fails is gathered as
problems, each naming its resource; what is not mapped goes into the loss report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from fhir_profiles.terminology.systems import V2_IDENTIFIER_TYPE
from mappers import medication_reader, referral_task, registry, security_labels
from mappers.assessment import Assessment
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.errors import MappingError, Problem
from mappers.fhir_reference import literal_reference
from mappers.foreign import generic, package_reader
from mappers.foreign.identity import has_system
from mappers.foreign.screening import ScreeningResponse
from mappers.loss import Loss
from mappers.medication import ListSource, MedicationEntry, MedicationList
from mappers.patient import Client
from mappers.referral import Referral
from mappers.referral_task import ReferralTask
from mappers.registry import MappingContext
from mappers.residential import ResidentialStay

T = TypeVar("T")
_PLAC = (V2_IDENTIFIER_TYPE, "PLAC")  # BSeR slices Task.identifier by v2-0203 type


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
    # Part 2 by the one rule over the resources as sent: SUD diagnoses, MOUD medications and
    # the sender's own Part 2 labels (mappers.security_labels.contains_sud), and a diagnosis
    # another system sent without a code whose words name a substance use disorder.
    part2: bool = False
    screenings: tuple[ScreeningResponse, ...] = ()  # AUDIT-C, TAPS: kept, not scored
    labels: tuple[tuple[str, str, str], ...] = ()  # (resource, system, code) of meta.security


def task_identifier(task: Mapping[str, Any], context: MappingContext) -> tuple[str, str] | None:
    """The Task's business identifier, the sender's: ours (context.task_id_system) when we
    wrote it, else the PLAC-typed one (BSeR: the placer's identifier is 1..1), else the first
    identifier with a system and a value; None when it has none."""
    entries = [i for i in task.get("identifier") or [] if isinstance(i, dict)]
    usable = [i for i in entries if isinstance(i.get("system"), str) and i.get("value")]
    for item in usable:
        if item["system"] == context.task_id_system:
            return str(item["system"]), str(item["value"])
    for item in usable:
        codings = (item.get("type") or {}).get("coding") or []
        if any((c.get("system"), c.get("code")) == _PLAC for c in codings if isinstance(c, dict)):
            return str(item["system"]), str(item["value"])
    return (str(usable[0]["system"]), str(usable[0]["value"])) if usable else None


def map_task(
    task: Mapping[str, Any], id_system: str
) -> tuple[ReferralTask | None, list[PackageProblem], list[Loss]]:
    """The Task as a ReferralTask, or the problems that stop it."""
    ref = literal_reference("Task", task.get("id"))
    try:
        mapped = registry.guarded(task, lambda: referral_task.from_fhir(task, id_system=id_system))
    except MappingError as error:
        return None, _problems(ref, error.problems), []
    return mapped.value, [], list(mapped.losses)


def map_package(
    fetched: FetchedPackage, task: ReferralTask, context: MappingContext, *, strict: bool = False
) -> tuple[MappedPackage | None, list[PackageProblem]]:
    """Map the package resource by resource. Only what the workflow cannot do without (the
    ServiceRequest, the Patient) stops it; any other resource that fails, or that iop-bridge
    does not map, goes into the loss report with its FHIR paths. ``strict`` (a package
    submitted through the API, checked before it is stored) makes every failure a problem."""
    resources, notes = package_reader.expand_documents(fetched.resources)
    losses = [_loss(key, x.path, x.reason) for key, x in notes]
    critical = {task.focus, task.patient}
    problems = [p for p in fetched.problems if strict or p.resource in critical]
    losses += [_loss(p.resource, p.path, p.message) for p in fetched.problems if p not in problems]
    statements = {k: r for k, r in resources.items() if _ours_or_statement(k, r, context)}
    entries = _map_statements(statements, context, problems, losses)
    others = {k: r for k, r in resources.items() if k not in statements}
    values: dict[str, Any] = {}
    labels: list[tuple[str, str, str]] = []
    for result in _read(others, context, entries):
        labels += [(result.key, system, code) for system, code in result.labels]
        if result.ok:
            values[result.key] = result.value
            losses += [_loss(result.key, x.path, x.reason) for x in result.losses]
        elif strict or result.key in critical:
            problems += _problems(result.key, result.problems)
        else:
            losses += [
                _loss(result.key, p.path, f"not mapped: {p.message}") for p in result.problems
            ]
    if problems:
        return None, problems
    assembled, problems = _assemble(values, task, tuple(losses), tuple(labels), entries, problems)
    if assembled is None:
        return None, problems
    sent = [fetched.task, *resources.values()]  # a document's entries as sent too
    part2 = security_labels.contains_sud(sent) or any(
        d.is_substance_use for d in assembled.diagnoses
    )
    return replace(assembled, part2=part2), problems


def _ours_or_statement(key: str, resource: Mapping[str, Any], context: MappingContext) -> bool:
    """A MedicationStatement (ours or a sender's), or a MedicationRequest in our identifier
    system (``mappers.medication_request``, what iop-bridge's API submits): read by the
    registry before the Lists that hold them. A sender's MedicationRequest is read with the
    Medication it references (``package_reader``)."""
    if key.startswith("MedicationStatement/"):
        return True
    return key.startswith("MedicationRequest/") and has_system(
        resource, context.medication_request_id_system
    )


def _read(
    resources: Mapping[str, Mapping[str, Any]],
    context: MappingContext,
    entries: Mapping[str, MedicationEntry],
) -> list[package_reader.ReadResult]:
    """Every resource read; a List with the medications it holds (workflow 2's discharge list):
    the statements and our requests read before, a sender's requests read here."""
    lists = {k: r for k, r in resources.items() if k.startswith("List/")}
    results = package_reader.read_all(
        {k: r for k, r in resources.items() if k not in lists}, context
    )
    requested = {r.key: r.value for r in results if isinstance(r.value, MedicationEntry)}
    entries = {**requested, **entries}
    for key, resource in lists.items():

        def read_list(r: Mapping[str, Any], system: str) -> Any:
            return medication_reader.list_from_fhir(r, id_system=system, statements=entries)

        try:
            if has_system(resource, context.medication_list_id_system):
                read = partial(read_list, resource, context.medication_list_id_system)
            else:  # another system's List: under the sender's identifier
                read = partial(generic.adopt, resource, read_list)
            mapped = registry.guarded(resource, read)
        except MappingError as error:
            results.append(package_reader.ReadResult(key, problems=error.problems))
            continue
        results.append(package_reader.ReadResult(key, mapped.value, tuple(mapped.losses)))
    return results


def _loss(resource: str, path: str, reason: str) -> dict[str, str]:
    return {"resource": resource, "path": path, "reason": reason}


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
        losses += [_loss(key, x.path, x.reason) for x in mapped.losses]
    return entries


def _assemble(
    values: Mapping[str, Any],
    task: ReferralTask,
    losses: tuple[dict[str, str], ...],
    labels: tuple[tuple[str, str, str], ...],
    statements: Mapping[str, MedicationEntry],
    problems: list[PackageProblem],
) -> tuple[MappedPackage | None, list[PackageProblem]]:
    """Pick each part of the package out of the mapped values; a missing core part is a problem."""
    request = values.get(task.focus)
    client = _one(values.values(), Client)
    if not isinstance(request, Referral):
        problems.append(problem_of(task.focus, "ServiceRequest", "the referral was not read"))
    if client is None:
        problems.append(problem_of("Patient", "ServiceRequest.subject", "no Patient was read"))
    if problems or not isinstance(request, Referral) or client is None:
        return None, problems
    stay = _one(values.values(), ResidentialStay)
    ours = {k: v for k, v in statements.items() if k.startswith("MedicationRequest/")}
    requested = [v for v in (*values.values(), *ours.values()) if isinstance(v, MedicationEntry)]
    return (
        MappedPackage(
            task=task,
            service_request=request,
            client=client,
            diagnoses=tuple(v for v in values.values() if isinstance(v, Diagnosis)),
            stay=stay,
            assessments=tuple(v for v in values.values() if isinstance(v, Assessment)),
            medications=_one(values.values(), MedicationList)
            or _requested_list(task, requested, stay),
            consent=_one(values.values(), DisclosureConsent),
            losses=losses,
            screenings=tuple(v for v in values.values() if isinstance(v, ScreeningResponse)),
            labels=labels,
        ),
        [],
    )


def _requested_list(
    task: ReferralTask, requested: list[MedicationEntry], stay: ResidentialStay | None
) -> MedicationList | None:
    """The discharge medication list of a sender that sends MedicationRequests, not a List: the
    requests themselves, dated by the discharge (else the Task's authoredOn)."""
    if not requested:
        return None
    when = stay.discharged if stay is not None and stay.discharged else task.authored_on
    return MedicationList(
        f"{task.identifier}-discharge-medications",
        "Residential discharge medications",
        ListSource.RESIDENTIAL_DISCHARGE,
        when,
        tuple(requested),
    )


def _one(values: Iterable[Any], kind: type[T]) -> T | None:
    return next((v for v in values if isinstance(v, kind)), None)


def _problems(resource: str, found: Iterable[Problem]) -> list[PackageProblem]:
    return [PackageProblem(resource, p.path, p.message) for p in found]


def problem_of(resource: str, path: str, message: str) -> PackageProblem:
    return PackageProblem(resource, path, message)
