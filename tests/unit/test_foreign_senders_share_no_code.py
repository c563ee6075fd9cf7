"""The foreign senders in sandbox/senders are other systems: they import nothing of iop-bridge
(no mappers, fhir_profiles, integration or api), so every test that uses them is a
conversation with someone else, not with ourselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SENDERS = Path(__file__).resolve().parents[2] / "sandbox" / "senders"
PROJECT = ("mappers", "fhir_profiles", "integration", "api", "tests", "sandbox")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(SENDERS.glob("*.py")), ids=lambda p: p.name)
def test_sender__imports_nothing_of_the_project(path: Path) -> None:
    assert not imported(path) & set(PROJECT), f"{path.name} imports project code"


def test_there_are_three_foreign_senders() -> None:
    senders = {p.stem for p in SENDERS.glob("*.py")} - {"fhir_http", "post"}
    assert senders == {"us_core_ehr", "pacio_toc", "gravity_bser"}
