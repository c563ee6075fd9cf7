"""Benchmark: incremental pull of M changed Tasks, iop-bridge's poll vs. raw paging with httpx.

Setup: one fresh Organization and M Tasks it owns, written in batches, so the owner filter sees
exactly these M. Then, in the same run, alternating which goes first, round by round:
  raw         plain httpx: GET Task?owner=..&_lastUpdated=ge..&_sort=_lastUpdated&_count=<page>,
              following Bundle.link[next], parsing each page (the floor)
  iop-bridge  integration.inbound.engine.poll_tasks on a fresh SQLite database whose cursor is set
              just before the Tasks were written, with a handler that does nothing: the FhirClient's
              search_all paging plus the (type, id, version) de-duplication of every Task
Both ask for the same _lastUpdated lower bound and the same page size (the server's default,
which poll_tasks uses: it sends no _count). Correctness: raw sees M Tasks; the poll sees and
handles M, and its database holds M inbound_event rows. Target (issue 4): iop-bridge >= 0.9 x
raw (Tasks/s). The poll's time is split into waiting for pages and de-duplication (thin timing
wrappers): the poll reads pages ahead while it de-duplicates and takes the pages that arrived
meanwhile as one batch, so the first figure is the paging that the de-duplication did not hide.
The engine is iop-bridge's own (create_db_engine: SQLite in WAL, synchronous FULL).

Usage: .venv/bin/python sandbox/bench/bench_pull.py --base-url http://127.0.0.1:8090/fhir
       [--tasks 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import HttpUrl
from ratio_table import print_ratio_table  # beside this script
from sqlalchemy import text
from sqlalchemy.orm import Session

from integration.db.store import create_db_engine
from integration.fhir.client import FHIR_JSON, FhirClient
from integration.inbound import engine as inbound
from integration.settings import Settings

SYSTEM = "http://iop-bridge.example/fhir/sid/bench-task"
SIDES = ("raw", "iop-bridge")
TIMES: dict[str, float] = defaultdict(float)  # seconds inside poll_tasks steps
COUNTS: dict[str, int] = defaultdict(int)  # calls of each
OVERLAP = 5.0  # poll_tasks' default overlap_seconds, applied to the cursor


async def noop_handler(task: Mapping[str, Any]) -> inbound.Apply:
    """A handler with no I/O whose database step does nothing."""

    def apply(session: Session, at: datetime) -> None:
        return None

    return apply


async def make_tasks(fhir: FhirClient, count: int, nonce: str) -> tuple[str, datetime]:
    """An Organization and ``count`` Tasks it owns; returns its reference and a time before."""
    org = {
        "resourceType": "Organization",
        "name": f"Benchmark pull owner {nonce}",
        "identifier": [{"system": SYSTEM, "value": f"ORG-{nonce}"}],
    }
    written = await fhir.create(org, if_none_exist=f"identifier={SYSTEM}|ORG-{nonce}")
    owner = f"Organization/{written.resource['id']}"
    before = inbound.last_updated(written.resource)
    assert before is not None
    for start in range(0, count, 100):
        entries = [
            {
                "resource": {
                    "resourceType": "Task",
                    "status": "requested",
                    "intent": "order",
                    "identifier": [{"system": SYSTEM, "value": f"{nonce}-{i}"}],
                    "owner": {"reference": owner},
                },
                "request": {"method": "POST", "url": "Task"},
            }
            for i in range(start, min(start + 100, count))
        ]
        answer = await fhir.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
        assert all(e["response"]["status"].startswith("201") for e in answer["entry"])
    return owner, before


async def page_size(fhir: FhirClient, owner: str) -> int:
    """The server's default page size, as poll_tasks gets it (no _count sent)."""
    page = await fhir.search("Task", {"owner": owner, "_sort": "_lastUpdated"})
    return len(page.get("entry") or [])


async def run_raw(base_url: str, owner: str, since: datetime, size: int) -> tuple[float, int]:
    """Raw paging; returns (seconds, Tasks seen)."""
    params = {
        "owner": owner,
        "_lastUpdated": "ge" + since.isoformat(timespec="milliseconds"),
        "_sort": "_lastUpdated",
        "_count": str(size),
    }
    seen = 0
    headers = {"Accept": FHIR_JSON}
    async with httpx.AsyncClient(base_url=base_url + "/", timeout=30, headers=headers) as http:
        start = time.perf_counter()
        url: str | None = "Task"
        query: dict[str, str] | None = params
        while url is not None:
            response = await http.get(url, params=query)
            response.raise_for_status()
            page = orjson.loads(response.content)
            seen += len(page.get("entry") or [])
            links = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
            url, query = (links[0], None) if links and page.get("entry") else (None, None)
        return time.perf_counter() - start, seen


