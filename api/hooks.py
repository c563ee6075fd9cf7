"""The rest-hook receiver: HAPI tells iop-bridge about Tasks owned by the IOP.

HAPI delivers an R4 rest-hook Subscription with a payload as ``PUT {endpoint}/Task/{id}`` with
the Task as body (sandbox/hapi/README.md); without a payload a bare POST may come instead
(fhir-domain-reference.md 5.6), so POST is accepted too: with an id the Task is read, without one
a poll runs. The shared secret arrives as ``Authorization: Bearer <token>`` (the Subscription's
channel.header). The answer is an empty 200 at once (HAPI only needs a 2xx), documented as a
response without content; the work runs after the response, and if it fails the poll catches
that Task later.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, BackgroundTasks, Request, Response
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api import schema_examples as docs
from api.limits import FHIR_JSON, JSON, TooManyRequests, limited_body
from integration.fhir.client import FhirClient
from integration.inbound import engine as inbound
from integration.settings import Settings
from integration.tenancy.service import Tenancy
from mappers.errors import InvalidInputError, IopBridgeError, Problem

log = logging.getLogger(__name__)
HOOK_PATH = "/fhir-hooks"
# What the routes answer: an empty 200 (no content, so no media type), or an error rendered by
# api/errors.py. FastAPI's default would document the 200 as JSON, which it is not.
_ACCEPTED = {"description": "Accepted: handled after the response (no content)"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _ACCEPTED,
    401: docs.errors(401)[401] | {"description": "missing or wrong shared secret"},
    413: docs.errors(413)[413] | {"description": "the body is larger than 2 MiB"},
    422: docs.errors(422)[422] | {"description": "no valid Task id, or the body is not that Task"},
}
_TASK = {"type": "object", "required": ["resourceType"],
         "properties": {"resourceType": {"const": "Task"}, "id": {"type": "string"}}}  # fmt: skip
_BODY = {
    "requestBody": {
        "required": False,
        "description": "The Task (HAPI's rest-hook payload); none when the Subscription sends none",
        "content": {FHIR_JSON: {"schema": _TASK}, JSON: {"schema": _TASK}},
    }
}


class HookUnauthorized(IopBridgeError):
    """The notification did not carry the shared secret."""

    http_status = 401
    issue_code = "security"


def make_hooks_router(token: str | None) -> APIRouter:
    """Routes under /fhir-hooks; ``token`` is the expected Bearer secret. Without one, calls are
    not checked and a notification's body is not trusted: the Task is read from the server."""
    if token is None:
        log.warning(
            "FHIR hook: IOP_BRIDGE_HOOK_TOKEN is not set; notifications are unauthenticated, "
            "so each named Task is read back from the FHIR server instead of trusted"
        )
    router = APIRouter(
        prefix=HOOK_PATH,
        tags=["fhir-hooks"],
        default_response_class=Response,
        responses=_RESPONSES,
    )
    gate = PollGate()
    unproven = MovingWindowRateLimiter(MemoryStorage())

    async def receive(request: Request, background: BackgroundTasks, task_id: str | None) -> Any:
        _check_token(request, token)
        if token is None:
            _throttle_unproven(unproven, request)
        if task_id is not None and not _is_fhir_id(task_id):
            # FHIR R4 datatypes.html#id: refuse before anything is read or queued.
            problem = Problem("Task.id", f"{task_id!r} is not a FHIR id ([A-Za-z0-9-.]{{1,64}})")
            raise InvalidInputError("the notification names no valid Task id", problems=[problem])
        body = await limited_body(request)  # the same 2 MiB bound as every other route
        task = _parse_task(body, task_id) if body.strip() else None
        if token is None:
            # Nobody proved they are the FHIR server, so the body is only a hint: the Task is
            # read from the server by id and a forged body can change nothing.
            task = None
        if task is None and task_id is None and not gate.claim():
            return Response(status_code=200)  # a poll ran just now or is running: nothing lost
        background.add_task(_process, request, task if task else task_id, gate)
        return Response(status_code=200)

    @router.put("/Task/{task_id}", summary="A Task changed (rest-hook with payload)",
                openapi_extra=_BODY)  # fmt: skip
    async def put_task(request: Request, background: BackgroundTasks, task_id: str) -> Any:
        return await receive(request, background, task_id)

    @router.post("/Task/{task_id}", summary="A Task changed", openapi_extra=_BODY)
    async def post_task(request: Request, background: BackgroundTasks, task_id: str) -> Any:
        return await receive(request, background, task_id)

    @router.post("", summary="Something changed (rest-hook without payload): poll",
                 openapi_extra=_BODY)  # fmt: skip
    async def post_bare(request: Request, background: BackgroundTasks) -> Any:
        return await receive(request, background, None)

    return router


