"""What every request passes at the edge, before any route: throttling of refused calls, and
Cache-Control on JSON answers (issue 15, findings 6 and 7).

Throttling: every answer of 401 or 403 counts as a failure against the calling client (its
address as the ASGI server saw it) and, when the request carried one, against its credential
(the SHA-256 of the Authorization header, X-API-Key or tracker cookie, so the limiter holds no
secret). A client or credential with ``FAILURES_PER_MINUTE`` failures in the last minute gets 429
with Retry-After (RFC 6585 4, RFC 9110 10.2.3) for every request until the moving window lets one
through again: 300 failed sign-ins in a second become 10 refusals and 290 answers of 429. A
throttled request never reaches a route, so it writes no audit row of its own; instead one
audit row (reason ``throttled``) stands for all the requests refused during one lockout, so a
flood of denials is aggregated rather than copied into the audit trail.

The counts live in this process's memory (``limits``' moving window): each API process
throttles on its own, which bounds one process's work; a shared storage (Redis or memcached,
both ``limits`` backends) would make it one limit across processes. Behind a reverse proxy the
client address is the proxy's unless uvicorn is told to trust its forwarded headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import render_error
from api.limits import TooManyRequests
from integration.db.store import session_scope
from integration.privacy import audit
from mappers.audit_event import ROUTE
from mappers.errors import IopBridgeError, Problem

log = logging.getLogger(__name__)
FAILURES_PER_MINUTE = 10
REFUSED = (401, 403)
_UNSAFE_IN_ROUTE = re.compile(r"[^A-Za-z0-9_./{}\-]")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_JSON = (b"application/json", b"application/problem+json", b"application/fhir+json")


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many refused calls a client or credential may make per minute."""

    failures_per_minute: int = FAILURES_PER_MINUTE


class Throttle:
    """ASGI middleware: count 401/403 answers per client and credential; answer 429 once a
    key is over its limit."""

    def __init__(self, app: ASGIApp, policy: ThrottlePolicy | None = None) -> None:
        self.app = app
        self.limit = RateLimitItemPerMinute((policy or ThrottlePolicy()).failures_per_minute)
        self.window = MovingWindowRateLimiter(MemoryStorage())
        self.locked_until: dict[tuple[str, str], float] = {}  # key -> end of its audited lockout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        keys = _keys(scope)
        blocked = [key for key in keys if not self.window.test(self.limit, *key)]
        if blocked:
            await self._refuse(scope, receive, send, blocked)
            return
        answered: dict[str, int] = {}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = int(message["status"])
            await send(message)

        await self.app(scope, receive, capture)
        if answered.get("status") in REFUSED:
            for key in keys:
                self.window.hit(self.limit, *key)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, blocked: list[tuple[str, str]]
    ) -> None:
        now = time.time()
        resets = [self.window.get_window_stats(self.limit, *key).reset_time for key in blocked]
        retry = max(1, math.ceil(max(resets) - now))
        request = Request(scope)
        if any(self.locked_until.get(key, 0.0) <= now for key in blocked):
            for key in blocked:
                self.locked_until[key] = now + retry
            await asyncio.to_thread(_record_lockout, request)
        which = " and ".join(sorted({kind for kind, _ in blocked}))
        problem = Problem(which, f"too many refused calls: try again in {retry} s", "throttled")
        error = TooManyRequests("too many refused calls", problems=[problem], retry_after=retry)
        response = render_error(request, error, headers={"Retry-After": str(retry)})
        await response(scope, receive, send)


def _keys(scope: Scope) -> list[tuple[str, str]]:
    """The client's address, and a digest of the credential when the request carries one."""
    client = scope.get("client")
    keys = [("client", str(client[0]) if client else "unknown")]
    headers = dict(scope.get("headers") or [])
    credential = headers.get(b"authorization") or headers.get(b"x-api-key")
    if credential is None and b"cookie" in headers:
        credential = headers[b"cookie"]
    if credential:
        keys.append(("credential", hashlib.sha256(credential).hexdigest()))
    return keys


def _record_lockout(request: Request) -> None:
    """One audit row for a lockout: it stands for every request refused until it ends."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        return
    # mappers.audit_event's route check: the path with anything else replaced (a throttled
    # request never reached routing, so there is no route template to name)
    path = _UNSAFE_IN_ROUTE.sub("_", request.url.path)[:200]
    method = request.method if request.method in _METHODS else "GET"
    entity = audit.Entity(ROUTE, f"{method} {path}")
    try:
        with audit.acting_as(audit.SYSTEM), session_scope(engine) as session:
            audit.record(session, audit.event(audit.ACCESS, entity, outcome=audit.DENIED,
                                              reason="throttled"))  # fmt: skip
    except (SQLAlchemyError, IopBridgeError) as exc:
        log.error("throttled access not audited (%s)", type(exc).__name__)


class NoStore:
    """ASGI middleware: ``Cache-Control: no-store`` on every JSON answer (RFC 9111 5.2.2.5):
    they carry client data (PHI), which no shared or browser cache may keep."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                media = headers.get("content-type", "").encode().split(b";")[0].strip()
                if media in _JSON and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, stamp)
