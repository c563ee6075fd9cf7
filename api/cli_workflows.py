"""CLI commands for running iop-bridge and for case managers: worker, handoffs, actions.

Every command is thin: parse, call an integration service, print (``--json`` for scripts).
The state-changing ones (accept, decline, schedule, session) run as an audit actor, like an
API request runs as its caller: ``cli:<name>`` (``--actor``, by default the OS user), in the
role of the case manager whose actions they are, for the IOP this deployment serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import re
import signal
import sys
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from api.render import to_jsonable
from integration.db import models
from integration.db import repositories as repo
from integration.db.store import create_db_engine, session_scope
from integration.fhir.client import FhirClient
from integration.outbox.queue import DEFAULT_LEASE_SECONDS, count_by_status
from integration.privacy import audit
from integration.referrals import actions as referral_actions
from integration.referrals.actions import DECLINE_REASONS
from integration.runtime import run_background
from integration.settings import Settings
from integration.tracker.handoffs import list_handoffs
from integration.workflow_errors import ReferralNotFound
from mappers.encounter import Attendance, Delivery, SessionKind
from mappers.errors import InvalidInputError, Problem

CLI_ROLE = "case-manager"  # the actions are the case manager's (as the API's role is named)
ACTOR_HELP = (
    "who is acting, recorded in the audit trail as cli:NAME (letters, digits and . _ @ + -; "
    "no personal data of clients); default: the OS user"
)
_ACTOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,63}")


def add_commands(commands: Any) -> None:
    """Register worker, handoffs, accept, decline, schedule and session."""
    worker = commands.add_parser("worker", help="deliver the outbox and poll for Task changes")
    worker.add_argument("--worker-id", default="worker-1")
    worker.add_argument(
        "--until-empty",
        action="store_true",
        help="stop once nothing is pending or in flight (shows progress)",
    )
    worker.add_argument(
        "--no-subscribe",
        action="store_true",
        help="do not register the rest-hook Subscription (poll only)",
    )
    worker.add_argument(
        "--lease-seconds",
        type=_positive_seconds,
        default=DEFAULT_LEASE_SECONDS,
        help="how long a claimed message stays this worker's before another may take it over "
        f"(default {DEFAULT_LEASE_SECONDS:.0f}; must outlast one delivery with its retries)",
    )
    listing = commands.add_parser("handoffs", help="list handoffs with status and FUI windows")
    listing.add_argument("--status", help="only this Task status, e.g. requested")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    for name, text in (("accept", "accept a referral"), ("decline", "decline a referral")):
        action = _action_parser(commands, name, text)
        if name == "decline":
            action.add_argument(
                "--reason", required=True,
                help=f"why: one of {', '.join(DECLINE_REASONS)}, or any text (sent as the note "
                "of 'other'); the Task's statusReason.text",
            )  # fmt: skip
            action.add_argument("--note", help="a note to the referrer beside the reason")
        else:
            action.add_argument(
                "--residential-discharge-date", type=date.fromisoformat,
                help="YYYY-MM-DD, when the package gave none (accept is refused without it)",
            )  # fmt: skip
    schedule = _action_parser(commands, "schedule", "set the intake date of a referral")
    schedule.add_argument("--date", type=date.fromisoformat, required=True)
    schedule.add_argument("--time", help="HH:MM, the program's time zone")
    schedule.add_argument("--delivery", choices=[d.value for d in Delivery], default="in-person")
    sess = _action_parser(commands, "session", "record an IOP session for a referral")
    sess.add_argument("--id", required=True, help="the session's business identifier")
    sess.add_argument(
        "--start",
        type=datetime.fromisoformat,
        required=True,
        help="ISO date-time with offset, e.g. 2026-11-23T18:00:00-05:00",
    )
    sess.add_argument("--end", type=datetime.fromisoformat, required=True)
    sess.add_argument("--kind", choices=[k.value for k in SessionKind], default="group")
    sess.add_argument("--delivery", choices=[d.value for d in Delivery], default="in-person")
    sess.add_argument("--attendance", choices=[a.value for a in Attendance], default="attended")


def _action_parser(commands: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A state-changing command: the referral it acts on, and who acts (audited)."""
    action: argparse.ArgumentParser = commands.add_parser(
        name, help=f"{text} (audited as cli:<user>)", description=f"{text[0].upper()}{text[1:]}. "
        "Recorded in the audit trail as done by cli:NAME (see --actor)."
    )  # fmt: skip
    action.add_argument(
        "referral_id", help="the referral's id as the tracker and the API show it (or its number)"
    )
    action.add_argument("--actor", type=_actor_name, metavar="NAME", help=ACTOR_HELP)
    return action


def _actor_name(text: str) -> str:
    """An id-shaped name for the audit trail, for argparse."""
    if not _ACTOR_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError("must be one word of letters, digits and . _ @ + -")
    return text


def cli_actor(settings: Settings, name: str | None) -> audit.Actor:
    """The audit actor of a CLI command: ``cli:<name>`` (default the OS user), a case manager
    of the IOP this deployment serves."""
    return audit.Actor(f"cli:{name or os_user()}", CLI_ROLE, settings.organization_id)


def os_user() -> str:
    """The login name, made id-shaped (anything else becomes '-'); 'unknown' without one."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (e.g. a bare container)
        return "unknown"
    name = re.sub(r"[^A-Za-z0-9._@+\-]", "-", login)[:64].lstrip("._@+-")
    return name or "unknown"


def _positive_seconds(text: str) -> float:
    """A number of seconds greater than zero, for argparse."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def run_worker_command(settings: Settings, args: argparse.Namespace) -> int:
    """Set up the FHIR side, then deliver and poll until stopped (or until the outbox is empty)."""
    return asyncio.run(_work(settings, args))


