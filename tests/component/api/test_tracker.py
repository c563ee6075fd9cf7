"""The handoff tracker's pages through the ASGI app: sign-in, organization scoping, the list with
its FUI flag counts, filters and paging, and one handoff's timeline, reconciliation, trend charts
and plan hours. The FHIR server is mocked at the transport seam (respx): only the IOP
Organization's lookup goes there."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import Engine

from api.app import create_app
from api.tracker import COOKIE
from integration.db import repositories as repo
from integration.db.models import Attendance
from integration.db.store import create_db_engine, session_scope
from integration.settings import ApiKeyGrant, Settings
from integration.tenancy.scope import Scope
from integration.tracker.views import handoff_page
from tests.browser.seed import OTHER_ORGANIZATION, Seeded, seed_tracker
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

BASE = "http://fhir.test/fhir"
SECRET = "component-test-secret-of-sufficient-length"
ORG = "IOP-DEMO-ORG"
SERVER_REF = "Organization/iop-1"  # the IOP's Organization on the (mocked) FHIR server
API_KEY = "tracker-test-api-key"
TODAY = datetime.now(UTC).date()
pytestmark = pytest.mark.anyio


def token(role: str = "case-manager", org: str = ORG, *, expires_in: int = 600) -> str:
    claims = {
        "sub": "cm-1",
        "role": role,
        "org": org,
        "aud": "iop-bridge",
        "exp": int(time.time()) + expires_in,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bearer(role: str = "case-manager", org: str = ORG) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, org)}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    return Settings(
        fhir_base_url=BASE,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'tracker.db'}",
        retry_max_attempts=1,
        auth_jwt_secret=SECRET,  # type: ignore[arg-type]
        auth_api_keys={digest: ApiKeyGrant(name="cm-key", role="case-manager", organization=ORG)},
    )


@pytest.fixture
def seeded(settings: Settings) -> Seeded:
    store = create_db_engine(settings.database_url)
    try:
        return seed_tracker(store, organization=ORG, today=TODAY)
    finally:
        store.dispose()


@pytest.fixture
async def http(settings: Settings, seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    with respx.mock(assert_all_called=False) as fhir:
        # The IOP Organization lookup; the seeded rows use the identifier value itself.
        fhir.get(f"{BASE}/Organization").mock(
            return_value=httpx.Response(
                200,
                json={
                    "resourceType": "Bundle",
                    "entry": [{"resource": {"resourceType": "Organization", "id": "iop-1"}}],
                },
            )
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            yield client


def rows(html: str) -> list[str]:
    """The business identifiers of the list's rows, in order."""
    return re.findall(r'<tr data-referral="([^"]+)"', html)


def row(html: str, business_id: str) -> str:
    start = html.index(f'<tr data-referral="{business_id}"')
    return html[start : html.index("</tr>", start)]


def count(html: str, flag: str) -> int:
    match = re.search(rf'id="count-{flag}"[^>]*>\s*<span class="n">(\d+)</span>', html)
    assert match, flag
    return int(match.group(1))


# --- signing in -------------------------------------------------------------------------------


