"""Benchmark: step-down packages pushed to HAPI through iop-bridge's outbox vs. straight httpx.

Both sides send the same transaction Bundles (sandbox/step_down_package.py, 25 conditional
creates each) at the same concurrency K, in the same run, with fresh business identifiers so
every conditional create really creates:
  direct      K httpx.AsyncClient senders taking Bundles from one list (POST [base], parse body)
  iop-bridge  one long-lived integration.outbox.worker.run_worker with concurrency K for the whole
              run (K senders sharing its claims, its settler and the one FhirClient, as
              `iop-bridge worker` or the API's embedded worker runs), fed by a thread that
              enqueues each Bundle in a database transaction of its own, as a workflow does;
              each commit wakes the worker (integration.outbox.doorbell)
A round gives each side C turns (--chunks), taken ABBA so that a slow spell of HAPI's hits both.
Every turn starts on an idle HAPI with no writes left to match against its subscriptions. After
the side's last answer (iop-bridge: last settle) it waits, untimed, for HAPI to go idle and for
HAPI's next subscription-matching pass (every 5 s, server_cpu.py) to finish; the CPU HAPI used
after the last answer is added to the turn's time (divided by the cores HAPI may use). So each
side pays for all the server work it caused and none of the other's. Throughput is packages /
that time; iop-bridge's includes the enqueue. The "sends only" ratio (to each side's last
answer) is printed beside it. The worker's steps (claim, send, settle, and "wait": a sender
waiting for its next message, between turns too) are timed by thin wrappers, and HAPI's CPU
(from /proc; of which its matching threads) and this process's CPU are counted per side.
Target (issue 4): iop-bridge >= 0.9 x direct. Correctness is checked: every entry of every
package answered 201 Created. The first rounds warm HAPI up (JIT, caches) and are not reported
(--warmup). --control runs the same rounds with a second direct side in iop-bridge's place: the
spread of its ratios around 1.00 is what this machine's noise alone does to a round.

Usage: .venv/bin/python sandbox/bench/bench_push.py --base-url http://127.0.0.1:8090/fhir
       [--packages 120] [--chunks 4] [--concurrency 4] [--rounds 10] [--warmup 2]
       [--batch-size 10] [--control] [--hapi-pid-file var/hapi/hapi.pid] [--ratios-out F]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import HttpUrl
from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import step_down_package as pkg
from ratio_table import print_ratio_table  # beside this script
from server_cpu import ServerCpu, default_pid_file

from integration.db.store import create_db_engine, session_scope
from integration.db.sync_table import SyncRecord
from integration.fhir.client import FHIR_JSON, FhirClient, create_http_client
from integration.fhir.retry_policy import RetryPolicy
from integration.outbox import worker
from integration.outbox.queue import ClaimedMessage, MessageKind, enqueue
from integration.runtime import freeze_startup_heap
from integration.settings import Settings

TIMES: dict[str, list[float]] = defaultdict(list)  # phase -> seconds per call (iop-bridge)
SETTLED: list[int] = []  # messages per settle transaction


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a worker step so each call's wall time is recorded under ``name``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name].append(time.perf_counter() - start)

    return wrapper


def timed_settle(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the worker's settle (several messages per transaction): time it, count them."""
    timed_fn = timed("settle", fn)

    def wrapper(engine: Any, attempts: Any, *args: Any) -> Any:
        try:
            return timed_fn(engine, attempts, *args)
        finally:
            SETTLED.append(len(attempts))

    return wrapper


