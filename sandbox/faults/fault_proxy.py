"""A fault-injecting HTTP/1.1 reverse proxy in front of the local FHIR server (loopback only).

For a seeded fraction of requests (default 20%) it answers in the FHIR server's place with one
of three faults, taken in turn so that every kind shows up once a few faults have happened:

- ``429``: Too Many Requests with ``Retry-After`` (RFC 9110 section 10.2.3), nothing forwarded;
- ``503``: Service Unavailable, nothing forwarded;
- ``timeout``: no answer until after the client's timeout, then the connection is closed.
  Every other timeout is first forwarded, so the server did the work and only the answer was
  lost (the case that would duplicate resources if writes were not conditional); the others are
  never forwarded (the request itself was lost).

Every other request goes to the upstream server with its method, target, headers and body
unchanged, and the answer comes back the same way. Only hop-by-hop framing headers (RFC 9110
section 7.6.1) are not copied: the proxy reads whole bodies and sends them with a Content-Length.
When the upstream server is down the proxy answers 502, as a gateway does.

It binds to and connects to 127.0.0.1 only, and it stops by itself after ``lifetime`` seconds.
It logs counts only, never bodies (they hold synthetic clinical data, but the habit stays).

Usage: .venv/bin/python sandbox/faults/fault_proxy.py --upstream http://127.0.0.1:19191 \
           --port 19192 [--rate 0.2 --seed 7 --hold 8 --lifetime 1800]
The run orchestrator (run_fault_test.py) runs it inside its own event loop instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx

LOOPBACK = "127.0.0.1"
FAULT_KINDS = ("429", "503", "timeout")
MAX_HOLD_SECONDS = 60.0
MAX_LIFETIME_SECONDS = 4 * 3600.0
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
# RFC 9110 section 7.6.1 (Connection and the fields it names) plus the framing this proxy redoes.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which requests fail and how: the fraction, the RNG seed, the hold and the Retry-After."""

    rate: float = 0.2
    seed: int = 7
    hold_seconds: float = 8.0  # must be longer than the client's timeout
    retry_after_seconds: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {self.rate}")
        if not 0.0 < self.hold_seconds <= MAX_HOLD_SECONDS:
            raise ValueError(f"hold_seconds must be in (0, {MAX_HOLD_SECONDS:.0f}]")


@dataclass(slots=True)
class ProxyCounters:
    """What the proxy did so far; ``faults`` by kind."""

    requests: int = 0
    forwarded: int = 0
    upstream_errors: int = 0  # answered 502: the upstream server was down or dropped the request
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_KINDS, 0))
    timeouts_forwarded: int = 0  # of faults["timeout"]: the server got the request


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed client request: line parts, headers in order, whole body."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection open unless the client says ``Connection: close``."""
        return "close" not in (self.header("connection") or "").lower()


