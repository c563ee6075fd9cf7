"""The audit trail in the store (SQLite and PostgreSQL): ids and codes only, one event per state
change in the same transaction, attributed to the acting principal; the admins' query (scope,
filters, paging); the FHIR AuditEvent export (and, live, HAPI's $validate of it)."""

# ruff: noqa: F811  (the fixtures imported from tests.db.fixtures are test parameters here)

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fhir_profiles.terminology.audit import SYSTEM_OBJECT
from integration.db import repositories as repo
from integration.db.audit_table import AuditEventRecord
from integration.db.inbound_table import ReferralLink
from integration.db.store import session_scope
from integration.fhir.client import FhirClient
from integration.fhir.conformance import validate
from integration.privacy import audit
from integration.referrals import step_down
from integration.settings import Settings
from mappers import audit_event
from mappers.audit_event import AuditRecord
from mappers.errors import MappingError
from tests.builders.sessions import make_session
from tests.conftest import live_base_url
from tests.db.fixtures import db_url, empty_db_url, engine  # noqa: F401

AT = datetime(2026, 4, 3, 19, 0, tzinfo=UTC)
IOP_A, IOP_B = "Organization/iop-a", "Organization/iop-b"
CASE_MANAGER = audit.Actor("cm-17", "case-manager", "IOP-A")
pytestmark = pytest.mark.anyio


def _seed_referral(session: Session, business_id: str, organization: str = IOP_A) -> int:
    referral = repo.add_referral(
        session, business_id=business_id, status="requested", client_mrn="MRN-ZQ-0042",
        iop_organization=organization, received_at=AT - timedelta(days=2),
        residential_discharge_date=(AT - timedelta(days=1)).date(),
    )  # fmt: skip
    session.add(
        ReferralLink(
            referral_id=referral.id, task_identifier_system="urn:example:plac",
            task_identifier_value=business_id, service_request="ServiceRequest/sr1",
            patient="Patient/p1", requester="Organization/res-1", owner=organization,
            authored_on=AT - timedelta(days=3),
        )
    )  # fmt: skip
    session.flush()
    return referral.id


def _events(engine: Engine) -> list[AuditEventRecord]:
    with session_scope(engine) as session:
        return list(session.scalars(select(AuditEventRecord).order_by(AuditEventRecord.id)))


# --- no PHI can be recorded -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entity_id", "Zelda Quill-Testperson"),  # a name: words with a space
        ("reason_code", "client relapsed after her sister's visit"),  # free text
        ("agent_subject", "Zelda Quill"),
        ("organization", "Harbor Street Counseling"),
        ("purpose", "treatment of Zelda"),
    ],
)
def test_event__refuses_anything_but_ids_and_codes(field: str, value: str) -> None:
    fields: dict[str, Any] = {
        "action": "accept", "outcome": "success", "recorded": AT, "agent_subject": "cm-17",
        "entity_type": "Task", "entity_id": "SD-0001",
    } | {field: value}  # fmt: skip
    problems = AuditRecord(**fields).problems()
    assert [p.path for p in problems] == [f"AuditRecord.{field}"]
    assert value not in str(problems)  # the refusal does not echo the value either
    with pytest.raises(MappingError):
        audit.event("accept", audit.Entity("Task", "SD 1"))


def test_event__unknown_action_or_outcome_and_naive_time_are_refused() -> None:
    record = AuditRecord("peek", "maybe", datetime(2026, 1, 1), "cm-1", "Task", "SD-1")
    assert [p.path for p in record.problems()] == [
        "AuditRecord.action",
        "AuditRecord.outcome",
        "AuditRecord.recorded",
    ]


# --- state changes: one event in the same transaction, by the acting principal --------------------


