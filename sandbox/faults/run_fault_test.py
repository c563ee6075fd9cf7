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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from fhir_profiles import canonical
from integration import outbox
from integration.db.outbox_table import OutboxMessage
from integration.fhir_client import FhirClient
from integration.settings import Settings
from integration.store import create_db_engine, session_scope
from integration.worker import business_identifier
from mappers.bundle import identifier_token

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "sandbox"), str(Path(__file__).resolve().parent)]
import step_down_package as pkg  # noqa: E402
from fault_proxy import LOOPBACK, FaultPlan, FaultProxy  # noqa: E402

log = logging.getLogger("faults")
ORG_SYSTEM = "http://fault-test.example/fhir/sid/organization"  # apart from the worker's own
Key = tuple[str, str, str]  # (resource type, identifier system, value)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One run's size, places, fault plan and timing."""

    packages: int = 200
    hapi_port: int = 19191
    run_dir: Path = REPO / "var" / "faults"
    database_url: str | None = None  # None: a fresh SQLite file in run_dir
    fault: FaultPlan = field(default_factory=FaultPlan)
    http_timeout_seconds: float = 5.0  # the worker's; fault.hold_seconds must be longer
    lease_seconds: float = 30.0
    hapi_pause_seconds: float = 20.0  # how long HAPI stays stopped before it is started again
    stop_hapi_at: float = 0.25  # fraction delivered
    kill_worker_at: float = 0.5
    deadline_seconds: float = 3600.0  # the whole run, HAPI start-ups included
    hapi_start_timeout: int = 300  # seconds start.sh waits for /fhir/metadata
    # C1 only: HAPI starts in about half the time (it starts twice per run), and a short run
    # never profits from C2's slower-to-reach peak.
    hapi_java_opts: str = "-Xmx1536m -XX:TieredStopAtLevel=1"

    def __post_init__(self) -> None:
        if self.packages < 4:
            raise ValueError("at least 4 packages: the faults must fall between deliveries")
        if self.fault.hold_seconds <= self.http_timeout_seconds:
            raise ValueError("the timeout fault must hold longer than the worker's timeout")


@dataclass(slots=True)
class RunReport:
    """What happened and what HAPI holds afterwards."""

    packages: int
    outbox: dict[str, int] = field(default_factory=dict)
    retried: int = 0  # messages delivered on a later attempt than their first
    dead: list[str] = field(default_factory=list)  # "message <id>: <last_error>"
    proxy: dict[str, Any] = field(default_factory=dict)
    hapi_stop: dict[str, float] = field(default_factory=dict)
    kill: dict[str, float] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    totals: dict[str, list[int]] = field(default_factory=dict)  # "Type system": [expected, found]
    hapi_start_seconds: list[float] = field(default_factory=list)  # each start.sh, in order
    runtime_seconds: float = 0.0

    @property
    def delivered(self) -> int:
        """Messages delivered."""
        return self.outbox.get("delivered", 0)

    @property
    def passed(self) -> bool:
        """Every package delivered once: none lost, duplicated or dead."""
        totals_match = all(expected == found for expected, found in self.totals.values())
        complete = self.delivered == self.packages and bool(self.totals)
        return complete and totals_match and not (self.dead or self.lost or self.duplicated)


class Hapi:
    """The run's own HAPI sandbox (file database) through sandbox/hapi/start.sh and stop.sh."""

    def __init__(self, config: RunConfig) -> None:
        self.port = config.hapi_port
        self.run_dir = config.run_dir / "hapi"
        self.env = {**os.environ, "HAPI_PORT": str(self.port), "HAPI_DB": "h2-file"}
        self.env["HAPI_RUN_DIR"] = str(self.run_dir)
        self.env["HAPI_JAVA_OPTS"] = config.hapi_java_opts
        self.env["HAPI_START_TIMEOUT"] = str(config.hapi_start_timeout)
        self.origin = f"http://{LOOPBACK}:{self.port}"
        self.start_seconds: list[float] = []
        self.base = f"{self.origin}/fhir"

    def prepare_fresh(self) -> None:
        """Refuse a port in use; start from an empty database (old runs' data would match)."""
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, self.port)) == 0:
                raise RuntimeError(f"port {self.port} is in use: choose another --hapi-port")
        shutil.rmtree(self.run_dir / "data", ignore_errors=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    async def start(self) -> None:
        """start.sh: returns once /fhir/metadata answers."""
        began = time.monotonic()
        await self._script("start.sh")
        self.start_seconds.append(round(time.monotonic() - began, 1))

    async def stop(self) -> None:
        """stop.sh: TERM, then KILL after 30 s."""
        await self._script("stop.sh")

    async def _script(self, name: str) -> None:
        log_path = self.run_dir / "scripts.log"
        with log_path.open("ab") as sink:
            process = await asyncio.create_subprocess_exec(
                str(REPO / "sandbox" / "hapi" / name), env=self.env, stdout=sink, stderr=sink
            )
            code = await process.wait()
        if code != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"{name} failed ({code}):\n" + "\n".join(tail))