def loopback_origin(url: str) -> str:
    """``http://127.0.0.1:<port>`` of ``url``; refuses anything that is not plain loopback."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != LOOPBACK or parts.port is None:
        raise ValueError(f"upstream must be http://{LOOPBACK}:<port>, got {url!r}")
    return f"http://{LOOPBACK}:{parts.port}"


class FaultProxy:
    """The proxy server; use as ``async with FaultProxy(...) as proxy`` and read ``counters``."""

    def __init__(
        self, upstream: str, plan: FaultPlan, *, port: int = 0, lifetime: float = 1800.0
    ) -> None:
        if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
            raise ValueError(f"lifetime must be in (0, {MAX_LIFETIME_SECONDS:.0f}] seconds")
        self.upstream = loopback_origin(upstream)
        self.plan = plan
        self.counters = ProxyCounters()
        self._rng = random.Random(plan.seed)
        self._wanted_port = port
        self._lifetime = lifetime
        self._server: asyncio.Server | None = None
        self._http: httpx.AsyncClient | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @property
    def port(self) -> int:
        """The port the proxy listens on (chosen by the OS when 0 was asked for)."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on 127.0.0.1 and schedule the end of the proxy's lifetime."""
        # trust_env=False: never route through an HTTP(S)_PROXY from the environment.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(120.0), trust_env=False)
        self._server = await asyncio.start_server(
            self._serve_connection, LOOPBACK, self._wanted_port, limit=MAX_HEADER_BYTES
        )
        self._expiry = asyncio.get_running_loop().call_later(self._lifetime, self.stop_soon)

    def stop_soon(self) -> None:
        """Close from a callback (lifetime over, a signal): schedules :meth:`aclose`."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.aclose())

    async def aclose(self) -> None:
        """Stop listening, drop open connections (held ones too) and close the upstream client."""
        if self.closed.is_set():
            return
        self.closed.set()
        if self._expiry is not None:
            self._expiry.cancel()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while not self.closed.is_set():
                request = await read_request(reader)
                if request is None or not await self._answer(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent something this proxy does not parse
        except asyncio.CancelledError:
            # aclose() ends open connections, held ones too. Not re-raised: asyncio's stream
            # server logs a cancelled connection task as an error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request (fault or forward); False when the connection must close."""
        self.counters.requests += 1
        kind = self._pick_fault()
        if kind == "timeout":
            await self._withhold(request)
            return False
        if kind is not None:
            await write_response(writer, *self._fault_response(kind), keep_alive=False)
            return False
        status, headers, body = await self._forward(request)
        await write_response(writer, status, headers, body, keep_alive=request.keep_alive)
        return request.keep_alive

    def _pick_fault(self) -> str | None:
        """One seeded draw per request; faults take the kinds in turn."""
        if self._rng.random() >= self.plan.rate:
            return None
        kind = FAULT_KINDS[sum(self.counters.faults.values()) % len(FAULT_KINDS)]
        self.counters.faults[kind] += 1
        return kind

    async def _withhold(self, request: Request) -> None:
        """The timeout fault: every other one reaches the server, none is answered in time."""
        if self.counters.faults["timeout"] % 2 == 1:
            self.counters.timeouts_forwarded += 1
            await self._forward(request)
        await asyncio.sleep(self.plan.hold_seconds)

    def _fault_response(self, kind: str) -> tuple[int, list[tuple[str, str]], bytes]:
        code = "throttled" if kind == "429" else "transient"
        headers = [("Content-Type", "application/fhir+json")]
        if kind == "429":
            headers.append(("Retry-After", str(self.plan.retry_after_seconds)))
        return int(kind), headers, outcome(code, f"fault proxy: injected {kind}")

    async def _forward(self, request: Request) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request upstream unchanged; 502 when the upstream server cannot answer."""
        assert self._http is not None
        headers = [(k, v) for k, v in request.headers if k.lower() not in HOP_BY_HOP]
        # httpx.Request, not client.build_request: the client's default headers (User-Agent,
        # Accept-Encoding) would be merged in, and the server must see the client's own.
        upstream = httpx.Request(
            request.method, self.upstream + request.target, headers=headers, content=request.body
        )
        try:
            response = await self._http.send(upstream, stream=True)
            try:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        except httpx.HTTPError:
            self.counters.upstream_errors += 1
            return 502, [("Content-Type", "application/fhir+json")], outcome("transient", "502")
        self.counters.forwarded += 1
        kept = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in response.headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        return response.status_code, kept, body


def outcome(code: str, diagnostics: str) -> bytes:
    """A one-issue OperationOutcome, the body a FHIR client expects with an error status."""
    issue = {"severity": "error", "code": code, "diagnostics": diagnostics}
    return json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request (head, then a Content-Length or chunked body); None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as eof:
        if eof.partial.strip():
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = [_split_header(line) for line in lines[1:] if line]
    request = Request(method, target, headers, b"")
    if "chunked" in (request.header("transfer-encoding") or "").lower():
        body = await _read_chunked(reader)
    else:
        length = int(request.header("content-length") or 0)
        if length > MAX_BODY_BYTES:
            raise ConnectionError("request body too large")
        body = await reader.readexactly(length)
    return Request(method, target, headers, body)


def _split_header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """De-chunk a body (RFC 9112 section 7.1); trailers are read and dropped."""
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        if sum(map(len, parts)) + size > MAX_BODY_BYTES:
            raise ConnectionError("request body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def write_response(
    writer: asyncio.StreamWriter,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    keep_alive: bool,
) -> None:
    """Write status line, headers, Content-Length and body."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:  # a status code the standard library does not name
        reason = ""
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    connection = "keep-alive" if keep_alive else "close"
    lines += [f"Content-Length: {len(body)}", f"Connection: {connection}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _main(args: argparse.Namespace) -> None:
    plan = FaultPlan(args.rate, args.seed, args.hold, args.retry_after)
    async with FaultProxy(args.upstream, plan, port=args.port, lifetime=args.lifetime) as proxy:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, proxy.stop_soon)
        print(f"fault proxy on http://{LOOPBACK}:{proxy.port} -> {proxy.upstream}", flush=True)
        await proxy.closed.wait()
    print(json.dumps(asdict(proxy.counters)), flush=True)


def main() -> None:
    """Run the proxy from the command line until its lifetime ends or it is signalled."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="http://127.0.0.1:<port> of HAPI")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--rate", type=float, default=0.2, help="fraction of requests faulted")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds a timeout is held")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After of the 429s")
    parser.add_argument("--lifetime", type=float, default=1800.0, help="stop after this long")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
