"""Is the rest-hook Subscription doing its job? Read from the FHIR server, never assumed.

A server may accept the Subscription (201) and never act on it: HAPI with rest-hook subscriptions
switched off (the official JPA starter's default, hapi.fhir.subscription.resthook_enabled=false)
keeps it ``requested`` for good, and HAPI sets ``error`` (with Subscription.error saying why) or
``off`` when it gives up on delivery (R4 Subscription.status: requested | active | error | off).
While it is not ``active`` no notification arrives and the poll is all iop-bridge hears, so the
poll runs at the shorter fallback interval and /health, ``iop-bridge check`` and the log say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from integration.errors import FhirError
from integration.fhir_client import FhirClient
from integration.settings import Settings
from mappers import bundle

log = logging.getLogger(__name__)

ACTIVE = "active"
MISSING = "missing"  # none on the server for our Organization and hook URL
NOT_USED = "not-used"  # inbound_mode poll: iop-bridge subscribes to nothing
NO_ORGANIZATION = "no-organization"  # our Organization is not on the server (yet)

_WHY = {
    "requested": (
        "the server has not activated it (a HAPI with rest-hook subscriptions off keeps it "
        "requested: set hapi.fhir.subscription.resthook_enabled=true)"
    ),
    "off": "the server switched it off",
    "error": "the server could not deliver to the hook URL",
    MISSING: "no Subscription for this Organization and hook URL on the server",
    NO_ORGANIZATION: "our Organization is not on the server yet",
}


@dataclass(frozen=True, slots=True)
class SubscriptionHealth:
    """What the server says of our Subscription: its status and, when not active, why."""

    status: str
    reason: str | None = None
    subscription: str | None = None  # Subscription/<id> when there is one

    @property
    def notifying(self) -> bool:
        """Whether notifications can be expected (if not, only the poll hears changes)."""
        return self.status == ACTIVE

    @property
    def healthy(self) -> bool:
        """Active, or deliberately not used (poll-only mode)."""
        return self.status in (ACTIVE, NOT_USED)


def describe(resource: dict[str, Any] | None) -> SubscriptionHealth:
    """The health a Subscription resource (or its absence) stands for."""
    if resource is None:
        return SubscriptionHealth(MISSING, _WHY[MISSING])
    status = str(resource.get("status") or "unknown")
    ref = f"Subscription/{resource.get('id')}"
    if status == ACTIVE:
        return SubscriptionHealth(ACTIVE, None, ref)
    reason = _WHY.get(status, f"status {status}")
    if resource.get("error"):  # the server's own words, e.g. HAPI's delivery failure
        reason = f"{reason}: {resource['error']}"
    return SubscriptionHealth(status, reason, ref)


async def find_subscription(
    fhir: FhirClient, organization: str, endpoint: str
) -> dict[str, Any] | None:
    """Our Subscription: criteria Task?owner=<organization>, channel endpoint ``endpoint``."""
    params = {"criteria": f"Task?owner={organization}", "url": endpoint}
    page = await fhir.search("Subscription", params)
    for entry in page.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Subscription":
            return dict(resource)
    return None


async def subscription_health(
    fhir: FhirClient, settings: Settings, organization: str | None
) -> SubscriptionHealth:
    """Read our Subscription's state from the server (``organization`` found when None)."""
    if settings.inbound_mode == "poll":
        return SubscriptionHealth(NOT_USED)
    if organization is None:
        token = bundle.identifier_token(settings.organization_id_system, settings.organization_id)
        page = await fhir.search("Organization", {"identifier": token})
        found = [e["resource"]["id"] for e in page.get("entry") or [] if e.get("resource")]
        if not found:
            return SubscriptionHealth(NO_ORGANIZATION, _WHY[NO_ORGANIZATION])
        organization = f"Organization/{found[0]}"
    return describe(await find_subscription(fhir, organization, settings.hook_base_url))


class SubscriptionWatch:
    """Remembers the last state seen, so a change is logged once, with the server's reason."""

    def __init__(self) -> None:
        self.last: SubscriptionHealth | None = None

    async def check(
        self, fhir: FhirClient, settings: Settings, organization: str
    ) -> SubscriptionHealth:
        """Read the state; log when it changes. A failed read keeps the last state."""
        try:
            health = await subscription_health(fhir, settings, organization)
        except FhirError as error:
            log.warning("Subscription state unknown (%s)", type(error).__name__)
            return self.last or SubscriptionHealth("unknown", type(error).__name__)
        if self.last is None or health.status != self.last.status:
            self._log_change(health, settings)
        self.last = health
        return health

    @staticmethod
    def _log_change(health: SubscriptionHealth, settings: Settings) -> None:
        if health.healthy:
            log.info("Subscription %s: notifications expected", health.status)
            return
        log.warning(
            "Subscription %s (%s); polling every %.0f s until it is active",
            health.status,
            health.reason,
            settings.inbound_fallback_poll_seconds,
        )
