"""The referral page's consent form: the client's Part 2 consent to disclose to a named
recipient (the next provider), recorded through the same checks as
``POST /api/referrals/{id}/disclosure-consents`` (``api.disclosure_consents``) and the same
service (``integration.discharges.consents``), audited as the signed-in person.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from api.disclosure_consents import consent_order
from api.tracker_login import Viewer
from integration.discharges import consents
from integration.discharges.consents import ConsentOrder
from integration.privacy import audit
from integration.tenancy.service import Tenancy

ACTION = "consent"
FIELDS = ("recipient", "start", "end", "signed_on", "disclosed")


def order(fields: dict[str, str]) -> ConsentOrder:
    """The form's fields as the API's body (a blank field counts as not given, so its error
    says it is required); InvalidInputError naming each field."""
    document = {name: fields[name].strip() for name in FIELDS if fields.get(name, "").strip()}
    return consent_order(document)


async def record(
    engine: Engine, tenancy: Tenancy, viewer: Viewer, referral_key: int, given: ConsentOrder
) -> None:
    """Record the consent as the signed-in person."""
    actor = audit.Actor(viewer.subject, viewer.role.value, viewer.organization)
    with audit.acting_as(actor):
        await consents.record_consent(
            engine, tenancy, referral_key, order=given, at=datetime.now(UTC)
        )
