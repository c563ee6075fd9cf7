"""OpenAPI documentation of the referral and discharge routes: request bodies with examples of
both submission forms, and the error responses (problem JSON and OperationOutcome) with an
example per status code.

The submission routes read their body themselves (two media types, a size limit), so their
request bodies are documented here rather than inferred from a parameter; the domain schema is
the Pydantic model's, inlined ($refs resolved) because an operation cannot add components.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from api.limits import FHIR_JSON, JSON, MAX_BODY_BYTES
from api.schemas import DischargeRequest, ReferralSubmission
from fhir_profiles import canonical
from fhir_profiles.terminology.clinical import RX_SERTRALINE_50 as SERTRALINE
from mappers import bundle
from mappers.referral_package.builder import package_bundle
from mappers.referral_package.submission import rewrite_references
from mappers.registry import FROM_FHIR, MappingContext

PROBLEM_JSON = "application/problem+json"
EXAMPLE_REFERRER = "RES-DEMO"  # an EHR system's organization identifier value
EXAMPLE_IOP = "IOP-DEMO-ORG"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "problems"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "problems": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
OUTCOME_SCHEMA: dict[str, Any] = {
    "title": "OperationOutcome",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
BUNDLE_SCHEMA: dict[str, Any] = {
    "title": "TransactionBundle",
    "description": "A step-down package: conditional creates (ifNoneExist on a business "
    "identifier) referencing each other by urn:uuid, one Patient, ServiceRequest and Task.",
    "type": "object",
    "required": ["resourceType", "type", "entry"],
    "properties": {
        "resourceType": {"const": "Bundle"},
        "type": {"const": "transaction"},
        "entry": {
            "type": "array",
            "minItems": 1,
            "maxItems": 200,
            "items": {
                "type": "object",
                "required": ["fullUrl", "resource", "request"],
                "properties": {
                    "fullUrl": {"type": "string", "pattern": "^urn:uuid:"},
                    "resource": {
                        "type": "object",
                        "required": ["resourceType"],
                        "properties": {"resourceType": {"enum": sorted(FROM_FHIR)}},
                    },
                    "request": {
                        "type": "object",
                        "required": ["method", "url", "ifNoneExist"],
                        "properties": {
                            "method": {"const": "POST"},
                            "url": {"type": "string"},
                            "ifNoneExist": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}

# (title, one problem's path and message) per status the routes answer with
_ERRORS: dict[int, tuple[str, str, str, str]] = {
    400: ("MalformedBody", "the request body is not JSON", "body", "not well-formed JSON"),
    401: ("Unauthenticated", "authentication required", "Authorization", "no bearer token"),
    403: (
        "Forbidden",
        "role 'case-manager' may not do this (allowed: ehr-system)",
        "role",
        "forbidden",
    ),
    404: ("ReferralNotFound", "no referral 'SD-000001' of your organization", "id", "not found"),
    409: (
        "ReferralConflict",
        "referral 'SD-000001' already exists",
        "Task.identifier",
        "referral 'SD-000001' was submitted before with a different package",
    ),
    413: (
        "PayloadTooLarge",
        "the request body is too large",
        "body",
        f"larger than the limit of {MAX_BODY_BYTES} bytes",
    ),
    415: (
        "UnsupportedMediaType",
        "unsupported media type text/plain",
        "Content-Type",
        "text/plain is not accepted: send application/json or application/fhir+json",
    ),
    422: (
        "InvalidInputError",
        "the referral package is invalid (1 problem)",
        "Bundle.entry[1].resource.code",
        "'Z99' is not an ICD-10-CM code",
    ),
    429: (
        "TooManyRequests",
        "too many refused calls",
        "client",
        "too many refused calls: try again in 42 s",
    ),
    502: ("FhirServerUnavailable", "the FHIR server answered 503", "", "upstream unavailable"),
}
_ISSUE = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    502: "transient",
}


def throttled() -> dict[str, Any]:
    """The 429 every operation may answer (api.edge), with its Retry-After header."""
    answer = _error(429)
    answer["headers"] = {"Retry-After": {"description": "seconds to wait",
                                         "schema": {"type": "integer"}}}  # fmt: skip
    return answer


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of these error statuses, each in both renderings."""
    return {code: _error(code) for code in codes}


