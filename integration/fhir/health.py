"""Is the FHIR server reachable and the database usable? Used by /health and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirError
from integration.fhir.subscription_health import SubscriptionHealth, subscriptions_health
from integration.settings import Settings


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Reachability of each dependency, with what the FHIR server says it is."""

    fhir_reachable: bool
    fhir_software: str | None
    fhir_version: str | None
    fhir_error: str | None
    database_ok: bool
    # our rest-hook Subscriptions as the server has them (None when the server did not answer):
    # for Tasks owned by the IOP's Organization, and by a PractitionerRole of it
    subscription: SubscriptionHealth | None = None
    role_subscription: SubscriptionHealth | None = None

    @property
    def ok(self) -> bool:
        """True when both the FHIR server and the database answer."""
        return self.fhir_reachable and self.database_ok

    @property
    def degraded(self) -> bool:
        """Working, but hearing of some Task changes only by the poll (a Subscription is not
        active)."""
        return any(
            sub is not None and not sub.healthy
            for sub in (self.subscription, self.role_subscription)
        )


async def check_health(fhir: FhirClient, engine: Engine, settings: Settings) -> HealthReport:
    """Read the CapabilityStatement and our Subscriptions, and run a trivial query."""
    software = version = error = None
    subscription = role_subscription = None
    try:
        capability = await fhir.capabilities()
        soft = capability.get("software") or {}
        software = f"{soft.get('name', '?')} {soft.get('version', '?')}"
        version = capability.get("fhirVersion")
        subscription, role_subscription = await subscriptions_health(fhir, settings, None)
    except FhirError as exc:
        error = str(exc)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database_ok = True
    except Exception:  # any driver error means "not usable"; the message may hold the URL
        database_ok = False
    return HealthReport(
        error is None, software, version, error, database_ok, subscription, role_subscription
    )
