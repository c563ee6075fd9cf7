"""US Core 9.0.0 on the live server: the IG's own resources from the shared corpus (CC0).

Loaded once per server: a marker (us-core-patient at version 9.0.0) says it is there.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from fhir_profiles.us_core import US_CORE_VERSION
from integration.fhir.conformance import read_us_core

ROOT = Path(__file__).resolve().parents[1]
US_CORE_DIR = Path(
    os.environ.get(
        "IOP_TEST_US_CORE_DIR",
        ROOT / ".." / "shared" / "corpus" / "us-core-9.0.0" / "resources-yaml",
    )
)


@cache
def us_core_resources() -> tuple[dict[str, Any], ...]:
    return tuple(read_us_core(US_CORE_DIR))


def ensure_us_core(base_url: str) -> int:
    """PUT US Core's resources unless the server has them; how many were sent."""
    with httpx.Client(base_url=base_url, timeout=120) as client:
        marker = client.get("StructureDefinition/us-core-patient")
        if marker.status_code == 200 and marker.json().get("version") == US_CORE_VERSION:
            return 0
        for resource in us_core_resources():
            path = f"{resource['resourceType']}/{resource['id']}"
            response = client.put(
                path, json=resource, headers={"Content-Type": "application/fhir+json"}
            )
            response.raise_for_status()
    return len(us_core_resources())
