"""Our own fixture, not another system: a synthetic residential-to-IOP step-down package as
domain objects and as the FHIR our own mappers write for them.

About 25 resources: Patient, 3 Conditions (co-occurring SUD and mental health), the treatment
plan with 5 goals, 8 discharge medications and their List, PHQ-9 and GAD-7, the residential
stay, the ServiceRequest, its Task and the Part 2 Consent, referencing each other by ``urn:uuid``
inside one transaction Bundle. Built with ``mappers``, so it is for what is legitimately ours:
the benchmarks (our mapping against orjson), the fault test (our outbox's payloads) and
component tests of our own code. A test that needs a package *sent by someone else* uses the
simulated residential EHR (``sandbox/residential_ehr.py``, literal FHIR JSON) or a sender in
``sandbox/senders/``. Synthetic people only.

Codes: ICD-10-CM, RxNorm, LOINC and SNOMED CT come from fhir_profiles.terminology, each with
its recorded source.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_profiles import canonical
from fhir_profiles.terminology import clinical
from fhir_profiles.terminology.assessments import PHQ9_TOTAL
from mappers import (
    assessment,
    bundle,
    care_plan,
    condition,
    consent,
    goal,
    medication,
    patient,
    referral,
    referral_task,
    residential,
)
from mappers.assessment import Assessment
from mappers.care_plan import PlannedModality, TreatmentPlan
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.goal import Goal, GoalTarget, Measure, TargetQuantity
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from mappers.patient import Client
from mappers.referral import Referral
from mappers.referral_task import ReferralTask
from mappers.registry import MappingContext
from mappers.residential import ResidentialStay

IOP_ORGANIZATION = "Organization/iop-program"
RESIDENTIAL_ORGANIZATION = "Organization/residential-program"
_MEDS = (
    (clinical.RX_BUP_NAL_FILM_8_2, "1 film under the tongue twice daily", Dose(1, "film"), 2),
    (clinical.RX_SERTRALINE_50, "50 mg by mouth once daily", Dose(50, "mg"), 1),
    (clinical.RX_TRAZODONE_50, "50 mg at bedtime", Dose(50, "mg"), 1),
    (clinical.RX_NALTREXONE_50_TABLET, "50 mg by mouth once daily", Dose(50, "mg"), 1),
    (clinical.RX_ACAMPROSATE_333, "666 mg three times daily", Dose(666, "mg"), 3),
    (clinical.RX_DISULFIRAM_250, "250 mg once daily", Dose(250, "mg"), 1),
    (clinical.RX_TRAZODONE_100, "100 mg at bedtime", Dose(100, "mg"), 1),
    (clinical.RX_BUP_NAL_FILM_2_05, "1 film as directed for cravings", Dose(1, "film"), 1),
)


@dataclass(frozen=True, slots=True)
class StepDownPackage:
    """Everything a residential program sends with one step-down referral."""

    client: Client
    diagnoses: tuple[Diagnosis, ...]
    plan: TreatmentPlan
    medications: MedicationList
    assessments: tuple[Assessment, ...]
    stay: ResidentialStay
    referral: Referral
    task: ReferralTask
    consent: DisclosureConsent


def make_package(
    n: int,
    *,
    discharged: datetime | None = None,
    iop_organization: str = IOP_ORGANIZATION,
    residential_organization: str = RESIDENTIAL_ORGANIZATION,
    language: str | None = None,
    also_disclose_to: tuple[str, ...] = (),
) -> StepDownPackage:
    """The n-th synthetic package; every business identifier carries ``n``. The two Organization
    references are the referring (residential) program and the IOP asked to take the client.
    ``language``: the client's preferred language (a BCP-47 tag), when the package states one;
    ``also_disclose_to``: Organizations the client's Part 2 consent names beside the IOP (an
    aftercare provider known at referral)."""
    tag = f"{n:06d}"
    out = discharged or datetime(2026, 11, 2, 11, 30, tzinfo=UTC)
    client = Client(f"SD-{tag}", "Okafor", ("Jordan",), date(1987, 6, 3), "male", language)
    diagnoses = (
        Diagnosis(
            f"SD-{tag}-DX1",
            "F10.20",
            "Alcohol dependence, uncomplicated",
            onset="2021-08",
            role="primary",
        ),
        Diagnosis(
            f"SD-{tag}-DX2",
            "F43.10",
            "Post-traumatic stress disorder, unspecified",
            onset="2019",
            role="co-occurring",
        ),
        Diagnosis(
            f"SD-{tag}-DX3",
            "F33.1",
            "Major depressive disorder, recurrent, moderate",
            role="co-occurring",
        ),
    )
    return StepDownPackage(
        client=client,
        diagnoses=diagnoses,
        plan=_plan(tag, out.date() + timedelta(days=3)),
        medications=_medications(tag, out),
        assessments=_assessments(tag, out),
        stay=ResidentialStay(f"SD-{tag}-RES", "3.5", out - timedelta(days=28), out, "home"),
        referral=Referral(
            f"SD-{tag}",
            "active",
            "2.1",
            "urn:uuid:placeholder",
            residential_organization,
            iop_organization,
            out - timedelta(days=1),
            out.date() + timedelta(days=3),
        ),
        task=ReferralTask(
            f"SD-{tag}",
            "requested",
            "urn:uuid:placeholder",
            "urn:uuid:placeholder",
            residential_organization,
            out - timedelta(days=1),
            owner=iop_organization,
            business_status="2.0",
        ),
        consent=DisclosureConsent(
            f"SD-{tag}-CONSENT",
            "active",
            "urn:uuid:placeholder",
            out - timedelta(days=2),
            start=out.date() - timedelta(days=2),
            end=out.date() + timedelta(days=365),
            recipients=(iop_organization, *also_disclose_to),
            purposes=("TREAT",),
            data_classes=("ETH",),
            custodian=residential_organization,
        ),
    )


def _plan(tag: str, start: date) -> TreatmentPlan:
    due = start + timedelta(days=60)
    goals = (
        Goal(
            f"SD-{tag}-G1",
            "PHQ-9 total under 10 within 60 days",
            "active",
            "mental-health",
            targets=(GoalTarget(Measure.of(PHQ9_TOTAL), TargetQuantity(10, "<"), due),),
        ),
        Goal(
            f"SD-{tag}-G2",
            "Attend 12 mutual-support meetings in 30 days",
            "active",
            "sobriety",
            targets=(GoalTarget(Measure("Meetings attended"), 12, start + timedelta(days=30)),),
        ),
        Goal(f"SD-{tag}-G3", "Practise two coping skills daily", "active", "life-skills"),
        Goal(f"SD-{tag}-G4", "Repair communication with family", "proposed", "relationships"),
        Goal(f"SD-{tag}-G5", "Return to work part time", "proposed", "employment"),
    )
    group = PlannedModality("group-therapy", 3, 3.0, ("mon", "wed", "thu"), "evening", "in-person")
    cbt = PlannedModality("cbt", 1, 1.0, ("tue",), "evening", "telehealth")
    return TreatmentPlan(
        f"SD-{tag}-PLAN",
        "active",
        "2.1",
        start,
        12,
        (group, cbt),
        30,
        "Partner joins monthly family session",
        "No sessions on Friday evenings",
        goals,
    )


def _medications(tag: str, out: datetime) -> MedicationList:
    entries = tuple(
        MedicationEntry.of(
            code,
            f"SD-{tag}-MED{i}",
            dose_text=text,
            dose=dose,
            times_per_day=per_day,
            start=out.date() - timedelta(days=20),
        )
        for i, (code, text, dose, per_day) in enumerate(_MEDS, start=1)
    )
    return MedicationList(
        f"SD-{tag}-MEDS",
        "Residential discharge medications",
        ListSource.RESIDENTIAL_DISCHARGE,
        out,
        entries,
    )


def _assessments(tag: str, out: datetime) -> tuple[Assessment, ...]:
    at = out - timedelta(hours=3)
    return (
        Assessment(
            f"SD-{tag}-PHQ9",
            "phq-9",
            (2, 2, 3, 2, 1, 2, 1, 1, 0),
            at,
            "completed",
            difficulty="LA6573-5",
        ),
        Assessment(f"SD-{tag}-GAD7", "gad-7", (2, 2, 2, 1, 1, 2, 1), at, "completed"),
    )


CONTEXT = MappingContext()


def to_transaction(package: StepDownPackage, new_uuid: Any = uuid.uuid4) -> dict[str, Any]:
    """The whole package as one transaction of conditional creates keyed on identifiers."""
    url = {key: f"urn:uuid:{new_uuid()}" for key in _KEYS}
    entries: list[dict[str, Any]] = []

    def add(key: str, resource: dict[str, Any], system: str, value: str) -> None:
        entries.append(
            bundle.conditional_create_entry(
                resource, full_url=url[key], if_none_exist=bundle.identifier_query(system, value)
            )
        )

    subject = url["patient"]
    add(
        "patient",
        patient.to_fhir(package.client, mrn_system=CONTEXT.mrn_system),
        CONTEXT.mrn_system,
        package.client.mrn,
    )
    for i, dx in enumerate(package.diagnoses):
        add(
            f"dx{i}",
            condition.to_fhir(dx, id_system=CONTEXT.condition_id_system, subject_reference=subject),
            CONTEXT.condition_id_system,
            dx.identifier,
        )
    dx_refs = [url[f"dx{i}"] for i in range(len(package.diagnoses))]
    for i, g in enumerate(package.plan.goals):
        add(
            f"goal{i}",
            goal.to_fhir(g, goal_id_system=CONTEXT.goal_id_system, subject_reference=subject),
            CONTEXT.goal_id_system,
            g.identifier,
        )
    goal_refs = [url[f"goal{i}"] for i in range(len(package.plan.goals))]
    add(
        "plan",
        care_plan.to_fhir(
            package.plan,
            plan_id_system=CONTEXT.care_plan_id_system,
            subject_reference=subject,
            goal_references=goal_refs,
            condition_references=dx_refs,
        ),
        CONTEXT.care_plan_id_system,
        package.plan.identifier,
    )
    med_refs = []
    for i, entry in enumerate(package.medications.entries):
        add(
            f"med{i}",
            medication.to_fhir(
                entry, id_system=canonical.MEDICATION_STATEMENT_ID_SYSTEM, subject_reference=subject
            ),
            canonical.MEDICATION_STATEMENT_ID_SYSTEM,
            entry.identifier,
        )
        med_refs.append(url[f"med{i}"])
    add(
        "meds",
        medication.list_to_fhir(
            package.medications,
            id_system=canonical.MEDICATION_LIST_ID_SYSTEM,
            subject_reference=subject,
            entry_references=med_refs,
        ),
        canonical.MEDICATION_LIST_ID_SYSTEM,
        package.medications.identifier,
    )
    for i, a in enumerate(package.assessments):
        add(
            f"qr{i}",
            assessment.to_fhir(
                a, id_system=CONTEXT.assessment_id_system, subject_reference=subject
            ),
            CONTEXT.assessment_id_system,
            a.identifier,
        )
    add(
        "stay",
        residential.to_fhir(
            package.stay,
            id_system=CONTEXT.residential_stay_id_system,
            subject_reference=subject,
            service_provider_reference=package.referral.requester,
        ),
        CONTEXT.residential_stay_id_system,
        package.stay.identifier,
    )
    add(
        "consent",
        consent.to_fhir(
            replace(package.consent, patient=subject), id_system=canonical.CONSENT_ID_SYSTEM
        ),
        canonical.CONSENT_ID_SYSTEM,
        package.consent.identifier,
    )
    sr = replace(
        package.referral,
        subject=subject,
        reasons=tuple(dx_refs),
        supporting_info=(url["stay"], url["qr0"], url["qr1"], url["meds"], url["consent"]),
    )
    add(
        "sr",
        referral.to_fhir(sr, id_system=canonical.REFERRAL_ID_SYSTEM),
        canonical.REFERRAL_ID_SYSTEM,
        sr.identifier,
    )
    task = replace(package.task, focus=url["sr"], patient=subject)
    add(
        "task",
        referral_task.to_fhir(task, id_system=canonical.TASK_ID_SYSTEM),
        canonical.TASK_ID_SYSTEM,
        task.identifier,
    )
    return bundle.transaction(entries)


_KEYS = (
    "patient",
    "dx0",
    "dx1",
    "dx2",
    *(f"goal{i}" for i in range(5)),
    "plan",
    *(f"med{i}" for i in range(8)),
    "meds",
    "qr0",
    "qr1",
    "stay",
    "consent",
    "sr",
    "task",
)
