"""HTTP status + OperationOutcome -> typed FhirError, written once for the whole client."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from integration.fhir.errors import (
    FhirBadRequest,
    FhirError,
    FhirNotFound,
    FhirPreconditionFailed,
    FhirRateLimited,
    FhirRequestRejected,
    FhirServerUnavailable,
    FhirTransientConflict,
    FhirUnauthorized,
    FhirUnprocessable,
    FhirVersionConflict,
)
from mappers.errors import Problem

_BY_STATUS: dict[int, type[FhirRequestRejected]] = {
    400: FhirBadRequest,
    401: FhirUnauthorized,
    403: FhirUnauthorized,
    404: FhirNotFound,
    410: FhirNotFound,
    409: FhirVersionConflict,
    422: FhirUnprocessable,
}


def raise_for_status(response: httpx.Response) -> None:
    """Raise the FhirError that matches a non-2xx response; return quietly on success."""
    status = response.status_code
    if status < 300 or status == 304:
        return
    if status < 400:
        # The client does not follow redirects: its writes are not safe to replay at another
        # address, and an empty 3xx body read as a page would silently end a search early.
        where = response.headers.get("location", "no Location")
        raise FhirRequestRejected(
            f"{response.request.method} {response.request.url.path} -> {status} redirect to "
            f"{where}: iop-bridge does not follow redirects; check IOP_BRIDGE_FHIR_BASE_URL",
            status=status,
        )
    outcome = _outcome_of(response)
    problems = problems_from_outcome(outcome)
    first = problems[0].message if problems else response.reason_phrase
    message = f"{response.request.method} {response.request.url.path} -> {status}: {first}"
    kwargs: dict[str, Any] = {"status": status, "outcome": outcome, "problems": problems}
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise FhirRateLimited(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        raise FhirServerUnavailable(message, **kwargs)
    racing = any("HAPI-2745" in p.message for p in problems)
    if status == 409 and racing and "if-match" not in response.request.headers:
        raise FhirTransientConflict(message, **kwargs)
    if status == 412:
        # RFC 9110 412 on a stale If-Match is a version conflict; without If-Match HAPI uses
        # 412 for a conditional operation that matched several resources (HAPI-0958).
        stale = "if-match" in response.request.headers
        raise (FhirVersionConflict if stale else FhirPreconditionFailed)(message, **kwargs)
    raise _BY_STATUS.get(status, FhirRequestRejected)(message, **kwargs)


def problems_from_outcome(outcome: Mapping[str, Any] | None) -> list[Problem]:
    """Each OperationOutcome.issue as a Problem: path from expression/location, text, code."""
    if not outcome or outcome.get("resourceType") != "OperationOutcome":
        return []
    problems = []
    for issue in outcome.get("issue") or []:
        paths = issue.get("expression") or issue.get("location") or []
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        problems.append(Problem(paths[0] if paths else "", str(text), issue.get("code", "")))
    return problems


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def _outcome_of(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


__all__ = ["FhirError", "parse_retry_after", "problems_from_outcome", "raise_for_status"]
