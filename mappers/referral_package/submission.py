"""A step-down referral package submitted as a FHIR transaction Bundle: checked, mapped, and made
canonical before it is stored and forwarded.

The accepted shape is the one the residential EHR posts (``sandbox/step_down_package``): every
entry a conditional create (``POST`` with ``ifNoneExist`` on one of the resource's business
identifiers), entries referencing each other by ``urn:uuid`` fullUrls, one Patient, one
ServiceRequest and one Task (status ``requested``) whose focus is that ServiceRequest. The
ServiceRequest and the Task carry the same referral identifier (the referral's id in the API).
Organizations are not entries: they are referenced as the server knows them, either literally
(``Organization/123``) or conditionally by identifier (``Organization?identifier=<system>|<key>``,
R4 http.html#trules), which is replaced here by the literal reference. Task.requester must be
the caller's organization and Task.owner the IOP this service runs for. The ServiceRequest's
requester may be the caller's organization or its PractitionerRole, an entry of the Bundle
(BSeR), which must be a role of the caller's organization (``roles.role_problems``).

Mapping reuses the inbound path (``mapping.map_package``): each fullUrl is given a stand-in
``Type/e<index>`` reference for the mappers, so a problem is reported on the entry it is about
(``Bundle.entry[3].resource.code``). Every problem is gathered before one error is raised. The
canonical Bundle differs from the submitted one only in its fullUrls, which are derived from each
entry's conditional identifier: the same package always becomes the same Bundle, which is how a
repeated submission is recognised.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mappers import bundle, registry, security_labels
from mappers.errors import InvalidInputError, MappingError, Problem
from mappers.referral import Referral
from mappers.referral_package.mapping import (
    FetchedPackage,
    MappedPackage,
    map_package,
    map_task,
    task_identifier,
)
from mappers.referral_package.roles import ROLE, role_problems
from mappers.referral_task import ReferralTask
from mappers.registry import MappingContext

URN_NAMESPACE = uuid.UUID("2f9a41c6-1d0b-4e55-8a8e-7c3f5b9e0d12")
# The mapped types and the referrer's PractitionerRole (BSeR's ServiceRequest requester), a
# party checked (``roles.role_problems``) rather than mapped.
SUPPORTED_TYPES = frozenset(registry.FROM_FHIR) | {ROLE}
MAX_ENTRIES = 200
MAX_DEPTH = 32  # FHIR resources nest a handful of levels; anything deeper is not a package
_UUID_URN = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}$")  # fmt: skip
_ENTRY = re.compile(r"^[A-Za-z]+/e(\d+)$")


@dataclass(frozen=True, slots=True)
class Parties:
    """The two organizations of a submission: the caller's (the referrer) and the IOP's.

    ``*_key`` is the identifier (system, value); ``*_ref`` its reference on the FHIR server, or
    None when no Organization there carries that identifier."""

    requester_key: tuple[str, str]
    requester_ref: str | None
    owner_key: tuple[str, str]
    owner_ref: str | None


@dataclass(frozen=True, slots=True)
class CheckedSubmission:
    """A package that passed every check: the Task's identifier, the mapped package (with
    stand-in references), and the canonical Bundle to store and forward."""

    identifier: tuple[str, str]
    task: ReferralTask
    package: MappedPackage
    bundle: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Entry:
    index: int
    full_url: str
    resource: dict[str, Any]
    condition: str  # request.ifNoneExist

    @property
    def kind(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def stand_in(self) -> str:
        return f"{self.kind}/e{self.index}"


def check_submission(document: Any, parties: Parties, context: MappingContext) -> CheckedSubmission:
    """Check and map a submitted transaction; InvalidInputError naming every problem."""
    problems = _depth_problems(document)
    entries = _read_entries(document, problems) if not problems else []
    if problems:
        raise InvalidInputError.from_problems("the referral Bundle", problems)
    with_orgs = _replace_organizations(document, parties, problems)
    by_url = {e.full_url: e for e in entries}
    stand_in = _stand_ins(by_url)
    view = {
        e.full_url: rewrite_references(with_orgs["entry"][e.index]["resource"], stand_in)
        for e in entries
    }
    problems += _unresolved(view, by_url)
    found = {kind: entry for kind in ("Task", "ServiceRequest", "Patient")
             if (entry := _single(entries, kind, problems)) is not None}  # fmt: skip
    if problems or len(found) != 3:
        raise InvalidInputError.from_problems("the referral Bundle", problems)
    try:
        task, package = _map(view, found["Task"], entries, context, problems)
    except Exception as error:  # a mapper met a shape it does not guard against (see _unreadable)
        problems += _unreadable(view, entries, context, error)
        raise InvalidInputError.from_problems("the referral package", problems) from None
    roles = {e.stand_in: e for e in entries if e.kind == ROLE}
    problems += role_problems(
        {e.index: view[e.full_url] for e in roles.values()},
        organization=parties.requester_ref, organization_key=parties.requester_key,
        role_system=context.practitioner_role_id_system,
    )  # fmt: skip
    problems += _consistency(task, package, found, parties, roles)
    if problems or task is None or package is None:
        raise InvalidInputError.from_problems("the referral package", problems)
    system = task_identifier(view[found["Task"].full_url], context)
    identifier = (system[0] if system else context.task_id_system, task.identifier)
    return CheckedSubmission(identifier, task, package, _canonical(with_orgs, entries))


# --- structure -----------------------------------------------------------------------------------


def _depth_problems(document: Any) -> list[Problem]:
    """Refuse what no FHIR package looks like before walking it: too deep, or NUL characters
    (which PostgreSQL's jsonb cannot store)."""
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return [Problem("Bundle", f"nests deeper than {MAX_DEPTH} levels", "structure")]
        if isinstance(node, str) and "\x00" in node:
            return [Problem("Bundle", "contains a NUL character", "structure")]
        if isinstance(node, dict):
            stack += [(k, depth + 1) for k in node] + [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    return []


def _read_entries(document: Any, problems: list[Problem]) -> list[_Entry]:
    """Bundle.type transaction; each entry a conditional create with a urn:uuid fullUrl."""
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        problems.append(Problem("Bundle.resourceType", "expected a Bundle", "structure"))
        return []
    if document.get("type") != "transaction":
        problems.append(Problem("Bundle.type", "must be 'transaction'", "value"))
    raw = document.get("entry")
    if not isinstance(raw, list) or not raw:
        problems.append(Problem("Bundle.entry", "a package needs its entries", "required"))
        return []
    if len(raw) > MAX_ENTRIES:
        problems.append(Problem("Bundle.entry", f"more than {MAX_ENTRIES} entries", "too-costly"))
        return []
    entries = [e for i, item in enumerate(raw) if (e := _read_entry(i, item, problems))]
    _unique(entries, lambda e: e.full_url, "fullUrl", problems)
    _unique(entries, lambda e: f"{e.kind}?{e.condition}", "request.ifNoneExist", problems)
    return entries


def _read_entry(index: int, item: Any, problems: list[Problem]) -> _Entry | None:
    path = f"Bundle.entry[{index}]"
    if not isinstance(item, dict):
        problems.append(Problem(path, "expected an entry object", "structure"))
        return None
    full_url, resource, request = item.get("fullUrl"), item.get("resource"), item.get("request")
    found: list[Problem] = []
    if not isinstance(full_url, str) or not _UUID_URN.match(full_url):
        found.append(Problem(f"{path}.fullUrl", "must be a urn:uuid", "value"))
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(kind, str) or kind not in SUPPORTED_TYPES:
        known = ", ".join(sorted(SUPPORTED_TYPES))
        found.append(Problem(f"{path}.resource.resourceType", f"{kind!r} is not one of {known}",
                             "not-supported"))  # fmt: skip
    found += _meta_problems(resource, f"{path}.resource.meta")
    condition = _condition(request, resource, f"{path}.request", found)
    problems += found
    if found or not isinstance(resource, dict) or condition is None:
        return None
    return _Entry(index, str(full_url), resource, condition)


def _meta_problems(resource: Any, path: str) -> list[Problem]:
    """meta is a Meta object, its security a list: iop-bridge adds Part 2 labels there."""
    meta = resource.get("meta") if isinstance(resource, dict) else None
    if meta is not None and not isinstance(meta, dict):
        return [Problem(path, "must be an object (FHIR Meta)", "structure")]
    if isinstance(meta, dict) and not isinstance(meta.get("security", []), list):
        return [Problem(f"{path}.security", "must be a list of Codings", "structure")]
    return []


def _condition(request: Any, resource: Any, path: str, problems: list[Problem]) -> str | None:
    """request: POST to the resource type, ifNoneExist on one of the resource's identifiers
    (every write iop-bridge forwards is conditional on a business identifier)."""
    if not isinstance(request, dict):
        problems.append(Problem(path, "expected a request object", "structure"))
        return None
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if request.get("method") != "POST" or request.get("url") != kind:
        problems.append(Problem(f"{path}.method", f"must be POST to {kind}", "value"))
    condition = request.get("ifNoneExist")
    identifiers = resource.get("identifier") if isinstance(resource, dict) else None
    if isinstance(identifiers, dict):  # QuestionnaireResponse.identifier is 0..1, not a list
        identifiers = [identifiers]
    allowed = {
        bundle.identifier_query(i["system"], i["value"])
        for i in (identifiers if isinstance(identifiers, list) else [])
        if isinstance(i, dict)
        and isinstance(i.get("system"), str)
        and isinstance(i.get("value"), str)
    }
    if not isinstance(condition, str) or condition not in allowed:
        message = "must be identifier=<system>|<value> of one of the resource's identifiers"
        problems.append(Problem(f"{path}.ifNoneExist", message, "required"))
        return None
    return condition


def _unique(
    entries: list[_Entry], key: Callable[[_Entry], str], name: str, problems: list[Problem]
) -> None:
    first: dict[str, int] = {}
    for entry in entries:
        value = key(entry)
        if value in first:
            message = f"repeats entry[{first[value]}] (each entry must be one resource)"
            problems.append(Problem(f"Bundle.entry[{entry.index}].{name}", message, "duplicate"))
        first.setdefault(value, entry.index)


def _single(entries: list[_Entry], kind: str, problems: list[Problem]) -> _Entry | None:
    found = [e for e in entries if e.kind == kind]
    if len(found) != 1:
        problems.append(Problem("Bundle.entry", f"needs exactly one {kind}, found {len(found)}"))
        return None
    return found[0]


# --- references ----------------------------------------------------------------------------------


def _replace_organizations(
    document: dict[str, Any], parties: Parties, problems: list[Problem]
) -> dict[str, Any]:
    """A copy with ``Organization?identifier=`` references to the two parties made literal."""
    conditional = {
        f"Organization?{bundle.identifier_query(*key)}": ref
        for key, ref in ((parties.requester_key, parties.requester_ref),
                         (parties.owner_key, parties.owner_ref))
    }  # fmt: skip
    for target, ref in conditional.items():
        if ref is None and _mentions(document, target):
            message = f"{target}: no such Organization is registered on the FHIR server"
            problems.append(Problem("Bundle", message, "not-found"))
    found = {target: ref for target, ref in conditional.items() if ref is not None}
    copy: dict[str, Any] = rewrite_references(document, found.get)
    return copy


def _mentions(node: Any, target: str) -> bool:
    return target in _references(node)


def _references(node: Any) -> list[str]:
    """Every Reference.reference string in ``node``."""
    seen: list[str] = []

    def note(ref: str) -> None:
        seen.append(ref)

    rewrite_references(node, note)
    return seen


def _stand_ins(by_url: Mapping[str, _Entry]) -> Callable[[str], str | None]:
    def replace(ref: str) -> str | None:
        entry = by_url.get(ref)
        return entry.stand_in if entry is not None else None

    return replace


def rewrite_references(node: Any, replace: Callable[[str], str | None]) -> Any:
    """A copy of ``node`` with each Reference.reference string swapped where ``replace`` says
    (None: keep). The depth was bounded by ``_depth_problems`` before any walk."""
    if isinstance(node, dict):
        copy: dict[str, Any] = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                copy[key] = replace(value) or value
            else:
                copy[key] = rewrite_references(value, replace)
        return copy
    if isinstance(node, list):
        return [rewrite_references(value, replace) for value in node]
    return node


def _unresolved(view: Mapping[str, Any], by_url: Mapping[str, _Entry]) -> list[Problem]:
    """urn: references that name no entry of the Bundle (the server could not resolve them)."""
    problems: list[Problem] = []
    for url, resource in view.items():
        leftovers = [ref for ref in _references(resource) if ref.startswith("urn:")]
        path = f"Bundle.entry[{by_url[url].index}].resource"
        problems += [Problem(path, f"{ref} is not an entry of this Bundle") for ref in leftovers]
    return problems


# --- mapping and the package's own rules --------------------------------------------------------


def _map(
    view: Mapping[str, dict[str, Any]],
    task_entry: _Entry,
    entries: list[_Entry],
    context: MappingContext,
    problems: list[Problem],
) -> tuple[ReferralTask | None, MappedPackage | None]:
    """The Task and the package through the inbound mappers, problems placed on their entries."""
    task_view = view[task_entry.full_url]
    task_id = {"id": f"e{task_entry.index}"}
    # the sender's Task identifier system: ours, its PLAC-typed one, or its first
    system = task_identifier(task_view, context)
    id_system = system[0] if system else context.task_id_system
    task, task_problems, _ = map_task(task_view | task_id, id_system)
    problems += [_placed(p.resource, p.path, p.message) for p in task_problems]
    if task is None:
        return None, None
    resources = {
        e.stand_in: view[e.full_url] for e in entries if e is not task_entry and e.kind != ROLE
    }
    package, package_problems = map_package(
        FetchedPackage(task_view, resources), task, context, strict=True
    )
    problems += [_placed(p.resource, p.path, p.message) for p in package_problems]
    return task, package


def _unreadable(
    view: Mapping[str, dict[str, Any]],
    entries: list[_Entry],
    context: MappingContext,
    error: Exception,
) -> list[Problem]:
    """Which entries the mappers could not read at all: untrusted JSON of an unexpected shape
    (a number where an object belongs) must be a 422 naming the entry, never a 500. Only run
    after a failure, so the usual package is mapped once. (Pure: the 422 names the exception's
    type, which is all a log line said.)"""
    found = []
    for entry in entries:
        try:
            registry.from_fhir(view[entry.full_url], context)
        except MappingError:
            continue  # reported with its paths by the mapping itself
        except Exception as failure:  # the same reason as the caller's
            message = (
                f"cannot be read: an element has an unexpected type ({type(failure).__name__})"
            )
            found.append(Problem(f"Bundle.entry[{entry.index}].resource", message, "structure"))
    if not found:
        message = f"the package cannot be read ({type(error).__name__})"
        found.append(Problem("Bundle", message, "structure"))
    return found


def _placed(resource: str, path: str, message: str) -> Problem:
    """``Type/e3`` + ``Task.status`` -> ``Bundle.entry[3].resource.status``."""
    match = _ENTRY.match(resource)
    if match is None:
        return Problem(path, message)
    inner = path.split(".", 1)[1] if "." in path else ""
    at = f"Bundle.entry[{match.group(1)}].resource"
    return Problem(f"{at}.{inner}" if inner else at, message)


def _consistency(
    task: ReferralTask | None,
    package: MappedPackage | None,
    found: Mapping[str, _Entry],
    parties: Parties,
    roles: Mapping[str, _Entry],
) -> list[Problem]:
    """A new referral, from the caller, to this IOP, about the package's one client: what can
    be checked of the Task and the ServiceRequest that did map. The ServiceRequest's requester
    is the caller's Organization or its PractitionerRole in this Bundle (BSeR)."""
    patient = found["Patient"].stand_in
    requester = f"must be your organization {'|'.join(parties.requester_key)}"
    owner = f"must be this IOP, {'|'.join(parties.owner_key)}"
    rules: list[tuple[bool, str, str, str]] = []
    if task is not None:
        rules += [
            (task.status == "requested", "Task", "status", "a new referral is 'requested'"),
            (task.focus == found["ServiceRequest"].stand_in, "Task", "focus",
             "must be the ServiceRequest of this Bundle"),
            (task.patient == patient, "Task", "for", "must be the Patient of this Bundle"),
            (task.requester == parties.requester_ref, "Task", "requester", requester),
            (task.owner == parties.owner_ref, "Task", "owner", owner),
        ]  # fmt: skip
    if task is not None and package is not None:
        request: Referral = package.service_request
        rules += [
            (request.subject == patient, "ServiceRequest", "subject",
             "must be the Patient of this Bundle"),
            (request.identifier == task.identifier, "ServiceRequest", "identifier",
             f"must carry the Task's referral identifier {task.identifier!r}"),
            (request.requester == parties.requester_ref or request.requester in roles,
             "ServiceRequest", "requester", f"{requester} or its PractitionerRole"),
            (request.performer == parties.owner_ref, "ServiceRequest", "performer", owner),
        ]  # fmt: skip
    return [
        Problem(f"Bundle.entry[{found[kind].index}].resource.{element}", message, "business-rule")
        for ok, kind, element, message in rules
        if not ok
    ]


# --- the canonical Bundle ------------------------------------------------------------------------


def canonical_url(kind: str, condition: str) -> str:
    """The fullUrl of the entry that creates ``kind`` conditional on ``condition``."""
    return f"urn:uuid:{uuid.uuid5(URN_NAMESPACE, f'{kind}?{condition}')}"


def _canonical(document: dict[str, Any], entries: list[_Entry]) -> dict[str, Any]:
    """The submitted Bundle with fullUrls derived from the conditions (and references moved),
    each entry with its 42 CFR Part 2 labels when the package holds an SUD diagnosis."""
    moved = {e.full_url: canonical_url(e.kind, e.condition) for e in entries}
    result: dict[str, Any] = rewrite_references(document, moved.get)
    for entry in entries:
        result["entry"][entry.index]["fullUrl"] = moved[entry.full_url]
    # Labelled here, where the Bundle that is stored and forwarded is made, so no path can
    # enqueue it unlabelled (mappers.security_labels: the whole package is SUD-derived).
    part2 = security_labels.contains_sud(e.resource for e in entries)
    return security_labels.label(result, sud_derived=part2)
