"""``iop-bridge map``: FHIR JSON written by another system in, domain view and losses out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from mappers import condition
from tests.builders import CONDITION_SYSTEM, make_diagnosis
from tests.component.api.cli_support import restored_logging  # noqa: F401  (main sets logging)

pytestmark = pytest.mark.usefixtures("restored_logging")


def _write(tmp_path: Path, content: Any, name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture(autouse=True)
def _systems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOP_BRIDGE_CONDITION_ID_SYSTEM", CONDITION_SYSTEM)


def test_map__foreign_condition_prints_domain_and_loss_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resource = condition.to_fhir(
        make_diagnosis(), id_system=CONDITION_SYSTEM, subject_reference="Patient/x"
    )
    resource["note"] = [{"text": "written by another EHR"}]
    assert main(["map", str(_write(tmp_path, resource))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["domain"]["icd10_code"] == "F10.20"
    assert out["links"] == {"subject": "Patient/x"}
    assert out["losses"] == [
        {"path": "Condition.note", "reason": "element not modelled by iop-bridge"}
    ]


def test_map__bundle_maps_each_entry_and_names_the_unsupported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = condition.to_fhir(
        make_diagnosis(), id_system=CONDITION_SYSTEM, subject_reference="Patient/x"
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": good}, {"resource": {"resourceType": "Flag"}}],
    }
    assert main(["map", str(_write(tmp_path, bundle))]) == 1
    first, second = json.loads(capsys.readouterr().out)
    assert first["domain"]["identifier"] == "DX-TEST-0001"
    assert second["problems"][0]["path"] == "resourceType"
    assert "'Flag' is not part of an IOP referral" in second["problems"][0]["message"]


def test_map__malformed_json_names_the_file_and_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, '{"resourceType": "Condition", ', "broken.json")
    assert main(["map", str(path)]) == 1
    err = json.loads(capsys.readouterr().err)
    assert err["problems"][0]["path"] == str(path)
    assert "malformed JSON" in err["problems"][0]["message"]


def test_map__json_without_resource_type_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["map", str(_write(tmp_path, {"id": "x"}))]) == 1
    assert "not a FHIR resource" in capsys.readouterr().err


def test_map__mapping_problems_exit_1_with_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resource = condition.to_fhir(
        make_diagnosis(), id_system=CONDITION_SYSTEM, subject_reference="Patient/x"
    )
    del resource["subject"]
    resource["code"]["coding"][0]["system"] = "http://hl7.org/fhir/sid/icd-9-cm"
    assert main(["map", str(_write(tmp_path, resource))]) == 1
    out = json.loads(capsys.readouterr().out)
    assert {p["path"] for p in out["problems"]} == {
        "Condition.code.coding",
        "Condition.subject.reference",
    }
