"""Post step-down referrals from one foreign sender to a FHIR server.

Usage: .venv/bin/python sandbox/senders/post.py us_core_ehr|pacio_toc|gravity_bser
       [--base http://127.0.0.1:8090/fhir] [--count 1] [--start 1]
       [--iop-system http://iop-bridge.example/fhir/sid/organization] [--iop-id IOP-DEMO-ORG]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from datetime import date

from fhir_http import FhirHttp


async def _main(args: argparse.Namespace) -> None:
    sender = importlib.import_module(args.sender)
    client = FhirHttp(args.base)
    try:
        for n in range(args.start, args.start + args.count):
            referred = await sender.refer(client, (args.iop_system, args.iop_id), n, date.today())
            key = "|".join(referred.identifier)
            print(f"{args.sender}: referral {key} Task/{referred.task_id}")
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sender", choices=["us_core_ehr", "pacio_toc", "gravity_bser"])
    parser.add_argument("--base", default="http://127.0.0.1:8090/fhir")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--start", type=int, default=1)
    parser.add_argument("--iop-system", default="http://iop-bridge.example/fhir/sid/organization")
    parser.add_argument("--iop-id", default="IOP-DEMO-ORG")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
