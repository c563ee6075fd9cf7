"""The discharge document offered as a DocumentReference (PACIO TOC: the TOC Bundle "and/or a
DocumentReference"; US Core DocumentReference, the profile receivers search clinical notes by).

Shape: meta.profile US Core DocumentReference; masterIdentifier the document's Bundle.identifier
(R4: the identifier of the document itself); status current, docStatus final; type LOINC
18842-5; category US Core ``clinical-note``; subject, date, author, custodian as in the
Composition; content.attachment: the document Bundle itself as base64 ``application/fhir+json``
(US Core us-core-6: data or url; a urn:uuid in attachment.url would not be rewritten by the
server, a Reference is), and context.related the Bundle's fullUrl, which the server rewrites in
a transaction; context.period ends at the discharge. Security labels follow from
``mappers.security_labels`` (a DocumentReference carries the high-water mark).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Final

from fhir_profiles.terminology.categories import CLINICAL_NOTE
from fhir_profiles.terminology.documents import DISCHARGE_SUMMARY
from fhir_profiles.us_core import us_core_url
from mappers.discharge import DischargeSummary
from mappers.fhir_reference import reference
from mappers.fhir_write import format_datetime

PROFILE: Final = us_core_url("us-core-documentreference")
CONTENT_TYPE: Final = "application/fhir+json"


def to_document_reference(
    summary: DischargeSummary, document: dict[str, Any], *, document_url: str, created: datetime
) -> dict[str, Any]:
    """A DocumentReference to ``document`` (the Bundle ``to_document_bundle`` built), which the
    transaction stores under ``document_url``."""
    resource: dict[str, Any] = {"resourceType": "DocumentReference", "meta": {"profile": [PROFILE]}}
    resource["masterIdentifier"] = dict(document["identifier"])
    resource["status"] = "current"
    resource["docStatus"] = "final"
    resource["type"] = DISCHARGE_SUMMARY.codeable_concept()
    resource["category"] = [CLINICAL_NOTE.codeable_concept()]
    resource["subject"] = reference(summary.subject)
    resource["date"] = format_datetime(created)
    resource["author"] = [reference(summary.author)]
    resource["custodian"] = reference(summary.custodian)
    payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    attachment = {
        "contentType": CONTENT_TYPE,
        "data": base64.b64encode(payload).decode("ascii"),
        "title": summary.title,
        "creation": format_datetime(created),
    }
    resource["content"] = [{"attachment": attachment}]
    context: dict[str, Any] = {"period": {"end": format_datetime(summary.discharged)}}
    if summary.encounter is not None:
        context["encounter"] = [reference(summary.encounter)]
    context["related"] = [reference(document_url)]
    resource["context"] = context
    return resource
