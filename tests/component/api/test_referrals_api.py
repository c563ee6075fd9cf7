"""The referral routes with the FHIR server mocked (respx): both submission forms, idempotency,
every error status with its body, auth per role, organization scoping, reading and listing."""

# ruff: noqa: F811  (fixtures imported from referral_support are test parameters here)

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from api.limits import MAX_BODY_BYTES
from api.schema_examples import EXAMPLE_BUNDLE
from integration.db.audit_table import AuditEventRecord
from integration.db.inbound_table import ReferralLink
from integration.db.models import AssessmentRecord, Referral
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import referral_key_of
from integration.db.store import record_sync, session_scope
from integration.referrals import step_down
from integration.referrals.package import settle_referrals
from mappers.errors import InvalidInputError
from mappers.referral_package.submission import Parties, check_submission
from mappers.registry import MappingContext
from tests.component.api.referral_support import (  # noqa: F401
    ADMIN,
    CASE_MANAGER,
    EHR,
    FHIR_JSON,
    IOP,
    ORG_SYSTEM,
    OTHER_CASE_MANAGER,
    OTHER_EHR,
    RES,
    app,
    auth,
    fhir_bundle,
    fhir_mock,
    http,
    org_ref,
    outbox_count,
    settings,
    store,
    submission,
)
from tests.db.fixtures import empty_db_url  # noqa: F401

pytestmark = pytest.mark.anyio
CONTEXT = MappingContext()


