"""The live fault test: step-down packages delivered through injected faults, a HAPI restart and
a killed worker; afterwards every package must be on HAPI exactly once.

1. A fresh HAPI sandbox with a file database (HAPI_DB=h2-file), so it keeps its data over a
   restart, and the two Organizations the packages reference (conditional creates).
2. One outbox transaction message per package (sandbox/step_down_package.py) in a database.
3. ``iop-bridge worker`` as a separate process (W1), talking to HAPI through the fault proxy
   (fault_proxy.py: 429s, 503s and timeouts on a seeded fifth of the requests).
4. After a quarter of the packages are delivered HAPI is stopped, left down for a while and
   started again; after half, W1 is killed with SIGKILL and W2 starts. W1's in-flight messages
   come back when their (short) lease runs out.
5. Once nothing is pending or in flight, each package's Patient, ServiceRequest, Task and
   Consent are counted on HAPI by business identifier (each must be 1), and every identifier
   system's total must equal packages x resources per package (no duplicate of anything).

Usage: .venv/bin/python sandbox/faults/run_fault_test.py [--packages 200] [--hapi-port 19191]
           [--run-dir var/faults] [--database-url postgresql+psycopg://...]
Exit status 0 when nothing was lost, duplicated or dead. tests/live/test_faults_live.py runs it.

This module drives the run (:class:`Run`, :func:`run`, the command line); beside it are
fault_run_config.py (RunConfig, RunReport), fault_processes.py (HAPI and the workers) and
fault_packages.py (the packages enqueued and their count on HAPI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import Engine, func, select

from integration.db.outbox_table import OutboxMessage
from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.outbox import queue as outbox
from integration.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules below
from fault_packages import create_organizations, enqueue_packages, verify
from fault_processes import Hapi, Workers
from fault_proxy import LOOPBACK, FaultPlan, FaultProxy
from fault_run_config import REPO, RunConfig, RunReport

log = logging.getLogger("faults")


def outbox_counts(engine: Engine) -> dict[str, int]:
    """Messages per status."""
    with session_scope(engine) as session:
        return outbox.count_by_status(session)


def in_flight_of(engine: Engine, worker_id: str) -> list[int]:
    """Ids of the messages ``worker_id`` holds in flight."""
    m = OutboxMessage
    with session_scope(engine) as session:
        query = select(m.id).where(m.status == "in-flight", m.claimed_by == worker_id)
        return list(session.scalars(query))


def settle_report(engine: Engine, report: RunReport, held_by_w1: Sequence[int]) -> None:
    """Final outbox counts, retries, dead messages' last errors, and W1's leftovers' fate."""
    m = OutboxMessage
    with session_scope(engine) as session:
        report.outbox = outbox.count_by_status(session)
        report.retried = int(session.scalar(select(func.count()).where(m.attempts > 1)) or 0)
        dead = session.execute(select(m.id, m.last_error).where(m.status == "dead"))
        report.dead = [f"message {row.id}: {row.last_error}" for row in dead]
        taken_over = select(func.count()).where(
            m.id.in_(held_by_w1), m.status == "delivered", m.claimed_by == "W2"
        )
        report.kill["held_then_delivered_by_W2"] = int(session.scalar(taken_over) or 0)


