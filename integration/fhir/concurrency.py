"""Optimistic concurrency: read, change only the fields this side owns, PUT with If-Match.

Both parties of a referral write the same Task (FHIR R4 http.html#concurrency; SDOHCC: the
requester owns ServiceRequest.status, the performer owns Task.status/businessStatus/output).
On a version conflict (HAPI answers 409, the FHIR spec says 412; both arrive here as
FhirVersionConflict) the change is re-applied to the newest version, so the other party's
fields are never overwritten with stale values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from integration.fhir.client import FhirClient, WriteOutcome
from integration.fhir.errors import FhirVersionConflict

Change = Callable[[dict[str, Any]], dict[str, Any]]


async def update_owned_fields(
    fhir: FhirClient, resource_type: str, resource_id: str, change: Change, *, max_attempts: int = 5
) -> WriteOutcome:
    """Apply ``change`` to the current version and PUT it with If-Match, re-reading on conflict."""
    last: FhirVersionConflict | None = None
    for _ in range(max_attempts):
        current = await fhir.read(resource_type, resource_id)
        version = str(current.get("meta", {}).get("versionId", ""))
        updated = change(copy.deepcopy(current))
        try:
            return await fhir.update(updated, if_match_version=version or None)
        except FhirVersionConflict as conflict:
            last = conflict  # someone wrote in between: merge onto their version and try again
    assert last is not None
    raise FhirVersionConflict(
        f"{resource_type}/{resource_id}: still conflicting after {max_attempts} merges",
        status=last.status,
        outcome=last.outcome,
        problems=last.problems,
    )