def _error(code: int) -> dict[str, Any]:
    name, title, path, message = _ERRORS[code]
    problem = {
        "type": f"urn:iop-bridge:error:{name}",
        "title": title,
        "status": code,
        "problems": [{"path": path, "message": message}] if path else [],
    }
    issue: dict[str, Any] = {"severity": "error", "code": _ISSUE[code], "diagnostics": message}
    if path:
        issue["expression"] = [path]
    outcome = {"resourceType": "OperationOutcome", "issue": [issue]}
    return {
        "description": title,
        "content": {
            PROBLEM_JSON: {"schema": PROBLEM_SCHEMA, "example": problem},
            FHIR_JSON: {"schema": OUTCOME_SCHEMA, "example": outcome},
        },
    }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every ``$defs`` reference resolved in place."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _example_submission() -> dict[str, Any]:
    at = datetime(2026, 11, 2, 11, 30, tzinfo=UTC)
    return {
        "identifier": "SD-000001",
        "level_of_care": "2.1",
        "authored_on": "2026-11-01T11:30:00Z",
        "requested_start": "2026-11-05",
        "client": {
            "mrn": "SD-000001",
            "family_name": "Okafor",
            "given_names": ["Jordan"],
            "birth_date": "1987-06-03",
            "gender": "male",
        },
        "diagnoses": [
            {
                "identifier": "SD-000001-DX1",
                "icd10_code": "F10.20",
                "role": "primary",
                "display": "Alcohol dependence, uncomplicated",
                "category": "problem-list-item",
                "clinical_status": "active",
                "verification_status": "confirmed",
            },
            {
                "identifier": "SD-000001-DX2",
                "icd10_code": "F33.1",
                "role": "co-occurring",
                "display": "Major depressive disorder, recurrent, moderate",
                "category": "problem-list-item",
                "clinical_status": "active",
                "verification_status": "confirmed",
            },
        ],
        "residential_stay": {
            "identifier": "SD-000001-RES",
            "asam_level": "3.5",
            "admitted": "2026-10-05T11:30:00Z",
            "discharged": at.isoformat(),
            "discharge_disposition": "home",
        },
        "assessments": [
            {
                "identifier": "SD-000001-PHQ9",
                "instrument": "phq-9",
                "item_scores": [2, 2, 3, 2, 1, 2, 1, 1, 0],
                "authored": "2026-11-02T08:30:00Z",
            },
            {
                "identifier": "SD-000001-GAD7",
                "instrument": "gad-7",
                "item_scores": [2, 2, 2, 1, 1, 2, 1],
                "authored": "2026-11-02T08:30:00Z",
            },
        ],
        "medications": {
            "identifier": "SD-000001-MEDS",
            "date": at.isoformat(),
            "entries": [
                {
                    "identifier": "SD-000001-MED1",
                    "medication": SERTRALINE.display,
                    "rxnorm_code": SERTRALINE.code,
                    "dose_text": "50 mg by mouth once daily",
                    "dose": {"value": 50, "unit": "mg"},
                    "times_per_day": 1,
                    "start": "2026-10-13",
                }
            ],
        },
        "consent": {
            "identifier": "SD-000001-CONSENT",
            "given_at": "2026-10-31T11:30:00Z",
            "start": "2026-10-31",
            "end": "2027-10-31",
            "purposes": ["TREAT"],
            "data_classes": ["ETH"],
        },
    }


def _example_bundle(submission: dict[str, Any]) -> dict[str, Any]:
    """The same package as a transaction; the organizations named by identifier (conditional
    references), which iop-bridge resolves on the FHIR server."""
    system = canonical.ORGANIZATION_ID_SYSTEM
    refs = {
        f"Organization/{key}": f"Organization?{bundle.identifier_query(system, value)}"
        for key, value in (("referrer", EXAMPLE_REFERRER), ("iop", EXAMPLE_IOP))
    }
    package = ReferralSubmission.model_validate(submission).to_domain()
    built = package_bundle(
        package,
        requester="Organization/referrer",
        requester_key=EXAMPLE_REFERRER,
        owner="Organization/iop",
        context=MappingContext(),
    )

    swapped: dict[str, Any] = rewrite_references(built, refs.get)
    return swapped


EXAMPLE_SUBMISSION = _example_submission()
EXAMPLE_BUNDLE = _example_bundle(EXAMPLE_SUBMISSION)
EXAMPLE_DISCHARGE = {
    "discharged_at": "2027-01-29T17:00:00Z",
    "next_provider": "OUTPT-HARBOR",
    "next_provider_name": "Harbor Street Outpatient Clinic",
    "relapse_prevention": "Daily check-in with sponsor; avoid former drinking venues",
    "medication_follow_up": "Sertraline review with primary care in 4 weeks",
    "support_groups": ["SMART Recovery, Tuesdays"],
    "course_summary": "Completed 12 weeks; PHQ-9 from 14 to 6.",
}


def submission_body() -> dict[str, Any]:
    """``openapi_extra`` of the submission route: both forms, each with its example."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": inline_schema(ReferralSubmission),
                    "examples": {"domain": {"summary": "domain JSON", "value": EXAMPLE_SUBMISSION}},
                },
                FHIR_JSON: {
                    "schema": BUNDLE_SCHEMA,
                    "examples": {
                        "bundle": {"summary": "FHIR transaction Bundle", "value": EXAMPLE_BUNDLE}
                    },
                },
            },
        }
    }


def discharge_body() -> dict[str, Any]:
    """``openapi_extra`` of the discharge route."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": inline_schema(DischargeRequest),
                    "examples": {
                        "aftercare": {"summary": "to outpatient", "value": EXAMPLE_DISCHARGE}
                    },
                }
            },
        }
    }


def document_response() -> dict[str, Any]:
    """The 200 of the document route: a FHIR document Bundle."""
    schema = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": "Bundle"}},
    }
    return {
        "description": "the discharge summary document (Bundle of type document)",
        "content": {FHIR_JSON: {"schema": schema}},
    }