async def test_tracker__without_a_session_redirects_to_the_sign_in_page(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/tracker")
    assert (response.status_code, response.headers["location"]) == (303, "/tracker/login")
    form = await http.get("/tracker/login")
    assert form.status_code == 200 and 'name="credential"' in form.text


async def test_login__sets_an_httponly_strict_cookie_that_opens_the_pages(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/tracker/login", data={"kind": "token", "credential": token()})
    assert (response.status_code, response.headers["location"]) == (303, "/tracker")
    cookie = response.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/tracker", "Max-Age="):
        assert attribute.lower() in cookie.lower()
    page = await http.get("/tracker")  # the client keeps the cookie
    assert page.status_code == 200 and "SD-LATE" in page.text
    out = await http.post("/tracker/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and f'{COOKIE}=""' in out.headers["set-cookie"]


def csrf_of(html: str) -> str:
    """The session's CSRF token as the page's forms carry it."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def test_login__the_cookie_holds_a_session_id_not_the_credential(
    http: httpx.AsyncClient,
) -> None:
    credential = token()
    await http.post("/tracker/login", data={"kind": "token", "credential": credential})
    cookie = http.cookies[COOKIE]
    assert credential not in cookie and "." not in cookie and len(cookie) >= 40


async def test_logout__revokes_the_session_so_a_copied_cookie_is_dead(
    http: httpx.AsyncClient,
) -> None:
    await http.post("/tracker/login", data={"kind": "api-key", "credential": API_KEY})
    copied = http.cookies[COOKIE]
    page = await http.get("/tracker")
    forged = await http.post("/tracker/logout", data={"csrf": "not-the-token"})
    assert forged.status_code == 303 and "set-cookie" not in forged.headers
    assert (await http.get("/tracker")).status_code == 200  # a forged logout changed nothing
    await http.post("/tracker/logout", data={"csrf": csrf_of(page.text)})
    http.cookies.set(COOKIE, copied, path="/tracker")
    again = await http.get("/tracker")
    assert (again.status_code, again.headers["location"]) == (303, "/tracker/login")


async def test_login__with_an_api_key(http: httpx.AsyncClient) -> None:
    response = await http.post("/tracker/login", data={"kind": "api-key", "credential": API_KEY})
    assert response.status_code == 303
    assert (await http.get("/tracker")).status_code == 200


@pytest.mark.parametrize(
    ("credential", "status", "message"),
    [
        ("not-a-jwt", 401, "invalid bearer token"),
        (token("ehr-system"), 403, "may not use the handoff tracker"),
        (token(expires_in=-60), 401, "ExpiredSignatureError"),
        ("", 401, "paste a bearer token"),
    ],
)
async def test_login__refuses_bad_or_foreign_credentials(
    http: httpx.AsyncClient, credential: str, status: int, message: str
) -> None:
    response = await http.post("/tracker/login", data={"kind": "token", "credential": credential})
    assert response.status_code == status and message in response.text
    assert "set-cookie" not in response.headers


async def test_login__refuses_a_post_from_another_origin(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/tracker/login",
        data={"kind": "token", "credential": token()},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403 and "set-cookie" not in response.headers


async def test_tracker__a_stale_cookie_sends_the_browser_back_to_sign_in(
    http: httpx.AsyncClient,
) -> None:
    http.cookies.set(COOKIE, "no-such-session-token-of-forty-three-characters")
    response = await http.get("/tracker")
    assert (response.status_code, response.headers["location"]) == (303, "/tracker/login")


async def test_tracker__header_credentials_work_and_other_roles_are_refused(
    http: httpx.AsyncClient,
) -> None:
    assert (await http.get("/tracker", headers=bearer("admin"))).status_code == 200
    refused = await http.get("/tracker", headers=bearer("ehr-system"))
    assert refused.status_code == 403
    bad = await http.get("/tracker", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


async def test_tracker__pages_are_not_cached_framed_or_scripted(http: httpx.AsyncClient) -> None:
    response = await http.get("/tracker", headers=bearer())
    assert response.headers["cache-control"] == "no-store"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "<script" not in response.text
    # the one inline stylesheet is allowed by its hash, so it must be served byte for byte
    css = response.text.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy


# --- the list ---------------------------------------------------------------------------------


async def test_tracker__lists_active_handoffs_with_flag_counts(http: httpx.AsyncClient) -> None:
    html = (await http.get("/tracker", headers=bearer())).text
    assert set(rows(html)) == {"SD-ONTIME", "SD-LATE", "SD-NOSHOW", "SD-NEW", "SD-NODATE"}
    counts = {
        f: count(html, f) for f in ("total", "overdue-7", "overdue-30", "open-7", "met-7", "met-30")
    }
    assert counts == {
        "total": 5,
        "overdue-7": 2,
        "overdue-30": 1,
        "open-7": 1,
        "met-7": 1,
        "met-30": 2,
    }


async def test_tracker__flags_the_right_rows(http: httpx.AsyncClient) -> None:
    html = (await http.get("/tracker", headers=bearer())).text
    late = row(html, "SD-LATE")
    assert 'class="overdue"' in late  # the row is marked
    assert re.search(r'fui-7"><span class="flag overdue">Overdue', late)
    assert re.search(r'fui-30"><span class="flag met">Met', late)
    assert f">{(TODAY - (TODAY - timedelta(days=25))).days}<" in late  # days since discharge
    assert '<td class="num">1</td>' in late  # one no-show
    ontime = row(html, "SD-ONTIME")
    assert 'class="overdue"' not in ontime and ontime.count("flag met") == 2
    assert row(html, "SD-NEW").count("flag open") == 2
    assert row(html, "SD-NODATE").count("No date") == 2


async def test_tracker__never_shows_another_organizations_handoffs(
    http: httpx.AsyncClient, seeded: Seeded
) -> None:
    mine = (await http.get("/tracker?status=all", headers=bearer())).text
    assert "SD-ELSEWHERE" not in mine and "SD-DECLINED" in mine
    theirs = (await http.get("/tracker?status=all", headers=bearer(org=OTHER_ORGANIZATION))).text
    assert rows(theirs) == ["SD-ELSEWHERE"]
    detail = await http.get(
        f"/tracker/referrals/{seeded.ids['SD-LATE']}", headers=bearer(org=OTHER_ORGANIZATION)
    )
    assert detail.status_code == 404 and "SD-LATE" not in detail.text


async def test_tracker__the_iop_also_sees_referrals_stored_under_its_server_reference(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    store = create_db_engine(settings.database_url)
    with session_scope(store) as session:
        repo.add_referral(
            session,
            business_id="SD-INBOUND",
            client_mrn="MRN-IN",
            iop_organization=SERVER_REF,
            received_at=datetime.now(UTC),
            residential_discharge_date=TODAY,
        )
    store.dispose()
    html = (await http.get("/tracker", headers=bearer())).text
    assert "SD-INBOUND" in rows(html)
    other = (await http.get("/tracker", headers=bearer(org=OTHER_ORGANIZATION))).text
    assert "SD-INBOUND" not in other


async def test_tracker__filters_by_status_and_by_flag(http: httpx.AsyncClient) -> None:
    declined = (await http.get("/tracker?status=rejected", headers=bearer())).text
    assert rows(declined) == ["SD-DECLINED"]
    overdue = (await http.get("/tracker?flag=overdue-7", headers=bearer())).text
    assert set(rows(overdue)) == {"SD-LATE", "SD-NOSHOW"}
    assert 'id="count-overdue-7" href' in overdue and "count overdue chosen" in overdue
    assert set(rows((await http.get("/tracker?flag=open-7", headers=bearer())).text)) == {"SD-NEW"}


async def test_tracker__refuses_an_unknown_filter_naming_it(http: httpx.AsyncClient) -> None:
    response = await http.get("/tracker?status=bogus&flag=late", headers=bearer())
    assert response.status_code == 422
    assert "status" in response.text and "flag" in response.text and "bogus" in response.text


async def test_tracker__pages_through_many_handoffs(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    store = create_db_engine(settings.database_url)
    with session_scope(store) as session:
        for n in range(120):
            repo.add_referral(
                session,
                business_id=f"SD-BULK-{n:03d}",
                client_mrn="MRN-B",
                iop_organization=ORG,
                received_at=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
            )
    store.dispose()
    first = (await http.get("/tracker", headers=bearer())).text
    assert len(rows(first)) == 50 and "Page 1 of 3 · 125 matching" in first
    last = (await http.get("/tracker?page=3", headers=bearer())).text
    assert len(rows(last)) == 25 and rows(last)[-1] == "SD-BULK-000"
    beyond = (await http.get("/tracker?page=99", headers=bearer())).text
    assert "Page 3 of 3" in beyond


# --- one handoff ------------------------------------------------------------------------------


async def test_referral__timeline_in_order(http: httpx.AsyncClient, seeded: Seeded) -> None:
    html = (await http.get(f"/tracker/referrals/{seeded.ids['SD-LATE']}", headers=bearer())).text
    kinds = re.findall(r'<li class="[^"]+" data-kind="([^"]+)"', html)
    assert kinds == [
        "discharge",
        "received",
        "accepted",
        "intake",
        "no-show",
        "reconciled",
        "deadline-overdue",
        "first-session",
        "deadline-met",
    ]
    assert "day 12 after residential discharge" in html


async def test_referral__timeline_of_a_discharged_client(
    http: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await http.get(f"/tracker/referrals/{seeded.ids['SD-ONTIME']}", headers=bearer())).text
    assert "Discharged from the IOP" in html and "Aftercare acknowledged" in html
    assert "aftercare with Organization/aftercare-clinic" in html


async def test_referral__medication_reconciliation_rows(
    http: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await http.get(f"/tracker/referrals/{seeded.ids['SD-LATE']}", headers=bearer())).text
    changes = re.findall(r'class="reconciliation-row" data-change="([^"]+)"', html)
    assert changes == ["continued", "dose-changed", "stopped", "new"]
    assert "1 film three times daily" in html and "Melatonin 3 mg" in html


async def test_referral__trend_charts_and_plan_hours(
    http: httpx.AsyncClient, seeded: Seeded
) -> None:
    html = (await http.get(f"/tracker/referrals/{seeded.ids['SD-LATE']}", headers=bearer())).text
    for title, totals in (("PHQ-9", [18, 12, 8]), ("GAD-7", [15, 11, 6])):
        chart = html[html.index(f'data-instrument="{title}"') :]
        chart = chart[: chart.index("</svg>")]
        assert 'data-points="3"' in chart
        assert [int(t) for t in re.findall(r'data-total="(\d+)"', chart)] == totals
        assert "<polyline" in chart and "moderate (10-14)" in chart  # band with its thresholds
        assert f"{title} total" in chart and "Date scored" in chart  # axis labels
    assert 'data-hours="10.0"' in html and "Within 9-19 h" in html


async def test_referral__without_data_says_so(http: httpx.AsyncClient, seeded: Seeded) -> None:
    html = (await http.get(f"/tracker/referrals/{seeded.ids['SD-NEW']}", headers=bearer())).text
    assert "Not reconciled yet" in html and "No treatment plan stored yet" in html
    assert "No PHQ-9 scores yet" in html and 'data-points="0"' in html


async def test_referral__unknown_id_is_a_404_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/tracker/referrals/999999", headers=bearer())
    assert response.status_code == 404 and "no referral 999999" in response.text
    huge = await http.get(f"/tracker/referrals/{2**70}", headers=bearer())
    assert huge.status_code == 422


# --- the flag counts in SQL agree with follow_up.window_state, on both databases ----------------


def test_flag_counts__agree_with_the_row_flags_on_each_backend(engine: Engine) -> None:  # noqa: F811
    today = date(2026, 11, 23)
    with session_scope(engine) as session:
        for n in range(60):  # discharged 0..59 days ago; attended on day n % 11, or never
            referral = repo.add_referral(
                session,
                business_id=f"SD-{n}",
                client_mrn="M",
                iop_organization=ORG,
                residential_discharge_date=today - timedelta(days=n),
                received_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n),
            )
            if n % 3:
                starts = datetime.combine(
                    today - timedelta(days=n) + timedelta(days=n % 11),
                    datetime.min.time(),
                    tzinfo=UTC,
                )
                repo.record_session(
                    session,
                    referral,
                    business_id=f"S-{n}",
                    starts_at=starts,
                    attendance=Attendance.ATTENDED,
                )
    with session_scope(engine) as session:
        page = handoff_page(session, scope=Scope((ORG,)), today=today, status="all", page_size=100)
    views = page.rows
    assert len(views) == 60
    expected = {
        "overdue_7": sum(v.follow_up_7 == "overdue" for v in views),
        "overdue_30": sum(v.follow_up_30 == "overdue" for v in views),
        "open_7": sum(v.follow_up_7 == "open" for v in views),
        "met_7": sum(v.follow_up_7 == "met" for v in views),
        "met_30": sum(v.follow_up_30 == "met" for v in views),
    }
    counts = page.counts
    assert {k: getattr(counts, k) for k in expected} == expected, expected
    assert min(expected.values()) > 0  # every state occurs, so the comparison means something
