"""The demo: one residential-to-IOP step-down referral, end to end, through the FHIR server.

1. The simulated residential EHR (sandbox/residential_ehr.py) posts a referral package to the
   FHIR server as one transaction, the way a foreign EHR would.
2. iop-bridge (the API process started by scripts/demo.sh, with its embedded worker) hears of
   the Task by rest-hook Subscription (or its _lastUpdated poll) and stores the referral.
3. The case manager accepts it, schedules the intake and records the first attended session;
   each action is queued in the outbox with the referral change and delivered to the server.
4. The Task on the server ends completed (BSeR 7.0) with its output pointing to the Encounter.
5. A second referral waits in the tracker, and an aftercare provider (sandbox/aftercare_provider.py)
   is registered in the organization directory, so the case manager can discharge a client to it.

Run by ``make demo``; alone: ``.venv/bin/python sandbox/demo_step_down.py`` (needs HAPI and
``iop-bridge serve`` with IOP_BRIDGE_EMBEDDED_WORKER=true on the same database).
Synthetic people and data only.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aftercare_provider
from residential_ehr import ResidentialEhr

from integration.db import models
from integration.db import repositories as repo
from integration.db.store import create_db_engine, session_scope
from integration.outbox.queue import count_by_status
from integration.referrals import step_down
from integration.settings import Settings
from integration.tracker.handoffs import list_handoffs
from mappers.encounter import Attendance, Delivery, Session, SessionKind

T = TypeVar("T")
# The demo's next provider after IOP discharge (synthetic; the API docs' example names it too).
AFTERCARE_PROVIDER = "OUTPT-HARBOR"
AFTERCARE_PROVIDER_NAME = "Harbor Street Outpatient Clinic (synthetic)"


async def wait_for(what: str, probe: Callable[[], Awaitable[T | None]], seconds: float) -> T:
    """Poll ``probe`` until it returns something, or fail naming what never happened."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{what} did not happen within {seconds:.0f} s")


async def run(settings: Settings) -> bool:
    """Drive one referral through the loop; True when the server's Task ends completed."""
    engine = create_db_engine(settings.database_url)
    ehr = ResidentialEhr.connect(
        settings.fhir_base,
        iop_identifier=(settings.organization_id_system, settings.organization_id),
    )
    try:
        await wait_for("the IOP Organization on the server", _found(ehr.find_iop), 120)
        # The story in time: the residential program referred the client the day before the
        # discharge, five days ago; the IOP accepted that evening, and the intake (the first
        # session) was three days after the discharge.
        discharged = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
        n = int(time.time()) % 1_000_000
        referred = await ehr.refer(n, discharged=discharged)
        print(f"1. residential EHR posted referral {referred.identifier} (Task/{referred.task_id})")
        received = _stored(engine, referred)
        referral = await wait_for("iop-bridge receiving the referral", received, 120)
        print(f"2. iop-bridge stored it as referral {referral.id} (status {referral.status})")
        _backdate_receipt(engine, referral.id, referred.package.referred)
        _act(engine, referral.id, discharged)
        print("3. case manager: accepted, intake scheduled, first session attended (queued)")
        await wait_for("the outbox to drain", lambda: _drained(engine), 120)
        task = await ehr.task(referred.identifier)
        business = task["businessStatus"]["coding"][0]
        output = [o["valueReference"]["reference"] for o in task.get("output") or []]
        print(
            f"4. Task on the server: status {task['status']}, businessStatus "
            f"{business['code']} ({business.get('display', '')}), output {output}"
        )
        _print_handoff(engine, referral.id)
        # A second client, discharged yesterday, waits for the case manager in the tracker.
        waiting = await ehr.refer(
            (n + 1) % 1_000_000, discharged=discharged + timedelta(days=4), language="es"
        )
        await wait_for("iop-bridge receiving the second referral", _stored(engine, waiting), 120)
        print(f"5. referral {waiting.identifier} waits in the tracker for a case manager")
        provider = _register_aftercare_provider(settings)
        print(
            f"6. aftercare provider {AFTERCARE_PROVIDER} ({AFTERCARE_PROVIDER_NAME}) is "
            f"{provider}: name {AFTERCARE_PROVIDER} as the next provider when you discharge;\n"
            "   its system accepts the aftercare Tasks with: .venv/bin/python "
            f"sandbox/aftercare_provider.py --once --base {settings.fhir_base} "
            f"--organization {provider}"
        )
        return task["status"] == "completed" and bool(output)
    finally:
        await ehr.aclose()
        engine.dispose()


def _register_aftercare_provider(settings: Settings) -> str:
    """The simulated next provider's Organization, listed in the deployment's organization
    directory (the tracker's discharge form names a next provider by that identifier value)."""
    with aftercare_provider.http_client(settings.fhir_base) as client:
        return aftercare_provider.ensure_organization(
            client,
            name=AFTERCARE_PROVIDER_NAME,
            identifier=AFTERCARE_PROVIDER,
            directory=(settings.organization_id_system, AFTERCARE_PROVIDER),
        )


def _stored(engine: Any, referred: Any) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Any:
        with session_scope(engine) as session:
            return repo.get_referral(session, referred.identifier)

    return probe


def _backdate_receipt(engine: Any, referral_key: int, sent: datetime) -> None:
    """The demo compresses days into seconds: the referral counts as received when the
    residential EHR sent it (its Task's authoredOn), so the timeline reads in order."""
    with session_scope(engine) as session:
        referral = session.get(models.Referral, referral_key)
        assert referral is not None, "the demo stored this referral a moment ago"
        referral.received_at = sent


def _found(lookup: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str | None]]:
    async def probe() -> str | None:
        try:
            return await lookup()
        except LookupError:
            return None

    return probe


def _act(engine: Any, referral_key: int, discharged: datetime) -> None:
    accepted = discharged - timedelta(hours=12)
    start = discharged + timedelta(days=3, hours=6)
    session = Session(
        "SES-" + str(referral_key) + "-1",
        SessionKind.GROUP,
        Delivery.IN_PERSON,
        Attendance.ATTENDED,
        start,
        start + timedelta(hours=3),
    )
    with session_scope(engine) as db:
        step_down.accept(db, referral_key, at=accepted)
    with session_scope(engine) as db:
        step_down.schedule_intake(
            db, referral_key, start.date(), at=accepted + timedelta(hours=1),
            at_time=start.time(), delivery=Delivery.IN_PERSON.value,
        )  # fmt: skip
    with session_scope(engine) as db:
        step_down.record_session(db, referral_key, session, at=start + timedelta(hours=3))


async def _drained(engine: Any) -> bool | None:
    with session_scope(engine) as session:
        counts = count_by_status(session)
    busy = counts.get("pending", 0) + counts.get("in-flight", 0)
    return True if busy == 0 else None


def _print_handoff(engine: Any, referral_key: int) -> None:
    with session_scope(engine) as session:
        views = list_handoffs(session, today=datetime.now(UTC).date(), limit=500)
    view = next(v for v in views if v.referral_key == referral_key)
    print(
        f"   handoff: {view.days_since_discharge} days since residential discharge, "
        f"7-day follow-up {view.follow_up_7}, 30-day {view.follow_up_30}"
    )


def main() -> int:
    """Run the demo against the configured server and database; exit 1 if the loop stayed open."""
    settings = Settings()
    print(f"FHIR server: {settings.fhir_base}")
    ok = asyncio.run(run(settings))
    print("demo step-down flow:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
