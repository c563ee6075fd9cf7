"""Benchmark: peak memory of an iop-bridge worker process pushing N = 100, 1,000, 10,000 packages.

The FHIR server here is a FAKE, used ONLY for this memory-scaling measurement: a stdlib asyncio
HTTP/1.1 server on 127.0.0.1 in its own subprocess that answers every transaction with a valid
transaction-response (201 Created and a Type/id/_history/1 location per entry), because 10,000
real packages (250,000 resources) to HAPI take hours on these machines. Nothing is validated or
stored by it; throughput against it means nothing. For each N, in fresh subprocesses:
  enqueue  the N step-down packages (sandbox/step_down_package.py) into a fresh SQLite outbox,
           100 per database transaction, each payload built when it is written (never all at once)
  deliver  one integration.outbox.worker.run_worker with K senders (one FhirClient, batch 10) until
           all N are delivered; reports VmHWM (peak RSS, /proc/self/status) and its value at
           the start
  traced   (N <= --trace-up-to) enqueue and deliver again with tracemalloc on, for the peak of
           Python allocations made during delivery; tracing makes delivery several times
           slower and adds its own memory, so the RSS figures come from the untraced runs
The database lives in /dev/shm when it exists: tmpfs spares the fsync of every commit, which
changes the run time, not what the worker process holds in memory.
Target (issue 4): peak RSS of the worker flat, N=10,000 within 1.2 x N=100.

Usage: .venv/bin/python sandbox/bench/bench_memory.py [--sizes 100 1000 10000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
from pydantic import HttpUrl
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import step_down_package as pkg

from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.outbox.queue import MessageKind, count_by_status, enqueue
from integration.outbox.worker import run_worker
from integration.runtime import freeze_startup_heap
from integration.settings import Settings

# The fake server checks no references, so these Organizations need not exist.
ORGS = {"residential_organization": "Organization/r", "iop_organization": "Organization/i"}


def vm_hwm_kib() -> int:
    """Peak resident set size of this process so far (VmHWM, KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


async def fake_fhir(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """FAKE FHIR server connection: answer each POSTed transaction with 201 per entry."""
    served = 0
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break  # the client closed the connection
        fields = [
            line.split(":", 1) for line in head.decode("latin-1").split("\r\n") if ":" in line
        ]
        length = next((int(v) for k, v in fields if k.lower() == "content-length"), 0)
        request = orjson.loads(await reader.readexactly(length)) if length else {}
        entries = []
        for entry in request.get("entry") or []:
            served += 1
            kind = entry["resource"]["resourceType"]
            location = f"{kind}/{os.getpid()}-{id(writer)}-{served}/_history/1"
            entries.append({"response": {"status": "201 Created", "location": location}})
        body = orjson.dumps(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        )
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    writer.close()


async def serve(port: int) -> None:
    """Run the FAKE FHIR server until killed."""
    server = await asyncio.start_server(fake_fhir, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def fill(db: str, count: int) -> dict[str, Any]:
    """Enqueue ``count`` packages, 100 per transaction; payloads are built one at a time."""
    engine = create_db_engine(db)
    start = time.perf_counter()
    for first in range(0, count, 100):
        with session_scope(engine) as session:
            for n in range(first, min(first + 100, count)):
                payload = pkg.to_transaction(pkg.make_package(n, **ORGS))
                kind, key = MessageKind.TRANSACTION, f"SD-{n}"  # one referral (aggregate) each
                enqueue(
                    session,
                    aggregate_type="referral",
                    aggregate_key=key,
                    kind=kind,
                    payload=payload,
                )
    engine.dispose()
    return {"seconds": time.perf_counter() - start, "vmhwm_kib": vm_hwm_kib()}


async def deliver(
    db: str, count: int, base_url: str, concurrency: int, trace: bool
) -> dict[str, Any]:
    """One worker with K senders until ``count`` messages are delivered; peak RSS, and
    tracemalloc's peak."""
    engine = create_db_engine(db, migrate_schema=False)
    settings = Settings(fhir_base_url=HttpUrl(base_url), database_url=db)
    fhir = FhirClient.from_settings(settings)
    stop = asyncio.Event()
    freeze_startup_heap()  # as a worker process does once set up (integration.runtime)
    before = vm_hwm_kib()
    if trace:
        tracemalloc.start()  # several times slower: only in the runs that report its peak
    start = time.perf_counter()
    delivery = run_worker(
        engine, fhir, worker_id="mem", stop_event=stop, concurrency=concurrency, poll_interval=0.05
    )

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.25)
            counts = await asyncio.to_thread(count_messages, engine)
            if counts.get("delivered", 0) + counts.get("dead", 0) >= count:
                stop.set()
                return

    _, stats = await asyncio.gather(watch(), delivery)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()
    await fhir.aclose()
    assert stats.delivered == count, stats
    return {"seconds": seconds, "vmhwm_kib": vm_hwm_kib(), "start_kib": before, "traced": peak}


def count_messages(engine: Engine) -> dict[str, int]:
    """Outbox messages by status (run in a thread: it must not block the workers' loop)."""
    with session_scope(engine) as session:
        return count_by_status(session)


def child(*args: str) -> dict[str, Any]:
    """Run this script in a fresh subprocess in one of its modes; its last line is JSON."""
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the fake server."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(args: argparse.Namespace) -> None:
    """Start the FAKE server, then for each N enqueue and deliver in fresh processes."""
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=shm if shm.is_dir() else None))
    rows = []
    try:
        for _ in range(100):  # wait for the fake server to listen
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        for size in args.sizes:
            runs = []
            for trace in (False, True) if size <= args.trace_up_to else (False,):
                db = f"sqlite:///{root / f'outbox-{size}-{trace}.db'}"
                filled = child("--enqueue", db, str(size))
                url = f"http://127.0.0.1:{port}/fhir"
                runs.append(
                    child("--deliver", db, str(size), url, str(args.concurrency), str(int(trace)))
                )
                (root / f"outbox-{size}-{trace}.db").unlink()
            rows.append((size, filled, runs[0], runs[1]["traced"] if len(runs) > 1 else None))
            print(f"N={size}: done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(root, ignore_errors=True)
    report(args, rows)


def report(
    args: argparse.Namespace, rows: list[tuple[int, dict[str, Any], dict[str, Any], int | None]]
) -> None:
    """The table and the verdict: the largest N's worker peak RSS against the smallest's."""
    print(f"worker process: one worker, {args.concurrency} senders (batch 10); FAKE FHIR server")
    print(
        f"{'N':>7}{'enqueue s':>10}{'peak MiB':>9} |{'deliver s':>10}{'RSS at start':>13}"
        f"{'peak RSS MiB':>13}{'x first':>8} |{'traced peak MiB':>16}{'x first':>8}"
    )
    base_rss, base_traced = rows[0][2]["vmhwm_kib"], rows[0][3]
    for size, filled, sent, traced in rows:
        traced_cells = (
            f"{traced / 2**20:>16.2f}{traced / base_traced:>8.2f}"
            if traced and base_traced
            else f"{'-':>16}{'-':>8}"
        )
        print(
            f"{size:>7}{filled['seconds']:>10.1f}{filled['vmhwm_kib'] / 1024:>9.1f} |"
            f"{sent['seconds']:>10.1f}{sent['start_kib'] / 1024:>13.1f}"
            f"{sent['vmhwm_kib'] / 1024:>13.1f}{sent['vmhwm_kib'] / base_rss:>8.2f} |"
            + traced_cells
        )
    ratio = rows[-1][2]["vmhwm_kib"] / base_rss
    print(
        f"worker peak RSS N={rows[-1][0]} / N={rows[0][0]} = {ratio:.2f} (target <= 1.2): "
        f"{'PASS' if ratio <= 1.2 else 'MISS'}"
    )


def main() -> int:
    """Orchestrate, or run one mode in a child process; a measurement, so it exits 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--trace-up-to", type=int, default=1000, help="tracemalloc runs up to N")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--enqueue", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--deliver", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
    elif args.enqueue:
        print(json.dumps(fill(args.enqueue[0], int(args.enqueue[1]))))
    elif args.deliver:
        db, count, url, concurrency, trace = args.deliver
        result = deliver(db, int(count), url, int(concurrency), trace == "1")
        print(json.dumps(asyncio.run(result)))
    else:
        measure(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
