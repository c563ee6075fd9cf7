"""Example instances: parseable, profiled, linked by relative ids, consistent with profiles."""

import re
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_profiles.canonical import MRN_SYSTEM
from fhir_profiles.registry import conformance_resource, conformance_resources, example_resources
from fhir_profiles.terminology.systems import ORDINAL_VALUE_EXTENSION

EXAMPLES = example_resources()
PROFILES = {
    r["url"]: r for r in conformance_resources() if r["resourceType"] == "StructureDefinition"
}
REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def _ids(resources: list[dict[str, Any]]) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in resources]


def _references(value: Any) -> list[str]:
    """Collect every Reference.reference string inside a resource."""
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [ref for v in value.values() for ref in _references(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _references(v)]
    return []


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example__parses_with_r4b_model(example: dict[str, Any]) -> None:
    model = get_fhir_model_class(example["resourceType"]).model_validate(example)
    assert model.model_dump()["id"] == example["id"]


def test_examples__one_per_resource_profile() -> None:
    claimed = [p for e in EXAMPLES for p in e["meta"]["profile"]]
    resource_profiles = {u for u, sd in PROFILES.items() if sd["kind"] == "resource"}
    assert sorted(claimed) == sorted(resource_profiles)


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example__meta_profile_names_shipped_profile_of_its_type(example: dict[str, Any]) -> None:
    for url in example["meta"]["profile"]:
        assert url in PROFILES
        assert PROFILES[url]["type"] == example["resourceType"]


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example__id_is_client_assigned_not_numeric(example: dict[str, Any]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", example["id"])
    assert not example["id"].isdigit()


def test_examples__relative_references_resolve_and_come_earlier() -> None:
    order = _ids(EXAMPLES)
    for position, example in enumerate(EXAMPLES):
        for ref in _references(example):
            assert REFERENCE.match(ref), ref
            assert ref in order[:position], f"{order[position]} -> {ref}"


def _present(example: dict[str, Any], path: str) -> bool:
    """Tell whether a top-level element path (Type.element or Type.choice[x]) has a value."""
    name = path.split(".", 1)[1]
    if name.endswith("[x]"):
        return any(k.startswith(name[:-3]) for k in example)
    return name in example


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example__has_profile_required_elements_and_fixed_values(example: dict[str, Any]) -> None:
    profile = PROFILES[example["meta"]["profile"][0]]
    for element in profile["differential"]["element"]:
        if element["path"].count(".") != 1 or ":" in element["id"]:
            continue
        if element.get("min", 0) >= 1:
            assert _present(example, element["path"]), element["path"]
        for key, value in element.items():
            if key.startswith("fixed"):
                assert example[element["path"].split(".")[1]] == value, element["path"]


def test_example_patient__carries_program_mrn() -> None:
    patient = next(e for e in EXAMPLES if e["resourceType"] == "Patient")
    identifier = patient["identifier"][0]
    assert (identifier["system"], identifier["value"]) == (MRN_SYSTEM, "IOP-EX-0001")


def _responses() -> list[dict[str, Any]]:
    return [e for e in EXAMPLES if e["resourceType"] == "QuestionnaireResponse"]


@pytest.mark.parametrize("qr", _responses(), ids=_ids(_responses()))
def test_example_response__follows_its_questionnaire(qr: dict[str, Any]) -> None:
    questionnaire = conformance_resource(qr["questionnaire"])
    items = {i["linkId"]: i for i in questionnaire["item"]}
    assert [i["linkId"] for i in qr["item"]] == [i["linkId"] for i in questionnaire["item"]]
    for answered in qr["item"]:
        asked = items[answered["linkId"]]
        assert answered.get("text", asked["text"]) == asked["text"]  # HAPI rejects other text
        if asked["type"] == "choice":
            options = [o["valueCoding"] for o in asked["answerOption"]]
            assert answered["answer"][0]["valueCoding"] in options


@pytest.mark.parametrize("qr", _responses(), ids=_ids(_responses()))
def test_example_response__total_equals_recomputed_score(qr: dict[str, Any]) -> None:
    questionnaire = conformance_resource(qr["questionnaire"])
    score_of = {
        (item["linkId"], o["valueCoding"]["code"]): e["valueDecimal"]
        for item in questionnaire["item"]
        for o in item.get("answerOption", [])
        for e in o.get("extension", [])
        if e["url"] == ORDINAL_VALUE_EXTENSION
    }
    recomputed = sum(
        score_of.get((i["linkId"], i["answer"][0].get("valueCoding", {}).get("code")), 0)
        for i in qr["item"]
    )
    totals = [
        i["answer"][0]["valueInteger"] for i in qr["item"] if "valueInteger" in i["answer"][0]
    ]
    assert totals == [recomputed]
    assert recomputed > 0
