"""The one exception handler: any IopBridgeError -> OperationOutcome or problem JSON.

FHIR callers (Accept or Content-Type application/fhir+json) get an OperationOutcome
(FHIR R4 operationoutcome.html); everyone else gets RFC 9457 problem details.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mappers.errors import IopBridgeError


def operation_outcome(error: IopBridgeError) -> dict[str, Any]:
    """One OperationOutcome.issue per problem (with its path), or one for the error itself."""
    issues: list[dict[str, Any]] = [
        {
            "severity": "error",
            "code": p.code or error.issue_code,
            "diagnostics": p.message,
            **({"expression": [p.path]} if p.path else {}),
        }
        for p in error.problems
    ]
    if not issues:
        issues = [{"severity": "error", "code": error.issue_code, "diagnostics": error.message}]
    return {"resourceType": "OperationOutcome", "issue": issues}


def problem_details(error: IopBridgeError) -> dict[str, Any]:
    """RFC 9457 problem JSON listing every problem with its path."""
    return {
        "type": f"urn:iop-bridge:error:{type(error).__name__}",
        "title": error.message,
        "status": error.http_status,
        "problems": [{"path": p.path, "message": p.message} for p in error.problems],
    }


def _wants_fhir(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    content_type = request.headers.get("content-type", "")
    return "fhir+json" in accept or "fhir+json" in content_type


async def _handle(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, IopBridgeError)
    retry_after = getattr(error, "retry_after", None)  # api.limits.TooManyRequests
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return render_error(request, error, headers)


def render_error(
    request: Request, error: IopBridgeError, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error as the caller reads errors (also for middleware, outside any route)."""
    if _wants_fhir(request):
        body, media = operation_outcome(error), "application/fhir+json"
    else:
        body, media = problem_details(error), "application/problem+json"
    return JSONResponse(body, status_code=error.http_status, media_type=media, headers=headers)


def install_error_handler(app: FastAPI) -> None:
    """Render every IopBridgeError raised by a route."""
    app.add_exception_handler(IopBridgeError, _handle)
