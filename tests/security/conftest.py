"""The security tier replays the findings of the review against iop-bridge (issue 15): its live
tests use the live tier's fixtures (the real HAPI server, a per-test store, unique ids)."""

from tests.live.conftest import engine, fhir, live_settings, unique

__all__ = ["engine", "fhir", "live_settings", "unique"]