def timed_wait(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the worker's wait for its next message (an idle HTTP slot unless it is instant)."""

    async def wrapper(*args: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args)
        finally:
            TIMES["wait"].append(time.perf_counter() - start)

    return wrapper


async def timed_deliver(fhir: FhirClient, message: ClaimedMessage) -> Any:
    """worker.deliver_message, timed: orjson, the HTTP round trip, reading the response."""
    start = time.perf_counter()
    try:
        return await worker.deliver_message(fhir, message)
    finally:
        TIMES["send"].append(time.perf_counter() - start)


async def organizations(fhir: FhirClient, nonce: str) -> tuple[str, str]:
    """Create the residential and the IOP Organization (HAPI checks references on write)."""
    refs = []
    for role in ("residential", "iop"):
        mark = {"system": "http://iop-bridge.example/fhir/sid/organization", "value": nonce + role}
        org = {"resourceType": "Organization", "identifier": [mark], "name": f"Bench {role}"}
        written = await fhir.create(org, if_none_exist=f"identifier={mark['system']}|{nonce}{role}")
        refs.append(f"Organization/{written.resource['id']}")
    return refs[0], refs[1]


def bundles(first: int, count: int, orgs: tuple[str, str]) -> list[dict[str, Any]]:
    """``count`` transaction Bundles with business identifiers numbered from ``first``."""
    made = (
        pkg.make_package(n, residential_organization=orgs[0], iop_organization=orgs[1])
        for n in range(first, first + count)
    )
    return [pkg.to_transaction(p) for p in made]


async def run_direct(base_url: str, work: list[dict[str, Any]], concurrency: int) -> float:
    """K plain httpx senders; returns seconds. Checks every entry was created."""
    pending, created = list(work), 0
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=base_url + "/", timeout=30, limits=limits) as http:

        async def sender() -> None:
            nonlocal created
            while pending:
                began = time.perf_counter()
                body = orjson.dumps(pending.pop())
                response = await http.post(
                    "", content=body, headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
                )
                response.raise_for_status()
                answer = orjson.loads(response.content)
                created += sum(e["response"]["status"].startswith("201") for e in answer["entry"])
                TIMES["direct POST"].append(time.perf_counter() - began)

        posted = len(TIMES["direct POST"])
        start = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        in_flight = sum(TIMES["direct POST"][posted:])
        TIMES["direct busy"].append(in_flight / (concurrency * elapsed))
    assert created == 25 * len(work), f"direct: {created} of {25 * len(work)} entries created"
    return elapsed


class IopSide:
    """iop-bridge as it runs in production: one outbox database and one long-lived worker with
    K senders (``iop-bridge worker`` with IOP_BRIDGE_WORKER_CONCURRENCY=K, or the API's embedded
    worker), fed by a thread that enqueues one package per database transaction, as the API's
    request handlers do. Each commit wakes the worker (integration.outbox.doorbell), so the
    worker starts sending while later packages are still being enqueued.
    """

    def __init__(self, settings: Settings, database_url: str, args: argparse.Namespace) -> None:
        self.settings, self.args = settings, args
        self.engine = create_db_engine(database_url)
        self.statuses = Counter[int]()
        self.sent = 0
        self._stop = asyncio.Event()
        self._worker: asyncio.Task[worker.WorkerStats] | None = None
        self._fhir: FhirClient | None = None

    async def start(self) -> None:
        http = create_http_client(self.settings)

        async def note(response: httpx.Response) -> None:
            self.statuses[response.status_code] += 1

        http.event_hooks["response"] = [note]  # to see the FhirClient's own retries, if any
        self._fhir = FhirClient(http, retry=RetryPolicy.from_settings(self.settings))
        self._worker = asyncio.create_task(
            worker.run_worker(
                self.engine, self._fhir, worker_id="bench", stop_event=self._stop,
                concurrency=self.args.concurrency, batch_size=self.args.batch_size,
                poll_interval=self.settings.worker_poll_seconds, deliver=timed_deliver,
            )
        )  # fmt: skip

    async def turn(self, work: list[dict[str, Any]]) -> float:
        """Enqueue ``work`` from a thread while the worker delivers; returns the seconds until
        the last of them is settled."""
        assert self._worker is not None, "start() first"
        settled_before, sent_before = sum(SETTLED), len(TIMES["send"])
        start = time.perf_counter()
        producing = asyncio.create_task(asyncio.to_thread(enqueue_all, self.engine, work))
        # Counts the (timed) settles, not database rows: a query here would contend with the
        # worker for SQLite's lock.
        while sum(SETTLED) - settled_before < len(work):
            for job in (self._worker, producing):
                if job.done() and job.exception() is not None:
                    job.result()  # raises what stopped it (worker or enqueue)
            if self._worker.done():
                raise AssertionError("the worker stopped before delivering the turn")
            await asyncio.sleep(0.01)
            assert time.perf_counter() - start < 900, "not all messages settled in 15 minutes"
        elapsed = time.perf_counter() - start
        await producing
        busy = sum(TIMES["send"][sent_before:]) / (self.args.concurrency * elapsed)
        TIMES["iop busy"].append(busy)
        self.sent += len(work)
        return elapsed

    async def stop(self) -> None:
        """Stop the worker and check that every entry of every package was created once."""
        assert self._worker is not None and self._fhir is not None
        self._stop.set()
        stats = await self._worker
        await self._fhir.aclose()
        assert stats.delivered == self.sent, stats
        with session_scope(self.engine) as session:
            query = select(SyncRecord.last_outcome, func.count()).group_by(SyncRecord.last_outcome)
            outcomes = {outcome: count for outcome, count in session.execute(query).all()}
        self.engine.dispose()
        if outcomes != {"created": 25 * self.sent} or self.statuses != {200: self.sent}:
            # e.g. a transport error after HAPI committed: the retry then matches (idempotent)
            print(f"  iop-bridge: sync outcomes {outcomes}, HTTP statuses {dict(self.statuses)}")
        assert sum(outcomes.values()) == 25 * self.sent, outcomes


