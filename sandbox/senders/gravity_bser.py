"""A referral platform in the style of the Gravity SDOH Clinical Care and BSeR IGs: the parties
are PractitionerRoles, references to what is already on the server are absolute URLs, and the
screenings are Observations (US Core screening-assessment): the PHQ-9 as a panel with
``hasMember`` item Observations, the GAD-7 as a panel with components. Literal FHIR JSON,
nothing of iop-bridge imported.

It posts in two steps, as such platforms do: the clinical record first, then the referral
(ServiceRequest, Task, Consent) pointing at it by absolute URL.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from fhir_http import FhirHttp, Parties, Referred, entry

NAME = "gravity-bser"
BASE = "http://pinecrest.example/fhir/sid"
ORGANIZATION = {
    "resourceType": "Organization",
    "identifier": [{"system": f"{BASE}/org", "value": "PINECREST"}],
    "active": True,
    "name": "Pinecrest Treatment Campus (synthetic)",
}
TASK_SYSTEM = f"{BASE}/referral"
LOINC = "http://loinc.org"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SURVEY = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}
    ]
}
FREQUENCY = {0: "LA6568-5", 1: "LA6569-3", 2: "LA6570-1", 3: "LA6571-9"}
PHQ9_ITEMS = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]
GAD7_ITEMS = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]


def _urn(n: int, name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{NAME}/{n}/{name}')}"


def _identifier(n: int, kind: str) -> dict[str, str]:
    return {"system": f"{BASE}/{kind}", "value": f"PC-{kind.upper()}-{n:05d}"}


def _if_none(resource: dict[str, Any]) -> str:
    first = resource["identifier"][0]
    return f"identifier={first['system']}|{first['value']}"


def record(n: int, parties: Parties, today: date) -> dict[str, Any]:
    """Step 1: the Patient, the diagnoses, the residential stay and the screenings."""
    discharge = today - timedelta(days=2)
    names = ["patient", "sud", "gad", "stay", "phq9", "gad7", *[f"phq9-{c}" for c in PHQ9_ITEMS]]
    u = {k: _urn(n, k) for k in names}
    subject = {"reference": u["patient"]}
    effective = f"{discharge.isoformat()}T08:30:00-07:00"
    phq9_scores = [3, 2, 2, 1, 2, 1, 1, 1, 0]
    items = [
        {
            "resourceType": "Observation",
            "identifier": [_identifier(n, f"phq9-{code}")],
            "status": "final",
            "category": [SURVEY],
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": subject,
            "effectiveDateTime": effective,
            "valueCodeableConcept": {"coding": [{"system": LOINC, "code": FREQUENCY[s]}]},
        }
        for code, s in zip(PHQ9_ITEMS, phq9_scores, strict=True)
    ]
    resources: dict[str, dict[str, Any]] = {
        "patient": {
            "resourceType": "Patient",
            "identifier": [{"system": f"{BASE}/person", "value": f"PC-{n:06d}"}],
            "name": [{"family": "Delgado", "given": ["Sam"]}],
            "gender": "other",
            "birthDate": "1979-11-30",
        },
        "sud": {
            "resourceType": "Condition",
            "identifier": [_identifier(n, "dx-sud")],
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "encounter-diagnosis",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": ICD,
                        "code": "F10.20",
                        "display": "Alcohol dependence, uncomplicated",
                    }
                ]
            },
            "subject": subject,
        },
        "gad": {
            "resourceType": "Condition",
            "identifier": [_identifier(n, "dx-gad")],
            "code": {
                "coding": [
                    {"system": ICD, "code": "F41.1", "display": "Generalized anxiety disorder"}
                ]
            },
            "subject": subject,
        },
        "stay": {
            "resourceType": "Encounter",
            "identifier": [_identifier(n, "stay")],
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "ACUTE",
            },
            "serviceType": {"text": "Residential treatment, ASAM 3.7"},
            "subject": subject,
            "period": {
                "start": (discharge - timedelta(days=28)).isoformat(),
                "end": discharge.isoformat(),
            },
        },
        "phq9": {
            "resourceType": "Observation",
            "identifier": [_identifier(n, "phq9")],
            "status": "final",
            "category": [SURVEY],
            "code": {"coding": [{"system": LOINC, "code": "44249-1"}]},
            "subject": subject,
            "effectiveDateTime": effective,
            "hasMember": [{"reference": u[f"phq9-{c}"]} for c in PHQ9_ITEMS],
        },
        "gad7": {
            "resourceType": "Observation",
            "identifier": [_identifier(n, "gad7")],
            "status": "final",
            "category": [SURVEY],
            "code": {"coding": [{"system": LOINC, "code": "69737-5"}]},
            "subject": subject,
            "effectiveDateTime": effective,
            "component": [
                *[
                    {
                        "code": {"coding": [{"system": LOINC, "code": code}]},
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": LOINC,
                                    "code": (
                                        "LA18938-3"
                                        if code == "68509-9" and s == 2
                                        else FREQUENCY[s]
                                    ),
                                }
                            ]
                        },
                    }
                    for code, s in zip(GAD7_ITEMS, [1, 2, 1, 1, 0, 1, 0], strict=True)
                ],
                {"code": {"coding": [{"system": LOINC, "code": "70274-6"}]}, "valueInteger": 6},
            ],
        },
        **{f"phq9-{code}": item for code, item in zip(PHQ9_ITEMS, items, strict=True)},
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [entry(u[k], r, _if_none(r)) for k, r in resources.items()],
    }


def referral(
    n: int,
    parties: Parties,
    role: str,
    on_server: dict[str, str],
    today: date,
    owner: str | None = None,
    absolute: bool = True,
) -> dict:
    """Step 2: Consent, ServiceRequest and Task, pointing at step 1 by absolute URL (relative when
    not ``absolute``: a server that refuses external references, as HAPI's stock defaults do);
    the Task owned by ``owner`` (the IOP's Organization unless given: a PractitionerRole)."""
    base = parties.base if absolute else ""
    u = {k: _urn(n, k) for k in ("consent", "sr", "task")}
    here = {k: {"reference": base + ref} for k, ref in on_server.items()}
    authored = f"{(today - timedelta(days=2)).isoformat()}T12:00:00-07:00"
    consent = {
        "resourceType": "Consent",
        "identifier": [_identifier(n, "consent")],
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}
                ]
            }
        ],
        "patient": here["patient"],
        "dateTime": authored,
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"}
            ]
        },
        "provision": {
            "type": "permit",
            "period": {
                "start": (today - timedelta(days=2)).isoformat(),
                "end": (today + timedelta(days=180)).isoformat(),
            },
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": base + parties.iop},
                },
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": role},
                },
            ],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
            "securityLabel": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}
            ],
        },
    }
    placer = {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]
        },
        "system": TASK_SYSTEM,
        "value": f"PC-REF-{n:05d}",
    }
    request = {
        "resourceType": "ServiceRequest",
        "identifier": [placer],
        "status": "active",
        "intent": "order",
        "code": {"text": "Referral to intensive outpatient substance use treatment"},
        "subject": here["patient"],
        "authoredOn": authored,
        "requester": {"reference": role},
        "performer": [{"reference": base + parties.iop}],
        "reasonReference": [here["sud"], here["gad"]],
        "supportingInfo": [here["stay"], here["phq9"], here["gad7"], {"reference": u["consent"]}],
        "note": [{"text": "Needs an evening schedule: works 8-4 weekdays."}],
    }
    task = {
        "resourceType": "Task",
        "identifier": [placer],
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": u["sr"]},
        "for": here["patient"],
        "authoredOn": authored,
        "requester": {"reference": role},
        # the owner stays relative: the IOP finds its Tasks by search (owner=Organization/id,
        # or owner:PractitionerRole.organization=...), and a FHIR server indexes only local
        # references for that
        "owner": {"reference": owner or parties.iop},
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(u["consent"], consent, _if_none(consent)),
            entry(u["sr"], request, f"identifier={TASK_SYSTEM}|PC-REF-{n:05d}"),
            entry(u["task"], task, f"identifier={TASK_SYSTEM}|PC-REF-{n:05d}"),
        ],
    }


