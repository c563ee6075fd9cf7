"""Conformance judged by the real validator: HAPI's $validate against our uploaded profiles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.schema_examples import EXAMPLE_SUBMISSION
from api.schemas import ReferralSubmission
from fhir_profiles.canonical import MEDICATION_REQUEST_ID_SYSTEM as MEDICATION_REQUEST_SYSTEM
from fhir_profiles.registry import conformance_resources, example_resources
from fhir_profiles.terminology.workflow import MEDICATION_COMMUNITY, MEDICATION_DISCHARGE
from integration.fhir.client import FhirClient
from integration.fhir.conformance import upload_conformance, validate
from mappers import (
    asam_intake,
    assessment,
    care_plan,
    condition,
    consent,
    encounter,
    goal,
    medication,
    medication_request,
    patient,
    practitioner_role,
    referral,
    referral_task,
    residential,
)
from mappers.referral_package.builder import package_bundle
from mappers.referral_package.submission import rewrite_references
from mappers.registry import MappingContext
from tests.builders import CONDITION_SYSTEM, MRN_SYSTEM
from tests.builders.plans import GOAL_SYSTEM, PLAN_SYSTEM
from tests.builders.referrals import (
    CONSENT_SYSTEM,
    MED_LIST_SYSTEM,
    MEDICATION_SYSTEM,
    REFERRAL_SYSTEM,
    TASK_SYSTEM,
    make_sertraline,
)
from tests.builders.sessions import ASSESSMENT_SYSTEM, SESSION_SYSTEM, STAY_SYSTEM
from tests.strategies.assessment import assessments, intake_assessments
from tests.strategies.care_plan import treatment_plans
from tests.strategies.condition import diagnoses
from tests.strategies.consent import consents
from tests.strategies.encounter import residential_stays, sessions
from tests.strategies.goal import goals
from tests.strategies.medication import medication_entries, medication_lists
from tests.strategies.patient import clients
from tests.strategies.referral import referral_tasks, referrals

pytestmark = [pytest.mark.live, pytest.mark.anyio]
SAMPLES_PER_MAPPER = 20


@pytest.fixture
async def loaded(fhir: FhirClient, us_core: None) -> FhirClient:
    # Upload before validating: HAPI caches "unknown profile" answers (hapi-fhir #5707).
    await upload_conformance(fhir, conformance_resources())
    return fhir


async def _assert_valid(fhir: FhirClient, resource: dict[str, Any]) -> None:
    report = await validate(fhir, resource)
    assert report.errors == (), f"{resource['resourceType']}: {[str(e) for e in report.errors]}"


async def test_validator__is_really_checking_our_profiles(loaded: FhirClient) -> None:
    resource = patient.to_fhir(_any_client(), mrn_system=MRN_SYSTEM)
    del resource["birthDate"]
    report = await validate(loaded, resource)
    assert any("birthDate" in p.message or "birthDate" in p.path for p in report.errors)


async def test_validator__is_really_checking_us_core(loaded: FhirClient) -> None:
    # A ServiceRequest claims US Core directly; US Core (not base R4) makes code 1..1.
    resource = referral.to_fhir(_any_referral(), id_system=REFERRAL_SYSTEM)
    del resource["code"]
    report = await validate(loaded, resource)
    assert any("us-core-servicerequest" in p.message for p in report.errors), report.errors


async def test_validator__our_profiles_inherit_us_core(loaded: FhirClient) -> None:
    # iop-condition derives from US Core problems and health concerns, whose category slice
    # (required binding) base R4 and our own differential do not have.
    resource = condition.to_fhir(
        _any_diagnosis(), id_system=CONDITION_SYSTEM, subject_reference=SUBJECT
    )
    resource["category"] = [{"text": "no coded category"}]
    report = await validate(loaded, resource)
    assert any("us-core" in p.message for p in report.errors), report.errors


async def test_validator__our_medication_request_inherits_us_core(loaded: FhirClient) -> None:
    # US Core's us-core-21: an order names its requester. Ours is a reported plan; made an
    # order without a requester, it must fail on US Core's own invariant.
    resource = medication_request.to_fhir(
        _any_medication(), id_system=MEDICATION_REQUEST_SYSTEM, subject_reference=SUBJECT,
        category=MEDICATION_COMMUNITY,
    )  # fmt: skip
    resource["intent"] = "order"
    report = await validate(loaded, resource)
    assert any("us-core-21" in p.message for p in report.errors), report.errors


@pytest.mark.parametrize(
    "example", example_resources(), ids=lambda r: f"{r['resourceType']}-{r['id']}"
)
async def test_examples__validate_with_zero_errors(
    loaded: FhirClient, example: dict[str, Any]
) -> None:
    assert example["meta"]["profile"], "every example claims a profile"
    await _assert_valid(loaded, example)


SUBJECT = "Patient/iop-ex-patient"
TIMESTAMP = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
ORG = "Organization/iop-ex-org"
ROLE_SYSTEM = MappingContext().practitioner_role_id_system


@dataclass(frozen=True)
class Case:
    """One mapper whose generated output must validate: a strategy and how to map a draw."""

    name: str
    strategy: st.SearchStrategy[Any]
    to_fhir: Callable[[Any], dict[str, Any]]


CASES = [
    Case("patient", clients(), lambda c: patient.to_fhir(c, mrn_system=MRN_SYSTEM)),
    Case("condition", diagnoses(), lambda d: condition.to_fhir(
        d, id_system=CONDITION_SYSTEM, subject_reference=SUBJECT)),
    Case("goal", goals(), lambda g: goal.to_fhir(
        g, goal_id_system=GOAL_SYSTEM, subject_reference=SUBJECT)),
    Case("care-plan", treatment_plans(), lambda p: care_plan.to_fhir(
        p, plan_id_system=PLAN_SYSTEM, subject_reference=SUBJECT,
        goal_references=[f"Goal/goal-{i}" for i in range(len(p.goals))])),
    Case("session", sessions(), lambda x: encounter.to_fhir(
        x, id_system=SESSION_SYSTEM, subject_reference=SUBJECT)),
    Case("residential-stay", residential_stays(), lambda x: residential.to_fhir(
        x, id_system=STAY_SYSTEM, subject_reference=SUBJECT, service_provider_reference=ORG)),
    Case("assessment", assessments(), lambda a: assessment.to_fhir(
        a, id_system=ASSESSMENT_SYSTEM, subject_reference=SUBJECT)),
    Case("asam-intake", intake_assessments(), lambda a: asam_intake.to_fhir(
        a, id_system=ASSESSMENT_SYSTEM, subject_reference=SUBJECT)),
    Case("medication-request", medication_entries(), lambda m: medication_request.to_fhir(
        m, id_system=MEDICATION_REQUEST_SYSTEM, subject_reference=SUBJECT,
        category=MEDICATION_COMMUNITY, authored_on=TIMESTAMP)),
    Case("medication-request-discharge", medication_entries(), lambda m: medication_request.to_fhir(
        m, id_system=MEDICATION_REQUEST_SYSTEM, subject_reference=SUBJECT,
        category=MEDICATION_DISCHARGE)),
    # No iop-bridge profile for these: the referral claims US Core ServiceRequest; the rest are
    # validated against base R4 (BSeR, SDOHCC and the DS4P consent shape are not loaded).
    Case("medication", medication_entries(), lambda m: medication.to_fhir(
        m, id_system=MEDICATION_SYSTEM, subject_reference=SUBJECT)),
    Case("medication-list", medication_lists(), lambda m: medication.list_to_fhir(
        m, id_system=MED_LIST_SYSTEM, subject_reference=SUBJECT,
        entry_references=[f"MedicationRequest/mr-{i}" for i in range(len(m.entries))])),
    Case("referral", referrals(), lambda r: referral.to_fhir(r, id_system=REFERRAL_SYSTEM)),
    Case("referral-task", referral_tasks(), lambda t: referral_task.to_fhir(
        t, id_system=TASK_SYSTEM)),
    Case("consent", consents(), lambda c: consent.to_fhir(c, id_system=CONSENT_SYSTEM)),
    # A program's role (the IOP's, a referrer's): base R4, not US Core PractitionerRole
    # (mappers.practitioner_role: us-core-13 asks for telecom or an endpoint).
    Case("practitioner-role", st.tuples(
        st.from_regex(r"[A-Z]{2,5}-[0-9A-Z]{1,8}", fullmatch=True),
        st.sampled_from(("", "Synthetic IOP Program", "Synthetic residential program")),
        st.sampled_from((practitioner_role.ROLE_TEXT, practitioner_role.REFERRER_ROLE_TEXT)),
    ), lambda p: practitioner_role.to_fhir(
        identifier=p[0], id_system=ROLE_SYSTEM, organization_reference=ORG,
        organization_name=p[1], role_text=p[2])),
]  # fmt: skip


def _samples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Draw ``count`` varied values reproducibly (hypothesis runs the collector synchronously)."""
    drawn: list[Any] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None)
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_mapper_output__validates_with_zero_errors(loaded: FhirClient, case: Case) -> None:
    samples = _samples(case.strategy, SAMPLES_PER_MAPPER)
    assert len(samples) >= SAMPLES_PER_MAPPER // 2, "hypothesis drew too few values"
    for value in samples:
        await _assert_valid(loaded, case.to_fhir(value))


