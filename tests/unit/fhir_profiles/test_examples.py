"""Example instances: parseable, profiled, linked by relative ids, consistent with profiles."""

import re
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_profiles.canonical import MRN_SYSTEM, questionnaire_url
from fhir_profiles.registry import conformance_resource, conformance_resources, example_resources
from fhir_profiles.terminology.systems import (
    MAX_VALUE_EXTENSION,
    MIN_VALUE_EXTENSION,
    ORDINAL_VALUE_EXTENSION,
)

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
                name = element["path"].split(".")[1]
                if name.endswith("[x]"):  # a choice fixed to one type: reportedBoolean
                    name = name[:-3] + key.removeprefix("fixed")
                assert example[name] == value, element["path"]


def test_example_patient__carries_program_mrn() -> None:
    patient = next(e for e in EXAMPLES if e["resourceType"] == "Patient")
    identifier = patient["identifier"][0]
    assert (identifier["system"], identifier["value"]) == (MRN_SYSTEM, "IOP-EX-0001")


def _responses() -> list[dict[str, Any]]:
    return [e for e in EXAMPLES if e["resourceType"] == "QuestionnaireResponse"]


def _scored_responses() -> list[dict[str, Any]]:
    """The PHQ-9 and GAD-7 responses: the ones with an ordinalValue-scored total."""
    scored = {questionnaire_url("phq-9"), questionnaire_url("gad-7")}
    return [e for e in _responses() if e["questionnaire"] in scored]


def _integer_bound(item: dict[str, Any], url: str) -> int | None:
    values = [e["valueInteger"] for e in item.get("extension", []) if e["url"] == url]
    return values[0] if values else None


def _assert_follows(
    answered_items: list[dict[str, Any]], asked_items: list[dict[str, Any]]
) -> None:
    """Answered items come in questionnaire order, include every required one, repeat the
    question text exactly (HAPI rejects other text), and answer within what is asked."""
    asked = {i["linkId"]: i for i in asked_items}
    links = [i["linkId"] for i in answered_items]
    assert links == [i["linkId"] for i in asked_items if i["linkId"] in links]
    assert {i["linkId"] for i in asked_items if i.get("required")} <= set(links)
    for answered in answered_items:
        item = asked[answered["linkId"]]
        assert answered.get("text", item["text"]) == item["text"]
        if item["type"] == "group":
            _assert_follows(answered["item"], item["item"])
        elif item["type"] == "choice":
            options = [o["valueCoding"] for o in item["answerOption"]]
            assert answered["answer"][0]["valueCoding"] in options
        elif item["type"] == "integer":
            value = answered["answer"][0]["valueInteger"]
            low = _integer_bound(item, MIN_VALUE_EXTENSION)
            high = _integer_bound(item, MAX_VALUE_EXTENSION)
            assert (low is None or value >= low) and (high is None or value <= high)


@pytest.mark.parametrize("qr", _responses(), ids=_ids(_responses()))
def test_example_response__follows_its_questionnaire(qr: dict[str, Any]) -> None:
    questionnaire = conformance_resource(qr["questionnaire"])
    _assert_follows(qr["item"], questionnaire["item"])


def test_example_responses__one_per_shipped_questionnaire() -> None:
    shipped = {r["url"] for r in conformance_resources() if r["resourceType"] == "Questionnaire"}
    assert sorted(qr["questionnaire"] for qr in _responses()) == sorted(shipped)


@pytest.mark.parametrize("qr", _scored_responses(), ids=_ids(_scored_responses()))
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