async def _work(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_db_engine(settings.database_url)
    fhir = FhirClient.from_settings(settings)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    background = run_background(
        engine, fhir, settings, worker_id=args.worker_id, stop_event=stop,
        subscribe=not args.no_subscribe, lease_seconds=args.lease_seconds,
    )  # fmt: skip
    try:
        if args.until_empty:
            await asyncio.gather(background, _stop_when_empty(engine, stop))
        else:
            await background
    finally:
        await fhir.aclose()
        engine.dispose()
    return 0


async def _stop_when_empty(engine: Any, stop: asyncio.Event) -> None:
    """Show delivery progress on stderr; set ``stop`` once nothing is pending or in flight."""
    total = None
    while not stop.is_set():
        with session_scope(engine) as session:
            counts = count_by_status(session)
        left = counts.get("pending", 0) + counts.get("in-flight", 0)
        total = max(total or 0, left + counts.get("delivered", 0) + counts.get("dead", 0))
        done = total - left
        bar = "#" * (30 * done // total if total else 30)
        print(
            f"\routbox [{bar:<30}] {done}/{total} dead={counts.get('dead', 0)}",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if left == 0:
            print(file=sys.stderr)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


def run_handoffs(settings: Settings, args: argparse.Namespace) -> int:
    """Print the handoffs table (or JSON)."""
    engine = create_db_engine(settings.database_url)
    with session_scope(engine) as session:
        views = list_handoffs(session, today=date.today(), status=args.status, limit=args.limit)
    engine.dispose()
    if args.json:
        print(json.dumps(to_jsonable(views), indent=2))
        return 0
    print(
        f"{'id':>5} {'referral':<22} {'status':<12} {'days':>5} {'7-day':<8} {'30-day':<8} "
        f"{'intake':<10} {'first session':<13} no-shows"
    )
    for v in views:
        days = "" if v.days_since_discharge is None else str(v.days_since_discharge)
        print(
            f"{v.referral_key:>5} {v.business_id:<22} {v.status:<12} {days:>5} "
            f"{v.follow_up_7:<8} {v.follow_up_30:<8} {v.intake_scheduled or ''!s:<10} "
            f"{v.first_attended or ''!s:<13} {v.no_shows}"
        )
    return 0


def run_action(settings: Settings, args: argparse.Namespace) -> int:
    """accept / decline / schedule / session: one transaction each through the service the
    tracker and the API use (referral_actions), the change audited as the command's actor."""
    engine = create_db_engine(settings.database_url)
    now = datetime.now(UTC)
    try:
        with audit.acting_as(cli_actor(settings, args.actor)), session_scope(engine) as session:
            referral = find(session, args.referral_id)
            command = _command(args, settings, referral.business_id)
            referral_actions.perform(
                session, referral, _ACTIONS[args.command], command, at=now, session_ids=""
            )
            result = {
                "referral_id": referral.id,
                "business_id": referral.business_id,
                "status": referral.status,
                "queued": "Task update (run: iop-bridge worker)",
            }
    finally:
        engine.dispose()
    print(json.dumps(result, indent=2, default=str))
    return 0


_ACTIONS = {
    "accept": referral_actions.ACCEPT,
    "decline": referral_actions.DECLINE,
    "schedule": referral_actions.SCHEDULE,
    "session": referral_actions.SESSION,
}


def find(session: Any, given: str) -> models.Referral:
    """The referral by its business id (as the pages and the API show it), else by number."""
    same_id = select(models.Referral).where(models.Referral.business_id == given).limit(2)
    referral = repo.only_match(session.scalars(same_id).all(), given)
    if referral is None and given.isdigit() and int(given) <= 2**31 - 1:
        referral = session.get(models.Referral, int(given))
    if referral is None:
        raise ReferralNotFound(f"no referral {given!r} (give its id as the tracker shows it)")
    return referral  # type: ignore[no-any-return]


def _command(args: argparse.Namespace, settings: Settings, business_id: str) -> Any:
    """The action's command from the options, checked by the same parser as the forms."""
    zone = settings.program_zone()
    if args.command == "decline":
        known = args.reason in DECLINE_REASONS
        fields = {
            "reason": args.reason if known else "other",
            "note": args.note if known else " ".join(filter(None, (args.reason, args.note))),
        }
        return referral_actions.parse(referral_actions.DECLINE, fields, zone)
    if args.command == "schedule":
        fields = {"date": args.date.isoformat(), "time": args.time, "delivery": args.delivery}
        return referral_actions.parse(referral_actions.SCHEDULE, fields, zone)
    if args.command == "session":
        minutes = int((args.end - args.start).total_seconds() // 60)
        if args.start.tzinfo is None or minutes < 1:
            problem = Problem("--end", "must be after --start; both with a UTC offset")
            raise InvalidInputError("the session's times are invalid", problems=[problem])
        return referral_actions.RecordSession(
            SessionKind(args.kind), Delivery(args.delivery), Attendance(args.attendance),
            args.start, minutes, identifier=args.id,
        )  # fmt: skip
    discharged = args.residential_discharge_date
    fields = {referral_actions.DISCHARGE_DATE: discharged and discharged.isoformat()}
    return referral_actions.parse(referral_actions.ACCEPT, fields, zone)
