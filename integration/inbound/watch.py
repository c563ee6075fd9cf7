"""The worker's eye on its Subscriptions: each one's state read each poll round, a change logged
once. There are two (``fhir/task_searches.py``): for Tasks owned by the IOP's Organization and
for Tasks owned by a PractitionerRole of it; notifications can be expected only while both are
active.

What a state means and how it is read: fhir/subscription_health.py.
"""

from __future__ import annotations

import logging
import re

from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirError
from integration.fhir.subscription_health import SubscriptionHealth, subscriptions_health
from integration.fhir.task_searches import TASK_SEARCHES, TaskSearch
from integration.privacy.logging_setup import Safe
from integration.settings import Settings

log = logging.getLogger(__name__)

_CODES = re.compile(r"HAPI-\d{4}|\b[45]\d\d\b")


class SubscriptionWatch:
    """Remembers the last state seen of each Subscription, so a change is logged once, with the
    server's reason."""

    def __init__(self, searches: tuple[TaskSearch, ...] = TASK_SEARCHES) -> None:
        self.searches = searches
        self.states: dict[TaskSearch, SubscriptionHealth] = {}

    @property
    def notifying(self) -> bool:
        """Whether every Subscription was active at the last check (if one is not, the Tasks
        it would tell of are heard only by the poll)."""
        return len(self.states) == len(self.searches) and all(
            health.notifying for health in self.states.values()
        )

    async def check(
        self, fhir: FhirClient, settings: Settings, organization: str
    ) -> dict[TaskSearch, SubscriptionHealth]:
        """Read each state; log each change. A failed read keeps the last states."""
        try:
            found = await subscriptions_health(fhir, settings, organization, self.searches)
        except FhirError as error:
            log.warning("Subscription state unknown (%s)", type(error).__name__)
            unknown = SubscriptionHealth("unknown", type(error).__name__)
            return {search: self.states.get(search, unknown) for search in self.searches}
        for search, health in zip(self.searches, found, strict=True):
            before = self.states.get(search)
            if before is None or health.status != before.status:
                self._log_change(search, health, settings)
            self.states[search] = health
        return dict(self.states)

    @staticmethod
    def _log_change(search: TaskSearch, health: SubscriptionHealth, settings: Settings) -> None:
        if health.healthy:
            log.info(
                "Subscription for %s %s: notifications expected",
                Safe(search.description),
                health.status,
            )
            return
        # our reason is built from fixed text; of the server's words only its message codes
        # (HAPI-nnnn) and HTTP statuses are logged, as anything it quotes may hold PHI
        codes = " ".join(_CODES.findall(health.server_error or "")) or "none"
        log.warning(
            "Subscription %s for %s %s (%s; server codes: %s); polling every %s s until it is "
            "active",
            health.subscription or "",
            Safe(search.description),
            health.status,
            Safe(health.reason or ""),
            Safe(codes),
            settings.inbound_fallback_poll_seconds,
        )
