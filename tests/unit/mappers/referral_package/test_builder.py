"""The Bundle an API submission in domain JSON becomes (``package_bundle``): medications as our
US Core MedicationRequests, the referrer's PractitionerRole as the ServiceRequest's requester,
and the round trip through our own inbound mapping (submission checks, a package read back
from a server) with every medication and no loss."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from api.schema_examples import EXAMPLE_SUBMISSION
from api.schemas import ReferralSubmission
from fhir_profiles.terminology.clinical import RX_NALTREXONE_50_TABLET, RX_TRAZODONE_50
from mappers import medication_request
from mappers.errors import InvalidInputError
from mappers.medication import MedicationList
from mappers.referral_package.builder import IntakePackage, package_bundle
from mappers.referral_package.mapping import FetchedPackage, map_package, map_task
from mappers.referral_package.submission import check_submission
from tests.unit.mappers.referral_package.support import (
    CONTEXT,
    IOP,
    PARTIES,
    RES,
    by_reference,
    task_of,
)

RES_KEY = PARTIES.requester_key[1]


def _package() -> IntakePackage:
    """The documented example with three discharge medications of different shapes."""
    body = copy.deepcopy(EXAMPLE_SUBMISSION)
    body["medications"]["entries"] += [
        {"identifier": "SD-000001-MED2", "medication": RX_TRAZODONE_50.display,
         "rxnorm_code": RX_TRAZODONE_50.code, "status": "stopped", "dose_text": "at bedtime",
         "start": "2026-10-06", "end": "2026-10-20"},
        {"identifier": "SD-000001-MED3", "medication": RX_NALTREXONE_50_TABLET.display,
         "rxnorm_code": RX_NALTREXONE_50_TABLET.code, "dose": {"value": 50, "unit": "mg"},
         "times_per_day": 1},
        {"identifier": "SD-000001-MED4", "medication": "multivitamin (as the client says)"},
    ]  # fmt: skip
    return ReferralSubmission.model_validate(body).to_domain()


def _built(package: IntakePackage | None = None) -> dict[str, Any]:
    return package_bundle(
        package or _package(), requester=RES, requester_key=RES_KEY, owner=IOP, context=CONTEXT
    )


def _resources(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == kind]


def _by_url(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in document["entry"]}


def test_package_bundle__medications_are_our_us_core_medication_requests() -> None:
    built = _built()
    assert _resources(built, "MedicationStatement") == []
    requests = _resources(built, "MedicationRequest")
    assert len(requests) == 4
    for request in requests:
        assert request["meta"]["profile"] == [medication_request.PROFILE]
        assert request["identifier"][0]["system"] == CONTEXT.medication_request_id_system
        assert (request["intent"], request["reportedBoolean"]) == ("plan", True)
        assert request["category"][0]["coding"][0]["code"] == "discharge"
    [listed] = _resources(built, "List")
    by_url = _by_url(built)
    assert [by_url[e["item"]["reference"]] for e in listed["entry"]] == requests


def test_package_bundle__the_referrers_role_requests_the_service_the_iop_performs() -> None:
    built = _built()
    [role] = _resources(built, "PractitionerRole")
    assert role["organization"] == {"reference": RES}
    assert role["identifier"] == [{"system": CONTEXT.practitioner_role_id_system, "value": RES_KEY}]
    [request], [task] = _resources(built, "ServiceRequest"), _resources(built, "Task")
    assert _by_url(built)[request["requester"]["reference"]] is role  # BSeR: a PractitionerRole
    assert request["performer"] == [{"reference": IOP}]
    # The Task's parties stay the Organizations (the referral's sender key; the IOP's poll).
    assert (task["requester"], task["owner"]) == ({"reference": RES}, {"reference": IOP})


def test_package_bundle__submitted_it_maps_every_medication_with_no_loss() -> None:
    package = _package()
    checked = check_submission(_built(package), PARTIES, CONTEXT)
    assert checked.package.medications == package.medications
    assert checked.package.losses == ()


def test_package_bundle__read_back_from_a_server_every_medication_with_no_loss() -> None:
    package = _package()
    resources = by_reference(_built(package))
    key, task = task_of(resources)
    del resources[key]  # the package as package_fetch reads it: what the ServiceRequest names
    del resources[next(k for k in resources if k.startswith("PractitionerRole/"))]
    mapped_task, _, _ = map_task(task, CONTEXT.task_id_system)
    assert mapped_task is not None
    mapped, problems = map_package(FetchedPackage(task, resources), mapped_task, CONTEXT)
    assert problems == [] and mapped is not None
    assert mapped.medications == package.medications
    assert mapped.losses == ()
    assert mapped.part2  # naltrexone is a MOUD medication: Part 2 by itself


def test_map_package__a_senders_list_of_its_own_medication_statements_is_still_read() -> None:
    # The residential EHR's package (sandbox, our dialect of old): statements in a List.
    from tests.unit.mappers.referral_package.support import transaction

    resources = by_reference(transaction(411))
    key, task = task_of(resources)
    del resources[key]
    mapped_task, _, _ = map_task(task, CONTEXT.task_id_system)
    assert mapped_task is not None
    mapped, problems = map_package(FetchedPackage(task, resources), mapped_task, CONTEXT)
    assert problems == [] and mapped is not None
    statements = [k for k in resources if k.startswith("MedicationStatement/")]
    assert isinstance(mapped.medications, MedicationList)
    assert len(mapped.medications.entries) == len(statements) == 8


def test_check_submission__a_role_of_another_organization_is_refused() -> None:
    built = _built()
    [role] = _resources(built, "PractitionerRole")
    role["organization"] = {"reference": "Organization/org-res-2"}
    with pytest.raises(InvalidInputError) as refused:
        check_submission(built, PARTIES, CONTEXT)
    assert [p.path for p in refused.value.problems] == [
        f"Bundle.entry[{_index(built, 'PractitionerRole')}].resource.organization"
    ]


def test_check_submission__a_role_keyed_on_another_organizations_identifier_is_refused() -> None:
    # Its conditional create would match that program's role on the server.
    built = _built()
    [entry] = [e for e in built["entry"] if e["resource"]["resourceType"] == "PractitionerRole"]
    entry["resource"]["identifier"][0]["value"] = "RES-2"
    entry["request"]["ifNoneExist"] = entry["request"]["ifNoneExist"].replace(RES_KEY, "RES-2")
    with pytest.raises(InvalidInputError) as refused:
        check_submission(built, PARTIES, CONTEXT)
    at = _index(built, "PractitionerRole")
    assert [p.path for p in refused.value.problems] == [
        f"Bundle.entry[{at}].resource.identifier[0].value"
    ]


def test_check_submission__a_requester_role_outside_the_bundle_is_refused() -> None:
    built = _built()
    [request] = _resources(built, "ServiceRequest")
    request["requester"] = {"reference": "PractitionerRole/someone-elses"}
    with pytest.raises(InvalidInputError) as refused:
        check_submission(built, PARTIES, CONTEXT)
    at = _index(built, "ServiceRequest")
    assert f"Bundle.entry[{at}].resource.requester" in [p.path for p in refused.value.problems]


def _index(document: dict[str, Any], kind: str) -> int:
    return next(i for i, e in enumerate(document["entry"]) if e["resource"]["resourceType"] == kind)
