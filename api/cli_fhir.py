"""CLI commands for integrators: map FHIR files, validate them, load our profiles."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from api.render import mapped_view
from fhir_profiles.registry import conformance_resources
from integration.fhir.client import FhirClient
from integration.fhir.conformance import read_us_core, upload_conformance, validate
from integration.json_files import read_fhir_json
from integration.settings import Settings
from mappers import registry
from mappers.errors import IopBridgeError


def add_commands(commands: Any) -> None:
    """Register map, validate and profiles on the top-level subparsers."""
    mapper = commands.add_parser("map", help="FHIR JSON in: domain view and loss report out")
    mapper.add_argument("file", type=Path, help="a FHIR resource or a Bundle of them")
    check = commands.add_parser("validate", help="validate FHIR JSON files on the FHIR server")
    check.add_argument("files", type=Path, nargs="+")
    check.add_argument("--load-profiles", action="store_true",
                       help="upload iop-bridge's profiles to the server first")  # fmt: skip
    check.add_argument("--json", action="store_true", help="print JSON for scripts")
    check.add_argument("--us-core", type=Path, metavar="DIR", help=US_CORE_HELP)
    profiles = commands.add_parser("profiles", help="iop-bridge's conformance resources")
    profiles.add_argument("action", choices=["load", "list"])
    profiles.add_argument("--us-core", type=Path, metavar="DIR", help=US_CORE_HELP)


# Our profiles derive from US Core 9.0.0: a server without it cannot build their snapshots.
US_CORE_HELP = "load US Core 9.0.0 first, from its resources-yaml folder"


def run_map(settings: Settings, args: argparse.Namespace) -> int:
    """Print the domain view of each resource in the file; exit 1 if any could not be mapped."""
    try:
        resource = read_fhir_json(args.file)
    except IopBridgeError as error:
        return _fail([_error_view(str(args.file), error)])
    results, failed = [], False
    for item in _resources_of(resource):
        try:
            mapped = registry.from_fhir(item, settings.mapping_context())
            results.append(mapped_view(item["resourceType"], mapped))
        except IopBridgeError as error:
            results.append(_error_view(str(item.get("resourceType")), error))
            failed = True
    print(json.dumps(results if resource["resourceType"] == "Bundle" else results[0], indent=2))
    return 1 if failed else 0


def run_validate(settings: Settings, args: argparse.Namespace) -> int:
    """Validate each file with the server's $validate; exit 1 if any has errors."""
    return asyncio.run(_validate_files(settings, args))


def run_profiles(settings: Settings, args: argparse.Namespace) -> int:
    """List our conformance resources, or upload them to the configured FHIR server."""
    resources = _with_us_core(args, conformance_resources())
    if args.action == "list":
        for resource in resources:
            print(f"{resource['resourceType']}/{resource['id']}  {resource.get('url', '')}")
        return 0

    async def load() -> int:
        fhir = FhirClient.from_settings(settings)
        try:
            return await upload_conformance(fhir, resources)
        finally:
            await fhir.aclose()

    print(f"loaded {asyncio.run(load())} conformance resources into {settings.fhir_base}")
    return 0


def _with_us_core(args: argparse.Namespace, ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """US Core's resources (when ``--us-core`` names their folder) before ours."""
    return [*read_us_core(args.us_core), *ours] if args.us_core else ours


async def _validate_files(settings: Settings, args: argparse.Namespace) -> int:
    fhir = FhirClient.from_settings(settings)
    reports: list[dict[str, Any]] = []
    try:
        if args.load_profiles:
            await upload_conformance(fhir, _with_us_core(args, conformance_resources()))
        for path in args.files:
            reports.append(await _validate_one(fhir, path))
    finally:
        await fhir.aclose()
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            state = "OK" if report["ok"] else f"{len(report['errors'])} error(s)"
            print(f"{report['file']}: {state}, {len(report['warnings'])} warning(s)")
            for error in report["errors"]:
                print(f"  error {error['path']}: {error['message']}")
    return 0 if all(r["ok"] for r in reports) else 1


async def _validate_one(fhir: FhirClient, path: Path) -> dict[str, Any]:
    try:
        resource = read_fhir_json(path)
        report = await validate(fhir, resource)
    except IopBridgeError as error:
        problems = error.problems or ()
        errors = [{"path": p.path, "message": p.message} for p in problems] or [
            {"path": str(path), "message": error.message}
        ]
        return {"file": str(path), "ok": False, "errors": errors, "warnings": []}
    return {
        "file": str(path),
        "ok": report.ok,
        "errors": [{"path": p.path, "message": p.message} for p in report.errors],
        "warnings": [{"path": p.path, "message": p.message} for p in report.warnings],
    }


def _resources_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    if resource["resourceType"] != "Bundle":
        return [resource]
    return [e["resource"] for e in resource.get("entry") or [] if "resource" in e]


def _error_view(what: str, error: IopBridgeError) -> dict[str, Any]:
    return {
        "resourceType": what,
        "error": error.message,
        "problems": [{"path": p.path, "message": p.message} for p in error.problems],
    }


def _fail(views: list[dict[str, Any]]) -> int:
    print(json.dumps(views[0], indent=2), file=sys.stderr)
    return 1
