"""The one FHIR id / reference helper: written ``Type/id``, split back, absolute tails."""

import pytest

from mappers.fhir_reference import literal_reference, reference_tail, split_literal_reference


def test_literal_reference_is_type_slash_id() -> None:
    assert literal_reference("Task", "42") == "Task/42"
    assert literal_reference("Organization", 7) == "Organization/7"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Task/42", ("Task", "42")),
        ("ServiceRequest/sr-1/_history/3", ("ServiceRequest", "sr-1")),
    ],
)
def test_split_reads_relative_references_dropping_the_version(
    reference: str, expected: tuple[str, str]
) -> None:
    assert split_literal_reference(reference) == expected


@pytest.mark.parametrize(
    "reference",
    [
        "https://ehr.example/fhir/Task/42",  # absolute: another server's
        "urn:uuid:0d1e7a52-5b0c-4a4e-9d6f-2f3b8c1a9e10",
        "#contained-1",
        "task/42",  # a type starts with a capital
        "Task/",
        "Task/42/extra/3",  # four segments, but not a version
        "Task",
    ],
)
def test_split_refuses_what_is_not_a_relative_literal_reference(reference: str) -> None:
    assert split_literal_reference(reference) is None


def test_split_undoes_literal_reference() -> None:
    assert split_literal_reference(literal_reference("Encounter", "iop-9")) == (
        "Encounter",
        "iop-9",
    )


@pytest.mark.parametrize(
    ("reference", "tail"),
    [
        ("https://ehr.example/fhir/Medication/7", "Medication/7"),
        ("https://ehr.example/fhir/Medication/7/", "Medication/7"),
        ("Observation/3", "Observation/3"),
    ],
)
def test_reference_tail_is_the_last_type_and_id(reference: str, tail: str) -> None:
    assert reference_tail(reference) == tail