async def test_medication_with_the_senders_ndc__validates_with_zero_errors(
    loaded: FhirClient,
) -> None:
    # sertraline 50 mg with the NDC a sender gave (68533-056-12: the labeler's "How supplied")
    sent = medication.to_fhir(
        make_sertraline(ndc_code="68533-056-12"), id_system=MEDICATION_SYSTEM,
        subject_reference=SUBJECT,
    )  # fmt: skip
    assert "http://hl7.org/fhir/sid/ndc" in str(sent["medicationCodeableConcept"])
    await _assert_valid(loaded, sent)


async def test_api_submitted_package__every_entry_validates_with_zero_errors(
    loaded: FhirClient,
) -> None:
    # What POST /api/referrals (domain JSON) writes: every entry of the transaction, its urn:uuid
    # references made literal as the server makes them; the discharge medications go out as our
    # US Core MedicationRequests and the referrer's PractitionerRole requests the service (BSeR).
    package = ReferralSubmission.model_validate(EXAMPLE_SUBMISSION).to_domain()
    built = package_bundle(
        package, requester=ORG, requester_key="RES-DEMO", owner="Organization/iop-ex-iop",
        context=MappingContext(),
    )  # fmt: skip
    literal = {e["fullUrl"]: f"{e['resource']['resourceType']}/e{i}"
               for i, e in enumerate(built["entry"])}  # fmt: skip
    resources = [rewrite_references(e["resource"], literal.get) for e in built["entry"]]
    kinds = [r["resourceType"] for r in resources]
    assert "MedicationStatement" not in kinds
    assert {"MedicationRequest", "PractitionerRole", "List", "Task"} <= set(kinds)
    for resource in resources:
        await _assert_valid(loaded, resource)


def _any_client() -> Any:
    from tests.builders import make_client

    return make_client()


def _any_diagnosis() -> Any:
    from tests.builders import make_diagnosis

    return make_diagnosis()


def _any_medication() -> Any:
    from tests.builders.referrals import make_sertraline

    return make_sertraline()


def _any_referral() -> Any:
    from tests.builders.referrals import make_referral

    return make_referral()
