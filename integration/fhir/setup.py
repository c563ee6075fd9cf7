"""What iop-bridge needs on the FHIR server before any workflow runs.

The IOP's own Organization (found or created by its business identifier, so every iop-bridge
process and every restart ends up with the same one) and the rest-hook Subscription that tells
iop-bridge about Tasks owned by that Organization.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from integration.fhir.client import FhirClient
from integration.settings import Settings
from mappers import bundle


async def ensure_organization(fhir: FhirClient, settings: Settings, *, name: str) -> str:
    """Conditional create of the IOP's Organization; returns ``Organization/<id>``."""
    resource = {
        "resourceType": "Organization",
        "identifier": [
            {"system": settings.organization_id_system, "value": settings.organization_id}
        ],
        "active": True,
        "name": name,
    }
    match = bundle.identifier_query(settings.organization_id_system, settings.organization_id)
    outcome = await fhir.create(resource, if_none_exist=match)
    return f"Organization/{outcome.resource['id']}"


def task_subscription(organization: str, endpoint: str, token: str | None) -> dict[str, Any]:
    """An R4 rest-hook Subscription for Tasks owned by ``organization``.

    With ``channel.payload`` set, HAPI PUTs each matching Task to ``{endpoint}/Task/{id}``
    (verified against the sandbox, sandbox/hapi/README.md); ``channel.header`` lines arrive as
    HTTP headers, which carries the shared secret the receiving route checks.
    """
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
    }
    if token:
        channel["header"] = [f"Authorization: Bearer {token}"]
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "iop-bridge: referral Tasks owned by this IOP",
        "criteria": f"Task?owner={organization}",
        "channel": channel,
    }


async def ensure_task_subscription(
    fhir: FhirClient, organization: str, endpoint: str, token: str | None
) -> str:
    """Create the Subscription unless one with the same criteria and endpoint exists."""
    resource = task_subscription(organization, endpoint, token)
    # R4 Subscription has no identifier: criteria + url (the endpoint) identify ours.
    match = urlencode({"criteria": resource["criteria"], "url": endpoint})
    outcome = await fhir.create(resource, if_none_exist=match)
    return f"Subscription/{outcome.resource['id']}"