async def refer(
    client: FhirHttp,
    iop: tuple[str, str],
    n: int,
    today: date,
    *,
    owner: str = "organization",
    absolute: bool = True,
) -> Referred:
    """Post the record, then the referral requested by a PractitionerRole of the platform.

    ``owner``: who the Task is addressed to: ``organization`` (the IOP's Organization),
    ``iop-role`` (a PractitionerRole of the IOP's Organization that the platform posts for the
    program's intake desk, as its directory holds one for each receiving program) or
    ``sender-role`` (the platform's own coordinator role: addressed to nobody at the IOP).
    ``absolute``: step 2 points at step 1 by absolute URL (else relative)."""
    parties = await client.parties(ORGANIZATION, iop)
    role = await client.ensure(
        {
            "resourceType": "PractitionerRole",
            "identifier": [{"system": f"{BASE}/role", "value": "CASE-COORDINATOR-7"}],
            "active": True,
            "organization": {"reference": parties.sender},
            "code": [{"text": "Referral coordinator"}],
        }
    )
    addressee = {"organization": None, "sender-role": role}.get(owner)
    if owner == "iop-role":
        addressee = await client.ensure(
            {
                "resourceType": "PractitionerRole",
                "identifier": [{"system": f"{BASE}/receiving-role", "value": f"{iop[1]}-INTAKE"}],
                "active": True,
                "organization": {"reference": parties.iop},
                "code": [{"text": "Intake coordinator, intensive outpatient program"}],
            }
        )
    first = record(n, parties, today)
    keys = ["patient", "sud", "gad", "stay", "phq9", "gad7"]
    locations = await client.transaction(first)
    on_server = dict(zip(keys, locations[: len(keys)], strict=True))
    second = await client.transaction(
        referral(n, parties, role, on_server, today, addressee, absolute)
    )
    task = next(loc for loc in second if loc.startswith("Task/"))
    return Referred(task.split("/")[1], (TASK_SYSTEM, f"PC-REF-{n:05d}"))