class Workers:
    """``iop-bridge worker`` processes started by this run (and only those are signalled)."""

    def __init__(self, config: RunConfig, database_url: str, fhir_base: str) -> None:
        self.config = config
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IOP_BRIDGE_")}
        self.env.update(
            IOP_BRIDGE_FHIR_BASE_URL=fhir_base,
            IOP_BRIDGE_DATABASE_URL=database_url,
            IOP_BRIDGE_HTTP_TIMEOUT_SECONDS=str(config.http_timeout_seconds),
            # Ride out short outages inside one outbox attempt (about 16 s of client retries)
            # so a HAPI restart costs each message an attempt or two, not its whole budget.
            IOP_BRIDGE_RETRY_MAX_ATTEMPTS="8",
            IOP_BRIDGE_RETRY_INITIAL_WAIT_SECONDS="0.25",
            IOP_BRIDGE_RETRY_MAX_WAIT_SECONDS="4",
            IOP_BRIDGE_INBOUND_POLL_SECONDS="86400",
            IOP_BRIDGE_WORKER_BATCH_SIZE="4",
            IOP_BRIDGE_WORKER_POLL_SECONDS="0.5",
        )

    async def start(self, worker_id: str) -> asyncio.subprocess.Process:
        """Start one worker; its output goes to worker-<id>.log in the run directory."""
        command = [str(Path(sys.executable).with_name("iop-bridge")), "worker"]
        command += ["--worker-id", worker_id, "--no-subscribe"]
        command += ["--lease-seconds", str(self.config.lease_seconds)]
        with (self.config.run_dir / f"worker-{worker_id}.log").open("ab") as sink:
            process = await asyncio.create_subprocess_exec(
                *command, env=self.env, cwd=self.config.run_dir, stdout=sink, stderr=sink
            )
        self.processes[worker_id] = process
        return process

    async def stop_all(self, sig: int = signal.SIGTERM) -> None:
        """Signal every worker still running, wait up to 20 s, then SIGKILL."""
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(sig)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()

    def log_tail(self, worker_id: str) -> str:
        """The last lines a worker wrote, for error messages."""
        text = (self.config.run_dir / f"worker-{worker_id}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-20:])


@dataclass(frozen=True, slots=True)
class Expected:
    """What HAPI must hold: the key identifiers per package, totals per identifier system."""

    keys: list[Key]
    totals: Counter[tuple[str, str]]


def package_keys(package: pkg.StepDownPackage) -> list[Key]:
    """The Patient (MRN), ServiceRequest, Task and Consent business identifiers."""
    return [
        ("Patient", pkg.CONTEXT.mrn_system, package.client.mrn),
        ("ServiceRequest", canonical.REFERRAL_ID_SYSTEM, package.referral.identifier),
        ("Task", canonical.TASK_ID_SYSTEM, package.task.identifier),
        ("Consent", canonical.CONSENT_ID_SYSTEM, package.consent.identifier),
    ]


def enqueue_packages(engine: Engine, count: int, organizations: Sequence[str]) -> Expected:
    """One transaction message per package (aggregate: the package), 50 per database commit."""
    iop, residential = organizations
    expected = Expected([], Counter())
    for start in range(1, count + 1, 50):
        with session_scope(engine) as session:
            for n in range(start, min(start + 50, count + 1)):
                package = pkg.make_package(
                    n, iop_organization=iop, residential_organization=residential
                )
                payload = pkg.to_transaction(package)
                outbox.enqueue(
                    session,
                    aggregate_type="step-down-package",
                    aggregate_key=package.referral.identifier,
                    kind=outbox.MessageKind.TRANSACTION,
                    payload=payload,
                )
                expected.keys.extend(package_keys(package))
                for entry in payload["entry"]:
                    system, _ = business_identifier(entry["request"]) or ("", "")
                    expected.totals[(entry["resource"]["resourceType"], system)] += 1
    return expected


async def create_organizations(fhir: FhirClient) -> list[str]:
    """The IOP and the residential program, created once (conditional create) before the run."""
    references = []
    for value, name in (("FAULT-IOP", "Fault Test IOP"), ("FAULT-RES", "Fault Test Residential")):
        resource = {
            "resourceType": "Organization",
            "identifier": [{"system": ORG_SYSTEM, "value": value}],
            "name": name,
        }
        written = await fhir.create(resource, if_none_exist=f"identifier={ORG_SYSTEM}|{value}")
        references.append(f"Organization/{written.resource['id']}")
    return references


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


async def verify(fhir: FhirClient, expected: Expected, report: RunReport) -> None:
    """Count each key identifier (must be 1) and each system's total (must match) on HAPI."""
    limit = asyncio.Semaphore(8)

    async def count(resource_type: str, system: str, value: str) -> int:
        async with limit:
            token = identifier_token(system, value)
            return await fhir.count(resource_type, {"identifier": token})

    found = await asyncio.gather(*(count(*key) for key in expected.keys))
    for (resource_type, _, value), hits in zip(expected.keys, found, strict=True):
        if hits == 0:
            report.lost.append(f"{resource_type} {value}")
        elif hits > 1:
            report.duplicated.append(f"{resource_type} {value} x{hits}")
    for (resource_type, system), want in sorted(expected.totals.items()):
        total = await count(resource_type, system, "")  # "system|": any value in the system
        report.totals[f"{resource_type} {system}"] = [want, total]


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
