"""What iop-bridge needs on the FHIR server before any workflow runs.

The IOP's own Organization (found or created by its business identifier, so every iop-bridge
process and every restart ends up with the same one), the two rest-hook Subscriptions that tell
iop-bridge about Tasks owned by that Organization or by a PractitionerRole of it
(``task_searches.py``), and our Questionnaires (PHQ-9, GAD-7, ASAM
intake), so that the canonical every QuestionnaireResponse we write names resolves on the
server it is written to (``Questionnaire?url=``; US Core: questionnaire is must support).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fhir_profiles.registry import conformance_resources
from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirPreconditionFailed
from integration.fhir.task_searches import BY_ORGANIZATION, TASK_SEARCHES, TaskSearch
from integration.settings import Settings
from mappers import bundle
from mappers.fhir_reference import literal_reference


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
    return literal_reference("Organization", outcome.resource["id"])


async def find_organization(fhir: FhirClient, settings: Settings) -> str | None:
    """``Organization/<id>`` of the IOP (by its business identifier), or None if not set up;
    the first match (``ensure_organization`` creates it once, conditionally)."""
    token = bundle.identifier_token(settings.organization_id_system, settings.organization_id)
    page = await fhir.search("Organization", {"identifier": token})
    for entry in page.get("entry") or []:
        if isinstance(entry.get("resource"), dict):
            return literal_reference("Organization", entry["resource"]["id"])
    return None


async def ensure_questionnaires(fhir: FhirClient) -> int:
    """Conditional create of each of our Questionnaires by canonical and version (a new
    version is published beside the old one); how many were new."""
    created = 0
    for questionnaire in conformance_resources():
        if questionnaire["resourceType"] != "Questionnaire":
            continue
        query = urlencode({"url": questionnaire["url"], "version": questionnaire["version"]})
        body = {k: v for k, v in questionnaire.items() if k != "id"}  # the server's id, not ours
        try:
            outcome = await fhir.create(body, if_none_exist=query)
        except FhirPreconditionFailed:
            continue  # several match (HAPI 412, HAPI-0958): it is published already
        created += outcome.created
    return created


def task_subscription(
    organization: str,
    endpoint: str,
    token: str | None,
    search: TaskSearch = BY_ORGANIZATION,
) -> dict[str, Any]:
    """An R4 rest-hook Subscription for the Tasks ``search`` finds for ``organization``.

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
        "reason": f"iop-bridge: referral {search.description}",
        "criteria": search.criteria(organization),
        "channel": channel,
    }


async def ensure_task_subscription(
    fhir: FhirClient,
    organization: str,
    endpoint: str,
    token: str | None,
    search: TaskSearch = BY_ORGANIZATION,
) -> str:
    """Create the Subscription unless one with the same criteria and endpoint exists."""
    resource = task_subscription(organization, endpoint, token, search)
    # R4 Subscription has no identifier: criteria + url (the endpoint) identify ours.
    match = urlencode({"criteria": resource["criteria"], "url": endpoint})
    outcome = await fhir.create(resource, if_none_exist=match)
    return literal_reference("Subscription", outcome.resource["id"])


async def ensure_task_subscriptions(
    fhir: FhirClient, organization: str, endpoint: str, token: str | None
) -> list[str]:
    """Both Subscriptions (one per search in ``TASK_SEARCHES``); their references, in order."""
    return [
        await ensure_task_subscription(fhir, organization, endpoint, token, search)
        for search in TASK_SEARCHES
    ]
