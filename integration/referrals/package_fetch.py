"""Reading a step-down referral package from the FHIR server (SDOHCC/BSeR, fhir-domain-reference.md
1.1-1.2): Task.focus is the ServiceRequest; its subject is the Patient, reasonReference the
Conditions, supportingInfo the residential stay, the PHQ-9/GAD-7 responses, the discharge
medication List (whose entries are MedicationRequests or MedicationStatements) and the Part 2
Consent.

Reading takes three round trips: the ServiceRequest, then one batch of everything it references,
then one batch of the List's medications. What cannot be read is gathered as problems, each naming
its resource; ``prepare`` then maps what was read (``mappers.referral_package``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirNotFound
from integration.referrals.package import TaskChange
from mappers.referral_package.mapping import (
    FetchedPackage,
    PackageProblem,
    map_package,
    map_task,
    problem_of,
    task_identifier,
)
from mappers.referral_package.references import (
    localized,
    nested_targets,
    relative_reference,
    request_targets,
)
from mappers.registry import MappingContext
from mappers.task_owner import judge_role, owner_role

log = logging.getLogger(__name__)


async def prepare(
    fhir: FhirClient, context: MappingContext, organization: str, task: Mapping[str, Any]
) -> TaskChange:
    """Map the Task; for a ``requested`` Task owned by ``organization``, or by a PractitionerRole
    of it (read from the server and checked, ``mappers.task_owner``), read and map its package."""
    identifier = task_identifier(task, context)
    local = localized(task, fhir.base_url)
    mapped, problems, _ = map_task(local, identifier[0]) if identifier else (None, [], [])
    owner = relative_reference(task.get("owner"), fhir.base_url)
    if task.get("status") != "requested" or identifier is None:
        return TaskChange(task, organization, identifier, mapped, None, tuple(problems), False)
    if owner != organization:
        ours, refused = await _addressed_via_role(fhir, organization, task, owner)
        if not ours:
            return TaskChange(
                task, organization, identifier, mapped, None, tuple(problems), False, refused
            )
    fetched = await fetch_package(fhir, local)
    package = None
    if mapped is not None:
        package, more = map_package(fetched, mapped, context)
        problems += more
    return TaskChange(task, organization, identifier, mapped, package, tuple(problems), True)


async def _addressed_via_role(
    fhir: FhirClient, organization: str, task: Mapping[str, Any], owner: str | None
) -> tuple[bool, str | None]:
    """Whether a Task not owned by ``organization`` itself is owned by a PractitionerRole of it,
    and why not (a reason code) when its owner is a PractitionerRole of another. The role is read
    from the server every time: the search that found the Task, or a notification's body,
    proves nothing. An owner that is no PractitionerRole is simply not the IOP (no reason)."""
    role = owner_role(owner)
    if role is None:
        return False, None
    kind, role_id = role.split("/", 1)
    try:
        found: Mapping[str, Any] | None = await fhir.read(kind, role_id)
    except FhirNotFound:
        found = None
    verdict = judge_role(found, organization, fhir.base_url)
    if verdict.ours:
        return True, None
    assert verdict.refusal is not None
    # ids and the reason code only (a role's or a Task's text may name people)
    log.warning(
        "Task/%s not taken in (%s): its owner %s belongs to %s, not to %s",
        task.get("id"),
        verdict.refusal,
        role,
        verdict.role_organization or "none",
        organization,
    )
    return False, verdict.refusal.value


async def fetch_package(fhir: FhirClient, task: Mapping[str, Any]) -> FetchedPackage:
    """Read Task.focus, then what the ServiceRequest references, then what those reference in
    turn (a List's entries, a MedicationRequest's Medication, a screening panel's members)."""
    resources: dict[str, Mapping[str, Any]] = {}
    problems: list[PackageProblem] = []
    base = fhir.base_url
    focus = relative_reference(task.get("focus"), base)
    if focus is None or not focus.startswith("ServiceRequest/"):
        problems.append(problem_of("Task", "Task.focus", "no ServiceRequest on this server"))
        return FetchedPackage(task, resources, tuple(problems))
    await _read_batch(fhir, [focus], resources, problems)
    request = resources.get(focus)
    if request is None:
        return FetchedPackage(task, resources, tuple(problems))
    targets = request_targets(task, request, problems, base)
    await _read_batch(fhir, targets, resources, problems)
    nested = [
        ref
        for key, found in list(resources.items())
        for ref in nested_targets(found, key, problems, base)
    ]
    await _read_batch(fhir, nested, resources, problems)
    local = {key: localized(found, base) for key, found in resources.items()}
    return FetchedPackage(task, local, tuple(problems))


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
                problem_of(target, target, f"could not be read ({status or 'no answer'})")
            )


async def read_task(fhir: FhirClient, task_id: str) -> dict[str, Any] | None:
    """The current Task, or None when it is gone (a notification for a since deleted Task)."""
    try:
        return await fhir.read("Task", task_id)
    except FhirNotFound:
        return None