class Run:
    """One orchestrated run; :meth:`drive` is the part with the faults."""

    def __init__(
        self, config: RunConfig, engine: Engine, hapi: Hapi, workers: Workers, started: float
    ) -> None:
        self.config, self.engine, self.hapi, self.workers = config, engine, hapi, workers
        self.report = RunReport(config.packages)
        self.started = started  # time.monotonic() when the run began (HAPI's start included)
        self.delivered = 0
        self.held_by_w1: list[int] = []  # in flight when W1 was killed
        self._next_log = 0.0

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return round(time.monotonic() - self.started, 1)

    async def drive(self) -> None:
        """Deliver with W1; restart HAPI at a quarter, kill W1 at half; wait for an empty outbox."""
        n, cfg = self.config.packages, self.config
        stop_at = max(1, math.ceil(n * cfg.stop_hapi_at))
        kill_at = min(n - 1, max(stop_at + 1, math.ceil(n * cfg.kill_worker_at)))
        worker_id = "W1"
        await self.workers.start(worker_id)
        restart: asyncio.Task[None] | None = None
        while True:
            counts = await asyncio.to_thread(outbox_counts, self.engine)
            self.delivered = counts.get("delivered", 0)
            left = counts.get("pending", 0) + counts.get("in-flight", 0)
            if restart is None and self.delivered >= stop_at:
                restart = asyncio.create_task(self.restart_hapi())
            if restart is not None and restart.done() and worker_id == "W1":
                restart.result()  # a failed start ends the run here
                if self.delivered >= kill_at:
                    worker_id = await self.kill_and_replace()
            if left == 0 and worker_id == "W2":
                return
            self.check_alive(worker_id, counts)
            await asyncio.sleep(0.5)

    def check_alive(self, worker_id: str, counts: dict[str, int]) -> None:
        """Fail fast when the worker died on its own or the run is over time; log progress."""
        if self.workers.processes[worker_id].returncode is not None:
            tail = self.workers.log_tail(worker_id)
            raise RuntimeError(f"worker {worker_id} exited by itself:\n{tail}")
        if time.monotonic() - self.started > self.config.deadline_seconds:
            raise TimeoutError(f"run over {self.config.deadline_seconds:.0f} s; outbox {counts}")
        if self.elapsed() >= self._next_log:
            log.info("t=%.0fs outbox %s", self.elapsed(), counts)
            self._next_log = self.elapsed() + 10

    async def restart_hapi(self) -> None:
        """Stop HAPI, keep it down for the pause, start it again (same data)."""
        stop = self.report.hapi_stop
        stop.update(delivered_at_stop=self.delivered, stopped_at_second=self.elapsed())
        log.info("stopping HAPI at %s delivered", self.delivered)
        began = time.monotonic()
        await self.hapi.stop()
        stop["delivered_when_down"] = await asyncio.to_thread(self._delivered_now)
        await asyncio.sleep(self.config.hapi_pause_seconds)
        await self.hapi.start()
        stop["downtime_seconds"] = round(time.monotonic() - began, 1)
        stop["delivered_when_back"] = await asyncio.to_thread(self._delivered_now)
        log.info("HAPI back after %.0f s down", stop["downtime_seconds"])

    async def kill_and_replace(self) -> str:
        """SIGKILL W1 mid-delivery, note what it held in flight, start W2."""
        w1 = self.workers.processes["W1"]
        w1.send_signal(signal.SIGKILL)
        await w1.wait()
        self.held_by_w1 = held = await asyncio.to_thread(in_flight_of, self.engine, "W1")
        self.report.kill = {
            "delivered_at_kill": await asyncio.to_thread(self._delivered_now),
            "killed_at_second": self.elapsed(),
            "in_flight_at_kill": len(held),
        }
        log.info("killed W1 (SIGKILL) holding %s messages; starting W2", len(held))
        await self.workers.start("W2")
        return "W2"

    def _delivered_now(self) -> int:
        return outbox_counts(self.engine).get("delivered", 0)


async def run(config: RunConfig) -> RunReport:
    """The whole scenario; everything it started is stopped again, whatever happens."""
    began = time.monotonic()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    database_url = config.database_url or f"sqlite:///{config.run_dir / 'outbox.db'}"
    if config.database_url is None:
        (config.run_dir / "outbox.db").unlink(missing_ok=True)
    hapi = Hapi(config)
    hapi.prepare_fresh()
    direct = FhirClient.from_settings(Settings(fhir_base_url=hapi.base))
    engine = create_db_engine(database_url)
    if outbox_counts(engine):
        engine.dispose()
        raise RuntimeError("the outbox database is not empty: give the run a fresh database")
    workers: Workers | None = None
    try:
        log.info("starting HAPI (h2-file) on port %s", config.hapi_port)
        await hapi.start()
        expected = enqueue_packages(engine, config.packages, await create_organizations(direct))
        lifetime = config.deadline_seconds + 120
        async with FaultProxy(hapi.origin, config.fault, lifetime=lifetime) as proxy:
            workers = Workers(config, database_url, f"http://{LOOPBACK}:{proxy.port}/fhir")
            orchestrated = Run(config, engine, hapi, workers, began)
            await orchestrated.drive()
            await workers.stop_all()
        report = orchestrated.report
        report.proxy = asdict(proxy.counters)
        settle_report(engine, report, orchestrated.held_by_w1)
        await verify(direct, expected, report)
        report.hapi_start_seconds = hapi.start_seconds
        report.runtime_seconds = round(time.monotonic() - began, 1)
        return report
    finally:
        if workers is not None:
            await workers.stop_all(signal.SIGKILL)
        await direct.aclose()
        engine.dispose()
        await hapi.stop()


def _config(args: argparse.Namespace) -> RunConfig:
    fault = FaultPlan(rate=args.rate, seed=args.seed, hold_seconds=args.hold)
    return RunConfig(
        packages=args.packages,
        hapi_port=args.hapi_port,
        run_dir=Path(args.run_dir).resolve(),
        database_url=args.database_url,
        fault=fault,
        hapi_pause_seconds=args.hapi_pause,
        deadline_seconds=args.deadline,
    )


def main() -> int:
    """Run from the command line; prints the report as JSON, exit 1 unless it passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=200)
    parser.add_argument("--hapi-port", type=int, default=19191)
    parser.add_argument("--run-dir", default=str(REPO / "var" / "faults"))
    parser.add_argument("--database-url", help="default: a fresh SQLite file in the run dir")
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hold", type=float, default=8.0)
    parser.add_argument("--hapi-pause", type=float, default=20.0)
    parser.add_argument("--deadline", type=float, default=3600.0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per proxied request
    report = asyncio.run(run(_config(parser.parse_args())))
    print(
        json.dumps(
            {**asdict(report), "delivered": report.delivered, "passed": report.passed}, indent=2
        )
    )
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
