"""The ``iop-bridge`` command: serve the API, check the FHIR server. Grows with later workflows."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from api import cli_fhir, cli_workflows
from integration.db.store import create_db_engine
from integration.fhir.client import FhirClient
from integration.fhir.health import check_health
from integration.privacy.logging_setup import configure_logging
from integration.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    # The server's logging: JSON lines on stderr, every record PHI-safe (ids and codes only).
    configure_logging()
    settings = Settings()
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
        epilog="Logs are JSON lines on stderr without PHI (ids and codes only). The commands "
        "that change a referral (accept, decline, schedule, session) are recorded in the audit "
        "trail as done by cli:<user>, the OS user unless --actor NAME says otherwise.",
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
            report = await check_health(fhir, engine)
        finally:
            await fhir.aclose()
            engine.dispose()
        if args.json:
            print(json.dumps({"ok": report.ok, **asdict(report)}, indent=2))
        else:
            state = "reachable" if report.fhir_reachable else f"NOT reachable ({report.fhir_error})"
            print(f"FHIR server {settings.fhir_base}: {state}")
            if report.fhir_reachable:
                print(f"  software {report.fhir_software}, FHIR {report.fhir_version}")
            print(f"database: {'ok' if report.database_ok else 'NOT usable'}")
        return 0 if report.ok else 1

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
