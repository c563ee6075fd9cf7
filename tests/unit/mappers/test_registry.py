"""``registry.from_fhir`` on untrusted JSON: an element of another JSON type than FHIR gives it
(``"code": 5``, ``"coding": {}``) is an InvalidInputError naming the resource type and the element,
never a TypeError, KeyError or AttributeError escaping a concept mapper; a mapper that fails on
well-formed FHIR still fails loudly (a bug is not bad input)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappers import encounter, registry
from mappers.errors import InvalidInputError, MappingError
from mappers.registry import MappingContext
from sandbox import step_down_package as pkg
from tests.builders.sessions import make_session

CONTEXT = MappingContext()
WRONG_TYPES: list[Any] = [5, 1.5, True, None, "x", [], {}, [1], {"a": 1}, [{}]]


def _package() -> dict[str, dict[str, Any]]:
    """One well-formed resource per mapped concept: the sandbox package and a session."""
    transaction = pkg.to_transaction(pkg.make_package(1))
    found: dict[str, dict[str, Any]] = {}
    for entry in transaction["entry"]:
        resource = entry["resource"]
        found.setdefault(resource["resourceType"], resource)
    session = encounter.to_fhir(make_session(), id_system=CONTEXT.session_id_system,
                                subject_reference="Patient/p1")  # fmt: skip
    found["Encounter (session)"] = session
    return found


PACKAGE = _package()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix and prefix != ("resourceType",):
        yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else ()  # fmt: skip
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _replaced(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(resource)
    parent = copied
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return copied


def test_package__every_resource_maps_as_given() -> None:
    # screening Observations are only ever other systems' (foreign/); our MedicationRequests are
    # written by the reconciliation and the discharge document, not in the residential package
    not_in_package = {"MedicationRequest", "Observation"}
    assert {r["resourceType"] for r in PACKAGE.values()} == set(registry.FROM_FHIR) - not_in_package
    for resource in PACKAGE.values():
        registry.from_fhir(resource, CONTEXT)  # well-formed: no error


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        ("Condition", ("code",), 5, "Condition.code"),
        ("Condition", ("code", "coding"), {}, "Condition.code.coding"),
        ("Condition", ("code", "coding", 0, "code"), 5, "Condition.code.coding[0].code"),
        ("Condition", ("subject",), 5, "Condition.subject"),
        ("Patient", ("identifier",), 5, "Patient.identifier"),
        ("Patient", ("name",), {"a": 1}, "Patient.name"),
        ("Goal", ("category",), 5, "Goal.category"),
        ("CarePlan", ("note",), {"a": 1}, "CarePlan.note"),
        ("Encounter", ("class",), 5, "Encounter.class"),
        ("Encounter (session)", ("class", "code"), {}, "Encounter.class.code"),
    ],
)
def test_from_fhir__a_wrong_typed_element_is_named_with_its_path(
    kind: str, path: tuple[Any, ...], value: Any, expected: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        registry.from_fhir(_replaced(PACKAGE[kind], path, value), CONTEXT)
    resource_type = kind.split()[0]
    assert raised.value.message.startswith(resource_type)
    assert expected in [p.path for p in raised.value.problems], raised.value.problems


@pytest.mark.parametrize("kind", sorted(PACKAGE))
@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_from_fhir__wrong_typed_elements_raise_only_input_errors(kind: str, data: Any) -> None:
    """Any element of each resource type replaced by a value of another JSON type: mapped, or
    refused with MappingError naming the resource type; nothing else escapes."""
    resource = PACKAGE[kind]
    path = data.draw(st.sampled_from(list(_paths(resource))), label="path")
    value = data.draw(st.sampled_from(WRONG_TYPES), label="value")
    try:
        registry.from_fhir(_replaced(resource, path, value), CONTEXT)
    except MappingError as error:
        assert error.problems
        assert all(p.path for p in error.problems)


def test_from_fhir__a_mapper_bug_on_well_formed_fhir_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(resource: Any, *, id_system: str) -> Any:
        raise KeyError("a bug in the mapper")

    monkeypatch.setattr(registry.condition, "from_fhir", broken)
    with pytest.raises(KeyError, match="a bug in the mapper"):
        registry.from_fhir(PACKAGE["Condition"], CONTEXT)


def test_from_fhir__the_problem_never_quotes_the_value() -> None:
    phi = "Zelda Quill-Testperson"
    resource = _replaced(PACKAGE["Patient"], ("name",), {"text": phi})
    with pytest.raises(InvalidInputError) as raised:
        registry.from_fhir(resource, CONTEXT)
    assert phi not in str(raised.value)


def _fragile_reader(resource: dict[str, Any]) -> Any:
    """A reader that trusts ``status`` to be a string, as concept readers trust their input."""
    return resource["status"].upper()


def test_guarded__a_direct_reader_tripping_on_a_wrong_type_gives_a_mapping_error() -> None:
    # For readers called directly (the package's Task and its medication List), not by kind.
    task = copy.deepcopy(PACKAGE["Task"]) | {"status": 5}
    with pytest.raises(MappingError) as raised:
        registry.guarded(task, lambda: _fragile_reader(task))
    assert [p.path for p in raised.value.problems] == ["Task.status"]


def test_guarded__well_formed_input_keeps_the_reader_bug_visible() -> None:
    task = copy.deepcopy(PACKAGE["Task"])
    task.pop("note", None)  # optional and absent: a reader indexing it has a bug of its own
    with pytest.raises(KeyError):
        registry.guarded(task, lambda: task["note"])
