"""How long to wait between attempts: Retry-After when the server gives one, else backoff."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential_jitter

from integration.fhir.errors import FhirRateLimited
from integration.settings import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries: at most ``max_attempts`` tries, waits capped at ``max_wait``."""

    max_attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy configured for this process."""
        return cls(
            settings.retry_max_attempts,
            settings.retry_initial_wait_seconds,
            settings.retry_max_wait_seconds,
        )


def wait_for(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """A tenacity wait: honour 429 Retry-After, otherwise exponential backoff with jitter."""
    backoff = wait_exponential_jitter(
        multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.initial_wait
    )

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, FhirRateLimited) and error.retry_after is not None:
            return min(error.retry_after, policy.max_wait)
        return float(backoff(state))

    return wait
