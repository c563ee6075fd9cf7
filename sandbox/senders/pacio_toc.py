"""A sender in the style of HL7 PACIO Transitions of Care: the clinical content of the step-down
travels as a transfer-summary document (a Bundle of type document whose first entry is a
Composition, R4 documents.html) referenced from ServiceRequest.supportingInfo; the Task carries
the placer's identifier typed PLAC (BSeR). Literal FHIR JSON, nothing of iop-bridge imported.

Inside the document: the Patient, the residential Encounter (class NONAC, the ASAM
level as a coding in the sender's own level-of-care system), the Conditions (ICD-10-CM, one
also SNOMED-free text), the discharge MedicationRequests and the PHQ-9 (US Core linkIds).
References inside the document are the document's own urn:uuid fullUrls.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from fhir_http import FhirHttp, Parties, Referred, entry

NAME = "pacio-toc"
BASE = "http://lakeside-post-acute.example/fhir/sid"
ORGANIZATION = {
    "resourceType": "Organization",
    "identifier": [{"system": f"{BASE}/org", "value": "LAKESIDE"}],
    "active": True,
    "name": "Lakeside Recovery Center (synthetic)",
}
TASK_SYSTEM = f"{BASE}/placer"
LOINC = "http://loinc.org"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
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


def _urn(n: int, name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{NAME}/{n}/{name}')}"


def transfer_summary(n: int, parties: Parties, today: date) -> dict[str, Any]:
    """The transfer-summary document Bundle of the n-th referral."""
    discharge, admission = today - timedelta(days=5), today - timedelta(days=40)
    u = {
        k: _urn(n, f"doc/{k}")
        for k in ("composition", "patient", "stay", "oud", "ptsd", "phq9", "rx1", "rx2")
    }
    subject = {"reference": u["patient"]}
    resources: dict[str, dict[str, Any]] = {
        "composition": {
            "resourceType": "Composition",
            "status": "final",
            "type": {
                "coding": [{"system": LOINC, "code": "18761-7", "display": "Transfer summary note"}]
            },
            "subject": subject,
            "date": f"{discharge.isoformat()}T14:00:00-05:00",
            "author": [{"reference": parties.sender}],
            "title": "Transfer summary: residential to intensive outpatient",
            "section": [
                {"title": "Problems", "entry": [{"reference": u["oud"]}, {"reference": u["ptsd"]}]},
                {
                    "title": "Medications",
                    "entry": [{"reference": u["rx1"]}, {"reference": u["rx2"]}],
                },
                {"title": "Encounter", "entry": [{"reference": u["stay"]}]},
                {"title": "Assessments", "entry": [{"reference": u["phq9"]}]},
            ],
        },
        "patient": {
            "resourceType": "Patient",
            "identifier": [{"system": f"{BASE}/patient", "value": f"LK-{n:06d}"}],
            "name": [{"family": "Marsh", "given": ["Riley"]}],
            "gender": "male",
            "birthDate": "1986-02-14",
        },
        "stay": {
            "resourceType": "Encounter",
            "identifier": [{"system": f"{BASE}/encounter", "value": f"LK-ENC-{n:05d}"}],
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "NONAC",
            },
            "type": [
                {
                    "coding": [
                        {
                            "system": f"{BASE}/level-of-care",
                            "code": "3.7",
                            "display": "ASAM Level 3.7 Medically Monitored Intensive Inpatient",
                        }
                    ]
                }
            ],
            "subject": subject,
            "period": {
                "start": f"{admission.isoformat()}T09:00:00-05:00",
                "end": f"{discharge.isoformat()}T11:30:00-05:00",
            },
        },
        "oud": _condition(n, "oud", subject, "F11.20", "Opioid dependence, uncomplicated"),
        "ptsd": _condition(
            n, "ptsd", subject, "F43.10", "Post-traumatic stress disorder, unspecified"
        ),
        "phq9": {
            "resourceType": "QuestionnaireResponse",
            "questionnaire": "http://hl7.org/fhir/us/core/Questionnaire/phq-9-example",
            "status": "completed",
            "subject": subject,
            "authored": f"{discharge.isoformat()}T09:00:00-05:00",
            "item": [
                *[
                    {
                        "linkId": f"/{code}",
                        "answer": [{"valueCoding": {"system": LOINC, "code": FREQUENCY[s]}}],
                    }
                    for code, s in zip(PHQ9_ITEMS, [1, 1, 2, 1, 1, 0, 1, 0, 0], strict=True)
                ],
                {"linkId": "/44261-6", "answer": [{"valueDecimal": 7}]},
            ],
        },
        "rx1": _rx(
            n,
            "rx1",
            subject,
            discharge,
            "1010604",
            "buprenorphine 8 MG / naloxone 2 MG Sublingual Film",
            "1 film daily",
        ),
        "rx2": _rx(
            n,
            "rx2",
            subject,
            discharge,
            "856377",
            "trazodone hydrochloride 50 MG Oral Tablet",
            "50 mg at bedtime",
        ),
    }
    return {
        "resourceType": "Bundle",
        "identifier": {"system": f"{BASE}/document", "value": f"LK-TS-{n:05d}"},
        "type": "document",
        "timestamp": f"{discharge.isoformat()}T14:00:00-05:00",
        "entry": [{"fullUrl": u[k], "resource": r} for k, r in resources.items()],
    }


def _condition(n: int, name: str, subject: dict[str, str], code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "identifier": [{"system": f"{BASE}/problem", "value": f"LK-{name.upper()}-{n:05d}"}],
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
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
        "code": {"coding": [{"system": ICD, "code": code, "display": text}]},
        "subject": subject,
    }


def _rx(
    n: int, name: str, subject: dict[str, str], day: date, code: str, display: str, sig: str
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "identifier": [{"system": f"{BASE}/rx", "value": f"LK-{name.upper()}-{n:05d}"}],
        "status": "active",
        "intent": "plan",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}]
        },
        "subject": subject,
        "authoredOn": f"{day.isoformat()}T10:00:00-05:00",
        "dosageInstruction": [{"text": sig}],
    }


def package(n: int, parties: Parties, today: date) -> dict[str, Any]:
    """The transaction: the Patient, the document Bundle, the ServiceRequest and the Task."""
    u = {k: _urn(n, k) for k in ("patient", "document", "sr", "task")}
    document = transfer_summary(n, parties, today)
    patient = next(
        e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    placer = {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]
        },
        "system": TASK_SYSTEM,
        "value": f"LK-REF-{n:05d}",
    }
    request = {
        "resourceType": "ServiceRequest",
        "identifier": [placer],
        "status": "active",
        "intent": "order",
        "code": {
            "coding": [
                {
                    "system": f"{BASE}/level-of-care",
                    "code": "2.1",
                    "display": "ASAM Level 2.1 Intensive Outpatient",
                }
            ]
        },
        "subject": {"reference": u["patient"]},
        "authoredOn": f"{(today - timedelta(days=5)).isoformat()}T15:00:00-05:00",
        "requester": {"reference": parties.sender},
        "performer": [{"reference": parties.iop}],
        "supportingInfo": [{"reference": u["document"], "display": "Transfer summary"}],
        "note": [{"text": "Prefers morning groups; childcare in the afternoons."}],
    }
    task = {
        "resourceType": "Task",
        "identifier": [placer],
        "status": "requested",
        "intent": "order",
        "focus": {"reference": u["sr"]},
        "for": {"reference": u["patient"]},
        "authoredOn": f"{(today - timedelta(days=5)).isoformat()}T15:05:00-05:00",
        "requester": {"reference": parties.sender},
        "owner": {"reference": parties.iop},
    }
    first = patient["identifier"][0]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(u["patient"], patient, f"identifier={first['system']}|{first['value']}"),
            entry(
                u["document"],
                document,
                f"identifier={document['identifier']['system']}|{document['identifier']['value']}",
            ),
            entry(u["sr"], request, f"identifier={TASK_SYSTEM}|LK-REF-{n:05d}"),
            entry(u["task"], task, f"identifier={TASK_SYSTEM}|LK-REF-{n:05d}"),
        ],
    }


async def refer(client: FhirHttp, iop: tuple[str, str], n: int, today: date) -> Referred:
    """Post the n-th referral; requester and owner are Organizations."""
    parties = await client.parties(ORGANIZATION, iop)
    locations = await client.transaction(package(n, parties, today))
    task = next(loc for loc in locations if loc.startswith("Task/"))
    return Referred(task.split("/")[1], (TASK_SYSTEM, f"LK-REF-{n:05d}"))
