"""The HAPI server's CPU use, read from /proc, so that each timed turn pays for the server work it
caused and for nothing else.

HAPI keeps working after it has answered. Every created resource is matched against the active
subscriptions, but not at once: HAPI 8 stores a "resource modified" message with the write and a
scheduled job hands the stored messages to the matching threads every 5 seconds
(AsyncResourceModifiedProcessingSchedulerSvc, DEFAULT_SUBMISSION_INTERVAL_IN_MS = 5000), with or
without any Subscription. Measured on the sandbox (pinned to one core, 20 packages per turn):
the request threads cost 50-58 ms per package in every turn, while matching cost 0 in most turns
and 13-27 ms per package in the turn that happened to be running when the job fired, which was
often the other side's. So a turn ends only after HAPI's next matching pass has run and HAPI is
idle again; that wait is not timed, and the server CPU used after the side's last answer is
billed to the turn as time (divided by the cores HAPI may run on).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEP = 0.05  # seconds between two looks at the server's CPU
MATCHING_THREADS = "subscription-ma"  # /proc comm of HAPI's "subscription-matching-N" threads
SUBMISSION_INTERVAL = 5.0  # seconds between HAPI's passes that hand writes to the matchers


def default_pid_file() -> Path:
    """Where sandbox/hapi/start.sh writes the pid: $HAPI_RUN_DIR, else <repo>/var/hapi."""
    return Path(os.environ.get("HAPI_RUN_DIR", REPO / "var" / "hapi")) / "hapi.pid"


def _cpu_seconds(stat: str, tick: int) -> float:
    """utime + stime: fields 14 and 15 of a /proc stat line, counted after the command's ')'."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


class ServerCpu:
    """CPU seconds used by one process (user + system, all its threads, or its matchers)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._stat = Path(f"/proc/{pid}/stat")
        self._tasks = Path(f"/proc/{pid}/task")
        self._tick = os.sysconf("SC_CLK_TCK")
        self.seconds()  # fails now, with the pid named, if there is no such process
        # the cores it may run on: 1 when pinned with taskset, else the machine's
        self.cores = len(os.sched_getaffinity(pid))

    @classmethod
    def from_pid_file(cls, path: Path) -> ServerCpu:
        """The process whose pid ``path`` holds; SystemExit naming the file when it cannot."""
        try:
            return cls(int(path.read_text().strip()))
        except (OSError, ValueError) as error:
            raise SystemExit(
                f"cannot watch the HAPI server's CPU: {error}. Start it with "
                "sandbox/hapi/start.sh (HAPI_RUN_DIR decides where hapi.pid goes) or pass "
                "--hapi-pid-file"
            ) from error

    def seconds(self) -> float:
        """CPU seconds so far, all threads."""
        try:
            return _cpu_seconds(self._stat.read_text(), self._tick)
        except OSError as error:
            raise SystemExit(f"HAPI server process {self.pid} is gone: {error}") from error

    def matching_seconds(self) -> float:
        """CPU seconds so far of the subscription-matching threads (threads that ended are lost,
        which only matters across HAPI's rare thread-pool resizes)."""
        total = 0.0
        for task in self._tasks.iterdir():
            try:
                if (task / "comm").read_text().startswith(MATCHING_THREADS):
                    total += _cpu_seconds((task / "stat").read_text(), self._tick)
            except OSError:
                continue  # the thread ended between listing and reading
        return total

    async def wait_idle(
        self, *, busy_below: float = 0.25, quiet_for: float = 0.3, limit: float = 60.0
    ) -> float:
        """Wait until the server has used under ``busy_below`` of a core for ``quiet_for``
        seconds; returns the moment (time.perf_counter) it went quiet: the end of the last
        ``STEP`` in which it was busier. After ``limit`` seconds it goes on anyway (a server that
        is never idle is noise this cannot remove) and says so."""
        start = time.perf_counter()
        quiet_since, before = start, self.seconds()
        while True:
            await asyncio.sleep(STEP)
            now, used = time.perf_counter(), self.seconds()
            if used - before >= busy_below * STEP:
                quiet_since = now
            elif now - quiet_since >= quiet_for:
                return quiet_since
            if now - start > limit:
                print(f"  (HAPI still busy after {limit:.0f} s; going on)")
                return now
            before = used

    async def wait_settled(self) -> None:
        """Wait until HAPI has matched everything written so far against its subscriptions.

        Call on an idle server (``wait_idle``), so no matching pass is running. The next pass
        starts within ``SUBMISSION_INTERVAL``: wait for the matching threads to start working
        and then for the server to go idle again. If no matching work shows up by then (an
        earlier pass already took everything), there is nothing left to wait for.
        """
        deadline = time.perf_counter() + SUBMISSION_INTERVAL + 1.0
        before = self.matching_seconds()
        while time.perf_counter() < deadline:
            await asyncio.sleep(STEP)
            if self.matching_seconds() > before:
                await self.wait_idle()
                return
