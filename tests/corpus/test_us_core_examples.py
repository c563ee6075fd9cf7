"""The public yardstick: every example instance of HL7 US Core 9.0.0 (CC0, written by others,
``../shared/corpus/us-core-9.0.0/examples``) through ``iop-bridge map``.

Nothing crashes; what an IOP referral needs is accepted (Patients, Conditions, Goals,
MedicationRequests, the PHQ-9, AUDIT-C and TAPS responses, the ulcer CarePlan, the rehab
ServiceRequest); everything else is refused with a reason naming the element. The README's
corpus table is this test's ``corpus_table()`` (``python -m tests.corpus.test_us_core_examples``
prints it).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from api.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT.parent / "shared" / "corpus" / "us-core-9.0.0" / "examples"
if not EXAMPLES.is_dir():  # a worktree: ../shared beside it; the main checkout: /work/shared
    EXAMPLES = Path("/work/shared/corpus/us-core-9.0.0/examples")
FILES = sorted(EXAMPLES.glob("*.json"))

ACCEPTED = {
    "patient-child-example.json", "patient-deceased-example.json", "patient-example.json",
    "patient-infant-example.json",
    "condition-SDOH-example.json", "condition-duodenal-ulcer-resolved.json",
    "condition-duodenal-ulcer.json", "condition-encounter-diagnosis-example1.json",
    "condition-encounter-diagnosis-example2.json", "health-concern-example.json",
    "goal-1.json", "goal-sdoh-2.json",
    "medicationrequest-coded-oral-axid.json", "medicationrequest-contained-oral-axid.json",
    "medicationrequest-referenced-oral-axid.json", "medicationrequest-self-tylenol.json",
    "QuestionnaireResponse-phq-9-example.json", "QuestionnaireResponse-AUDIT-C.json",
    "QuestionnaireResponse-TAPS.json",
    "careplan-ulcer-example.json", "servicerequest-rehab.json",
}  # fmt: skip


def map_file(path: Path) -> tuple[int, Any]:
    """``iop-bridge map FILE`` in this process: its exit code and its printed JSON."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["map", str(path)])
    return code, json.loads(out.getvalue())


def test_corpus_is_there() -> None:
    assert len(FILES) == 230, f"expected the 230 US Core 9.0.0 examples in {EXAMPLES}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example__accepted_or_refused_naming_the_element(path: Path) -> None:
    code, view = map_file(path)
    views = view if isinstance(view, list) else [view]
    if path.name in ACCEPTED:
        assert code == 0, views
        assert all("problems" not in v for v in views)
        return
    assert code == 1, f"{path.name} was accepted: {views}"
    for refused in (v for v in views if "problems" in v):
        assert refused["problems"], refused
        for problem in refused["problems"]:
            # every reason names the element it is about: a FHIR path or "resourceType"
            assert problem["path"].split(".")[0].split("[")[0] in (
                refused["resourceType"], "resourceType", "resource", "Bundle",
            ), problem  # fmt: skip


def test_us_core_phq9__maps_as_phq9_with_total_12() -> None:
    code, view = map_file(EXAMPLES / "QuestionnaireResponse-phq-9-example.json")
    assert code == 0
    assert view["domain"]["instrument"] == "phq-9"
    assert view["domain"]["total"] == 12
    assert view["domain"]["sender_total"] == 12


def test_delivery_encounter__refused_as_not_a_stay_naming_its_type() -> None:
    code, view = map_file(EXAMPLES / "encounter-delivery.json")
    assert code == 1
    messages = {p["path"]: p["message"] for p in view["problems"]}
    assert "Normal delivery" in messages["Encounter.type"]
    assert "not a residential treatment stay" in messages["Encounter.type"]


def test_the_real_command__maps_one_example() -> None:
    script = Path(sys.executable).with_name("iop-bridge")  # the console script of this venv
    command = [str(script), "map", str(EXAMPLES / "patient-example.json")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["domain"]["mrn"] == "1032702"


def corpus_table() -> str:
    """The README table: per resource type, accepted / refused / why (the commonest reason)."""
    accepted: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = {}
    for path in FILES:
        _, view = map_file(path)
        for item in view if isinstance(view, list) else [view]:
            kind = str(item.get("resourceType"))
            if "problems" not in item:
                accepted[kind] += 1
                continue
            refused[kind] += 1
            first = item["problems"][0]
            reason = f"{first['path']}: {first['message']}"
            reasons.setdefault(kind, Counter())[_short(reason)] += 1
    rows = ["| resource type | accepted | refused | why refused (commonest) |", "|---|---|---|---|"]
    for kind in sorted(accepted.keys() | refused.keys()):
        why = reasons[kind].most_common(1)[0][0] if kind in reasons else ""
        rows.append(f"| {kind} | {accepted[kind]} | {refused[kind]} | {why} |")
    return "\n".join(rows)


def _short(reason: str) -> str:
    return reason if len(reason) <= 110 else reason[:107] + "..."


if __name__ == "__main__":
    print(corpus_table())
