"""The foreign senders in sandbox/senders and the residential EHR that writes our own dialect
(sandbox/residential_ehr.py) are other systems: they import nothing of iop-bridge (no mappers,
fhir_profiles, integration or api), so every test that uses them is a conversation with someone
else, not with ourselves."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"
SENDERS = SANDBOX / "senders"
OTHER_SYSTEMS = [*sorted(SENDERS.glob("*.py")), SANDBOX / "residential_ehr.py"]
PROJECT = ("mappers", "fhir_profiles", "integration", "api", "tests", "sandbox")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", OTHER_SYSTEMS, ids=lambda p: p.name)
def test_sender__imports_nothing_of_the_project(path: Path) -> None:
    assert not imported(path) & set(PROJECT), f"{path.name} imports project code"


@pytest.mark.parametrize("path", OTHER_SYSTEMS, ids=lambda p: p.name)
def test_sender__imports_only_the_standard_library_httpx_and_its_own_helpers(path: Path) -> None:
    # a sandbox module in between (such as the mapper-built step_down_package.py) would carry
    # project code in by the back door
    own = {p.stem for p in path.parent.glob("*.py")} if path.parent == SENDERS else set()
    allowed = set(sys.stdlib_module_names) | {"__future__", "httpx"} | own
    assert imported(path) <= allowed, imported(path) - allowed


def test_there_are_three_foreign_senders() -> None:
    senders = {p.stem for p in SENDERS.glob("*.py")} - {"fhir_http", "post"}
    assert senders == {"us_core_ehr", "pacio_toc", "gravity_bser"}


def test_imported__finds_a_project_import(tmp_path: Path) -> None:
    sender = tmp_path / "sender.py"
    sender.write_text("import json\nfrom fhir_profiles.terminology import workflow\n")
    assert imported(sender) & set(PROJECT) == {"fhir_profiles"}
