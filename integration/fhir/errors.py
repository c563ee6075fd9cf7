"""FHIR-server errors: the integration branch of the one error tree rooted in mappers.errors.

``integration.fhir.client`` is the only place that creates these from HTTP responses and
transport failures, so callers never catch an httpx exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mappers.errors import IopBridgeError, Problem

# HAPI prefixes diagnostics with a stable message code: "HAPI-0958: ..." (Msg.code in HAPI).
_HAPI_CODE = re.compile(r"HAPI-(\d{4})")


class FhirError(IopBridgeError):
    """Something went wrong talking to the FHIR server."""

    http_status = 502  # what iop-bridge's own callers see: the upstream failed
    issue_code = "exception"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        outcome: Mapping[str, Any] | None = None,
        problems: Sequence[Problem] = (),
    ) -> None:
        super().__init__(message, problems=problems)
        self.status = status
        self.outcome = outcome

    @property
    def hapi_codes(self) -> tuple[str, ...]:
        """The HAPI-nnnn message codes found in the OperationOutcome's diagnostics."""
        return tuple(f"HAPI-{c}" for p in self.problems for c in _HAPI_CODE.findall(p.message))


class FhirTransportError(FhirError):
    """No usable HTTP answer: connection refused or reset, or a timeout."""

    issue_code = "transient"
    retryable = True


class FhirServerUnavailable(FhirError):
    """The server answered 5xx."""

    issue_code = "transient"
    retryable = True


class FhirRateLimited(FhirError):
    """The server answered 429; ``retry_after`` holds its Retry-After in seconds, if given."""

    issue_code = "throttled"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class FhirRequestRejected(FhirError):
    """The server refused the request (4xx); retrying it unchanged will not help."""

    issue_code = "processing"


class FhirBadRequest(FhirRequestRejected):
    """400: the server could not parse or accept the request."""

    issue_code = "invalid"


class FhirUnauthorized(FhirRequestRejected):
    """401 or 403 from the FHIR server."""

    issue_code = "security"


class FhirNotFound(FhirRequestRejected):
    """404, or 410 for a deleted resource."""

    issue_code = "not-found"


class FhirVersionConflict(FhirRequestRejected):
    """A stale If-Match: HAPI answers 409 where the FHIR spec says 412; both land here."""

    issue_code = "conflict"


class FhirTransientConflict(FhirRequestRejected):
    """409 from a concurrency guard, not a stale version: the same request again will succeed.

    HAPI answers HAPI-2745 ("conditional constraint failure") when two identical conditional
    creates race, e.g. a retry arriving while the timed-out original is still committing; the
    retry then matches what the first one created.
    """

    issue_code = "transient"
    retryable = True


class FhirPreconditionFailed(FhirRequestRejected):
    """412 without If-Match: typically a conditional create/update matching several resources."""

    issue_code = "multiple-matches"


class FhirUnprocessable(FhirRequestRejected):
    """422: the resource failed the server's validation."""

    issue_code = "processing"
