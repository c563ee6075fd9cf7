"""The referral page's consent form and how the tracker shows a refused action, through the
ASGI app with the FHIR server mocked (respx): a discharge refused for Part 2 points to the
consent form; the consent recorded there lets the same discharge through; a refusal shows its
title and each problem with its path in words."""

# ruff: noqa: F811  (fixtures imported from referral_support are test parameters here)

from __future__ import annotations

import html
import json
import re
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import Engine, func, select

from api.tracker_render import readable_path
from integration.db import repositories as repo
from integration.db.models import DisclosureConsentRecord, Referral
from integration.db.store import session_scope
from integration.settings import Settings
from tests.component.api.referral_support import (  # noqa: F401
    CASE_MANAGER,
    IOP,
    NEXT,
    app,
    fhir_mock,
    http,
    org_ref,
    settings,
    store,
)
from tests.component.api.test_discharges_api import REFERRAL, _clinical_record, _ready
from tests.db.fixtures import empty_db_url  # noqa: F401

pytestmark = pytest.mark.anyio
TODAY = date.today()
DISCHARGE = {
    "date": TODAY.isoformat(), "time": "16:00", "next_provider": NEXT,
    "next_provider_name": "Harbor Street", "relapse_prevention": "Call sponsor",
    "medication_follow_up": "Prescriber in 14 days", "support_groups": "SMART Recovery",
}  # fmt: skip
CONSENT = {
    "recipient": NEXT, "start": TODAY.isoformat(),
    "end": (TODAY + timedelta(days=365)).isoformat(), "signed_on": TODAY.isoformat(),
    "disclosed": "all SUD treatment records",
}  # fmt: skip


async def _page(
    http: httpx.AsyncClient, store: Engine, settings: Settings
) -> tuple[httpx.AsyncClient, int, dict[str, Any]]:
    """A discharge-ready referral and the tracker signed in as its case manager."""
    body = await _ready(http, store, settings)
    accepted = await http.post(f"/api/referrals/{REFERRAL}/accept", headers=CASE_MANAGER)
    assert accepted.status_code == 200, accepted.text  # the discharge form is offered now
    token = CASE_MANAGER["Authorization"].removeprefix("Bearer ")
    signed = await http.post("/tracker/login", data={"kind": "token", "credential": token})
    assert signed.status_code == 303, signed.text
    with session_scope(store) as session:
        key = session.scalar(select(Referral.id).where(Referral.business_id == REFERRAL))
    assert key is not None
    return http, key, body


async def _post(http: httpx.AsyncClient, key: int, form: str, data: dict[str, str]) -> Any:
    page = (await http.get(f"/tracker/referrals/{key}")).text
    start = page.index(f'id="{form}-form"')
    chunk = page[start : page.index("</form>", start)]
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]+)"', chunk))
    return await http.post(f"/tracker/referrals/{key}/{form}", data=hidden | data)


def _text(page: str, element: str) -> str:
    found = re.search(rf'id="{element}"[^>]*>(.*?)</(?:div|p|ul|span)>', page, re.S)
    assert found, f"no #{element} on the page"
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


async def test_discharge_refused_for_part2__points_to_the_consent_form_then_passes(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    http, key, body = await _page(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(IOP),))  # names only the IOP
    refused = await _post(http, key, "discharge", DISCHARGE)
    assert refused.status_code == 403
    assert "42 CFR Part 2" in _text(refused.text, "action-error-title")
    problems = _text(refused.text, "action-error-problems")
    assert f"Consent/c31: recipient {org_ref(NEXT)} is not named" in problems
    assert 'href="#consent-form"' in refused.text and 'id="record-consent-hint"' in refused.text
    # the recipient the case manager typed for the discharge is offered in the consent form
    assert re.search(rf'id="consent-recipient"[^>]*value="{NEXT}"', refused.text)

    recorded = await _post(http, key, "consent", CONSENT)
    assert recorded.status_code == 303, recorded.text
    page = (await http.get(recorded.headers["location"])).text
    assert 'class="recorded-consent" data-recipient="NEXT-1"' in page

    done = await _post(http, key, "discharge", DISCHARGE)
    assert (done.status_code, done.headers.get("location")) == (
        303, f"/tracker/referrals/{key}?done=discharge",
    )  # fmt: skip


async def test_consent_form__bad_fields_are_named_beside_them_and_nothing_is_stored(
    http: httpx.AsyncClient, store: Engine, settings: Settings
) -> None:
    http, key, _ = await _page(http, store, settings)
    bad = CONSENT | {"end": (TODAY - timedelta(days=3)).isoformat()}
    refused = await _post(http, key, "consent", bad)
    assert refused.status_code == 422
    assert "end: must not be before the start" in _text(refused.text, "consent-end-error")
    assert _text(refused.text, "action-error-title").startswith("the consent is invalid")
    unsigned = await _post(http, key, "consent", CONSENT | {"signed_on": ""})
    assert unsigned.status_code == 422
    assert "signed_on:" in _text(unsigned.text, "consent-signed_on-error")
    assert re.search(r'id="consent-end"[^>]*value="' + CONSENT["end"], unsigned.text)  # kept
    unknown = await _post(http, key, "consent", CONSENT | {"recipient": "NOT-REGISTERED"})
    assert unknown.status_code == 422
    assert "is registered" in _text(unknown.text, "consent-recipient-error")
    with session_scope(store) as session:
        assert session.scalar(select(func.count(DisclosureConsentRecord.id))) == 0


async def test_refusal__a_missing_search_result_reads_as_what_was_looked_for(
    http: httpx.AsyncClient, store: Engine, settings: Settings, fhir_mock: respx.MockRouter
) -> None:
    http, key, body = await _page(http, store, settings)
    _clinical_record(fhir_mock, body, recipients=(org_ref(NEXT),))
    with session_scope(store) as session:  # the IOP's own plan: found by its identifier
        referral = session.get(Referral, key)
        assert referral is not None
        repo.save_plan(session, referral, business_id="PLAN-31", plan={})

    def nothing_found(request: httpx.Request) -> httpx.Response:  # the batch: all 404
        entries = json.loads(request.content)["entry"]
        answers = [{"response": {"status": "404 Not Found"}} for _ in entries]
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": answers})

    fhir_mock.post("/").mock(side_effect=nothing_found)
    refused = await _post(http, key, "discharge", DISCHARGE)
    assert refused.status_code == 409
    assert "is incomplete on the server" in _text(refused.text, "action-error-title")
    problems = _text(refused.text, "action-error-problems")
    assert re.search(r"the CarePlan with identifier PLAN-31 \(system http", problems)
    assert "CarePlan?" not in problems


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("QuestionnaireResponse?identifier=http://x.example/sid/a|PHQ-1",
         "the QuestionnaireResponse with identifier PHQ-1 (system http://x.example/sid/a)"),
        ("CarePlan?identifier=PLAN-1", "the CarePlan with identifier PLAN-1"),
        ("Encounter?identifier=|S-1&status=finished",
         "the Encounter with identifier S-1 and status finished"),
        ("Consent/c31", "Consent/c31"),
        ("DisclosureConsent.end", "DisclosureConsent.end"),
        ("end", "end"),
    ],
)  # fmt: skip
def test_readable_path(path: str, words: str) -> None:
    assert readable_path(path) == words
