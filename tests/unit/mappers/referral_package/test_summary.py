"""The case manager's summary of a mapped package, and what it puts first."""

from __future__ import annotations

from dataclasses import replace

from mappers.referral_package.summary import NO_DISCHARGE_DATE, summarize
from tests.unit.mappers.referral_package.support import transaction
from tests.unit.mappers.referral_package.test_mapping import _mapped


def test_summarize__plain_json_of_the_package() -> None:
    package, _ = _mapped(transaction(601))
    assert package is not None
    summary = summarize(package)
    assert summary["part2"] is True and summary["attention"] == []
    assert summary["diagnoses"][0]["icd10"] == "F10.20"
    assert summary["medications"] and summary["consent"] is not None


def test_summarize__no_discharge_date_comes_first() -> None:
    package, _ = _mapped(transaction(602))
    assert package is not None
    assert summarize(replace(package, stay=None))["attention"] == [NO_DISCHARGE_DATE]
