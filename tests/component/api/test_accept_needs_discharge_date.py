"""Accept needs the residential discharge date (the 7- and 30-day follow-up windows start from
it): without one the API refuses naming the missing element (problem JSON, or OperationOutcome
for FHIR callers) and the tracker offers no plain accept, shows why and keeps decline; the case
manager can record the date with the accept. Nothing is stored or queued by a refusal."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from integration.db import models
from integration.db.inbound_table import ReferralLink
from integration.db.store import create_db_engine, session_scope
from integration.settings import Settings
from mappers.referral_package.summary import NO_DISCHARGE_DATE
from tests.component.api.action_support import add_linked_referral, status_of, task_messages
from tests.component.api.test_tracker import (  # noqa: F401 (fixtures)
    SERVER_REF,
    bearer,
    http,
    seeded,
    settings,
)
from tests.component.api.test_tracker_actions import form_fields, signed_in  # noqa: F401

pytestmark = pytest.mark.anyio
KEY = "SD-NODATE-1"
PATH = f"/api/referrals/{KEY}"
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).date()


@pytest.fixture
def undated(settings: Settings) -> int:  # noqa: F811
    engine = create_db_engine(settings.database_url)
    try:
        referral_id = add_linked_referral(engine, KEY, SERVER_REF, discharged=False)
        with session_scope(engine) as session:  # as inbound stores a package without the date
            link = session.query(ReferralLink).filter_by(referral_id=referral_id).one()
            link.package_summary = {
                "attention": [NO_DISCHARGE_DATE], "stay": None, "diagnoses": [],
                "co_occurring": False, "assessments": [], "screenings": [], "medications": [],
                "consent": None, "preferences": [], "labels": [], "part2": False,
            }  # fmt: skip
        return referral_id
    finally:
        engine.dispose()


def stored_date(settings: Settings, referral_id: int) -> date | None:  # noqa: F811
    with session_scope(create_db_engine(settings.database_url)) as session:
        referral = session.get(models.Referral, referral_id)
        assert referral is not None
        return referral.residential_discharge_date


async def test_api__accept_without_the_date_is_refused_naming_the_element(
    http: httpx.AsyncClient,  # noqa: F811
    undated: int,
    settings: Settings,  # noqa: F811
) -> None:
    response = await http.post(f"{PATH}/accept", headers=bearer())
    assert response.status_code == 409
    [problem] = response.json()["problems"]
    assert problem["path"] == "Encounter.period.end"
    assert "residential discharge date is missing" in problem["message"]
    as_fhir = await http.post(
        f"{PATH}/accept", headers=bearer() | {"Accept": "application/fhir+json"}
    )
    outcome = as_fhir.json()
    assert as_fhir.status_code == 409 and outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Encounter.period.end"]
    engine = create_db_engine(settings.database_url)
    assert status_of(engine, undated) == "requested" and task_messages(engine, KEY) == []
    declined = await http.post(f"{PATH}/decline", json={"reason": "package-incomplete"},
                               headers=bearer())  # fmt: skip
    assert declined.status_code == 200 and declined.json()["status"] == "rejected"


async def test_api__the_case_manager_records_the_date_with_the_accept(
    http: httpx.AsyncClient,  # noqa: F811
    undated: int,
    settings: Settings,  # noqa: F811
) -> None:
    body = {"residential_discharge_date": YESTERDAY.isoformat()}
    response = await http.post(f"{PATH}/accept", json=body, headers=bearer())
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert stored_date(settings, undated) == YESTERDAY
    engine = create_db_engine(settings.database_url)
    assert [m["status"] for m in task_messages(engine, KEY)] == ["accepted"]
    with session_scope(engine) as session:
        link = session.query(ReferralLink).filter_by(referral_id=undated).one()
        assert link.package_summary["attention"] == []  # answered: no longer flagged


async def test_api__a_future_date_is_refused_by_field_and_nothing_is_stored(
    http: httpx.AsyncClient,  # noqa: F811
    undated: int,
    settings: Settings,  # noqa: F811
) -> None:
    body = {"residential_discharge_date": (YESTERDAY + timedelta(days=10)).isoformat()}
    response = await http.post(f"{PATH}/accept", json=body, headers=bearer())
    assert response.status_code == 422
    assert [p["path"] for p in response.json()["problems"]] == ["residential_discharge_date"]
    assert stored_date(settings, undated) is None
    assert status_of(create_db_engine(settings.database_url), undated) == "requested"


async def test_api__the_senders_date_is_never_overwritten(
    http: httpx.AsyncClient,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    referral_id = add_linked_referral(create_db_engine(settings.database_url), KEY, SERVER_REF)
    body = {"residential_discharge_date": (YESTERDAY - timedelta(days=3)).isoformat()}
    response = await http.post(f"{PATH}/accept", json=body, headers=bearer())
    assert response.status_code == 422
    [problem] = response.json()["problems"]
    assert problem["path"] == "residential_discharge_date"
    assert f"the package states {YESTERDAY.isoformat()}" in problem["message"]
    assert stored_date(settings, referral_id) == YESTERDAY
    again = await http.post(f"{PATH}/accept", json={"residential_discharge_date":
                            YESTERDAY.isoformat()}, headers=bearer())  # fmt: skip
    assert again.status_code == 200  # the same date: nothing to change


async def test_tracker__no_plain_accept__the_reason_shown__decline_kept__date_then_accept(
    signed_in: httpx.AsyncClient,  # noqa: F811
    undated: int,
    settings: Settings,  # noqa: F811
) -> None:
    page = (await signed_in.get(f"/tracker/referrals/{undated}")).text
    assert 'id="accept-form"' not in page and 'id="decline-form"' in page
    assert 'id="accept-refused"' in page and "period.end" in page
    fields = form_fields(page, "discharge-date")
    missing = await signed_in.post(f"/tracker/referrals/{undated}/accept", data=fields)
    assert missing.status_code == 409 and "residential discharge date is missing" in missing.text
    fields = form_fields(missing.text, "discharge-date")  # the page as re-rendered
    fields["residential_discharge_date"] = YESTERDAY.isoformat()
    accepted = await signed_in.post(f"/tracker/referrals/{undated}/accept", data=fields)
    assert accepted.status_code == 303
    assert status_of(create_db_engine(settings.database_url), undated) == "accepted"
    after = (await signed_in.get(accepted.headers["location"])).text
    assert 'id="accept-refused"' not in after and NO_DISCHARGE_DATE not in after
