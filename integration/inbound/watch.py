"""The worker's eye on its Subscription: the state read each poll round, a change logged once.

What the state means and how it is read: fhir/subscription_health.py.
"""

from __future__ import annotations

import logging
import re

from integration.fhir.client import FhirClient
from integration.fhir.errors import FhirError
from integration.fhir.subscription_health import SubscriptionHealth, subscription_health
from integration.privacy.logging_setup import Safe
from integration.settings import Settings

log = logging.getLogger(__name__)

_CODES = re.compile(r"HAPI-\d{4}|\b[45]\d\d\b")


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
        # our reason is built from fixed text; of the server's words only its message codes
        # (HAPI-nnnn) and HTTP statuses are logged, as anything it quotes may hold PHI
        codes = " ".join(_CODES.findall(health.server_error or "")) or "none"
        log.warning(
            "Subscription %s %s (%s; server codes: %s); polling every %s s until it is active",
            health.subscription or "",
            health.status,
            Safe(health.reason or ""),
            Safe(codes),
            settings.inbound_fallback_poll_seconds,
        )