_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# A bare notification (no Task named) polls the FHIR server: at most one poll at a time and one
# per MIN_POLL_SECONDS, whoever calls; the regular poll (IOP_BRIDGE_INBOUND_POLL_SECONDS) and
# the next notification catch what a skipped one would have found.
MIN_POLL_SECONDS = 5.0
# Without a hook token anyone may call: each call reads a Task from the FHIR server, so one
# client gets this many a minute (HAPI sends one per Task change).
UNPROVEN_PER_MINUTE = RateLimitItemPerMinute(60)


class PollGate:
    """Single flight with a minimum interval for the polls the hook route starts."""

    def __init__(self, min_seconds: float = MIN_POLL_SECONDS) -> None:
        self.min_seconds, self.running, self.started = min_seconds, False, -math.inf

    def claim(self) -> bool:
        """True (and the gate is taken) when a poll may start now."""
        now = time.monotonic()
        if self.running or now - self.started < self.min_seconds:
            return False
        self.running, self.started = True, now
        return True

    def release(self) -> None:
        """The poll is done."""
        self.running = False


def _throttle_unproven(limiter: MovingWindowRateLimiter, request: Request) -> None:
    client = request.client.host if request.client else "unknown"
    if limiter.hit(UNPROVEN_PER_MINUTE, "hook", client):
        return
    reset = limiter.get_window_stats(UNPROVEN_PER_MINUTE, "hook", client).reset_time
    retry = max(1, math.ceil(reset - time.time()))
    problem = Problem("client", f"too many notifications: try again in {retry} s", "throttled")
    raise TooManyRequests("too many unauthenticated notifications", problems=[problem],
                          retry_after=retry)  # fmt: skip


def _is_fhir_id(task_id: str) -> bool:
    """FHIR R4 datatypes.html#id, and not only dots: ``Task/.`` and ``Task/..`` are
    dot-segments (RFC 3986 5.2.4), a read of the server's base instead of a Task, and no
    server names a Task with dots alone."""
    return bool(_FHIR_ID.fullmatch(task_id)) and task_id.strip(".") != ""


def _check_token(request: Request, token: str | None) -> None:
    if token is None:
        return
    given = request.headers.get("authorization", "")
    # constant-time comparison: the secret is not leaked by response timing
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise HookUnauthorized("missing or wrong Authorization for the FHIR hook")


def _parse_task(body: bytes, task_id: str | None) -> dict[str, Any]:
    """The Task in the body; a clear error when it is not one, or not the one in the path."""
    try:
        task = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInputError(
            "body is not JSON", problems=[Problem("body", "not JSON")]
        ) from None
    problems = []
    if not isinstance(task, dict) or task.get("resourceType") != "Task":
        problems.append(Problem("resourceType", "expected a Task"))
    elif task_id is not None and task.get("id") != task_id:
        problems.append(Problem("Task.id", "does not match the id in the path"))
    if problems:
        raise InvalidInputError("the notification is not this Task", problems=problems)
    assert isinstance(task, dict)
    return task


async def _process(
    request: Request,
    task: dict[str, Any] | str | None,
    gate: PollGate,
) -> None:
    """Accept one notification (or poll, when it named no Task); failures are left to the poll."""
    state = request.app.state
    fhir: FhirClient = state.fhir
    engine: Engine = state.engine
    settings: Settings = state.settings
    try:
        tenancy: Tenancy = state.tenancy
        organization = await tenancy.iop_reference(wait_to_retry=False)  # kept once found
        if organization is None:
            log.warning("FHIR hook: the IOP Organization is not on the server yet")
            return
        if task is None:
            await inbound.poll_inbound_tasks(fhir, engine, settings, organization)
            return
        handler = inbound.default_handler(fhir, settings, organization)
        await inbound.accept_notification(fhir, engine, task, handler=handler)
    except (IopBridgeError, SQLAlchemyError) as exc:
        # ids and error classes only: messages may quote the resource (PHI)
        task_id = task.get("id") if isinstance(task, dict) else task
        log.warning("FHIR hook: Task/%s not handled (%s)", task_id, type(exc).__name__)
    finally:
        if task is None:
            gate.release()