def test_step_down_actions__each_recorded_with_its_actor_and_no_free_text(engine: Engine) -> None:
    with audit.acting_as(CASE_MANAGER), session_scope(engine) as session:
        accepted = _seed_referral(session, "SD-AUD-1")
        declined = _seed_referral(session, "SD-AUD-2")
        step_down.accept(session, accepted, at=AT)
        step_down.schedule_intake(session, accepted, date(2026, 4, 6), at=AT)
        step_down.record_session(session, accepted, make_session(identifier="SES-1"), at=AT)
        step_down.decline(session, declined, "Zelda asked to go elsewhere", at=AT)
    events = _events(engine)
    assert [(e.action, e.entity_type, e.entity_id) for e in events] == [
        ("accept", "Task", "SD-AUD-1"),
        ("schedule-intake", "Task", "SD-AUD-1"),
        ("record-session", "Encounter", "SES-1"),
        ("decline", "Task", "SD-AUD-2"),
    ]
    assert {(e.agent_subject, e.agent_role, e.agent_organization) for e in events} == {
        ("cm-17", "case-manager", "IOP-A")
    }
    assert {(e.outcome, e.organization) for e in events} == {("success", IOP_A)}
    assert events[0].entity_system == "urn:example:plac"  # the Task's own identifier system
    stored = " ".join(str(vars(e)) for e in events)
    assert "Zelda" not in stored and "MRN-ZQ-0042" not in stored


def test_state_change__rolled_back_with_its_transaction(engine: Engine) -> None:
    with session_scope(engine) as session:
        referral_key = _seed_referral(session, "SD-AUD-3")
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        step_down.accept(session, referral_key, at=AT)
        raise RuntimeError("the caller's transaction fails after the step")
    assert _events(engine) == []


def test_without_an_actor__the_service_itself_is_named(engine: Engine) -> None:
    with session_scope(engine) as session:
        step_down.accept(session, _seed_referral(session, "SD-AUD-4"), at=AT)
    [event] = _events(engine)
    assert (event.agent_subject, event.agent_role, event.agent_organization) == (
        "iop-bridge",
        None,
        None,
    )


def test_record_independently__survives_the_callers_rollback(engine: Engine) -> None:
    refused = audit.event("disclose", audit.Entity("Composition", "SD-1-DISCHARGE"),
                          outcome="denied", reason="no-covering-consent")  # fmt: skip
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        audit.record_independently(session, refused)
        raise RuntimeError("refused")
    assert [(e.action, e.outcome) for e in _events(engine)] == [("disclose", "denied")]


# --- the admins' query ------------------------------------------------------------------------


def _record_many(engine: Engine) -> None:
    """Seven events: five of IOP A (one by B's admin acting on A's record), two of B, one
    without anybody (a call without credentials)."""
    rows = [
        ("accept", "success", "IOP-A", IOP_A, 0),
        ("decline", "success", "IOP-A", IOP_A, 1),
        ("disclose", "denied", "IOP-A", IOP_A, 2),
        ("access", "denied", "IOP-A", "IOP-A", 3),
        ("accept", "success", "IOP-B", IOP_B, 4),
        ("access", "denied", "IOP-B", "IOP-B", 5),
        ("authenticate", "denied", None, None, 6),
    ]
    with session_scope(engine) as session:
        for action, outcome, agent_org, owner, minutes in rows:
            actor = audit.Actor("u-1", "admin", agent_org) if agent_org else audit.SYSTEM
            with audit.acting_as(actor):
                entity = audit.Entity("Task", f"SD-{minutes}")
                record = audit.event(action, entity, outcome=outcome, organization=owner,
                                     at=AT + timedelta(minutes=minutes))  # fmt: skip
                audit.record(session, record)


def _page(engine: Engine, **kw: Any) -> tuple[list[str], int]:
    with session_scope(engine) as session:
        rows, total = audit.list_events(session, **kw)
        return [r.entity_id for r in rows], total


def test_list_events__only_the_organizations_newest_first(engine: Engine) -> None:
    _record_many(engine)
    assert _page(engine, organizations=["IOP-A", IOP_A]) == (
        ["SD-3", "SD-2", "SD-1", "SD-0"],
        4,
    )
    assert _page(engine, organizations=["IOP-B", IOP_B]) == (["SD-5", "SD-4"], 2)
    assert _page(engine, organizations=["IOP-B"], include_unscoped=True)[0] == [
        "SD-6",
        "SD-5",
        "SD-4",
    ]
    assert _page(engine, organizations=["IOP-C"]) == ([], 0)


def test_list_events__filters_and_paging(engine: Engine) -> None:
    _record_many(engine)
    scope: dict[str, Any] = {"organizations": ["IOP-A", IOP_A]}
    where = audit.AuditFilter(outcome="denied")
    assert _page(engine, where=where, **scope) == (["SD-3", "SD-2"], 2)
    assert _page(engine, where=audit.AuditFilter(action="accept"), **scope) == (["SD-0"], 1)
    window = audit.AuditFilter(since=AT + timedelta(minutes=1), until=AT + timedelta(minutes=3))
    assert _page(engine, where=window, **scope) == (["SD-2", "SD-1"], 2)
    assert _page(engine, where=audit.AuditFilter(entity_id="SD-1"), **scope) == (["SD-1"], 1)
    assert _page(engine, limit=2, offset=1, **scope) == (["SD-2", "SD-1"], 4)


