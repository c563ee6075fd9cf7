"""Transaction Bundles with conditional creates: pure builders and response readers.

Entries reference each other by ``urn:uuid`` fullUrls; the server rewrites those references to
the real ids on commit, including when a conditional create matched an existing resource
(FHIR R4 http.html#trules). Callers pass the uuids in, so the builders stay pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """One transaction-response entry: its HTTP status and where the resource lives."""

    status: int
    resource_type: str
    resource_id: str
    version_id: str | None

    @property
    def created(self) -> bool:
        """True for 201 Created; a matched conditional create answers 200 OK."""
        return self.status == 201


def identifier_token(system: str, value: str) -> str:
    """The ``system|value`` token search value, with FHIR search escaping (search.html#escaping)."""
    return f"{_escape(system)}|{_escape(value)}"


def identifier_query(system: str, value: str) -> str:
    """The ``identifier=system|value`` match URL of a conditional create."""
    return f"identifier={identifier_token(system, value)}"


def conditional_create_entry(
    resource: Mapping[str, Any], *, full_url: str, if_none_exist: str
) -> dict[str, Any]:
    """A transaction entry that POSTs ``resource`` unless ``if_none_exist`` already matches."""
    return {
        "fullUrl": full_url,
        "resource": dict(resource),
        "request": {
            "method": "POST",
            "url": str(resource["resourceType"]),
            "ifNoneExist": if_none_exist,
        },
    }


def transaction(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A Bundle of type transaction holding ``entries`` in order."""
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def read_transaction_response(bundle: Mapping[str, Any]) -> list[EntryOutcome]:
    """Read status and location of each entry; never parse ids out of diagnostics."""
    outcomes = []
    for entry in bundle.get("entry") or []:
        response = entry.get("response") or {}
        status = int(str(response.get("status", "0")).split()[0])
        parts = str(response.get("location", "")).split("/")
        # location is "Type/id/_history/vid" (absolute URLs end the same way)
        if "_history" in parts:
            h = parts.index("_history")
            rtype, rid, vid = parts[h - 2], parts[h - 1], parts[h + 1]
        else:
            rtype, rid, vid = parts[-2], parts[-1], None
        outcomes.append(EntryOutcome(status, rtype, rid, vid))
    return outcomes


def _escape(token: str) -> str:
    # FHIR search escaping (search.html#escaping): backslash-escape the special characters.
    # Substring tests are the cheapest check for the usual case, a token with none of them (this
    # runs twice per transaction entry); a frozenset would look up every character in turn.
    if "\\" not in token and "|" not in token and "," not in token and "$" not in token:
        return token
    return token.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
