"""Canonical URL helpers: our URLs live under one reserved, unresolvable base."""

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