def enqueue_all(engine: Engine, work: list[dict[str, Any]]) -> None:
    """Enqueue each Bundle in a transaction of its own, as a workflow does."""
    for bundle in work:
        began = time.perf_counter()
        with session_scope(engine) as session:
            key = bundle["entry"][-1]["request"]["ifNoneExist"]  # the Task's identifier
            enqueue(
                session,
                aggregate_type="referral",
                aggregate_key=key,
                kind=MessageKind.TRANSACTION,
                payload=bundle,
            )
        TIMES["enqueue"].append(time.perf_counter() - began)


@dataclass
class Turn:
    """What one side's turns took, added up over a round."""

    sends: float = 0.0  # s from the start to the side's last answer (iop-bridge: last settle)
    billed: float = 0.0  # the verdict's time: sends + HAPI's CPU after them, as time
    hapi_cpu: float = 0.0  # HAPI's CPU s, the turn and its matching pass
    matching_cpu: float = 0.0  # of which its subscription-matching threads
    own_cpu: float = 0.0  # this process's CPU s (all threads) during the sends

    def __iadd__(self, other: Turn) -> Turn:
        for name in ("sends", "billed", "hapi_cpu", "matching_cpu", "own_cpu"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


async def take_turn(
    server: ServerCpu,
    settings: Settings,
    work: list[dict[str, Any]],
    args: argparse.Namespace,
    iop: IopSide | None,
) -> Turn:
    """One side's turn on an idle, settled HAPI: direct (``iop`` None), or through iop-bridge.

    After the side's last answer HAPI still has work of this turn's to do: requests finishing,
    and matching every created resource against its subscriptions, which HAPI 8 does in a pass
    every 5 seconds (server_cpu.py). Left alone, that pass lands in whichever turn is running
    when it fires, often the other side's. So the turn waits (untimed) for HAPI to go idle and
    for its next matching pass to finish, and the CPU HAPI used after the last answer is added
    to the turn's time (divided by the cores HAPI may use): each side pays for all the server
    work it caused, and for none of the other side's.
    """
    await server.wait_idle()  # not timed: the previous turn's stragglers, if any
    hapi_before, matching_before = server.seconds(), server.matching_seconds()
    own_before = time.process_time()
    if iop is None:
        took = await run_direct(settings.fhir_base, work, args.concurrency)
    else:
        took = await iop.turn(work)
    own_cpu = time.process_time() - own_before
    hapi_answered = server.seconds()
    await server.wait_idle()
    await server.wait_settled()
    hapi_after = server.seconds()
    billed = took + (hapi_after - hapi_answered) / server.cores
    matching_cpu = server.matching_seconds() - matching_before
    return Turn(took, billed, hapi_after - hapi_before, matching_cpu, own_cpu)


async def measure(args: argparse.Namespace) -> None:
    """Warm up, then alternate the two sides round by round; print rates and ratios."""
    server = ServerCpu.from_pid_file(args.hapi_pid_file)
    tmp = Path(tempfile.mkdtemp(prefix="bench-push-"))
    settings = Settings(fhir_base_url=HttpUrl(args.base_url), database_url=f"sqlite:///{tmp}/x.db")
    setup = FhirClient.from_settings(settings)
    orgs = await organizations(setup, secrets.token_hex(4).upper())
    # One package alone first: HAPI 8.8 on a fresh database can fail concurrent first writes
    # (500, a unique-key race on its resource-type table), and the direct side does not retry.
    await setup.transaction(bundles(10**8 + secrets.randbelow(10**7), 1, orgs)[0])
    await setup.aclose()
    # As a worker process does once it is set up (integration.runtime.run_background). Both
    # sides run in this process, so both gain from it.
    freeze_startup_heap()
    await server.wait_idle()
    await server.wait_settled()  # the set-up's writes matched: the first turn starts clean
    # called inside run_worker, looked up at each call
    setattr(worker, "claim_batch", timed("claim", worker.claim_batch))  # noqa: B010
    setattr(worker, "_settle_all", timed_settle(worker._settle_all))  # noqa: B010
    setattr(worker._Feed, "take", timed_wait(worker._Feed.take))  # noqa: B010
    first = 10**9 + secrets.randbelow(10**6) * 10**4  # fresh identifiers for this run
    other = "direct again" if args.control else "iop-bridge"
    rates: dict[str, list[float]] = {"direct": [], other: []}
    iop = None if args.control else IopSide(settings, f"sqlite:///{tmp}/outbox.db", args)
    if iop is not None:
        await iop.start()
    busy: dict[str, list[float]] = {"direct": [], "iop-bridge": []}
    # per side, ms per package and round: HAPI's CPU, of which matching, and this process's
    cpu: dict[str, dict[str, list[float]]] = {
        side: {"hapi": [], "matching": [], "own": []} for side in ("direct", other)
    }
    sends_only: list[float] = []  # per round: other / direct, each side's time to its last answer
    for rnd in range(1 - args.warmup, args.rounds + 1):  # rounds below 1 warm HAPI up
        n = args.packages
        work = {"direct": bundles(first, n, orgs), other: bundles(first + n, n, orgs)}
        first += 2 * n
        TIMES.clear()
        SETTLED.clear()
        spent = {side: Turn() for side in work}
        size = -(-n // args.chunks)
        for chunk, at in enumerate(range(0, n, size)):
            # sides take turns chunk by chunk, ABBA: a slow spell of HAPI's hits both sides
            first_side = "direct" if (rnd + chunk) % 2 else other
            for side in (first_side, other if first_side == "direct" else "direct"):
                spent[side] += await take_turn(
                    server, settings, work[side][at : at + size], args,
                    None if side == "direct" else iop,
                )  # fmt: skip
        if rnd < 1:
            print(
                "warm-up: "
                + ", ".join(f"{side} {n / turn.billed:.2f}/s" for side, turn in spent.items())
            )
            continue
        got = [n / spent["direct"].billed, n / spent[other].billed]
        for values, rate in zip(rates.values(), got, strict=True):
            values.append(rate)
        sends_only.append(spent["direct"].sends / spent[other].sends)
        for side in ("direct", other):
            cpu[side]["hapi"].append(spent[side].hapi_cpu / n * 1000)
            cpu[side]["matching"].append(spent[side].matching_cpu / n * 1000)
            cpu[side]["own"].append(spent[side].own_cpu / n * 1000)
        print(
            f"round {rnd} ({'direct' if rnd % 2 else other} first): direct {got[0]:.2f}/s, "
            f"{other} {got[1]:.2f}/s"
            + f", ratio {got[1] / got[0]:.2f} (sends only {sends_only[-1]:.2f})"
        )
        print(
            "  CPU ms per package, HAPI (matching) / this process: "
            + ", ".join(
                f"{side} {c['hapi'][-1]:.1f} ({c['matching'][-1]:.1f}) / {c['own'][-1]:.1f}"
                for side, c in cpu.items()
            )
        )
        if args.control:
            continue
        phases = ("enqueue", "claim", "wait", "send", "settle", "direct POST")
        calls = ", ".join(f"{p} {statistics.mean(TIMES[p]) * 1000:.1f}" for p in phases)
        busy["direct"].append(statistics.mean(TIMES["direct busy"]))
        busy["iop-bridge"].append(statistics.mean(TIMES["iop busy"]))
        print(
            f"  ms per call: {calls}; {len(TIMES['claim'])} claims, {len(SETTLED)} settles; "
            f"slot busy: direct {busy['direct'][-1]:.0%}, iop-bridge {busy['iop-bridge'][-1]:.0%}"
        )
    if iop is not None:
        await iop.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    summarize(args, rates, other)
    print(
        f"sends only (to each side's last answer, HAPI's work after it left out): median ratio "
        f"{statistics.median(sends_only):.2f}, rounds {min(sends_only):.2f}-{max(sends_only):.2f}"
    )
    print(
        "CPU ms per package (median), HAPI (matching) / this process: "
        + ", ".join(
            f"{side} {statistics.median(c['hapi']):.1f} ({statistics.median(c['matching']):.1f})"
            f" / {statistics.median(c['own']):.1f}"
            for side, c in cpu.items()
        )
    )
    if not args.control:
        print(
            f"HTTP slots busy (median): direct {statistics.median(busy['direct']):.0%}, "
            f"iop-bridge delivery {statistics.median(busy['iop-bridge']):.0%}"
        )


def summarize(args: argparse.Namespace, rates: dict[str, list[float]], other: str) -> None:
    """The table of medians and the verdict (on the per-round ratios, not the medians); with
    --ratios-out, the per-round ratios are also written there for pool_ratios.py."""
    print(
        f"\n{args.packages} packages x 25 resources per side per round (in {args.chunks} turns), "
        f"concurrency "
        f"{args.concurrency}, worker batch {args.batch_size}, {args.rounds} rounds after "
        f"{args.warmup} warm-up" + (" (CONTROL: direct against direct)" if args.control else "")
    )
    target = None if args.control else 0.9
    per_round = print_ratio_table(
        rates, baseline="direct", unit="pkg/s", decimals=2, target=target, subject=other
    )
    if args.ratios_out is not None:
        record = {
            "control": args.control,
            "rounds": args.rounds,
            "packages": args.packages,
            "chunks": args.chunks,
            "concurrency": args.concurrency,
            "ratios": per_round,
        }
        args.ratios_out.write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))


def main() -> int:
    """Parse arguments and run; a measurement, so it exits 0 either way."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8090/fhir")
    parser.add_argument("--packages", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="unreported rounds first")
    parser.add_argument("--chunks", type=int, default=4, help="turns per side in a round")
    parser.add_argument(
        "--control", action="store_true", help="direct against direct: the noise alone"
    )
    parser.add_argument("--batch-size", type=int, default=Settings().worker_batch_size)
    parser.add_argument(
        "--hapi-pid-file",
        type=Path,
        default=default_pid_file(),
        help="the HAPI server's pid file, to start each turn on an idle server "
        "(default: $HAPI_RUN_DIR/hapi.pid, else var/hapi/hapi.pid)",
    )
    parser.add_argument(
        "--ratios-out",
        type=Path,
        help="write the per-round ratios to this JSON file (to pool runs: pool_ratios.py)",
    )
    args = parser.parse_args()
    if args.ratios_out is not None and not args.ratios_out.parent.is_dir():
        # checked now, not after a run of twenty minutes
        parser.error(f"--ratios-out: folder {args.ratios_out.parent} does not exist")
    asyncio.run(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
