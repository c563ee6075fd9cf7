"""Are the rest-hook Subscriptions doing their job? Read from the FHIR server, never assumed.

There are two, one per search in ``task_searches.TASK_SEARCHES`` (Tasks owned by the IOP's
Organization, and by a PractitionerRole of it); each is read and judged on its own.

A server may accept the Subscription (201) and never act on it: HAPI with rest-hook subscriptions
switched off (the official JPA starter's default, hapi.fhir.subscription.resthook_enabled=false)
keeps it ``requested`` for good, and HAPI sets ``error`` (with Subscription.error saying why) or
``off`` when it gives up on delivery (R4 Subscription.status: requested | active | error | off).
While it is not ``active`` no notification arrives and the poll is all iop-bridge hears, so the
poll runs at the shorter fallback interval (runtime.py) and /health, ``iop-bridge check`` and the
log (inbound/watch.py) say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integration.fhir.client import FhirClient
from integration.fhir.setup import find_organization
from integration.fhir.task_searches import BY_ORGANIZATION, TASK_SEARCHES, TaskSearch
from integration.settings import Settings
from mappers.fhir_reference import literal_reference

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
    reason: str | None = None  # ours: what the status means for iop-bridge
    subscription: str | None = None  # Subscription/<id> when there is one
    server_error: str | None = None  # the server's own words (Subscription.error), verbatim

    @property
    def explanation(self) -> str | None:
        """The reason and the server's words, for /health and ``iop-bridge check``."""
        if self.server_error:
            return f"{self.reason}: {self.server_error}"
        return self.reason

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
    ref = literal_reference("Subscription", resource.get("id"))
    if status == ACTIVE:
        return SubscriptionHealth(ACTIVE, None, ref)
    reason = _WHY.get(status, f"status {status}")
    error = resource.get("error")  # the server's own words, e.g. HAPI's delivery failure
    return SubscriptionHealth(status, reason, ref, str(error) if error else None)


async def find_subscription(
    fhir: FhirClient, organization: str, endpoint: str, search: TaskSearch = BY_ORGANIZATION
) -> dict[str, Any] | None:
    """Our Subscription for ``search`` (criteria ``Task?owner=<organization>`` by default),
    channel endpoint ``endpoint``."""
    criteria = search.criteria(organization)
    page = await fhir.search("Subscription", {"criteria": criteria, "url": endpoint})
    for entry in page.get("entry") or []:
        resource = entry.get("resource") or {}
        channel = resource.get("channel") or {}
        # string search parameters match by prefix (Organization/1 finds Organization/1000's)
        if resource.get("criteria") == criteria and channel.get("endpoint") == endpoint:
            return dict(resource)
    return None


async def subscriptions_health(
    fhir: FhirClient,
    settings: Settings,
    organization: str | None,
    searches: tuple[TaskSearch, ...] = TASK_SEARCHES,
) -> tuple[SubscriptionHealth, ...]:
    """The state of the Subscription of each of ``searches``, in their order."""
    if settings.inbound_mode == "poll":
        return tuple(SubscriptionHealth(NOT_USED) for _ in searches)
    if organization is None:
        organization = await find_organization(fhir, settings)
        if organization is None:
            return tuple(
                SubscriptionHealth(NO_ORGANIZATION, _WHY[NO_ORGANIZATION]) for _ in searches
            )
    endpoint = settings.hook_base_url
    return tuple(
        [describe(await find_subscription(fhir, organization, endpoint, s)) for s in searches]
    )
