"""A residential program's EHR that writes US Core: the usual shape of a step-down package from
a vendor EHR, as literal FHIR JSON (nothing of iop-bridge is imported).

Its habits: its own MRN system (identifier type MR) and its own identifier systems for every
resource; a Practitioner as the requester; diagnoses as ICD-10-CM written with the HL7 OID and a
text-only one without statuses (US Core health-concern); PHQ-9 and GAD-7 as QuestionnaireResponses
on LOINC's Questionnaire canonicals with prefixed linkIds (PHQ-9, with a total that does not add
up) and a nested group (GAD-7); the discharge medications as MedicationRequests (category
discharge), one with a contained Medication coded RxNorm and NDC; the residential stay as an
Encounter of class IMP with the ASAM level only in its type text and date-only period; Part 2
labels in meta.security; a Consent with a LOINC category and the Part 2 rule named by policy.uri.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from fhir_http import FhirHttp, Parties, Referred, entry

NAME = "us-core-ehr"
BASE = "http://cedar-ridge.example/fhir/sid"
ORGANIZATION = {
    "resourceType": "Organization",
    "identifier": [{"system": f"{BASE}/organization", "value": "CEDAR-RIDGE"}],
    "active": True,
    "name": "Cedar Ridge Residential Recovery (synthetic)",
}
PRACTITIONER = {
    "resourceType": "Practitioner",
    "identifier": [{"system": f"{BASE}/staff", "value": "STAFF-0042"}],
    "name": [{"family": "Okafor", "given": ["Dana"], "prefix": ["Dr."]}],
}
TASK_SYSTEM = f"{BASE}/referral"
PART2_LABELS = [
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"},
    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
]
LOINC = "http://loinc.org"
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


def _id(n: int, kind: str) -> dict[str, str]:
    return {"system": f"{BASE}/{kind}", "value": f"CR-{kind.upper()}-{n:05d}"}


def package(n: int, parties: Parties, practitioner: str, today: date) -> dict[str, Any]:
    """The n-th referral as one transaction Bundle (urn:uuid references between entries)."""
    discharge, admission = today - timedelta(days=3), today - timedelta(days=33)
    ids = {
        name: _urn(n, name)
        for name in (
            "patient",
            "sud",
            "mdd",
            "stay",
            "phq9",
            "gad7",
            "med1",
            "med2",
            "med3",
            "consent",
            "sr",
            "task",
        )
    }
    patient = {
        "resourceType": "Patient",
        "meta": {"security": PART2_LABELS},
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ],
                    "text": "Medical Record Number",
                },
                "system": f"{BASE}/mrn",
                "value": f"CR-{n:06d}",
            }
        ],
        "name": [{"use": "official", "family": "Quill", "given": ["Jordan", "Avery"]}],
        "gender": "female",
        "birthDate": "1991-07",
        "address": [{"city": "Springfield", "state": "CO"}],
    }
    subject = {"reference": ids["patient"]}
    sud = {
        "resourceType": "Condition",
        "meta": {"security": PART2_LABELS},
        "identifier": [_id(n, "problem-a")],
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
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "urn:oid:2.16.840.1.113883.6.90",
                    "code": "F10.20",
                    "display": "Alcohol dependence, uncomplicated",
                }
            ],
            "text": "Alcohol use disorder, severe",
        },
        "subject": subject,
        "onsetDateTime": "2019",
    }
    mdd = {
        "resourceType": "Condition",
        "identifier": [_id(n, "problem-b")],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                        "code": "health-concern",
                    }
                ]
            }
        ],
        "code": {"text": "Major depressive disorder, recurrent, moderate"},
        "subject": subject,
    }
    stay = {
        "resourceType": "Encounter",
        "meta": {"security": PART2_LABELS},
        "identifier": [_id(n, "visit")],
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "inpatient encounter",
        },
        "type": [{"text": "Residential SUD treatment - ASAM Level 3.5"}],
        "subject": subject,
        "period": {"start": admission.isoformat(), "end": discharge.isoformat()},
        "hospitalization": {"dischargeDisposition": {"text": "Step-down to intensive outpatient"}},
        "serviceProvider": {"reference": parties.sender},
    }
    phq9 = _phq9(n, subject, discharge, [2, 2, 1, 2, 1, 1, 1, 0, 0], stated_total=12)
    gad7 = _gad7(n, subject, discharge, [2, 1, 2, 1, 0, 1, 1])
    meds = [
        _med_request(
            n,
            "med1",
            subject,
            practitioner,
            discharge,
            contained={
                "resourceType": "Medication",
                "id": "m1",
                "code": {
                    "coding": [
                        {
                            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                            "code": "312941",
                            "display": "sertraline 50 MG Oral Tablet",
                        },
                        # the dispensed package: sertraline 50 mg tablets, bottle of 30 (the
                        # labeler's label, "How supplied": NDC 68533-056-12)
                        {"system": "http://hl7.org/fhir/sid/ndc", "code": "68533-056-12"},
                    ]
                },
            },
            dosage={
                "text": "50 mg by mouth once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg"}}],
            },
        ),
        _med_request(
            n,
            "med2",
            subject,
            practitioner,
            discharge,
            concept={
                "coding": [
                    {
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "1483744",
                        "display": "naltrexone hydrochloride 50 MG Oral Tablet",
                    }
                ],
            },
            dosage={"text": "50 mg by mouth daily"},
        ),
        _med_request(
            n,
            "med3",
            subject,
            practitioner,
            discharge,
            concept={"text": "Trazodone 50 mg tablet"},
            dosage={"text": "50 mg at bedtime as needed for sleep"},
        ),
    ]
    consent = {
        "resourceType": "Consent",
        "identifier": [_id(n, "consent")],
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
                    {
                        "system": LOINC,
                        "code": "64292-6",
                        "display": "Release of information consent",
                    }
                ]
            }
        ],
        "patient": subject,
        "dateTime": (discharge - timedelta(days=2)).isoformat(),
        "organization": [{"reference": parties.sender}],
        "policy": [{"uri": "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"}],
        "provision": {
            "type": "permit",
            "period": {
                "start": (discharge - timedelta(days=2)).isoformat(),
                "end": (discharge + timedelta(days=365)).isoformat(),
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
                    "reference": {"reference": parties.iop},
                }
            ],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
        },
    }
    request = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": TASK_SYSTEM, "value": f"CR-REF-{n:05d}"}],
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "409063005",
                        "display": "Counseling",
                    }
                ]
            }
        ],
        "code": {"text": "Intensive outpatient program, ASAM level 2.1"},
        "subject": subject,
        "authoredOn": discharge.isoformat(),
        "requester": {"reference": practitioner},
        "performer": [{"reference": parties.iop}],
        "reasonReference": [{"reference": ids["sud"]}, {"reference": ids["mdd"]}],
        "supportingInfo": [
            {"reference": ids[k]}
            for k in ("stay", "phq9", "gad7", "med1", "med2", "med3", "consent")
        ],
        "note": [{"text": "Works days: prefers an evening group schedule (3 evenings a week)."}],
    }
    task = {
        "resourceType": "Task",
        "identifier": [{"system": TASK_SYSTEM, "value": f"CR-REF-{n:05d}"}],
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": ids["sr"]},
        "for": subject,
        "authoredOn": f"{discharge.isoformat()}T16:00:00-06:00",
        "requester": {"reference": practitioner},
        "owner": {"reference": parties.iop},
    }
    resources = [
        ("patient", patient, "mrn"),
        ("sud", sud, None),
        ("mdd", mdd, None),
        ("stay", stay, None),
        ("phq9", phq9, None),
        ("gad7", gad7, None),
        *[(f"med{i}", m, None) for i, m in enumerate(meds, 1)],
        ("consent", consent, None),
        ("sr", request, None),
        ("task", task, None),
    ]
    entries = []
    for name, resource, _ in resources:
        first = (
            resource["identifier"][0]
            if isinstance(resource["identifier"], list)
            else (resource["identifier"])
        )
        condition = f"identifier={first['system']}|{first['value']}"
        entries.append(entry(ids[name], resource, condition))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _phq9(
    n: int, subject: dict[str, str], day: date, scores: list[int], stated_total: int
) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {
            "linkId": f"phq9-item-{i}/{code}",
            "code": [{"system": LOINC, "code": code}],
            "answer": [{"valueCoding": {"system": LOINC, "code": FREQUENCY[score]}}],
        }
        for i, (code, score) in enumerate(zip(PHQ9_ITEMS, scores, strict=True), 1)
    ]
    items.append({"linkId": "phq9-total/44261-6", "answer": [{"valueInteger": stated_total}]})
    return {
        "resourceType": "QuestionnaireResponse",
        "meta": {"security": PART2_LABELS},
        "identifier": _id(n, "phq9"),
        "questionnaire": "http://loinc.org/q/44249-1|2.72",
        "status": "completed",
        "subject": subject,
        "authored": f"{day.isoformat()}T10:15:00-06:00",
        "item": items,
    }


def _gad7(n: int, subject: dict[str, str], day: date, scores: list[int]) -> dict[str, Any]:
    worry = {0: "LA6568-5", 1: "LA6569-3", 2: "LA18938-3", 3: "LA6571-9"}
    answers = [
        {
            "linkId": f"/{code}",
            "answer": [
                {
                    "valueCoding": {
                        "system": LOINC,
                        "code": (worry if code == "68509-9" else FREQUENCY)[s],
                    }
                }
            ],
        }
        for code, s in zip(GAD7_ITEMS, scores, strict=True)
    ]
    return {
        "resourceType": "QuestionnaireResponse",
        "identifier": _id(n, "gad7"),
        "questionnaire": "http://loinc.org/q/69737-5",
        "status": "completed",
        "subject": subject,
        "authored": f"{day.isoformat()}T10:20:00-06:00",
        "item": [
            {
                "linkId": "gad7",
                "text": "GAD-7",
                "item": [
                    *answers,
                    {"linkId": "/70274-6", "answer": [{"valueInteger": sum(scores)}]},
                ],
            }
        ],
    }


def _med_request(
    n: int,
    name: str,
    subject: dict[str, str],
    practitioner: str,
    day: date,
    *,
    dosage: dict[str, Any],
    concept: dict[str, Any] | None = None,
    contained: dict[str, Any] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "MedicationRequest"}
    if contained is not None:
        resource["contained"] = [contained]
    resource |= {
        "identifier": [_id(n, f"rx-{name}")],
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                        "code": "discharge",
                    }
                ]
            }
        ],
        "subject": subject,
        "authoredOn": day.isoformat(),
        "requester": {"reference": practitioner},
        "dosageInstruction": [dosage],
    }
    if contained is not None:
        resource["medicationReference"] = {"reference": f"#{contained['id']}"}
    else:
        resource["medicationCodeableConcept"] = concept
    return resource


async def refer(client: FhirHttp, iop: tuple[str, str], n: int, today: date) -> Referred:
    """Post the n-th referral; the Task is owned by the IOP and requested by a Practitioner."""
    parties = await client.parties(ORGANIZATION, iop)
    practitioner = await client.ensure(PRACTITIONER)
    locations = await client.transaction(package(n, parties, practitioner, today))
    task = next(loc for loc in locations if loc.startswith("Task/"))
    return Referred(task.split("/")[1], (TASK_SYSTEM, f"CR-REF-{n:05d}"))
