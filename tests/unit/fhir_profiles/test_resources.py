"""Conformance resources: parseable, uniquely named, internally consistent, loaded deps-first."""

import json
import re
from importlib import resources
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_profiles import us_core
from fhir_profiles.canonical import (
    CANONICAL_BASE,
    CONFORMANCE_VERSION,
    is_ours,
    questionnaire_url,
    value_set_url,
)
from fhir_profiles.registry import conformance_resources
from fhir_profiles.terminology import clinical, local, systems

RESOURCE_DIR = resources.files("fhir_profiles").joinpath("resources")
RESOURCE_FILES = sorted(e.name for e in RESOURCE_DIR.iterdir() if e.name.endswith(".json"))
ALL = conformance_resources()
PROFILES = [r for r in ALL if r["resourceType"] == "StructureDefinition"]
EXTERNAL_SYSTEMS_ALLOWED = {systems.COLORADO_BHA_ASAM_LEVEL_OF_CARE}


def _by_type(resource_type: str) -> list[dict[str, Any]]:
    return [r for r in ALL if r["resourceType"] == resource_type]


def _elements(sd: dict[str, Any]) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = sd["differential"]["element"]
    return elements


@pytest.mark.parametrize("file_name", RESOURCE_FILES)
def test_resource_file__parses_with_r4b_model(file_name: str) -> None:
    data = json.loads(RESOURCE_DIR.joinpath(file_name).read_text(encoding="utf-8"))
    model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert model.model_dump()["id"] == data["id"]


@pytest.mark.parametrize("file_name", RESOURCE_FILES)
def test_resource_file__is_named_type_dash_id(file_name: str) -> None:
    data = json.loads(RESOURCE_DIR.joinpath(file_name).read_text(encoding="utf-8"))
    assert file_name == f"{data['resourceType']}-{data['id']}.json"


def test_conformance_resources__expected_inventory() -> None:
    counts = {
        t: len(_by_type(t))
        for t in ("CodeSystem", "ValueSet", "StructureDefinition", "Questionnaire")
    }
    assert counts == {
        "CodeSystem": 3,
        "ValueSet": 4,
        "StructureDefinition": 12,
        "Questionnaire": 3,
    }


def test_canonical_urls__unique_and_under_base() -> None:
    urls = [r["url"] for r in ALL]
    assert len(urls) == len(set(urls))
    assert all(is_ours(u) for u in urls), CANONICAL_BASE
    for r in ALL:
        assert r["url"].endswith(f"/{r['resourceType']}/{r['id']}")


