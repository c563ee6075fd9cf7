"""The processes a fault run starts and stops: its own HAPI and the `iop-bridge worker`s."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from fault_proxy import LOOPBACK
from fault_run_config import REPO, RunConfig


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
