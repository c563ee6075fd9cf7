from __future__ import annotations

from mappers import bundle


def test_identifier_query__escapes_search_special_characters() -> None:
    assert bundle.identifier_query("urn:sys", "a|b,c") == r"identifier=urn:sys|a\|b\,c"


def test_conditional_create_entry__posts_with_if_none_exist() -> None:
    entry = bundle.conditional_create_entry(
        {"resourceType": "Patient"}, full_url="urn:uuid:1", if_none_exist="identifier=s|v"
    )
    assert entry["request"] == {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=s|v"}
    assert entry["fullUrl"] == "urn:uuid:1"


def test_read_transaction_response__reads_status_type_id_version() -> None:
    response = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": "201 Created", "location": "Patient/12/_history/1"}},
            {
                "response": {
                    "status": "200 OK",
                    "location": "http://h/fhir/Condition/c-9/_history/3",
                }
            },
        ],
    }
    first, second = bundle.read_transaction_response(response)
    assert (first.status, first.resource_type, first.resource_id, first.version_id) == (
        201,
        "Patient",
        "12",
        "1",
    )
    assert first.created and not second.created
    assert (second.resource_type, second.resource_id, second.version_id) == (
        "Condition",
        "c-9",
        "3",
    )
