"""The IOP's actions through the API (its EHR and integrators): the same service and checks as
the tracker's forms, for case managers and ehr-system callers of the owning organization."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from integration.db.store import create_db_engine, session_scope
from integration.medications import lists as medication_lists
from integration.medications.workflow import medication_differences
from integration.settings import Settings
from tests.builders.referrals import make_medication_list
from tests.component.api.action_support import add_linked_referral, status_of, task_messages
from tests.component.api.test_tracker import (  # noqa: F401 (fixtures)
    SERVER_REF,
    bearer,
    http,
    seeded,
    settings,
)

pytestmark = pytest.mark.anyio
PATH = "/api/referrals/SD-API-1"


@pytest.fixture
def referral(settings: Settings) -> int:  # noqa: F811
    engine = create_db_engine(settings.database_url)
    try:
        return add_linked_referral(engine, "SD-API-1", SERVER_REF)
    finally:
        engine.dispose()


async def test_the_iops_ehr_accepts_schedules_and_records_the_first_session(
    http: httpx.AsyncClient,  # noqa: F811
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    ehr = bearer("ehr-system")  # the IOP's own EHR: its organization owns the referral
    accepted = await http.post(f"{PATH}/accept", headers=ehr)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    intake = {"date": "2026-12-09", "time": "10:00", "delivery": "virtual"}
    assert (await http.post(f"{PATH}/intake", json=intake, headers=ehr)).status_code == 200
    session = {"date": "2026-12-09", "time": "10:00", "minutes": 120, "identifier": "EHR-1"}
    done = await http.post(f"{PATH}/sessions", json=session, headers=bearer())
    assert done.status_code == 200 and done.json()["status"] == "completed"
    again = await http.post(f"{PATH}/sessions", json=session, headers=bearer())
    assert again.status_code == 409  # the EHR's retry of the same session stores nothing twice
    codes = [
        m["businessStatus"]["coding"][0]["code"]  # type: ignore[index]
        for m in task_messages(create_db_engine(settings.database_url), "SD-API-1")
    ]
    assert codes == ["3.0", "5.1.1", "7.0"]


async def test_validation__names_each_field_like_the_tracker(
    http: httpx.AsyncClient,  # noqa: F811
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    await http.post(f"{PATH}/accept", headers=bearer())
    response = await http.post(
        f"{PATH}/intake", json={"date": "2026-13-01", "delivery": "virtual"}, headers=bearer()
    )
    assert response.status_code == 422
    assert [p["path"] for p in response.json()["problems"]] == ["date"]
    declined = await http.post(f"{PATH}/decline", json={"reason": "no-capacity"}, headers=bearer())
    assert declined.status_code == 409  # accepted: declining is no longer offered
    assert status_of(create_db_engine(settings.database_url), referral) == "accepted"


async def test_decline__other_needs_a_note_and_unknown_reasons_are_refused(
    http: httpx.AsyncClient,  # noqa: F811
    referral: int,
) -> None:
    no_note = await http.post(f"{PATH}/decline", json={"reason": "other"}, headers=bearer())
    assert no_note.status_code == 422 and no_note.json()["problems"][0]["path"] == "note"
    unknown = await http.post(f"{PATH}/decline", json={"reason": "bored"}, headers=bearer())
    assert unknown.status_code == 422 and unknown.json()["problems"][0]["path"] == "reason"
    ok = await http.post(
        f"{PATH}/decline", json={"reason": "no-capacity", "note": "six-week wait"},
        headers=bearer(),
    )  # fmt: skip
    assert ok.status_code == 200 and ok.json()["status"] == "rejected"


async def test_the_admin_cannot_act(
    http: httpx.AsyncClient,  # noqa: F811
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    # other organizations get 404: tests/component/api/test_access_matrix.py (every route)
    assert (await http.post(f"{PATH}/accept", headers=bearer("admin"))).status_code == 403
    assert status_of(create_db_engine(settings.database_url), referral) == "requested"


async def test_reconciliation__per_line_as_the_tracker_states_it(
    http: httpx.AsyncClient,  # noqa: F811
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    engine = create_db_engine(settings.database_url)
    with session_scope(engine) as session:  # sertraline 50 mg, then buprenorphine
        medication_lists.record_discharge_list(
            session, referral, make_medication_list(identifier="MEDLIST-API-1"), datetime.now(UTC)
        )
    await http.post(f"{PATH}/accept", headers=bearer())
    same_dose = {"lines": [{"position": 0, "action": "change-dose", "dose": "50 mg"}]}
    refused = await http.post(f"{PATH}/reconciliation", json=same_dose, headers=bearer())
    assert refused.status_code == 422 and refused.json()["problems"][0]["path"] == "dose-0"
    stated = {
        "lines": [{"position": 0, "action": "change-dose", "dose": "100 mg", "times": 1},
                  {"position": 1, "action": "stop"}],
        "new": [{"medication": "Naltrexone 50 MG Oral Tablet", "dose": "50 mg"}],
    }  # fmt: skip
    assert (await http.post(f"{PATH}/reconciliation", json=stated, headers=bearer())).is_success
    with session_scope(engine) as session:
        view = medication_differences(session, referral)
        assert view is not None
        assert sorted(d.change for d in view.differences) == ["dose-changed", "new", "stopped"]
