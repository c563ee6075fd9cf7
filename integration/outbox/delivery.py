"""Delivering one outbox message by its kind, and where each written resource landed.

Every write is conditional on a business identifier (a transaction's conditional creates, a
conditional update, an owned-fields merge on the one match), so delivering a message again
after a crash or a lost answer never duplicates. ``integration.outbox.worker`` settles the result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integration.fhir.client import FhirClient, WriteOutcome
from integration.fhir.concurrency import update_owned_fields
from integration.fhir.errors import FhirNotFound
from integration.outbox.queue import ClaimedMessage, MessageKind
from mappers import bundle
from mappers.bundle import EntryOutcome


class MalformedMessage(ValueError):
    """The payload cannot be sent as it is; waiting will not fix it, so it goes dead at once."""


@dataclass(frozen=True, slots=True)
class DeliveredEntry:
    """Where one written resource landed, keyed by the business identifier it was matched on."""

    identifier: tuple[str, str] | None  # (system, value); None when the write had no identifier
    outcome: EntryOutcome
    label: str  # created | matched | updated


Deliver = Callable[[FhirClient, ClaimedMessage], Awaitable[Sequence[DeliveredEntry]]]


async def deliver_message(fhir: FhirClient, message: ClaimedMessage) -> list[DeliveredEntry]:
    """Send one message by its kind; the FHIR client raises typed FhirErrors on failure."""
    if message.kind == MessageKind.TRANSACTION:
        return await _deliver_transaction(fhir, message.payload)
    if message.kind == MessageKind.RESOURCE:
        return [await _deliver_entry(fhir, message.payload)]
    if message.kind == MessageKind.OWNED_FIELDS:
        return [await _deliver_owned_fields(fhir, message.payload)]
    raise MalformedMessage(f"unknown outbox message kind {message.kind!r}")


async def _deliver_transaction(
    fhir: FhirClient, payload: Mapping[str, Any]
) -> list[DeliveredEntry]:
    """POST the transaction; pair each response entry with the request entry it answers."""
    response = await fhir.transaction(payload)
    outcomes = bundle.read_transaction_response(response)
    requests = [entry.get("request") or {} for entry in payload.get("entry") or []]
    if len(outcomes) != len(requests):
        # FHIR R4 http.html#transaction-response: one response entry per request entry, in order
        raise MalformedMessage("transaction response does not answer every entry")
    return [
        _delivered(request, outcome) for request, outcome in zip(requests, outcomes, strict=True)
    ]


async def _deliver_entry(fhir: FhirClient, entry: Mapping[str, Any]) -> DeliveredEntry:
    """One Bundle.entry-shaped write: conditional create (POST), conditional or plain update."""
    resource, request = entry["resource"], entry["request"]
    method, url = str(request.get("method", "")), str(request.get("url", ""))
    if method == "POST":
        written = await fhir.create(resource, if_none_exist=request.get("ifNoneExist"))
    elif method == "PUT" and "?" in url:
        written = await fhir.conditional_update(resource, match=_parse_query(url.partition("?")[2]))
    elif method == "PUT":
        written = await fhir.update(resource)
    else:
        raise MalformedMessage(f"unsupported request method {method!r} for a resource message")
    return _delivered(request, _entry_outcome(str(resource["resourceType"]), written))


async def _deliver_owned_fields(fhir: FhirClient, payload: Mapping[str, Any]) -> DeliveredEntry:
    """Change only the elements this side owns on the one resource with that identifier."""
    resource_type = str(payload["resourceType"])
    system, value = str(payload["identifier"]["system"]), str(payload["identifier"]["value"])
    token = bundle.identifier_token(system, value)
    found = [r async for r in fhir.search_all(resource_type, {"identifier": token})]
    if len(found) != 1:
        # Messages of one aggregate are delivered in order, so the create came first: zero
        # matches means the resource was removed, several that identifiers are not unique.
        # Retrying cannot fix either; the message goes dead with this reason.
        raise FhirNotFound(f"{resource_type} with identifier {token}: {len(found)} matches")
    to_set = dict(payload.get("set") or {})
    to_remove = [str(name) for name in payload.get("remove") or []]
    to_add = {str(k): list(v) for k, v in (payload.get("add") or {}).items()}

    def change(current: dict[str, Any]) -> dict[str, Any]:
        for name in to_remove:
            current.pop(name, None)
        for name, items in to_add.items():  # shared elements: append what is not there yet
            present = list(current.get(name) or [])
            current[name] = present + [i for i in items if i not in present]
        return current | to_set

    written = await update_owned_fields(fhir, resource_type, str(found[0]["id"]), change)
    return DeliveredEntry((system, value), _entry_outcome(resource_type, written), "updated")


def _entry_outcome(resource_type: str, written: WriteOutcome) -> EntryOutcome:
    """The EntryOutcome of a single write, from the returned resource or else its Location."""
    body = written.resource
    status = 201 if written.created else 200
    if body.get("id"):
        version = (body.get("meta") or {}).get("versionId")
        return EntryOutcome(status, resource_type, str(body["id"]), version)
    location = {"response": {"status": str(status), "location": written.location or ""}}
    return bundle.read_transaction_response({"entry": [location]})[0]


def _delivered(request: Mapping[str, Any], outcome: EntryOutcome) -> DeliveredEntry:
    method = request.get("method")
    label = "created" if outcome.created else "matched" if method == "POST" else "updated"
    return DeliveredEntry(business_identifier(request), outcome, label)


def business_identifier(request: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (system, value) a conditional write matches on: ifNoneExist or the PUT's query."""
    query = request.get("ifNoneExist") or str(request.get("url", "")).partition("?")[2]
    token = _parse_query(str(query)).get("identifier")
    return _split_token(token) if token else None


def _parse_query(query: str) -> dict[str, str]:
    # mappers.bundle builds match URLs unencoded ("identifier=sys|val"); '+' is not a space here.
    pairs = (part.partition("=") for part in query.split("&") if part)
    return {key: value for key, _, value in pairs}


def _split_token(token: str) -> tuple[str, str] | None:
    """Undo FHIR search escaping (search.html#escaping) and split ``system|value``."""
    if "\\" not in token:  # nothing escaped (the usual case): the first "|" splits
        system, bar, value = token.partition("|")
        return (system, value) if bar else None
    parts, escaped = [""], False
    for char in token:
        if escaped:
            parts[-1] += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|" and len(parts) == 1:
            parts.append("")
        else:
            parts[-1] += char
    return (parts[0], parts[1]) if len(parts) == 2 else None
