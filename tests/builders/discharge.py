"""Builders for the IOP discharge summary and its document Bundle. Synthetic data only; plain
functions with keyword overrides. Document references are urn:uuid fullUrls, fixed here so that
tests can name them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from fhir_profiles.canonical import ORGANIZATION_ID_SYSTEM, PRACTITIONER_ROLE_ID_SYSTEM
from mappers import (
    assessment,
    care_plan,
    condition,
    encounter,
    medication,
    patient,
    practitioner_role,
)
from mappers.discharge import (
    AftercarePlan,
    CourseOfTreatment,
    DischargeSummary,
    DocumentedDiagnosis,
    DocumentedMedications,
    FinalScore,
    PlanOfCare,
)
from mappers.discharge_document import to_document_bundle
from mappers.medication import ListSource, MedicationList
from tests.builders import CONDITION_SYSTEM, MRN_SYSTEM, make_client, make_diagnosis
from tests.builders.plans import PLAN_SYSTEM, make_plan
from tests.builders.referrals import (
    EASTERN,
    MED_LIST_SYSTEM,
    MEDICATION_SYSTEM,
    make_buprenorphine,
    make_sertraline,
)
from tests.builders.sessions import (
    ASSESSMENT_SYSTEM,
    SESSION_SYSTEM,
    make_gad7,
    make_phq9,
    make_session,
)


def urn(number: int) -> str:
    """A fixed, valid urn:uuid fullUrl for test resource ``number``."""
    return f"urn:uuid:00000000-0000-4000-8000-{number:012d}"


PATIENT = urn(1)
IOP_PROGRAM = urn(2)
NEXT_PROVIDER = urn(3)
DX_ALCOHOL = urn(4)
DX_DEPRESSION = urn(5)
MED_LIST = urn(6)
CARE_PLAN = urn(7)
PHQ9 = urn(8)
GAD7 = urn(9)
IOP_ROLE = urn(10)  # the IOP's PractitionerRole: the document's author
STATEMENT_BASE = 20  # statement i of the medication list is urn(20 + i)
COMPOSITION_ID = "00000000-0000-4000-8000-0000000000c0"
BUNDLE_ID = "00000000-0000-4000-8000-0000000000b0"
TIMESTAMP = datetime(2024, 12, 20, 16, 0, tzinfo=EASTERN)
# 42 CFR 2.32(a)(2), the short form, as published in the eCFR from 83 FR 251 (2018) to the 2024
# final rule; a program's compliance office supplies the current text in production.
PART2_NOTICE = "42 CFR part 2 prohibits unauthorized disclosure of these records."


def make_reconciled_list(**overrides: Any) -> MedicationList:
    """The reconciled list at IOP discharge: sertraline continued, buprenorphine/naloxone."""
    base = MedicationList(
        identifier="MEDLIST-TEST-0009",
        title="Reconciled medication list",
        source=ListSource.RECONCILED,
        date=datetime(2024, 12, 19, 10, 0, tzinfo=EASTERN),
        entries=(make_sertraline(), make_buprenorphine()),
    )
    return replace(base, **overrides)


def make_aftercare(**overrides: Any) -> AftercarePlan:
    """Weekly outpatient therapy, two support groups, 988 always given."""
    base = AftercarePlan(
        next_provider=NEXT_PROVIDER,
        next_provider_name="Harbor Street Outpatient Counseling",
        relapse_prevention="Triggers: payday, old friends; call sponsor; leave within 5 minutes",
        medication_follow_up="Prescriber visit for sertraline and buprenorphine within 14 days",
        support_groups=("SMART Recovery, Tuesday evenings", "IOP alumni group, monthly"),
    )
    return replace(base, **overrides)


def make_discharge_summary(**overrides: Any) -> DischargeSummary:
    """A 12-week IOP stay ending in step-down to outpatient care; an SUD diagnosis is included,
    so the Part 2 notice is too."""
    alcohol = make_diagnosis(identifier="DX-TEST-0001", role="primary")
    depression = make_diagnosis(
        identifier="DX-TEST-0002",
        icd10_code="F33.1",
        display="Major depressive disorder, recurrent, moderate",
        role="co-occurring",
    )
    base = DischargeSummary(
        identifier="DS-TEST-0001",
        subject=PATIENT,
        author=IOP_ROLE,
        custodian=IOP_PROGRAM,
        discharged=datetime(2024, 12, 20, 15, 30, tzinfo=EASTERN),
        course=CourseOfTreatment(12, 33, 3, "Completed the program; PHQ-9 fell from 14 to 6."),
        diagnoses=(
            DocumentedDiagnosis(DX_ALCOHOL, alcohol),
            DocumentedDiagnosis(DX_DEPRESSION, depression),
        ),
        medications=DocumentedMedications(MED_LIST, make_reconciled_list()),
        aftercare=make_aftercare(),
        plan_of_care=PlanOfCare(CARE_PLAN, "Group therapy and CBT, 10 hours a week for 12 weeks"),
        phq9=FinalScore(PHQ9, make_phq9(item_scores=(1, 1, 1, 1, 0, 1, 1, 0, 0))),
        gad7=FinalScore(GAD7, make_gad7(item_scores=(1, 1, 1, 0, 0, 1, 0))),
        part2_notice=PART2_NOTICE,
    )
    return replace(base, **overrides)


def organization(name: str, identifier: str) -> dict[str, Any]:
    """A minimal Organization (iop-bridge has no Organization mapper)."""
    return {
        "resourceType": "Organization",
        "identifier": [{"system": ORGANIZATION_ID_SYSTEM, "value": identifier}],
        "active": True,
        "name": name,
    }


def statement_urls(med_list: MedicationList) -> tuple[str, ...]:
    """One urn:uuid fullUrl per entry of ``med_list``."""
    return tuple(urn(STATEMENT_BASE + i) for i in range(len(med_list.entries)))


def document_entries(summary: DischargeSummary) -> dict[str, dict[str, Any]]:
    """Every resource the summary's Composition references, keyed by fullUrl, as the caller of
    to_document_bundle would build them with the concept mappers."""
    subject = summary.subject
    entries: dict[str, dict[str, Any]] = {
        subject: patient.to_fhir(make_client(), mrn_system=MRN_SYSTEM),
    }
    if summary.custodian not in entries:
        entries[summary.custodian] = organization("Riverside IOP", "ORG-IOP-TEST")
    for documented in summary.diagnoses:
        entries[documented.reference] = condition.to_fhir(
            documented.diagnosis, id_system=CONDITION_SYSTEM, subject_reference=subject
        )
    med_list = summary.medications.medication_list
    urls = statement_urls(med_list)
    entries[summary.medications.reference] = medication.list_to_fhir(
        med_list, id_system=MED_LIST_SYSTEM, subject_reference=subject, entry_references=urls
    )
    for url, entry in zip(urls, med_list.entries, strict=True):
        entries[url] = medication.to_fhir(
            entry, id_system=MEDICATION_SYSTEM, subject_reference=subject
        )
    if summary.plan_of_care is not None:
        plan = make_plan(goals=(), start=date(2024, 9, 27))
        refs = [d.reference for d in summary.diagnoses]
        entries[summary.plan_of_care.reference] = care_plan.to_fhir(
            plan, plan_id_system=PLAN_SYSTEM, subject_reference=subject, condition_references=refs
        )
    for score in (summary.phq9, summary.gad7):
        if score is not None:
            entries[score.reference] = assessment.to_fhir(
                score.assessment, id_system=ASSESSMENT_SYSTEM, subject_reference=subject
            )
    name = summary.aftercare.next_provider_name
    entries[summary.aftercare.next_provider] = organization(name, "ORG-NEXT-TEST")
    if summary.encounter is not None:  # the IOP's last session (PACIO TOC encounter)
        entries[summary.encounter] = encounter.to_fhir(
            make_session(), id_system=SESSION_SYSTEM, subject_reference=subject
        )
    if summary.author not in entries:  # the IOP's PractitionerRole (PACIO TOC author)
        entries[summary.author] = practitioner_role.to_fhir(
            identifier="ORG-IOP-TEST", id_system=PRACTITIONER_ROLE_ID_SYSTEM,
            organization_reference=summary.custodian, organization_name="Riverside IOP",
        )  # fmt: skip
    return entries


def make_document(summary: DischargeSummary | None = None, **kwargs: Any) -> dict[str, Any]:
    """A document Bundle of ``summary`` (the default summary if None), with every resource it
    references among its entries unless ``entries`` is given."""
    summary = summary or make_discharge_summary()
    kwargs.setdefault("entries", document_entries(summary))
    return to_document_bundle(
        summary,
        composition_id=COMPOSITION_ID,
        bundle_identifier=BUNDLE_ID,
        timestamp=TIMESTAMP,
        **kwargs,
    )


def composition_of(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Composition, the first entry of a document Bundle."""
    resource: dict[str, Any] = bundle["entry"][0]["resource"]
    return resource


def make_summary_without_sud() -> DischargeSummary:
    """The default summary with the depression diagnosis only and no MOUD medication (a
    buprenorphine entry alone makes a Part 2 record): no SUD record, no Part 2 notice."""
    summary = make_discharge_summary()
    depression = summary.diagnoses[1]
    entries = tuple(e for e in summary.medications.medication_list.entries if not e.is_moud)
    meds = replace(summary.medications.medication_list, entries=entries)
    return make_discharge_summary(
        diagnoses=(depression,),
        part2_notice=None,
        medications=replace(summary.medications, medication_list=meds),
    )