def timed(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Record each call's wall time under ``name`` (sync or async ``fn``)."""
    if asyncio.iscoroutinefunction(fn):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                TIMES[name] += time.perf_counter() - start
                COUNTS[name] += 1

        return wrapper

    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - start
            COUNTS[name] += 1

    return sync_wrapper


async def run_iop(settings: Settings, db: Path, owner: str, since: datetime) -> tuple[float, int]:
    """poll_tasks on a fresh database; returns (seconds, Tasks handled)."""
    engine = create_db_engine(f"sqlite:///{db}")
    inbound.write_cursor(engine, inbound.cursor_name(owner), since)
    fhir = FhirClient.from_settings(settings)
    TIMES.clear()
    COUNTS.clear()
    try:
        start = time.perf_counter()
        result = await inbound.poll_tasks(
            fhir, engine, settings, owner, overlap_seconds=OVERLAP, handler=noop_handler
        )
        elapsed = time.perf_counter() - start
    finally:
        await fhir.aclose()
        engine.dispose()
    assert result.failed == 0 and result.seen == result.handled, result
    assert recorded_events(db) == result.seen, "every Task must have its inbound_event row"
    dedup, seen, commit = TIMES["accept_page"], TIMES["seen_keys"], TIMES["_transaction"]
    batches = COUNTS["accept_page"]
    print(
        f"  iop-bridge: {elapsed * 1000:.0f} ms = waiting for pages "
        f"{(elapsed - dedup) * 1000:.0f} + de-duplication {dedup * 1000:.0f} in {batches} "
        f"batches ({dedup / batches * 1000:.1f} ms each: seen-check {seen / batches * 1000:.1f}"
        f", insert+commit {commit / batches * 1000:.1f}; {dedup / result.seen * 1000:.2f} ms/Task)"
    )
    return elapsed, result.handled


def recorded_events(db: Path) -> int:
    """inbound_event rows in the poll's database (read back after the poll)."""
    engine = create_db_engine(f"sqlite:///{db}", migrate_schema=False)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text("SELECT count(*) FROM inbound_event")) or 0)
    finally:
        engine.dispose()


async def measure(args: argparse.Namespace) -> None:
    """Set up, warm up, then alternate the sides round by round; print rates and ratios."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    settings = Settings(fhir_base_url=HttpUrl(args.base_url), database_url=f"sqlite:///{tmp}/x.db")
    fhir = FhirClient.from_settings(settings)
    owner, before = await make_tasks(fhir, args.tasks, secrets.token_hex(4).upper())
    size = await page_size(fhir, owner)
    await fhir.aclose()
    for name in ("accept_page", "seen_keys", "_transaction"):
        setattr(inbound, name, timed(getattr(inbound, name), name))  # called by poll_tasks
    since = before - timedelta(seconds=1)  # the cursor; every side asks ge (since - overlap)
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    for rnd in range(args.rounds + 1):  # round 0 warms up and is not reported
        got: dict[str, float] = {}
        for side in SIDES if rnd % 2 else SIDES[::-1]:
            if side == "raw":
                seconds, seen = await run_raw(
                    settings.fhir_base, owner, since - timedelta(seconds=OVERLAP), size
                )
            else:
                db = tmp / f"{rnd}-{len(got)}.db"
                seconds, seen = await run_iop(settings, db, owner, since)
            assert seen == args.tasks, f"{side} saw {seen} of {args.tasks} Tasks"
            got[side] = seen / seconds
        if rnd:
            print(f"round {rnd}: " + ", ".join(f"{k} {v:.0f} Tasks/s" for k, v in got.items()))
            for side, rate in got.items():
                rates[side].append(rate)
    shutil.rmtree(tmp, ignore_errors=True)
    summarize(args, size, rates)


def summarize(args: argparse.Namespace, size: int, rates: dict[str, list[float]]) -> None:
    """The table of medians and the verdict (on the per-round ratios)."""
    print(
        f"\n{args.tasks} Tasks, page size {size} ({-(-args.tasks // size)} pages), "
        f"{args.rounds} rounds"
    )
    print_ratio_table(rates, baseline="raw", unit="Tasks/s", decimals=0, target=0.9)


def main() -> int:
    """Parse arguments and run; a measurement, so it exits 0 either way."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8090/fhir")
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(measure(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
