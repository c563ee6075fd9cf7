"""A submitted referral Bundle checked, mapped and made canonical, without a database."""

from __future__ import annotations

import pytest

from mappers.errors import InvalidInputError
from mappers.referral_package.submission import MAX_ENTRIES, check_submission
from tests.unit.mappers.referral_package.support import CONTEXT, IOP, PARTIES, RES, transaction


def _paths(error: pytest.ExceptionInfo[InvalidInputError]) -> list[str]:
    return [p.path for p in error.value.problems]


def test_check_submission__the_package_mapped_with_its_identifier() -> None:
    checked = check_submission(transaction(501), PARTIES, CONTEXT)
    assert checked.identifier == (CONTEXT.task_id_system, "SD-000501")
    assert (checked.task.requester, checked.task.owner) == (RES, IOP)
    assert checked.package.client.mrn == "SD-000501"
    assert len(checked.bundle["entry"]) == 25


def test_check_submission__the_same_package_is_the_same_canonical_bundle() -> None:
    first = check_submission(transaction(502), PARTIES, CONTEXT).bundle
    again = check_submission(transaction(502), PARTIES, CONTEXT).bundle  # fresh urn:uuids
    assert first == again


def test_check_submission__another_requester_is_refused_naming_it() -> None:
    document = transaction(503)
    task = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Task")
    task["requester"] = {"reference": "Organization/org-res-2"}
    with pytest.raises(InvalidInputError) as refused:
        check_submission(document, PARTIES, CONTEXT)
    assert any("requester" in path for path in _paths(refused))


def test_check_submission__an_unknown_urn_reference_is_refused_on_its_entry() -> None:
    document = transaction(504)
    document["entry"][1]["resource"]["subject"] = {
        "reference": "urn:uuid:0d1e7a52-5b0c-4a4e-9d6f-2f3b8c1a9e10"
    }
    with pytest.raises(InvalidInputError) as refused:
        check_submission(document, PARTIES, CONTEXT)
    assert any(path.startswith("Bundle.entry[1]") for path in _paths(refused))


def test_check_submission__too_many_entries_is_refused_before_mapping() -> None:
    document = transaction(505)
    document["entry"] = document["entry"] * (MAX_ENTRIES // 25 + 1)
    with pytest.raises(InvalidInputError) as refused:
        check_submission(document, PARTIES, CONTEXT)
    assert "Bundle.entry" in _paths(refused)
