"""The referral a workflow step acts on, looked up by its business identifier.

Two ids name a referral, and each parameter says which it takes: ``referral_key: int`` is the
database id (``Referral.id``; the step-down case-manager actions and the CLI use it), and
``business_id: str`` the referral's business identifier (``Referral.business_id``, the Task's
identifier value; the medication, discharge and aftercare workflows use it, as their API does;
the API's ``referral_id`` path parameter is this one). The tables' foreign-key columns keep the
database's name, ``referral_id``, and hold the row key.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from integration.db import repositories as repo
from integration.db.models import Referral
from integration.workflow_errors import ReferralNotFound


def find_referral(session: Session, business_id: str) -> Referral:
    """The referral with business identifier ``business_id``, or ReferralNotFound."""
    referral = repo.get_referral(session, business_id)
    if referral is None:
        raise ReferralNotFound(f"no referral {business_id!r} in the store")
    return referral
