"""Is the FHIR server reachable and the database usable? Used by /health and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirError
from integration.fhir.subscription_health import SubscriptionHealth, subscription_health
from integration.settings import Settings


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Reachability of each dependency, with what the FHIR server says it is."""

    fhir_reachable: bool
    fhir_software: str | None
    fhir_version: str | None
    fhir_error: str | None
    database_ok: bool
    # our rest-hook Subscription as the server has it (None when the server did not answer)
    subscription: SubscriptionHealth | None = None

    @property
    def ok(self) -> bool:
        """True when both the FHIR server and the database answer."""
        return self.fhir_reachable and self.database_ok

    @property
    def degraded(self) -> bool:
        """Working, but hearing of Task changes only by the poll (Subscription not active)."""
        return self.subscription is not None and not self.subscription.healthy


async def check_health(fhir: FhirClient, engine: Engine, settings: Settings) -> HealthReport:
    """Read the CapabilityStatement and our Subscription, and run a trivial query."""
    software = version = error = None
    subscription = None
    try:
        capability = await fhir.capabilities()
        soft = capability.get("software") or {}
        software = f"{soft.get('name', '?')} {soft.get('version', '?')}"
        version = capability.get("fhirVersion")
        subscription = await subscription_health(fhir, settings, None)
    except FhirError as exc:
        error = str(exc)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database_ok = True
    except Exception:  # any driver error means "not usable"; the message may hold the URL
        database_ok = False
    return HealthReport(error is None, software, version, error, database_ok, subscription)
