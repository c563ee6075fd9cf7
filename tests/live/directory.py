"""The next provider of an aftercare handoff, as a directory registers it: its Organization on
the FHIR server under the organization directory's identifier system (the API and the tracker
name the next provider by that identifier, ``AFTER-<unique>``)."""

from __future__ import annotations

import httpx

from integration.settings import Settings

NEXT_PROVIDER_NAME = "Harbor Street Outpatient Counseling"


def register_next_provider(settings: Settings, unique: str) -> str:
    """Create the next provider's Organization; its server reference."""
    organization = {
        "resourceType": "Organization",
        "identifier": [{"system": settings.organization_id_system, "value": f"AFTER-{unique}"}],
        "name": NEXT_PROVIDER_NAME,
    }
    response = httpx.post(f"{settings.fhir_base}/Organization", json=organization, timeout=30)
    response.raise_for_status()
    return f"Organization/{response.json()['id']}"
