"""``iop-bridge validate`` against the real server: per-file outcome, non-zero exit on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main
from fhir_profiles.registry import example_resources
from tests.component.api.cli_support import restored_logging  # noqa: F401  (main sets logging)
from tests.conftest import live_base_url

# --load-profiles uploads our profiles, which derive from US Core: the server needs it first.
pytestmark = [pytest.mark.live, pytest.mark.usefixtures("restored_logging", "us_core")]


def test_validate__good_and_bad_files_each_get_an_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOP_BRIDGE_FHIR_BASE_URL", live_base_url())
    patient = next(r for r in example_resources() if r["resourceType"] == "Patient")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(patient))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({k: v for k, v in patient.items() if k != "birthDate"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code = main(["validate", "--load-profiles", "--json", str(good), str(bad), str(broken)])
    reports = {Path(r["file"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert code == 1
    assert reports["good.json"]["ok"] is True
    assert reports["bad.json"]["ok"] is False
    assert any("birthDate" in e["message"] for e in reports["bad.json"]["errors"])
    assert "malformed JSON" in reports["broken.json"]["errors"][0]["message"]


def test_validate__all_good_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOP_BRIDGE_FHIR_BASE_URL", live_base_url())
    files = []
    for resource in example_resources():
        path = tmp_path / f"{resource['resourceType']}-{resource['id']}.json"
        path.write_text(json.dumps(resource))
        files.append(str(path))
    assert main(["validate", "--load-profiles", *files]) == 0
    assert capsys.readouterr().out.count(": OK") == len(files)
