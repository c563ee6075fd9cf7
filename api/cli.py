"""The ``iop-bridge`` command: serve the API, check the FHIR server. Grows with later workflows."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from pydantic import ValidationError

from api import cli_fhir, cli_workflows
from integration.db.store import create_db_engine
from integration.fhir.client import FhirClient
from integration.fhir.health import check_health
from integration.privacy.logging_setup import configure_logging
from integration.settings import Settings
from mappers.errors import IopBridgeError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    # JSON lines on stderr, every record PHI-safe (ids and codes only). The servers (serve,
    # worker) log their INFO lines; the other commands print only their own output unless asked
    # (--verbose, or --log-level), so a migration's INFO lines do not precede a table.
    configure_logging(_log_level(args))
    try:
        settings = Settings()
        return _run(settings, args)
    except IopBridgeError as error:
        # A refusal is one line on stderr and exit 1, never a traceback.
        print(f"iop-bridge {args.command}: {one_line(error)}", file=sys.stderr)
        return 1
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        print(f"iop-bridge {args.command}: invalid settings: {problems}", file=sys.stderr)
        return 2


def one_line(error: IopBridgeError) -> str:
    """The error's message and each problem, on one line."""
    problems = "; ".join(
        f"{p.path}: {p.message}" for p in error.problems if p.message != error.message
    )
    return f"{error.message} ({problems})" if problems else error.message


def _log_level(args: argparse.Namespace) -> str:
    if args.log_level:
        return str(args.log_level).upper()
    if args.verbose or args.command in ("serve", "worker"):
        return "INFO"
    return "WARNING"


def _run(settings: Settings, args: argparse.Namespace) -> int:
    handler = {
        "serve": _serve,
        "check": _check,
        "map": cli_fhir.run_map,
        "validate": cli_fhir.run_validate,
        "profiles": cli_fhir.run_profiles,
        "worker": cli_workflows.run_worker_command,
        "handoffs": cli_workflows.run_handoffs,
        "accept": cli_workflows.run_action,
        "decline": cli_workflows.run_action,
        "schedule": cli_workflows.run_action,
        "session": cli_workflows.run_action,
    }[args.command]
    return handler(settings, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iop-bridge",
        description="FHIR R4 integration for IOP care transitions.",
        epilog="Logs are JSON lines on stderr without PHI (ids and codes only); only warnings "
        "unless --verbose, except for serve and worker. A refusal is one line on stderr and "
        "exit status 1. The commands "
        "that change a referral (accept, decline, schedule, session) are recorded in the audit "
        "trail as done by cli:<user>, the OS user unless --actor NAME says otherwise.",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="also print INFO logs (JSON lines on stderr)"
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info for serve and worker, warning for the other commands)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", help="bind address (default: settings.api_host)")
    serve.add_argument("--port", type=int, help="port (default: settings.api_port)")
    check = commands.add_parser("check", help="check the FHIR server and the database")
    check.add_argument("--json", action="store_true", help="print JSON for scripts")
    cli_fhir.add_commands(commands)
    cli_workflows.add_commands(commands)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn  # imported here: only this command needs the server

    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level="info",
        log_config=None,  # uvicorn's loggers propagate to the root's PHI-safe JSON handler
    )
    return 0


def _check(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        fhir = FhirClient.from_settings(settings)
        engine = create_db_engine(settings.database_url)
        try:
            report = await check_health(fhir, engine, settings)
        finally:
            await fhir.aclose()
            engine.dispose()
        if args.json:
            summary = {"ok": report.ok, "degraded": report.degraded, **asdict(report)}
            print(json.dumps(summary, indent=2))
        else:
            state = "reachable" if report.fhir_reachable else f"NOT reachable ({report.fhir_error})"
            print(f"FHIR server {settings.fhir_base}: {state}")
            if report.fhir_reachable:
                print(f"  software {report.fhir_software}, FHIR {report.fhir_version}")
            print(f"database: {'ok' if report.database_ok else 'NOT usable'}")
            named = [
                ("subscription", report.subscription),
                ("subscription (PractitionerRole owners)", report.role_subscription),
            ]
            for label, sub in named:
                if sub is not None:
                    why = f" ({sub.explanation})" if sub.explanation else ""
                    print(f"{label}: {sub.status}{why}")
        return 0 if report.ok else 1

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