# --- the FHIR AuditEvent ------------------------------------------------------------------------


def _disclosure(outcome: str = "success") -> AuditRecord:
    return AuditRecord(
        action="disclose", outcome=outcome, recorded=AT, agent_subject="cm-17",
        entity_type="Composition", entity_id="SD-1-DISCHARGE",
        entity_system="http://iop-bridge.example/fhir/sid/discharge-summary",
        agent_role="case-manager", agent_organization="IOP-A", organization=IOP_A,
        reason_code="consent-permits", recipient="Organization/harbor-street",
        purpose="TREAT", consent="Consent/c1",
    )  # fmt: skip


def test_to_fhir__a_disclosure() -> None:
    event = audit_event.to_fhir(_disclosure(), resource_id="audit-1")
    assert event["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110106",
        "display": "Export",
    }
    assert (event["action"], event["outcome"], event["outcomeDesc"]) == (
        "R",
        "0",
        "consent-permits",
    )
    assert event["recorded"] == "2026-04-03T19:00:00.000Z"
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    requestor, recipient = event["agent"]
    assert requestor == {
        "who": {"identifier": {"value": "cm-17", "assigner": {"identifier": {"value": "IOP-A"}}}},
        "requestor": True,
        "role": [{"text": "case-manager"}],
    }
    assert recipient["who"] == {"reference": "Organization/harbor-street"}
    assert recipient["type"]["coding"][0]["code"] == "IRCP" and recipient["requestor"] is False
    record, permitted_by = event["entity"]
    assert record["what"] == {
        "type": "Composition",
        "identifier": {
            "system": "http://iop-bridge.example/fhir/sid/discharge-summary",
            "value": "SD-1-DISCHARGE",
        },
    }
    assert permitted_by["what"] == {"reference": "Consent/c1"}
    assert event["source"]["type"][0]["code"] == "4"


def test_to_fhir__denied_access_names_the_route_not_a_resource() -> None:
    denied = AuditRecord("access", "denied", AT, "ehr-1", audit_event.ROUTE,
                         "GET /api/audit", reason_code="forbidden")  # fmt: skip
    event = audit_event.to_fhir(denied)
    assert (event["type"]["code"], event["action"], event["outcome"]) == ("rest", "E", "4")
    assert event["entity"] == [{"type": SYSTEM_OBJECT.coding(), "name": "GET /api/audit"}]
    login = AuditRecord("authenticate", "denied", AT, "iop-bridge", audit_event.ROUTE, "GET /x")
    assert audit_event.to_fhir(login)["type"]["code"] == "110114"


def test_to_fhir_bundle__a_searchset_of_the_stored_rows(engine: Engine) -> None:
    _record_many(engine)
    with session_scope(engine) as session:
        rows, total = audit.list_events(session, organizations=["IOP-A"], limit=2)
        found = audit.to_fhir_bundle(rows, total)
    assert (found["type"], found["total"], len(found["entry"])) == ("searchset", 4, 2)
    assert {e["resource"]["id"] for e in found["entry"]} == {f"audit-{r.id}" for r in rows}


# --- live: HAPI's validator accepts the AuditEvents -----------------------------------------------


@pytest.fixture
async def live_fhir(tmp_path: Any) -> AsyncIterator[FhirClient]:
    settings = Settings(
        fhir_base_url=live_base_url(),  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
    )
    client = FhirClient.from_settings(settings)
    yield client
    await client.aclose()


@pytest.mark.live
async def test_to_fhir__valid_on_hapi(live_fhir: FhirClient) -> None:
    denied = AuditRecord("access", "denied", AT, "ehr-1", audit_event.ROUTE, "GET /api/audit",
                         agent_role="ehr-system", agent_organization="RES-1",
                         reason_code="forbidden")  # fmt: skip
    for record in (_disclosure(), _disclosure("denied"), denied):
        report = await validate(live_fhir, audit_event.to_fhir(record))
        assert report.errors == (), report.errors
