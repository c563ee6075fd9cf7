"""fhir_profiles layer of iop-bridge.

FHIR knowledge as data: our canonical URLs (canonical), code-system URIs and code constants with
their sources (terminology), and the conformance resources and synthetic examples shipped as
JSON (registry). It imports nothing else from the project and does no I/O beyond reading its
own package data.
"""

from fhir_profiles.canonical import CANONICAL_BASE
from fhir_profiles.registry import (
    UnknownProfileError,
    conformance_resource,
    conformance_resources,
    example_resources,
    profile_url_for,
)

__all__ = [
    "CANONICAL_BASE",
    "UnknownProfileError",
    "conformance_resource",
    "conformance_resources",
    "example_resources",
    "profile_url_for",
]
