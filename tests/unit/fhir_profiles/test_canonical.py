"""Canonical URL helpers: our URLs live under one reserved, unresolvable base."""

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhir_profiles import canonical
from fhir_profiles.canonical import (
    CANONICAL_BASE,
    MRN_SYSTEM,
    canonical_url,
    code_system_url,
    is_ours,
    questionnaire_url,
    structure_definition_url,
    value_set_url,
)
from tests import builders
from tests.builders import plans, sessions

FHIR_IDS = st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True)


def test_canonical_base__uses_reserved_example_tld() -> None:
    host = urlsplit(CANONICAL_BASE).hostname
    assert host is not None
    assert host.endswith(".example")  # RFC 2606: can never be a real publisher


@pytest.mark.parametrize(
    ("helper", "kind"),
    [
        (structure_definition_url, "StructureDefinition"),
        (code_system_url, "CodeSystem"),
        (value_set_url, "ValueSet"),
        (questionnaire_url, "Questionnaire"),
    ],
)
def test_url_helpers__join_base_type_and_name(helper: object, kind: str) -> None:
    assert callable(helper)
    assert helper("iop-x") == f"{CANONICAL_BASE}/{kind}/iop-x"


def test_mrn_system__matches_agreed_identifier_namespace() -> None:
    assert MRN_SYSTEM == "http://iop-bridge.example/fhir/sid/mrn"


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "x" * 65, "ümlaut", "q?x=1"])
def test_canonical_url__rejects_illegal_fhir_id(bad: str) -> None:
    with pytest.raises(ValueError, match="not a legal FHIR id"):
        canonical_url("ValueSet", bad)


def test_is_ours__rejects_lookalike_prefix() -> None:
    assert is_ours(value_set_url("iop-modality"))
    assert not is_ours(CANONICAL_BASE + "X/ValueSet/iop-modality")
    assert not is_ours("http://hl7.org/fhir/ValueSet/iop-modality")


@given(FHIR_IDS)
def test_canonical_url__any_legal_id_stays_under_base(name: str) -> None:
    url = value_set_url(name)
    assert is_ours(url)
    assert url.rsplit("/", 1)[1] == name


ID_SYSTEMS = {
    name: value
    for name, value in vars(canonical).items()
    if name.endswith("_ID_SYSTEM") or name == "MRN_SYSTEM"
}


def test_id_systems__every_concept_has_one_under_sid() -> None:
    expected = {
        "MRN_SYSTEM",
        "ORGANIZATION_ID_SYSTEM",
        "CONDITION_ID_SYSTEM",
        "GOAL_ID_SYSTEM",
        "CARE_PLAN_ID_SYSTEM",
        "SESSION_ID_SYSTEM",
        "RESIDENTIAL_STAY_ID_SYSTEM",
        "ASSESSMENT_ID_SYSTEM",
        "INTAKE_ID_SYSTEM",
        "REFERRAL_ID_SYSTEM",
        "TASK_ID_SYSTEM",
        "CONSENT_ID_SYSTEM",
        "MEDICATION_STATEMENT_ID_SYSTEM",
        "MEDICATION_REQUEST_ID_SYSTEM",
        "PRACTITIONER_ROLE_ID_SYSTEM",
        "MEDICATION_LIST_ID_SYSTEM",
        "DISCHARGE_SUMMARY_ID_SYSTEM",
    }
    assert set(ID_SYSTEMS) == expected
    for value in ID_SYSTEMS.values():
        assert value.startswith(f"{CANONICAL_BASE}/sid/")


def test_id_systems__distinct_except_intake_sharing_the_assessment_register() -> None:
    values = [v for k, v in ID_SYSTEMS.items() if k != "INTAKE_ID_SYSTEM"]
    assert len(values) == len(set(values))
    assert canonical.INTAKE_ID_SYSTEM == canonical.ASSESSMENT_ID_SYSTEM


@pytest.mark.parametrize(
    ("constant", "used_in_tests"),
    [
        ("MRN_SYSTEM", builders.MRN_SYSTEM),
        ("CONDITION_ID_SYSTEM", builders.CONDITION_SYSTEM),
        ("GOAL_ID_SYSTEM", plans.GOAL_SYSTEM),
        ("CARE_PLAN_ID_SYSTEM", plans.PLAN_SYSTEM),
        ("SESSION_ID_SYSTEM", sessions.SESSION_SYSTEM),
        ("RESIDENTIAL_STAY_ID_SYSTEM", sessions.STAY_SYSTEM),
        ("ASSESSMENT_ID_SYSTEM", sessions.ASSESSMENT_SYSTEM),
    ],
)
def test_id_systems__match_the_namespaces_the_mapper_tests_use(
    constant: str, used_in_tests: str
) -> None:
    assert ID_SYSTEMS[constant] == used_in_tests
