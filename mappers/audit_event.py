"""An audit record (who did what to which record, with what outcome) <-> FHIR R4 AuditEvent.

The record holds ids and codes only, never PHI (no names, birth dates or free text):
``AuditRecord.problems`` refuses anything else, so neither the audit table nor an exported
AuditEvent can become a second copy of the clinical record.

AuditEvent shape (R4 auditevent.html; every code checked in the R4 code systems HAPI's validator
ships, hapi-fhir-validation-resources-r4 8.12.1 valuesets.xml):

- type: DICOM DCM 110106 "Export" for a disclosure, 110110 "Patient Record" for a change of the
  client's records, 110114 "User Authentication" for a refused login (401); audit-event-type
  ``rest`` "RESTful Operation" for a refused API call (403). All in the R4 AuditEvent ID value set.
- action (R4 audit-event-action): R for a disclosure (the record is read out), C for what creates
  a record (session, discharge), U for state changes, E for API calls.
- outcome (R4 audit-event-outcome): 0 success, 4 minor failure (refused: denied access, a
  disclosure without consent), 8 serious failure; outcomeDesc the reason code.
- purposeOfEvent: the disclosure's v3-ActReason purpose of use
  (``fhir_profiles.terminology.privacy.PURPOSES``).
- agent[0] the requestor: who.identifier = the principal's subject, assigned by its organization
  (Identifier.assigner), role as text; agent[1] for a disclosure: the recipient Organization,
  type v3-ParticipationType IRCP "information recipient".
- source: observer iop-bridge, type security-source-type 4 "Application Server".
- entity[0]: the record by business identifier (what.type + what.identifier), type
  audit-entity-type 2 "System Object", role object-role 4 "Domain Resource"; an API route is
  named in entity.name instead (it is no resource). entity[1] for a disclosure: the Consent
  that permitted it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fhir_profiles.terminology.audit import (
    APPLICATION_SERVER,
    DOMAIN_RESOURCE,
    EXPORT,
    PATIENT_RECORD,
    REST,
    SYSTEM_OBJECT,
    USER_AUTHENTICATION,
)
from fhir_profiles.terminology.privacy import PURPOSES, ROLE_RECIPIENT
from mappers.errors import Problem, raise_if_problems

# action -> (AuditEvent.type, AuditEvent.action)
ACTIONS: Final = {
    "disclose": (EXPORT, "R"),
    "accept": (PATIENT_RECORD, "U"),
    "decline": (PATIENT_RECORD, "U"),
    "schedule-intake": (PATIENT_RECORD, "U"),
    "record-session": (PATIENT_RECORD, "C"),
    "reconcile": (PATIENT_RECORD, "U"),
    "discharge": (PATIENT_RECORD, "C"),
    # the client's Part 2 consent to disclose, recorded by the IOP (recipient: who it names)
    "record-consent": (PATIENT_RECORD, "C"),
    "authenticate": (USER_AUTHENTICATION, "E"),
    "access": (REST, "E"),
    # an inbound Task change refused by mappers.task_trust (outcome denied, reason its code)
    "task-change": (PATIENT_RECORD, "U"),
}
OUTCOMES: Final = {"success": "0", "denied": "4", "failure": "8"}
ROUTE: Final = "http-route"  # entity_type of an API route (a denied access)
OBSERVER: Final = "iop-bridge"

# Ids and codes only: no whitespace (so no "First Last" and no sentence), bounded length.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:|/#@+\-]{0,254}")
_CODE = re.compile(r"[a-z0-9][a-z0-9\-]{0,63}")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
_PURPOSE = re.compile(r"[A-Z]{2,16}")
_ROUTE_ID = re.compile(r"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /[A-Za-z0-9_./{}\-]{0,240}")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited event: ids and codes only (every field checked by ``problems``)."""

    action: str  # one of ACTIONS
    outcome: str  # success | denied | failure
    recorded: datetime
    agent_subject: str
    entity_type: str  # a FHIR resource type, or ROUTE
    entity_id: str  # the business identifier value (or "METHOD /route/{template}")
    entity_system: str | None = None
    agent_role: str | None = None
    agent_organization: str | None = None
    organization: str | None = None  # whose records
    reason_code: str | None = None
    recipient: str | None = None  # Organization reference (disclosures)
    purpose: str | None = None  # v3-ActReason code (disclosures)
    consent: str | None = None  # Consent reference that permitted a disclosure

    def problems(self) -> list[Problem]:
        """Every field that is not a known code or an id-shaped value (PHI stays out)."""
        found: list[Problem] = []
        if self.action not in ACTIONS:
            found.append(Problem("AuditRecord.action", f"{self.action!r} is not an audit action"))
        if self.outcome not in OUTCOMES:
            found.append(Problem("AuditRecord.outcome", f"{self.outcome!r} is not an outcome"))
        if self.recorded.tzinfo is None:
            found.append(Problem("AuditRecord.recorded", "must be timezone-aware"))
        checks = [
            ("agent_subject", self.agent_subject, _ID),
            ("entity_id", self.entity_id, _ROUTE_ID if self.entity_type == ROUTE else _ID),
            ("entity_system", self.entity_system, _ID),
            ("agent_role", self.agent_role, _CODE),
            ("agent_organization", self.agent_organization, _ID),
            ("organization", self.organization, _ID),
            ("reason_code", self.reason_code, _CODE),
            ("recipient", self.recipient, _ID),
            ("purpose", self.purpose, _PURPOSE),
            ("consent", self.consent, _ID),
        ]
        if self.entity_type != ROUTE:
            checks.append(("entity_type", self.entity_type, _RESOURCE_TYPE))
        for name, value, pattern in checks:
            if value is not None and not pattern.fullmatch(value):
                # the value itself is not echoed: it may be exactly the PHI being kept out
                found.append(Problem(f"AuditRecord.{name}", "is not an id or code (no PHI)"))
        return found


