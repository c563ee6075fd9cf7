"""Conformance judged by the real validator: HAPI's $validate against our uploaded profiles."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from fhir_profiles.registry import conformance_resources, example_resources
from integration.conformance import upload_conformance, validate
from integration.fhir_client import FhirClient
from mappers import condition, patient
from tests.builders import CONDITION_SYSTEM, MRN_SYSTEM
from tests.strategies.condition import diagnoses
from tests.strategies.patient import clients

pytestmark = [pytest.mark.live, pytest.mark.anyio]
LIVE_EXAMPLES = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
async def loaded(fhir: FhirClient) -> FhirClient:
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


@pytest.mark.parametrize(
    "example", example_resources(), ids=lambda r: f"{r['resourceType']}-{r['id']}"
)
async def test_examples__validate_with_zero_errors(
    loaded: FhirClient, example: dict[str, Any]
) -> None:
    assert example["meta"]["profile"], "every example claims a profile"
    await _assert_valid(loaded, example)


@LIVE_EXAMPLES
@given(client=clients())
async def test_patient_mapper_output__validates(loaded: FhirClient, client: Any) -> None:
    await _assert_valid(loaded, patient.to_fhir(client, mrn_system=MRN_SYSTEM))


@LIVE_EXAMPLES
@given(diagnosis=diagnoses())
async def test_condition_mapper_output__validates(loaded: FhirClient, diagnosis: Any) -> None:
    resource = condition.to_fhir(
        diagnosis, id_system=CONDITION_SYSTEM, subject_reference="Patient/iop-ex-patient"
    )
    await _assert_valid(loaded, resource)


def _any_client() -> Any:
    from tests.builders import make_client

    return make_client()
