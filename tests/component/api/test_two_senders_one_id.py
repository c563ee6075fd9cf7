"""Two senders, one referral id (issue 13): the tracker shows both referrals and each of its
actions acts on the referral on the page, never on the other sender's; each page's "Sent to the
FHIR server" lists its own writes only; API callers name the sender with ``referrer`` (the
list's filter), and without it a shared id is 409. The FHIR server is mocked (respx)."""

# ruff: noqa: F811  (fixtures imported from referral_support are test parameters here)

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, select

from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from integration.medications import lists as medication_lists
from mappers.medication import ListSource
from tests.builders.referrals import make_medication_list
from tests.component.api.referral_support import (  # noqa: F401
    IOP,
    NEXT,
    OTHER,
    RES,
    app,
    auth,
    fhir_mock,
    http,
    org_ref,
    settings,
    store,
    submission,
)
from tests.component.api.test_discharges_api import _clinical_record
from tests.component.api.test_tracker_actions import form_fields
from tests.db.fixtures import empty_db_url  # noqa: F401

pytestmark = pytest.mark.anyio
SHARED = "SD-000031"  # both senders' referral id; test_discharges_api's record answers sr31
SENDERS = (org_ref(RES), org_ref(OTHER))


def _add(store: Engine, sender: str, n: int) -> int:
    """An accepted referral of ``sender`` under SHARED with its Task references and discharge
    list (the same list identifier for both: each sender's own)."""
    now = datetime.now(UTC)
    with session_scope(store) as session:
        referral = repo.add_referral(
            session, business_id=SHARED, sender=sender, status="accepted",
            client_mrn=f"MRN-{n}", iop_organization=org_ref(IOP),
            received_at=now - timedelta(days=3 - n), residential_discharge_date=now.date(),
        )  # fmt: skip
        session.add(ReferralLink(
            referral_id=referral.id, task_identifier_system=f"urn:sender-{n}:tasks",
            task_identifier_value=SHARED, service_request="ServiceRequest/sr31",
            patient="Patient/p31", requester=sender, owner=org_ref(IOP),
            authored_on=now - timedelta(days=4),
        ))  # fmt: skip
        session.add(models.Intake(referral_id=referral.id))
        meds = make_medication_list(identifier="MEDLIST-SHARED")
        medication_lists.store_discharge_list(session, referral, meds, now - timedelta(days=1))
        return referral.id


@pytest.fixture
def case_manager() -> dict[str, str]:
    """Made per test: a token made at import (referral_support's) may expire before a late
    test in a long run."""
    return auth("case-manager", IOP)


@pytest.fixture
async def tracker(http: httpx.AsyncClient, case_manager: dict[str, str]) -> httpx.AsyncClient:
    credential = case_manager["Authorization"].removeprefix("Bearer ")
    response = await http.post("/tracker/login", data={"kind": "token", "credential": credential})
    assert response.status_code == 303
    return http


@pytest.fixture
def two(store: Engine) -> tuple[int, int]:
    return _add(store, SENDERS[0], 1), _add(store, SENDERS[1], 2)


async def _act(tracker: httpx.AsyncClient, key: int, action: str, **fields: str) -> None:
    page = (await tracker.get(f"/tracker/referrals/{key}")).text
    data = form_fields(page, action) | fields
    response = await tracker.post(f"/tracker/referrals/{key}/{action}", data=data)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/tracker/referrals/{key}?done={action}"


def _lists(store: Engine, key: int) -> dict[str, str]:
    with session_scope(store) as session:
        query = select(models.MedicationListRecord).where(
            models.MedicationListRecord.referral_id == key
        )
        return {r.source: r.business_id for r in session.scalars(query)}


def _messages(store: Engine, aggregate: str) -> list[tuple[str, dict[str, Any]]]:
    with session_scope(store) as session:
        query = select(OutboxMessage).where(OutboxMessage.aggregate_type == aggregate)
        query = query.order_by(OutboxMessage.id)
        return [(m.aggregate_key, m.payload) for m in session.scalars(query)]


def _deliveries(html: str) -> list[str]:
    section = html[html.index('id="deliveries"') :]
    return re.findall(r'<tr class="delivery"[^>]*>\s*<td>[^<]*</td>\s*<td>([^<]*)</td>', section)


