"""The fault test's inputs and outputs: RunConfig (size, places, fault plan, timing) and RunReport
(what happened and what HAPI holds afterwards)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fault_proxy import FaultPlan

REPO = Path(__file__).resolve().parents[2]


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
