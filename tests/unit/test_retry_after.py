from __future__ import annotations

from integration.fhir.responses import parse_retry_after


def test_parse_retry_after__delta_seconds() -> None:
    assert parse_retry_after("120") == 120.0


def test_parse_retry_after__http_date_relative_to_now() -> None:
    # 2026-11-23T00:00:30Z vs a "now" of 2026-11-23T00:00:00Z
    assert parse_retry_after("Mon, 23 Nov 2026 00:00:30 GMT", now=1795392000.0) == 30.0


def test_parse_retry_after__garbage_and_missing_give_none() -> None:
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
