"""Is a Task owned by a PractitionerRole the IOP's? (mappers/task_owner.py)"""

from __future__ import annotations

from typing import Any

import pytest

from mappers.task_owner import OwnerRefusal, judge_role, owner_role

IOP = "Organization/1000"
BASE = "http://fhir.test/fhir/"


@pytest.mark.parametrize(
    ("owner", "role"),
    [
        ("PractitionerRole/7", "PractitionerRole/7"),
        ("Organization/1000", None),
        ("Practitioner/7", None),
        ("HealthcareService/7", None),
        (None, None),
        ("#contained-role", None),  # a contained role is the Task's own claim: never the IOP's
    ],
)
def test_owner_role__only_a_practitioner_role_on_the_server(
    owner: str | None, role: str | None
) -> None:
    assert owner_role(owner) == role


def _role(organization: Any) -> dict[str, Any]:
    return {"resourceType": "PractitionerRole", "id": "7", "organization": organization}


@pytest.mark.parametrize(
    ("role", "ours", "refusal", "belongs"),
    [
        (_role({"reference": IOP}), True, None, IOP),
        (_role({"reference": BASE + IOP}), True, None, IOP),  # absolute, to this server
        (_role({"reference": IOP + "/_history/2"}), True, None, IOP),
        (_role({"reference": "Organization/1001"}), False,
         OwnerRefusal.ROLE_OF_ANOTHER_ORGANIZATION, "Organization/1001"),
        (_role({"reference": "Organization/10000"}), False,
         OwnerRefusal.ROLE_OF_ANOTHER_ORGANIZATION, "Organization/10000"),
        (_role({"reference": "https://other.example/fhir/" + IOP}), False,
         OwnerRefusal.ROLE_WITHOUT_ORGANIZATION, None),  # the same id on another server
        (_role({"display": "Synthetic IOP"}), False, OwnerRefusal.ROLE_WITHOUT_ORGANIZATION, None),
        (_role(None), False, OwnerRefusal.ROLE_WITHOUT_ORGANIZATION, None),
        (None, False, OwnerRefusal.ROLE_NOT_ON_SERVER, None),
        ({"resourceType": "Organization", "id": "7"}, False, OwnerRefusal.ROLE_NOT_ON_SERVER, None),
    ],
)  # fmt: skip
def test_judge_role__ours_only_when_its_organization_is_the_iop(
    role: dict[str, Any] | None, ours: bool, refusal: OwnerRefusal | None, belongs: str | None
) -> None:
    verdict = judge_role(role, IOP, BASE)
    assert (verdict.ours, verdict.refusal, verdict.role_organization) == (ours, refusal, belongs)
