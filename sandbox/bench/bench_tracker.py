"""Benchmark: the tracker's list page over 10,000 handoffs against its underlying query.

Seeds a fresh store with N synthetic handoffs (bulk inserts: referrals, intakes, sessions with
no-shows), then times, interleaved round by round in the same process (shared, noisy machines:
ratios are what counts):
  query    integration.tracker.handoffs.list_handoffs (one page of 50) + count_handoffs, in one
           unit of work: the baseline the issue names
  list     tracker.views.list_statement: the page's 50 rows, scoped to the caller's organization
           and the "active" status filter
  counts   tracker.views.flag_counts: the header's counts of every FUI flag over all matching
           handoffs (one query of counts over ranges of the organization/status/follow-up
           index, on the window stored in referral.follow_up_within)
  service  tracker.views.handoff_page: list + counts, what the page runs
  page     GET /tracker through the ASGI app (httpx.ASGITransport): bearer-token check, the
           service, the Jinja2 render of 50 rows, the response
Target (issue 5, item 8): page within 3x of query. Also prints the query plans (SQLite:
EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN) of the list and count queries, and times a deep page
(page 150 of ~160).

Usage: .venv/bin/python sandbox/bench/bench_tracker.py [--handoffs 10000] [--rounds 15]
       [--per-round 10] [--database-url postgresql+psycopg://...]  (default: a temp SQLite file)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from sqlalchemy import Engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from api.app import create_app
from integration.db import models
from integration.db.store import create_db_engine, session_scope
from integration.settings import Settings
from integration.tenancy.scope import Scope
from integration.tracker.handoffs import count_handoffs, list_handoffs
from integration.tracker.views import (
    counts_statement,
    flag_counts,
    handoff_page,
    list_statement,
    query_params,
)
from mappers.follow_up import follow_up_within

ORG = "IOP-BENCH"
SECRET = "bench-tracker-secret-of-sufficient-length"
STATUSES = ("requested", "accepted", "in-progress", "completed", "completed", "rejected")


def seed(engine: Engine, handoffs: int, today: date) -> None:
    """N referrals of one organization (and 5% of another), with intakes and sessions."""
    rng = random.Random(5)
    referrals, intakes, sessions = [], [], []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(1, handoffs + 1):
        discharged = today - timedelta(days=rng.randrange(0, 90))
        status = rng.choice(STATUSES)  # the same draws, in the same order, as before 0006
        attended = discharged + timedelta(days=rng.randrange(1, 40)) if rng.random() < 0.6 else None
        known = discharged if n % 50 else None
        referrals.append({
            "id": n, "business_id": f"SD-BENCH-{n:06d}", "status": status,
            "client_mrn": f"MRN-{n:06d}", "iop_organization": ORG if n % 20 else "OTHER-IOP",
            "residential_discharge_date": known,
            # what repositories.record_session keeps (bulk inserts bypass it)
            "follow_up_within": follow_up_within(known, attended),
            "received_at": start + timedelta(minutes=n), "created_at": start,
            "updated_at": start,
        })  # fmt: skip
        intakes.append({"id": n, "referral_id": n, "scheduled_date": discharged + timedelta(3),
                        "first_attended_date": attended, "created_at": start,
                        "updated_at": start})  # fmt: skip
        for k in range(rng.choice((0, 0, 1, 2))):  # no-shows
            sessions.append({
                "business_id": f"SD-BENCH-{n:06d}-NS{k}", "referral_id": n, "intake_id": n,
                "starts_at": datetime.combine(discharged + timedelta(2 + k), datetime.min.time(),
                                              tzinfo=UTC),
                "attendance": "no-show", "created_at": start, "updated_at": start,
            })  # fmt: skip
    with session_scope(engine) as session:
        for table, rows in ((models.Referral, referrals), (models.Intake, intakes),
                            (models.SessionRecord, sessions)):  # fmt: skip
            for i in range(0, len(rows), 2000):
                session.execute(insert(table), rows[i : i + 2000])
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))


def query_plans(engine: Engine, today: date) -> list[str]:
    """The plans of the list page's two queries (what the indexes are doing)."""
    params = query_params([ORG], "active", today)
    statements = (("list page", list_statement("active", None)),
                  ("flag counts", counts_statement("active")))  # fmt: skip
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    lines: list[str] = []
    with engine.connect() as connection:
        for name, statement in statements:
            bound = statement.params(params)
            compiled = bound.compile(engine, compile_kwargs={"literal_binds": True})
            rows = connection.execute(text(explain + str(compiled))).all()
            lines.append(f"  {name}:")
            lines += [f"    {' | '.join(str(c) for c in row)}" for row in rows]
    return lines


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def measure(settings: Settings, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per call of each path, interleaved round by round."""
    app = create_app(settings)
    claims = {"sub": "bench", "role": "case-manager", "org": ORG, "aud": "iop-bridge",
              "exp": int(time.time()) + 3600}  # fmt: skip
    headers = {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}
    today = datetime.now(UTC).date()
    names = ("query", "list", "counts", "service", "page", "deep page")
    samples: dict[str, list[float]] = {name: [] for name in names}
    params = query_params([ORG], "active", today)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http,
    ):
        engine: Engine = app.state.engine

        def query() -> None:
            with session_scope(engine) as session:
                list_handoffs(session, today=today, limit=50)
                count_handoffs(session)

        def page_rows() -> None:
            with session_scope(engine) as session:
                session.execute(list_statement("active", None), params).all()

        def counts() -> None:
            with session_scope(engine) as session:
                flag_counts(session, organizations=[ORG], status="active", today=today)

        def service() -> None:
            with session_scope(engine) as session:
                handoff_page(session, scope=Scope((ORG,)), today=today)

        async def page(url: str = "/tracker") -> None:
            response = await http.get(url, headers=headers)
            assert response.status_code == 200 and "SD-BENCH-" in response.text

        await page()  # warm-up: template compile, connection pool, caches
        for _ in range(rounds):
            for name, call in (("query", query), ("list", page_rows), ("counts", counts),
                               ("service", service)):  # fmt: skip
                samples[name].append(_timed(call, per_round))
            samples["page"].append(await _timed_async(page, per_round))
            samples["deep page"].append(
                await _timed_async(lambda: page("/tracker?page=150"), per_round)
            )
    return samples


def _timed(call: Callable[[], None], times: int) -> float:
    began = time.perf_counter()
    for _ in range(times):
        call()
    return (time.perf_counter() - began) / times


async def _timed_async(call: Callable[[], Any], times: int) -> float:
    began = time.perf_counter()
    for _ in range(times):
        await call()
    return (time.perf_counter() - began) / times


def bench_settings(url: str) -> Settings:
    """The app's settings for a bench: the test secret, a FHIR server nobody answers on."""
    return Settings(
        database_url=url, auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        fhir_base_url="http://127.0.0.1:9/fhir",  # type: ignore[arg-type]
        retry_max_attempts=1,
    )  # fmt: skip


def bench_arguments(doc: str) -> argparse.Namespace:
    """The benches' options: how many handoffs, rounds, calls per round, which database."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--handoffs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--database-url", help="an EMPTY database (default: a temp SQLite file)")
    return parser.parse_args()


def main() -> int:
    """Seed, time, print the figures; exit 1 if the page is not within 3x of the query."""
    args = bench_arguments(__doc__ or "")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench-tracker.db"
        settings = bench_settings(url)
        engine = create_db_engine(url)
        began = time.perf_counter()
        seed(engine, args.handoffs, datetime.now(UTC).date())
        print(f"seeded {args.handoffs} handoffs on {engine.dialect.name} "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
        print("query plans:", *query_plans(engine, datetime.now(UTC).date()), sep="\n")
        engine.dispose()
        samples = asyncio.run(measure(settings, args.rounds, args.per_round))
    medians = {name: _median_ms(values) for name, values in samples.items()}
    base = medians["query"]
    print(f"\nmedian per call over {args.rounds} rounds x {args.per_round} "
          f"({args.handoffs} handoffs, page of 50):")  # fmt: skip
    for name, ms in medians.items():
        print(f"  {name:10s} {ms:8.2f} ms   {ms / base:5.2f}x query")
    ratio = medians["page"] / base
    print(f"tracker page / underlying query: {ratio:.2f}x (target: within 3x) -> "
          f"{'OK' if ratio <= 3 else 'OVER'}")  # fmt: skip
    return 0 if ratio <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
