"""map_task / map_package / task_identifier without a database or a server."""

from __future__ import annotations

import copy

from mappers.referral_package.mapping import (
    FetchedPackage,
    map_package,
    map_task,
    task_identifier,
)
from tests.unit.mappers.referral_package.support import CONTEXT, by_reference, task_of, transaction


def _mapped(document: dict, *, strict: bool = False):  # type: ignore[no-untyped-def,type-arg]
    resources = by_reference(document)
    key, task = task_of(resources)
    mapped, problems, _ = map_task(task, CONTEXT.task_id_system)
    assert mapped is not None and problems == []
    del resources[key]
    return map_package(FetchedPackage(task, resources), mapped, CONTEXT, strict=strict)


def test_map_package__the_whole_package_as_domain_values() -> None:
    package, problems = _mapped(transaction(401))
    assert problems == [] and package is not None
    assert package.client.mrn == "SD-000401"
    assert package.service_request.identifier == "SD-000401"
    assert [d.icd10_code for d in package.diagnoses][:1] == ["F10.20"]
    assert package.medications is not None and package.consent is not None
    assert package.part2  # alcohol dependence: a substance use disorder


def test_map_package__a_broken_diagnosis_is_a_loss_inbound_and_a_problem_when_strict() -> None:
    document = transaction(402)
    index, condition = next(
        (i, e["resource"])
        for i, e in enumerate(document["entry"])
        if e["resource"]["resourceType"] == "Condition"
    )
    condition["code"] = {"coding": "not a list"}
    url = f"Condition/e{index}"
    package, problems = _mapped(copy.deepcopy(document))
    assert problems == [] and package is not None
    lost = [(x["resource"], x["path"]) for x in package.losses if x["reason"].startswith("not map")]
    assert lost == [(url, "Condition.code.coding")]
    strict, refused = _mapped(document, strict=True)
    assert strict is None
    assert [(p.resource, p.path) for p in refused] == [(url, "Condition.code.coding")]


def test_map_package__without_the_patient_it_stops() -> None:
    document = transaction(403)
    document["entry"] = [e for e in document["entry"] if e["resource"]["resourceType"] != "Patient"]
    package, problems = _mapped(document)
    assert package is None
    assert [p.path for p in problems] == ["ServiceRequest.subject"]


def test_map_task__problems_name_the_task() -> None:
    _, task = task_of(by_reference(transaction(404)))
    del task["status"]
    mapped, problems, _ = map_task({**task, "id": "t9"}, CONTEXT.task_id_system)
    assert mapped is None and problems and {p.resource for p in problems} == {"Task/t9"}


def test_task_identifier__ours_then_plac_then_the_first() -> None:
    plac = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]}
    first = {"system": "urn:example:a", "value": "A-1"}
    placer = {"system": "urn:example:b", "value": "B-1", "type": plac}
    ours = {"system": CONTEXT.task_id_system, "value": "SD-1"}
    assert task_identifier({"identifier": [first, placer, ours]}, CONTEXT) == (
        ours["system"],
        "SD-1",
    )
    assert task_identifier({"identifier": [first, placer]}, CONTEXT) == ("urn:example:b", "B-1")
    assert task_identifier({"identifier": [first]}, CONTEXT) == ("urn:example:a", "A-1")
    assert task_identifier({"identifier": [{"value": "no system"}]}, CONTEXT) is None