def test_conformance_resources__active_versioned_and_computably_named() -> None:
    for r in ALL:
        assert r["status"] == "active", r["id"]
        assert r["version"] == CONFORMANCE_VERSION, r["id"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", r["name"]), r["name"]


def test_structure_definitions__are_r4_differential_only_constraints() -> None:
    for sd in PROFILES:
        assert sd["fhirVersion"] == "4.0.1"
        assert sd["derivation"] == "constraint"
        assert sd["abstract"] is False
        # US Core where a US Core profile of the type can be built (fhir_profiles.us_core)
        r4_base = f"http://hl7.org/fhir/StructureDefinition/{sd['type']}"
        assert sd["baseDefinition"] == us_core.BASE_OF.get(sd["id"], r4_base), sd["id"]
        assert "snapshot" not in sd  # the server generates snapshots
        expected_kind = "complex-type" if sd["type"] == "Extension" else "resource"
        assert sd["kind"] == expected_kind, sd["id"]


def test_profile_differential__element_ids_start_with_its_type() -> None:
    for sd in PROFILES:
        for element in _elements(sd):
            eid = element["id"]
            assert eid == sd["type"] or eid.startswith(sd["type"] + "."), eid


def test_profile_differential__paths_are_ids_without_slice_names() -> None:
    for sd in PROFILES:
        for element in _elements(sd):
            path = ".".join(part.split(":")[0] for part in element["id"].split("."))
            assert element["path"] == path, element["id"]
            if ":" in element["id"]:
                assert element["sliceName"] == element["id"].rsplit(":", 1)[1]


def test_extensions__fix_their_url_and_declare_context() -> None:
    for sd in (p for p in PROFILES if p["type"] == "Extension"):
        assert sd["context"], sd["id"]
        fixed = [e.get("fixedUri") for e in _elements(sd) if e["id"] == "Extension.url"]
        assert fixed == [sd["url"]]


def test_bindings__point_to_shipped_value_sets() -> None:
    shipped = {r["url"] for r in _by_type("ValueSet")}
    bound = [e["binding"]["valueSet"] for sd in PROFILES for e in _elements(sd) if "binding" in e]
    assert bound and set(bound) <= shipped


def test_asam_binding__is_never_required() -> None:
    asam = next(r["url"] for r in _by_type("ValueSet") if r["id"] == "iop-asam-level-of-care")
    for sd in PROFILES:
        for element in _elements(sd):
            if element.get("binding", {}).get("valueSet") == asam:
                assert element["binding"]["strength"] in {"extensible", "example"}


def test_extension_slices__use_shipped_extensions() -> None:
    extensions = {p["url"] for p in PROFILES if p["type"] == "Extension"}
    used = [
        t["profile"][0]
        for sd in PROFILES
        for e in _elements(sd)
        for t in e.get("type", [])
        if t["code"] == "Extension"
    ]
    assert used and set(used) <= extensions


def test_value_sets__include_only_shipped_or_documented_systems() -> None:
    ours = {r["url"] for r in _by_type("CodeSystem")}
    for vs in _by_type("ValueSet"):
        for include in vs["compose"]["include"]:
            assert include["system"] in ours | EXTERNAL_SYSTEMS_ALLOWED, vs["id"]
            if include["system"] not in ours:
                assert include["concept"], "external systems are enumerated explicitly"


def test_code_systems__complete_case_sensitive_with_unique_concepts() -> None:
    for cs in _by_type("CodeSystem"):
        codes = [c["code"] for c in cs["concept"]]
        assert cs["content"] == "complete" and cs["caseSensitive"] is True
        assert len(codes) == len(set(codes)) == cs["count"]


@pytest.mark.parametrize(
    ("cs_id", "constants"),
    [
        ("iop-modality", local.MODALITIES),
        ("iop-diagnosis-role", local.DIAGNOSIS_ROLES),
        ("iop-goal-area", local.GOAL_AREAS),
    ],
)
def test_code_systems__match_python_constants(cs_id: str, constants: Any) -> None:
    cs = next(r for r in _by_type("CodeSystem") if r["id"] == cs_id)
    assert {c["code"]: c["display"] for c in cs["concept"]} == {
        k: v.display for k, v in constants.items()
    }
    assert all(v.system == cs["url"] for v in constants.values())


def test_code_system_modality__snomed_property_only_where_verified() -> None:
    cs = next(r for r in _by_type("CodeSystem") if r["id"] == "iop-modality")
    found = {
        c["code"]: p["valueCoding"]
        for c in cs["concept"]
        for p in c.get("property", [])
        if p["code"] == "snomed-equivalent"
    }
    assert found == {k: v.coding() for k, v in clinical.SNOMED_BY_MODALITY.items()}


def test_conformance_resources__load_order_puts_dependencies_first() -> None:
    position = {r["url"]: i for i, r in enumerate(ALL)}
    for vs in _by_type("ValueSet"):
        for include in vs["compose"]["include"]:
            if include["system"] in position:
                assert position[include["system"]] < position[vs["url"]]
    for sd in PROFILES:
        for element in _elements(sd):
            needed = [element.get("binding", {}).get("valueSet")]
            needed += [t["profile"][0] for t in element.get("type", []) if "profile" in t]
            for url in filter(None, needed):
                assert position[url] < position[sd["url"]], (url, sd["id"])
    kinds = [r["resourceType"] for r in ALL]
    assert kinds.index("Questionnaire") > max(
        i for i, k in enumerate(kinds) if k == "StructureDefinition"
    )


def _profile(profile_id: str) -> dict[str, dict[str, Any]]:
    """The differential of one shipped profile, by element id."""
    sd = next(p for p in PROFILES if p["id"] == profile_id)
    return {e["id"]: e for e in _elements(sd)}


def test_response_profiles__fix_questionnaire_to_a_shipped_questionnaire() -> None:
    shipped = {r["url"] for r in _by_type("Questionnaire")}
    fixed = [
        e["fixedCanonical"]
        for sd in PROFILES
        if sd["type"] == "QuestionnaireResponse"
        for e in _elements(sd)
        if e["id"] == "QuestionnaireResponse.questionnaire"
    ]
    assert sorted(fixed) == sorted(shipped)
    intake = _profile("iop-asam-intake-response")["QuestionnaireResponse.questionnaire"]
    assert intake["fixedCanonical"] == questionnaire_url("asam-intake")


def test_residential_profile__requires_identifier_type_subject_period() -> None:
    elements = _profile("iop-residential-encounter")
    for path in ("identifier", "type", "subject", "period"):
        assert elements[f"Encounter.{path}"]["min"] == 1, path
    for path in ("status", "class", "hospitalization.dischargeDisposition"):
        assert elements[f"Encounter.{path}"]["mustSupport"] is True, path


def test_residential_profile__type_is_the_asam_level_extensibly_bound() -> None:
    binding = _profile("iop-residential-encounter")["Encounter.type"]["binding"]
    assert binding == {
        "strength": "extensible",
        "valueSet": value_set_url("iop-asam-level-of-care"),
    }


def test_residential_profile__finished_stay_needs_discharge_time() -> None:
    (constraint,) = _profile("iop-residential-encounter")["Encounter"]["constraint"]
    assert constraint["key"] == "iop-res-1" and constraint["severity"] == "error"
    assert constraint["expression"] == "status = 'finished' implies period.end.exists()"


def test_profiles__based_on_us_core_wherever_us_core_profiles_the_type() -> None:
    by_type = {sd["id"]: sd["type"] for sd in PROFILES if sd["type"] != "Extension"}
    based = set(us_core.BASE_OF)
    assert based | us_core.NOT_BASED_ON_US_CORE == set(by_type)
    assert not based & us_core.NOT_BASED_ON_US_CORE
    assert {by_type[i] for i in us_core.NOT_BASED_ON_US_CORE} == {"QuestionnaireResponse"}
