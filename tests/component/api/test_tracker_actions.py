"""The referral page's action forms through the ASGI app: only what the state allows is offered,
every POST needs the session's CSRF token (and this origin), a double submit acts once, errors
name their field on the page, success redirects (Post/Redirect/Get), each action is audited as
the signed-in person and shows its queued Task change."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from integration.db.audit_table import AuditEventRecord
from integration.db.models import Referral
from integration.db.store import create_db_engine, session_scope
from integration.db.tracker_tables import TrackerSubmission
from integration.referrals.actions import claim_form
from integration.settings import Settings
from tests.component.api.action_support import add_linked_referral, status_of, task_messages
from tests.component.api.test_tracker import (  # noqa: F401 (fixtures)
    SERVER_REF,
    http,
    seeded,
    settings,
    token,
)

pytestmark = pytest.mark.anyio


def form_fields(html: str, form: str) -> dict[str, str]:
    """The hidden fields (csrf, form_id) of one form on the page."""
    start = html.index(f'id="{form}-form"')
    chunk = html[start : html.index("</form>", start)]
    return dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]+)"', chunk))


@pytest.fixture
async def signed_in(http: httpx.AsyncClient) -> httpx.AsyncClient:  # noqa: F811
    response = await http.post("/tracker/login", data={"kind": "token", "credential": token()})
    assert response.status_code == 303
    return http


@pytest.fixture
def referral(settings: Settings) -> int:  # noqa: F811
    engine = create_db_engine(settings.database_url)
    try:
        return add_linked_referral(engine, "SD-ACT-1", SERVER_REF)
    finally:
        engine.dispose()


def engine_of(settings: Settings):  # type: ignore[no-untyped-def]  # noqa: F811
    return create_db_engine(settings.database_url)


async def test_page__offers_accept_and_decline_on_a_requested_referral_with_the_client(
    signed_in: httpx.AsyncClient, referral: int
) -> None:
    html = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    assert 'id="accept-form"' in html and 'id="decline-form"' in html
    assert 'id="schedule-form"' not in html and 'id="session-form"' not in html
    assert "Avery Quinn Testperson" in html and 'id="client-language">es<' in html
    assert re.search(r'id="client-age">\d+ \(born 1990-06-15\)', html)


async def test_accept__redirects_audits_the_person_and_queues_the_task_change(
    signed_in: httpx.AsyncClient,
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    page = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    response = await signed_in.post(
        f"/tracker/referrals/{referral}/accept", data=form_fields(page, "accept")
    )
    assert (response.status_code, response.headers["location"]) == (
        303, f"/tracker/referrals/{referral}?done=accept",
    )  # fmt: skip
    engine = engine_of(settings)
    assert status_of(engine, referral) == "accepted"
    assert [m["status"] for m in task_messages(engine, "SD-ACT-1")] == ["accepted"]
    with session_scope(engine) as session:
        events = session.scalars(
            select(AuditEventRecord).where(AuditEventRecord.action == "accept")
        ).all()
        assert [(e.agent_subject, e.agent_role) for e in events] == [("cm-1", "case-manager")]
    after = (await signed_in.get(response.headers["location"])).text
    assert 'id="done"' in after and 'data-state="queued"' in after and "Task accepted" in after
    assert 'id="schedule-form"' in after and 'id="accept-form"' not in after


async def test_post__without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    signed_in: httpx.AsyncClient,
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    page = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    fields = form_fields(page, "accept")
    for forged in ({**fields, "csrf": "guessed"}, {"form_id": fields["form_id"]}):
        response = await signed_in.post(f"/tracker/referrals/{referral}/accept", data=forged)
        assert response.status_code == 403
    other_site = await signed_in.post(
        f"/tracker/referrals/{referral}/accept", data=fields,
        headers={"Origin": "https://evil.example"},
    )  # fmt: skip
    assert other_site.status_code == 403
    assert status_of(engine_of(settings), referral) == "requested"


async def test_double_submit__of_one_form_acts_once(
    signed_in: httpx.AsyncClient,
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    page = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    fields = form_fields(page, "accept")
    first = await signed_in.post(f"/tracker/referrals/{referral}/accept", data=fields)
    second = await signed_in.post(f"/tracker/referrals/{referral}/accept", data=fields)
    assert first.status_code == second.status_code == 303
    assert len(task_messages(engine_of(settings), "SD-ACT-1")) == 1


async def test_decline__without_a_reason_names_the_field_on_the_page(
    signed_in: httpx.AsyncClient,
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    page = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    data = {**form_fields(page, "decline"), "reason": "", "note": "kept on the page"}
    response = await signed_in.post(f"/tracker/referrals/{referral}/decline", data=data)
    assert response.status_code == 422
    assert 'id="decline-reason-error"' in response.text and "reason: choose why" in response.text
    assert "kept on the page" in response.text  # what was typed is not lost
    assert status_of(engine_of(settings), referral) == "requested"


async def test_schedule_and_session__fields_checked_then_the_task_moves(
    signed_in: httpx.AsyncClient,
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    accept = form_fields((await signed_in.get(f"/tracker/referrals/{referral}")).text, "accept")
    await signed_in.post(f"/tracker/referrals/{referral}/accept", data=accept)
    page = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    bad = {**form_fields(page, "schedule"), "date": "2026-02-30", "delivery": "by-pigeon"}
    refused = await signed_in.post(f"/tracker/referrals/{referral}/schedule", data=bad)
    assert refused.status_code == 422
    assert "date: &#39;2026-02-30&#39; is not a date" in refused.text
    assert "delivery: &#39;by-pigeon&#39; is not one of" in refused.text
    good = {**form_fields(page, "schedule"), "date": "2026-12-09", "time": "10:30",
            "delivery": "virtual"}  # fmt: skip
    assert (
        await signed_in.post(f"/tracker/referrals/{referral}/schedule", data=good)
    ).status_code == 303
    page = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    assert 'id="intake">2026-12-09 10:30 · telehealth<' in page
    session = {**form_fields(page, "session"), "date": "2026-12-09", "time": "10:30",
               "minutes": "180", "kind": "group", "delivery": "virtual",
               "attendance": "attended"}  # fmt: skip
    recorded = await signed_in.post(f"/tracker/referrals/{referral}/session", data=session)
    assert recorded.status_code == 303, re.findall(
        r"field-error[^>]*>([^<]+)|action-error[^>]*>([^<]+)", recorded.text
    )
    engine = engine_of(settings)
    assert status_of(engine, referral) == "completed"
    codes = [m["businessStatus"]["coding"][0]["code"] for m in task_messages(engine, "SD-ACT-1")]
    assert codes == ["3.0", "5.1.1", "7.0"]


async def test_an_action_the_state_does_not_offer_is_refused_on_the_page(
    signed_in: httpx.AsyncClient, referral: int
) -> None:
    page = (await signed_in.get(f"/tracker/referrals/{referral}")).text
    data = {**form_fields(page, "accept"), "date": "2026-12-09", "delivery": "virtual"}
    response = await signed_in.post(f"/tracker/referrals/{referral}/schedule", data=data)
    assert response.status_code == 409
    assert 'id="action-error"' in response.text and "does not offer" in response.text


async def test_list__shows_the_client_beside_the_mrn(
    signed_in: httpx.AsyncClient,
    referral: int,
) -> None:
    html = (await signed_in.get("/tracker")).text
    start = html.index('<tr data-referral="SD-ACT-1"')
    row = html[start : html.index("</tr>", start)]
    assert re.search(
        r"Avery Quinn Testperson, \d+ · es<br><span class=\"muted\">MRN MRN-SD-ACT-1", row
    )


async def test_claim_form__an_action_refused_after_the_claim_leaves_the_form_unspent(
    referral: int,
    settings: Settings,  # noqa: F811
) -> None:
    """On SQLite the claim's SAVEPOINT was the transaction's first write, and releasing it
    committed the form id even when the action was then refused and rolled back."""
    engine, form_id = engine_of(settings), "f" * 24
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        row = session.get(Referral, referral)
        assert row is not None and claim_form(session, form_id, row, "accept")
        raise RuntimeError("the action is refused after the claim")
    with session_scope(engine) as session:
        assert session.get(TrackerSubmission, form_id) is None
        row = session.get(Referral, referral)
        assert row is not None and claim_form(session, form_id, row, "accept")
        assert not claim_form(session, form_id, row, "accept")  # the twin acts no more