async def _submit(http: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    fhir = body.get("resourceType") == "Bundle"
    content_type = {"Content-Type": FHIR_JSON if fhir else "application/json"}
    return await http.post("/api/referrals", json=body, headers={**EHR, **content_type, **headers})


# --- submission ------------------------------------------------------------------------------


async def test_submit__domain_json_is_recorded_and_enqueued_once(
    http: httpx.AsyncClient, store: Engine
) -> None:
    response = await _submit(http, submission(1))
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == "/api/referrals/SD-000001" == body["links"]["self"]
    assert (body["id"], body["status"], body["submission"]) == ("SD-000001", "requested", "pending")
    assert body["business_status"]["code"] == "2.0"
    assert (body["referrer"], body["program"]) == (org_ref(RES), org_ref(IOP))
    assert body["residential_discharge_date"] == "2026-11-02"
    with session_scope(store) as session:
        [message] = session.scalars(select(OutboxMessage))
        link = session.scalars(select(ReferralLink)).one()
        # the referral's own aggregate: its row key, not the business id senders may share
        assert (message.kind, message.aggregate_key) == ("transaction", str(link.referral_id))
        assert link.requester == org_ref(RES) and link.patient is None  # until delivered
    kinds = [e["resource"]["resourceType"] for e in message.payload["entry"]]
    assert kinds[0] == "Patient" and kinds[-2:] == ["ServiceRequest", "Task"]
    assert all(
        e["request"]["ifNoneExist"].startswith("identifier=") for e in message.payload["entry"]
    )


async def test_submit__the_same_package_twice_is_one_referral(
    http: httpx.AsyncClient, store: Engine
) -> None:
    first = await _submit(http, submission(2))
    again = await _submit(http, submission(2))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert outbox_count(store) == 1


async def test_submit__fhir_bundle_twice_with_fresh_uuids_is_one_referral(
    http: httpx.AsyncClient, store: Engine
) -> None:
    first = await _submit(http, fhir_bundle(3))
    again = await _submit(http, fhir_bundle(3))  # same package, new urn:uuid fullUrls
    assert (first.status_code, again.status_code) == (201, 200), first.text
    assert first.json()["losses"] == [] and outbox_count(store) == 1
    with session_scope(store) as session:
        [payload] = session.scalars(select(OutboxMessage.payload))
    assert len(payload["entry"]) == 25


async def test_submit__conditional_organization_references_are_resolved(
    http: httpx.AsyncClient, store: Engine
) -> None:
    """The documented Bundle example names both organizations by identifier."""
    example = await _submit(http, EXAMPLE_BUNDLE, **auth("ehr-system", "RES-DEMO"))
    assert example.status_code == 422  # RES-DEMO is not registered on this server
    assert "no such Organization is registered" in example.text
    mine = json.loads(json.dumps(EXAMPLE_BUNDLE).replace("RES-DEMO", RES))
    response = await _submit(http, mine)  # the same, named by the caller's organization
    assert response.status_code == 201, response.text
    with session_scope(store) as session:
        payload = session.scalars(select(OutboxMessage.payload)).one()
    task = payload["entry"][-1]["resource"]
    assert (task["requester"], task["owner"]) == ({"reference": org_ref(RES)},
                                                  {"reference": org_ref(IOP)})  # fmt: skip


async def test_submit__another_package_under_the_same_identifier_is_409(
    http: httpx.AsyncClient, store: Engine
) -> None:
    assert (await _submit(http, submission(4))).status_code == 201
    changed = submission(4, note="changed my mind")
    response = await _submit(http, changed)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 409 and "SD-000004" in problem["title"]
    assert "different package" in problem["problems"][0]["message"]
    as_fhir = await http.post("/api/referrals", json=changed,
                              headers={**EHR, "Accept": FHIR_JSON})  # fmt: skip
    outcome = as_fhir.json()
    assert as_fhir.status_code == 409 and outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "duplicate"
    assert outbox_count(store) == 1


async def test_submit__a_referral_received_from_the_server_is_not_resubmitted(
    http: httpx.AsyncClient, store: Engine
) -> None:
    with session_scope(store) as session:
        received = datetime.now(UTC)
        session.add(
            Referral(business_id="SD-000005", status="requested", client_mrn="M",
                     iop_organization=org_ref(IOP), received_at=received, sender=org_ref(RES))
        )  # fmt: skip
    response = await _submit(http, submission(5))
    assert response.status_code == 409
    assert "received from the FHIR server" in response.json()["problems"][0]["message"]


async def test_submit__every_problem_with_its_path(http: httpx.AsyncClient, store: Engine) -> None:
    bad = submission(6)
    bad["diagnoses"][0]["onset"] = "2021-13"
    bad["assessments"][0]["item_scores"] = [2, 2, 3]
    bad["consent"]["purposes"] = ["NOPE"]
    response = await _submit(http, bad)
    assert response.status_code == 422
    paths = {p["path"] for p in response.json()["problems"]}
    assert {"diagnoses[0].onset", "consent.purposes[0]", "assessments[0].item_scores"} <= paths
    assert outbox_count(store) == 0


async def test_submit__schema_errors_name_the_field(http: httpx.AsyncClient) -> None:
    bad = submission(7)
    del bad["client"]
    bad["residential_stay"]["admitted"] = "yesterday"
    response = await _submit(http, bad)
    assert response.status_code == 422
    paths = {p["path"] for p in response.json()["problems"]}
    assert {"client", "residential_stay.admitted"} <= paths


async def test_submit__bundle_problems_are_placed_on_their_entries(http: httpx.AsyncClient) -> None:
    bundle = fhir_bundle(8, requester="RES-2")  # the package says another EHR requested it
    condition = bundle["entry"][1]["resource"]
    condition["clinicalStatus"]["coding"][0]["code"] = "bogus"
    condition_request = bundle["entry"][1].pop("request")
    response = await _submit(http, bundle)  # structure first: nothing is mapped yet
    assert response.status_code == 422
    issues = response.json()["issue"]
    assert [i["expression"] for i in issues] == [["Bundle.entry[1].request"]]
    bundle["entry"][1]["request"] = condition_request
    again = await _submit(http, bundle, **{"Accept": "application/json"})
    paths = [i["expression"][0] for i in again.json()["issue"]]
    assert "Bundle.entry[1].resource.clinical_status" in paths  # the mapper's own field name
    assert "Bundle.entry[24].resource.requester" in paths  # the Task: not the caller's


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"identifier": ', "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2]", FHIR_JSON, 422),
        (b"{}", "text/plain", 415),
        (b"{}", "application/xml", 415),
    ],
)
async def test_submit__body_errors(
    http: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    response = await http.post(
        "/api/referrals", content=content, headers={**EHR, "Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.json()["status"] == status if "fhir" not in content_type else True


async def test_submit__too_large_is_413_before_reading_it(http: httpx.AsyncClient) -> None:
    content = b" " * (MAX_BODY_BYTES + 1)
    response = await http.post("/api/referrals", content=content,
                               headers={**EHR, "Content-Type": FHIR_JSON})  # fmt: skip
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"

    async def chunks() -> Any:  # no Content-Length: counted while read
        for _ in range(3):
            yield b" " * (MAX_BODY_BYTES // 2)

    chunked = await http.post("/api/referrals", content=chunks(),
                              headers={**EHR, "Content-Type": "application/json"})  # fmt: skip
    assert chunked.status_code == 413


async def test_submit__only_ehr_systems(http: httpx.AsyncClient, store: Engine) -> None:
    unauthenticated = await http.post("/api/referrals", json=submission(9))
    assert unauthenticated.status_code == 401
    for headers in (CASE_MANAGER, ADMIN):
        response = await http.post("/api/referrals", json=submission(9), headers=headers)
        assert response.status_code == 403 and "ehr-system" in response.json()["title"]
    unregistered = await _submit(http, submission(9), **auth("ehr-system", "NOT-REGISTERED"))
    assert unregistered.status_code == 422 and outbox_count(store) == 0
    assert unregistered.json()["problems"][0]["path"] == "requester"


# --- reading ----------------------------------------------------------------------------------


async def test_read__scoped_to_the_referrer_and_the_iop(http: httpx.AsyncClient) -> None:
    assert (await _submit(http, submission(10))).status_code == 201
    url = "/api/referrals/SD-000010"
    for headers in (EHR, CASE_MANAGER, ADMIN):
        assert (await http.get(url, headers=headers)).status_code == 200
    for headers in (OTHER_EHR, OTHER_CASE_MANAGER):
        response = await http.get(url, headers=headers)
        assert response.status_code == 404 and response.json()["status"] == 404
    assert (await http.get(url)).status_code == 401
    assert (await http.get("/api/referrals/SD-999999", headers=EHR)).status_code == 404


def _landed(session: Session, settings: Any, n: int) -> None:
    """What a worker records when it delivers submission ``n``: where each entry landed."""
    business_id = f"SD-{n:06d}"
    for kind, system, server_id in (
        ("Patient", settings.mrn_system, f"p{n}"),
        ("ServiceRequest", CONTEXT.referral_id_system, f"sr{n}"),
        ("Task", CONTEXT.task_id_system, f"t{n}"),
    ):
        record_sync(session, resource_type=kind, identifier=(system, business_id),
                    server_id=server_id, version_id="1", outcome="created")  # fmt: skip


async def test_read__the_iop_response_and_the_delivered_task(
    http: httpx.AsyncClient, store: Engine, settings: Any
) -> None:
    assert (await _submit(http, submission(11))).status_code == 201
    now = datetime.now(UTC)
    with session_scope(store) as session:  # the worker delivered: where each entry landed
        _landed(session, settings, 11)
        key = referral_key_of(session, "SD-000011")
        settle_referrals(session, [key], settings.mapping_context())  # as the worker settles
    delivered = (await http.get("/api/referrals/SD-000011", headers=EHR)).json()
    assert delivered["task"] == "Task/t11"
    with session_scope(store) as session:
        referral = session.scalars(select(Referral)).one()
        step_down.accept(session, referral.id, at=now)
        step_down.schedule_intake(session, referral.id, date(2026, 11, 6), at=now)
        link = session.scalars(select(ReferralLink)).one()
        assert (link.patient, link.service_request) == ("Patient/p11", "ServiceRequest/sr11")
    body = (await http.get("/api/referrals/SD-000011", headers=EHR)).json()
    assert (body["status"], body["decision"], body["intake_date"]) == (
        "accepted", "accepted", "2026-11-06",
    )  # fmt: skip
    assert body["business_status"]["code"] == "5.1.1" and body["first_session"] is None


@contextlib.contextmanager
def _domain_flushes() -> Iterator[list[str]]:
    """Names of the rows each flush would write while the block runs, other than audit events
    (reading a referral is audited: that write is the point of the audit)."""
    written: list[str] = []

    def record(session: Session, *_: Any) -> None:
        rows = [*session.new, *session.dirty, *session.deleted]
        written.extend(type(r).__name__ for r in rows if not isinstance(r, AuditEventRecord))

    event.listen(Session, "before_flush", record)
    try:
        yield written
    finally:
        event.remove(Session, "before_flush", record)


async def test_read__a_get_writes_nothing_even_before_the_delivery_is_settled(
    http: httpx.AsyncClient, store: Engine, settings: Any
) -> None:
    assert (await _submit(http, submission(12))).status_code == 201
    with session_scope(store) as session:  # delivered by a worker that settled nothing
        _landed(session, settings, 12)
    with _domain_flushes() as written:
        one = (await http.get("/api/referrals/SD-000012", headers=EHR)).json()
        page = (await http.get("/api/referrals", headers=CASE_MANAGER)).json()
    assert one["task"] == "Task/t12" and page["total"] == 1
    assert written == []
    with session_scope(store) as session:
        link = session.scalars(select(ReferralLink)).one()
        assert (link.patient, link.service_request) == (None, None)  # still for a write to settle


# --- listing ----------------------------------------------------------------------------------


async def test_list__pages_filters_and_scope(http: httpx.AsyncClient, store: Engine) -> None:
    for n in range(20, 25):
        assert (await _submit(http, submission(n))).status_code == 201
    with session_scope(store) as session:
        referral = session.scalar(select(Referral).where(Referral.business_id == "SD-000020"))
        assert referral is not None
        step_down.decline(session, referral.id, "no capacity", at=datetime.now(UTC))
    first = (await http.get("/api/referrals?page_size=2", headers=EHR)).json()
    assert (first["total"], len(first["items"]), first["links"]["prev"]) == (5, 2, None)
    assert first["links"]["next"] == "/api/referrals?page=2&page_size=2"
    assert first["links"]["self"] == "/api/referrals?page=1&page_size=2"
    last = (await http.get("/api/referrals?page_size=2&page=3", headers=CASE_MANAGER)).json()
    assert [i["id"] for i in last["items"]] == ["SD-000020"] and last["links"]["next"] is None
    declined = (await http.get("/api/referrals?status=rejected", headers=ADMIN)).json()
    assert [i["decision_reason"] for i in declined["items"]] == ["no capacity"]
    today = datetime.now(UTC).date().isoformat()
    dated = await http.get(f"/api/referrals?from={today}&to={today}", headers=EHR)
    assert dated.json()["total"] == 5
    assert (await http.get("/api/referrals?to=2000-01-01", headers=EHR)).json()["total"] == 0
    program = await http.get(f"/api/referrals?program={org_ref(IOP)}", headers=EHR)
    assert program.json()["total"] == 5
    for headers in (OTHER_EHR, OTHER_CASE_MANAGER):
        assert (await http.get("/api/referrals", headers=headers)).json()["total"] == 0


@pytest.mark.parametrize(
    ("query", "path"),
    [("status=bogus", "status"), ("page=0", "query.page"), ("page_size=101", "query.page_size"),
     ("from=2026-02-01&to=2026-01-01", "from"), ("from=not-a-date", "query.from")],
)  # fmt: skip
async def test_list__bad_parameters_are_problems(
    http: httpx.AsyncClient, query: str, path: str
) -> None:
    response = await http.get(f"/api/referrals?{query}", headers=CASE_MANAGER)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert path in [p["path"] for p in response.json()["problems"]]


# --- robustness ---------------------------------------------------------------------------------


async def test_submit__an_element_of_an_unexpected_type_is_422_on_its_entry(
    http: httpx.AsyncClient,
) -> None:
    bundle = fhir_bundle(40)
    bundle["entry"][0]["resource"]["name"] = 5  # Patient.name: a number, not a list
    response = await _submit(http, bundle)  # a FHIR body: the answer is an OperationOutcome
    assert response.status_code == 422
    [issue] = response.json()["issue"]  # the element itself, found by the mapper guard
    assert issue["expression"] == ["Bundle.entry[0].resource.name"]
    assert "valid list" in issue["diagnostics"]


def test_check_submission__mutated_packages_raise_only_input_errors() -> None:
    """Seeded mutations of the sandbox package (elements dropped or replaced by values of the
    wrong type): every one is accepted or refused with InvalidInputError, none crashes."""
    parties = Parties((ORG_SYSTEM, RES), org_ref(RES), (ORG_SYSTEM, IOP), org_ref(IOP))
    base = fhir_bundle(41)
    paths = list(_paths(base))
    junk: list[Any] = [None, 0, 1.5, "", "x", [], {}, [1], {"a": 1}, True, "Patient/1"]
    rng = random.Random(20261102)
    for _ in range(400):
        document = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            _mutate(document, rng.choice(paths), rng, junk)
        with contextlib.suppress(InvalidInputError):
            check_submission(document, parties, CONTEXT)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _mutate(document: Any, path: tuple[Any, ...], rng: random.Random, junk: list[Any]) -> None:
    parent = document
    with contextlib.suppress(KeyError, IndexError, TypeError):
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and rng.random() < 0.3:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(junk))


async def test_submit__two_identical_submissions_at_once_are_one_referral(
    http: httpx.AsyncClient, store: Engine
) -> None:
    first, second = await asyncio.gather(
        _submit(http, submission(42)), _submit(http, submission(42))
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert outbox_count(store) == 1


async def test_read__one_identifier_from_two_senders_is_409_for_the_iop_not_a_guess(
    http: httpx.AsyncClient, store: Engine
) -> None:
    """Each sender reads its own; the IOP, which sees both, is told the id is ambiguous."""
    assert (await _submit(http, submission(41))).status_code == 201
    assert (await _submit(http, submission(41), **OTHER_EHR)).status_code == 201
    with session_scope(store) as session:  # the same response ids, kept for each sender
        rows = session.execute(select(AssessmentRecord.referral_id, AssessmentRecord.business_id))
        per_referral: dict[int, set[str]] = {}
        for referral_key, business_id in rows:
            per_referral.setdefault(referral_key, set()).add(business_id)
    assert len(per_referral) == 2 and len(set(map(frozenset, per_referral.values()))) == 1
    for headers in (EHR, OTHER_EHR):
        assert (await http.get("/api/referrals/SD-000041", headers=headers)).status_code == 200
    both = await http.get("/api/referrals/SD-000041", headers=CASE_MANAGER)
    assert both.status_code == 409 and "more than one sender" in both.text
