"""A referral as the inbound step stores it (with its link: the Task's references), for the
action tests of the tracker and the API. Synthetic data only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, select

from integration.db import models
from integration.db import repositories as repo
from integration.db.inbound_table import ReferralLink
from integration.db.outbox_table import OutboxMessage
from integration.db.referral_lookup import aggregate_key, referral_key_of
from integration.db.store import session_scope


def add_linked_referral(
    engine: Engine,
    business_id: str,
    organization: str,
    *,
    status: str = "requested",
    discharged: bool = True,
) -> int:
    """A referral of ``organization`` with the Task references the state machine needs;
    ``discharged``: whether its package gave the residential discharge date (yesterday)."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        referral = repo.add_referral(
            session, business_id=business_id, status=status, client_mrn=f"MRN-{business_id}",
            iop_organization=organization, received_at=now - timedelta(days=2),
            residential_discharge_date=now.date() - timedelta(days=1) if discharged else None,
            client_name="Avery Quinn Testperson", client_birth_date=date(1990, 6, 15),
            client_language="es",
        )  # fmt: skip
        session.add(
            ReferralLink(
                referral_id=referral.id, task_identifier_system="urn:example:plac",
                task_identifier_value=business_id, service_request="ServiceRequest/sr-1",
                patient="Patient/p-1", requester="Organization/res-1",
                owner="Organization/iop-1", authored_on=now - timedelta(days=3),
            )
        )  # fmt: skip
        session.add(models.Intake(referral_id=referral.id))
        return referral.id


def status_of(engine: Engine, referral_key: int) -> str:
    with session_scope(engine) as session:
        referral = session.get(models.Referral, referral_key)
        assert referral is not None
        return referral.status


def task_messages(engine: Engine, business_id: str) -> list[dict[str, object]]:
    """The Task changes queued for this referral (the performer's elements), oldest first."""
    with session_scope(engine) as session:
        key = aggregate_key(referral_key_of(session, business_id))
        query = select(OutboxMessage).where(OutboxMessage.aggregate_key == key)
        return [
            m.payload["set"]
            for m in session.scalars(query.order_by(OutboxMessage.id))
            if m.payload.get("resourceType") == "Task"
        ]
