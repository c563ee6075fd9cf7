"""The HAPI server's CPU use, read from /proc, so that each timed turn starts on an idle server.

HAPI keeps working after it has answered: subscription matching runs on every created resource
in background threads, and its schedulers wake up now and then. Measured here after 120 packages
sent straight with httpx: 0.5-3 s more of one to two busy cores. Without waiting for that, each
turn inherits the previous turn's leftovers, and which side pays for them decides a round.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def default_pid_file() -> Path:
    """Where sandbox/hapi/start.sh writes the pid: $HAPI_RUN_DIR, else <repo>/var/hapi."""
    return Path(os.environ.get("HAPI_RUN_DIR", REPO / "var" / "hapi")) / "hapi.pid"


class ServerCpu:
    """CPU seconds used so far by one process (user + system, all its threads)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._stat = Path(f"/proc/{pid}/stat")
        self._tick = os.sysconf("SC_CLK_TCK")
        self.seconds()  # fails now, with the pid named, if there is no such process

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
        """CPU seconds so far; fields 14 and 15 of /proc/PID/stat, after the command's ')'."""
        try:
            fields = self._stat.read_text().rsplit(")", 1)[1].split()
        except OSError as error:
            raise SystemExit(f"HAPI server process {self.pid} is gone: {error}") from error
        return (int(fields[11]) + int(fields[12])) / self._tick

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


STEP = 0.05  # seconds between two looks at the server's CPU
