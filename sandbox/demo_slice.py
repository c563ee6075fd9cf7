"""The demo step-down slice: a synthetic client arriving from residential treatment.

Maps the client ("Client B" of the IOP literature in shared/seeds: PTSD with alcohol use
disorder) and their two co-occurring diagnoses to FHIR, pushes them to the configured FHIR server
(the local HAPI sandbox by default) as one transaction of conditional creates, pushes again to
show nothing is duplicated, reads everything back and compares it with what was sent.

Run by ``make demo`` (scripts/demo.sh); run alone with ``.venv/bin/python sandbox/demo_slice.py``.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date

from integration.client_push import push_client, read_back
from integration.fhir_client import FhirClient
from integration.settings import Settings
from integration.store import create_db_engine
from mappers.condition import Diagnosis
from mappers.patient import Client

# Synthetic person: not a real individual.
DEMO_CLIENT = Client(
    mrn="IOP-DEMO-0002",
    family_name="Okafor",
    given_names=("Jordan",),
    birth_date=date(1987, 6, 3),
    gender="male",
)
# ICD-10-CM codes from shared/reference/fhir-domain-reference.md section 2.5 ([CODE]-sourced:
# seen consistently in public code and the SHIFT SUD value set; confirm against the CMS tabular).
DEMO_DIAGNOSES = (
    Diagnosis(
        "IOP-DEMO-0002-DX1",
        "F43.10",
        "Post-traumatic stress disorder, unspecified",
        onset="2019-03",
    ),
    Diagnosis(
        "IOP-DEMO-0002-DX2", "F10.20", "Alcohol dependence, uncomplicated", onset="2021-08-15"
    ),
)


async def run(settings: Settings) -> bool:
    """Push twice, read back, print what happened; True when the server holds exactly one copy."""
    fhir = FhirClient.from_settings(settings)
    engine = create_db_engine(settings.database_url)
    try:
        for attempt in ("first push", "second push (same data)"):
            pushed = await push_client(fhir, engine, settings, DEMO_CLIENT, DEMO_DIAGNOSES)
            print(f"{attempt}:")
            for item in pushed:
                verb = "created" if item.created else "already there, matched by identifier"
                print(f"  {item.resource_type}/{item.server_id} ({item.business_id}): {verb}")
        result = await read_back(fhir, settings, DEMO_CLIENT, DEMO_DIAGNOSES)
    finally:
        await fhir.aclose()
        engine.dispose()
    print("read back from the server:")
    print(f"  Patient with MRN {DEMO_CLIENT.mrn}: {result.patient_count}")
    for business_id, count in result.condition_counts.items():
        print(f"  Condition {business_id}: {count}")
    print(f"  content equals what was sent: {'yes' if result.matches_sent else 'NO'}")
    single = result.patient_count == 1 and all(c == 1 for c in result.condition_counts.values())
    return single and result.matches_sent


def main() -> int:
    """Run the slice against the configured server; exit 1 if anything is off."""
    settings = Settings()
    print(f"FHIR server: {settings.fhir_base}")
    ok = asyncio.run(run(settings))
    print("demo slice:", "OK" if ok else "FAILED")
    print(f"look: {settings.fhir_base}/Patient?identifier={settings.mrn_system}|{DEMO_CLIENT.mrn}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