async def test_tracker__shows_both_and_reconciles_the_one_on_the_page(
    tracker: httpx.AsyncClient, store: Engine, two: tuple[int, int]
) -> None:
    first, second = two
    listed = (await tracker.get("/tracker")).text
    assert listed.count(f'data-referral="{SHARED}"') == 2
    assert f'href="/tracker/referrals/{first}"' in listed
    assert f'href="/tracker/referrals/{second}"' in listed

    await _act(tracker, second, "reconcile", **{"line-1": "stop"})
    reconciled = {s: v for s, v in _lists(store, second).items() if s != "residential-discharge"}
    assert reconciled == {  # the second sender's: its own identifiers, apart from the first's
        "iop-intake": f"{SHARED}@{second}-INTAKE", "reconciled": f"{SHARED}@{second}-RECONCILED",
    }  # fmt: skip
    assert set(_lists(store, first)) == {"residential-discharge"}  # untouched
    [(key, payload)] = _messages(store, "medication-reconciliation")
    assert key == str(second)
    lists = [e["resource"] for e in payload["entry"] if e["resource"]["resourceType"] == "List"]
    assert [li["identifier"][0]["value"] for li in lists] == [
        f"{SHARED}@{second}-RECONCILED", f"{SHARED}@{second}-RECONCILED-CHANGES",
    ]  # fmt: skip

    await _act(tracker, first, "reconcile")  # the first keeps the plain id: nothing collides
    assert _lists(store, first)["reconciled"] == f"{SHARED}-RECONCILED"
    assert [k for k, _ in _messages(store, "medication-reconciliation")] == [
        str(second), str(first),
    ]  # fmt: skip


async def test_tracker__each_page_lists_only_its_own_writes(
    tracker: httpx.AsyncClient, store: Engine, two: tuple[int, int]
) -> None:
    first, second = two
    await _act(tracker, first, "schedule", date=datetime.now(UTC).date().isoformat(),
               delivery="in-person")  # fmt: skip
    await _act(tracker, second, "reconcile")
    own_first = _deliveries((await tracker.get(f"/tracker/referrals/{first}")).text)
    own_second = _deliveries((await tracker.get(f"/tracker/referrals/{second}")).text)
    assert own_first == ["Task accepted (Service Request Event Scheduled)"]
    assert own_second == ["transaction: 6 entries (List, MedicationRequest)"]


async def test_tracker__discharges_the_one_on_the_page(
    tracker: httpx.AsyncClient, store: Engine, two: tuple[int, int], fhir_mock: respx.MockRouter
) -> None:
    first, second = two
    await _act(tracker, second, "reconcile")
    _clinical_record(fhir_mock, submission(31), recipients=(org_ref(IOP), org_ref(NEXT)))
    await _act(
        tracker, second, "discharge", date=datetime.now(UTC).date().isoformat(), time="10:00",
        next_provider=NEXT, next_provider_name="Harbor Street",
        relapse_prevention="Call sponsor", medication_follow_up="Prescriber in 14 days",
    )  # fmt: skip
    with session_scope(store) as session:
        discharged = session.scalars(select(models.DischargeRecord.referral_id)).all()
    assert discharged == [second]
    [(key, payload)] = _messages(store, "discharge")
    assert key == str(second)
    aftercare = [e["resource"] for e in payload["entry"] if e["resource"]["resourceType"] == "Task"]
    assert [t["identifier"][0]["value"] for t in aftercare] == [f"{SHARED}@{second}-AFTERCARE"]
    page = (await tracker.get(f"/tracker/referrals/{first}")).text
    assert 'id="discharge-form"' not in page and 'id="reconcile-form"' in page  # first: as it was


async def test_api__names_the_sender_with_referrer_else_409(
    http: httpx.AsyncClient, store: Engine, two: tuple[int, int], case_manager: dict[str, str]
) -> None:
    first, second = two
    url = f"/api/referrals/{SHARED}"
    ambiguous = await http.get(url, headers=case_manager)
    assert ambiguous.status_code == 409 and "more than one sender" in ambiguous.text
    for sender in SENDERS:
        named = await http.get(url, params={"referrer": sender}, headers=case_manager)
        assert named.status_code == 200 and named.json()["referrer"] == sender
    stated = {"lines": [{"position": 1, "action": "stop"}]}
    refused = await http.post(f"{url}/reconciliation", json=stated, headers=case_manager)
    assert refused.status_code == 409 and _lists(store, first) == _lists(store, second) == {
        "residential-discharge": "MEDLIST-SHARED"
    }  # nothing stored for either
    done = await http.post(
        f"{url}/reconciliation", params={"referrer": SENDERS[0]}, json=stated,
        headers=case_manager,
    )  # fmt: skip
    assert done.status_code == 200, done.text
    assert ListSource.RECONCILED in _lists(store, first)
    assert ListSource.RECONCILED not in _lists(store, second)
    unknown = await http.get(url, params={"referrer": org_ref(NEXT)}, headers=case_manager)
    assert unknown.status_code == 404
