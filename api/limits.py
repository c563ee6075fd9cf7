"""Requests at the API edge: body size limit, media type, JSON that parses, and parameter
errors rendered by the one error handler.

The size limit is a module constant, not a setting (``integration/settings.py`` is the one
Settings object and stays as it is): 2 MiB holds a step-down package hundreds of times over
(the 25-resource synthetic package is about 40 KB) and bounds what one request can make the
process hold in memory. The body is read chunk by chunk and refused as soon as it passes the
limit, so a body without Content-Length (chunked) cannot get around it either.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from mappers.errors import InvalidInputError, IopBridgeError, Problem

MAX_BODY_BYTES = 2 * 1024 * 1024
JSON = "application/json"
FHIR_JSON = "application/fhir+json"


class PayloadTooLarge(IopBridgeError):
    """The request body is larger than the API accepts."""

    http_status = 413
    issue_code = "too-costly"


class TooManyRequests(IopBridgeError):
    """Too many calls (refused ones, or unauthenticated notifications): 429 with Retry-After
    (RFC 6585 4), rendered by the one handler."""

    http_status = 429
    issue_code = "throttled"

    def __init__(self, message: str, *, problems: list[Problem], retry_after: int) -> None:
        super().__init__(message, problems=problems)
        self.retry_after = retry_after


class UnsupportedMediaType(IopBridgeError):
    """The request body is in a media type this route does not read."""

    http_status = 415
    issue_code = "not-supported"


class MalformedBody(IopBridgeError):
    """The request body is not well-formed JSON."""

    http_status = 400
    issue_code = "structure"


def media_type(request: Request, accepted: tuple[str, ...]) -> str:
    """The body's media type (parameters such as charset ignored), one of ``accepted``."""
    given = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if given not in accepted:
        allowed = " or ".join(accepted)
        message = f"{given or 'none'} is not accepted: send {allowed}"
        problem = Problem("Content-Type", message, UnsupportedMediaType.issue_code)
        raise UnsupportedMediaType(f"unsupported media type {given or 'none'}", problems=[problem])
    return given


async def limited_body(request: Request) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes MAX_BODY_BYTES."""
    return await read_body(request, MAX_BODY_BYTES)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes ``limit`` bytes: a declared
    Content-Length over it is refused before reading, a chunked body after at most ``limit``
    bytes plus one chunk."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; MalformedBody naming where it stops parsing."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        message = f"not well-formed JSON ({where}): {error.msg}"
        problem = Problem("body", message, MalformedBody.issue_code)
        raise MalformedBody("the request body is not JSON", problems=[problem]) from None


def _too_large(limit: int) -> PayloadTooLarge:
    message = f"larger than the limit of {limit} bytes"
    problem = Problem("body", message, PayloadTooLarge.issue_code)
    return PayloadTooLarge("the request body is too large", problems=[problem])


class ProblemRoute(APIRoute):
    """A route whose query and path parameter errors are rendered like every other error
    (problem JSON or OperationOutcome, by the one handler) instead of FastAPI's own shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, with RequestValidationError turned into InvalidInputError."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                problems = [
                    Problem(".".join(str(part) for part in item["loc"]), str(item["msg"]))
                    for item in error.errors()
                ]
                raise InvalidInputError.from_problems("the request", problems) from None

        return route
