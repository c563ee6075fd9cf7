"""Benchmark: the tracker's referral page, with its action forms, against its underlying queries.

Seeds the same 10,000 handoffs as bench_tracker.py, then makes one of them a full step-down in
progress: its Task link, the residential discharge medication list (8 lines, the forms'
reconciliation table), three PHQ-9 and GAD-7 scores, a treatment plan, sessions and 12 queued or
delivered outbox messages. Interleaved round by round in one process (ratios count):
  query    the page's reads in one unit of work: tracker.detail.handoff_detail (timeline,
           reconciliation, trends, plan hours) + tracker.panel.action_panel (client, intake,
           offered actions, deliveries, discharge lines)
  page     GET /tracker/referrals/{id} through the ASGI app: a signed-in browser's session
           cookie (the server-side session row read), the same reads, the Jinja2 render of the
           page with its forms (one-time form ids, CSRF token), the response
Target (issue 17): the page within 3x of its query, like the list.

Usage: .venv/bin/python sandbox/bench/bench_referral_page.py [--handoffs 10000] [--rounds 15]
       [--per-round 10] [--database-url postgresql+psycopg://...]  (default: a temp SQLite file)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import step_down_package as pkg
from bench_tracker import ORG, SECRET, bench_arguments, bench_settings, seed

from api.app import create_app
from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.store import create_db_engine, session_scope
from integration.medications import lists as medication_lists
from integration.outbox import queue as outbox
from integration.settings import Settings
from integration.tenancy.scope import Scope
from integration.tracker.detail import handoff_detail
from integration.tracker.panel import action_panel

REFERRAL = 2  # of ORG (bench_tracker gives every 20th referral to another organization)
PLAN = {  # group therapy 3 x 3 h and CBT 1 x 1 h a week, ASAM 2.1 (10 h a week)
    "identifier": "BENCH-PLAN", "status": "active", "level_of_care": "2.1",
    "modalities": [
        {"modality": "group-therapy", "sessions_per_week": 3, "hours_per_session": 3.0},
        {"modality": "cbt", "sessions_per_week": 1, "hours_per_session": 1.0},
    ],
}  # fmt: skip


def seed_detail(engine: Engine) -> None:
    """Make referral REFERRAL a step-down in progress with everything the page shows."""
    now = datetime.now(UTC)
    package = pkg.make_package(REFERRAL, discharged=now - timedelta(days=12))
    with session_scope(engine) as session:
        referral = session.get(models.Referral, REFERRAL)
        assert referral is not None
        referral.status, referral.client_name = "accepted", "Jordan Okafor"
        session.add(
            ReferralLink(
                referral_id=REFERRAL, task_identifier_system="urn:bench:plac",
                task_identifier_value=referral.business_id, service_request="ServiceRequest/1",
                patient="Patient/1", requester="Organization/res", owner="Organization/iop",
                authored_on=now - timedelta(days=13),
            )
        )  # fmt: skip
        meds = package.medications
        medication_lists.record_discharge_list(session, referral.id, meds, meds.date)
        for week, (phq, gad) in enumerate(((18, 15), (12, 10), (8, 6))):
            for instrument, total in (("phq-9", phq), ("gad-7", gad)):
                repo.add_assessment(
                    session, referral, business_id=f"{referral.business_id}-{instrument}-{week}",
                    instrument=instrument, total=total, severity="moderate",
                    authored=now - timedelta(days=12 - 4 * week),
                )  # fmt: skip
        repo.save_plan(session, referral, business_id=f"{referral.business_id}-PLAN", plan=PLAN)
        for _ in range(12):
            outbox.enqueue(
                session, aggregate_type="referral", aggregate_key=str(referral.id),
                kind=outbox.MessageKind.OWNED_FIELDS,
                payload={"resourceType": "Task", "identifier": {"value": referral.business_id},
                         "set": {"status": "accepted"}, "remove": []},
            )  # fmt: skip


async def measure(settings: Settings, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per call of the query and of the page, interleaved round by round."""
    app = create_app(settings)
    claims = {"sub": "bench", "role": "case-manager", "org": ORG, "aud": "iop-bridge",
              "exp": int(time.time()) + 3600}  # fmt: skip
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    samples: dict[str, list[float]] = {"query": [], "page": []}
    today = datetime.now(UTC).date()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http,
    ):
        engine: Engine = app.state.engine
        signed = await http.post("/tracker/login", data={"kind": "token", "credential": token})
        assert signed.status_code == 303, signed.text

        def query() -> None:
            with session_scope(engine) as session:
                handoff_detail(session, REFERRAL, scope=Scope((ORG,)), today=today)
                referral = session.get(models.Referral, REFERRAL)
                assert referral is not None
                action_panel(session, referral, today)

        async def page() -> None:
            response = await http.get(f"/tracker/referrals/{REFERRAL}")
            assert response.status_code == 200 and 'id="reconcile-form"' in response.text
            assert response.text.count('class="delivery"') == 12 and "svg" in response.text

        await page()  # warm-up
        for _ in range(rounds):
            began = time.perf_counter()
            for _ in range(per_round):
                query()
            samples["query"].append((time.perf_counter() - began) / per_round)
            began = time.perf_counter()
            for _ in range(per_round):
                await page()
            samples["page"].append((time.perf_counter() - began) / per_round)
    return samples


def main() -> int:
    """Seed, time, print; exit 1 if the page is not within 3x of its query."""
    args = bench_arguments(__doc__ or "")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench-referral.db"
        settings = bench_settings(url)
        engine = create_db_engine(url)
        seed(engine, args.handoffs, datetime.now(UTC).date())
        seed_detail(engine)
        engine.dispose()
        samples = asyncio.run(measure(settings, args.rounds, args.per_round))
    medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    ratios = sorted(p / q for p, q in zip(samples["page"], samples["query"], strict=True))
    print(f"median per call over {args.rounds} rounds x {args.per_round} ({args.handoffs} "
          f"handoffs): query {medians['query']:.2f} ms, page {medians['page']:.2f} ms")  # fmt: skip
    ratio = medians["page"] / medians["query"]
    print(f"per-round ratios: {ratios[0]:.2f}-{ratios[-1]:.2f}")
    print(f"referral page / its query: {ratio:.2f}x (target: within 3x) -> "
          f"{'OK' if ratio <= 3 else 'OVER'}")  # fmt: skip
    return 0 if ratio <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