def to_fhir(record: AuditRecord, *, resource_id: str | None = None) -> dict[str, Any]:
    """Fill AuditEvent.type, action, recorded, outcome, outcomeDesc, purposeOfEvent, agent,
    source and entity from an AuditRecord."""
    raise_if_problems("AuditRecord", record.problems())
    kind, action = ACTIONS[record.action]
    resource: dict[str, Any] = {"resourceType": "AuditEvent"}
    if resource_id is not None:
        resource["id"] = resource_id
    resource["type"] = kind.coding()
    resource["action"] = action
    resource["recorded"] = _instant(record.recorded)
    resource["outcome"] = OUTCOMES[record.outcome]
    if record.reason_code is not None:
        resource["outcomeDesc"] = record.reason_code
    if record.purpose is not None:
        known = PURPOSES.get(record.purpose)
        coding = known.coding() if known else {"code": record.purpose}
        resource["purposeOfEvent"] = [{"coding": [coding]}]
    resource["agent"] = _agents(record)
    resource["source"] = {
        "observer": {"display": OBSERVER},
        "type": [APPLICATION_SERVER.coding()],
    }
    resource["entity"] = _entities(record)
    return resource


def _agents(record: AuditRecord) -> list[dict[str, Any]]:
    """The requestor (subject assigned by its organization), and a disclosure's recipient."""
    identifier: dict[str, Any] = {"value": record.agent_subject}
    if record.agent_organization is not None:
        identifier["assigner"] = {"identifier": {"value": record.agent_organization}}
    requestor: dict[str, Any] = {"who": {"identifier": identifier}, "requestor": True}
    if record.agent_role is not None:
        requestor["role"] = [{"text": record.agent_role}]
    agents = [requestor]
    if record.recipient is not None:
        agents.append(
            {
                "type": ROLE_RECIPIENT.codeable_concept(),
                "who": {"reference": record.recipient},
                "requestor": False,
            }
        )
    return agents


def _entities(record: AuditRecord) -> list[dict[str, Any]]:
    """The record acted on (or the API route), and a disclosure's Consent."""
    entity: dict[str, Any] = {"type": SYSTEM_OBJECT.coding()}
    if record.entity_type == ROUTE:
        entity["name"] = record.entity_id
    else:
        identifier = {"value": record.entity_id}
        if record.entity_system is not None:
            identifier = {"system": record.entity_system} | identifier
        entity["what"] = {"type": record.entity_type, "identifier": identifier}
        entity["role"] = DOMAIN_RESOURCE.coding()
    entities = [entity]
    if record.consent is not None:
        entities.append(
            {
                "what": {"reference": record.consent},
                "type": SYSTEM_OBJECT.coding(),
                "description": "consent that permitted the disclosure",
            }
        )
    return entities


def _instant(moment: datetime) -> str:
    """An R4 instant in UTC with a Z (the record's own time zone is not kept)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
