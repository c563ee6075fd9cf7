"""42 CFR Part 2 labels on the step-down referral Bundle an EHR submits: every SUD-derived entry
is labelled where the Bundle is built (``check_submission``, ``package_bundle``), so the outbox
message the worker forwards carries them."""

# ruff: noqa: F811  (fixtures imported from referral_support are test parameters here)

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from api.schemas import ReferralSubmission
from fhir_profiles.terminology import clinical, part2
from fhir_profiles.terminology.privacy import PART2_SECURITY_LABELS
from integration.db.outbox_table import OutboxMessage
from integration.db.store import session_scope
from mappers import security_labels
from mappers.referral_package.builder import IntakePackage, package_bundle
from mappers.referral_package.submission import Parties, check_submission
from mappers.registry import MappingContext
from tests.component.api.referral_support import (  # noqa: F401
    EHR,
    IOP,
    ORG_SYSTEM,
    RES,
    app,
    fhir_bundle,
    fhir_mock,
    http,
    org_ref,
    settings,
    store,
    submission,
)
from tests.db.fixtures import empty_db_url  # noqa: F401

CONTEXT = MappingContext()
PARTIES = Parties((ORG_SYSTEM, RES), org_ref(RES), (ORG_SYSTEM, IOP), org_ref(IOP))
PART2 = "42CFRPart2"


def _security_codes(resource: dict[str, Any]) -> set[str]:
    return {c["code"] for c in (resource.get("meta") or {}).get("security") or []}


def _without_sud(document: dict[str, Any]) -> dict[str, Any]:
    """The package with its alcohol dependence (F10.20) recoded as another mental disorder and
    its MOUD medications (buprenorphine/naloxone, naltrexone: Part 2 by themselves) recoded as
    sertraline."""
    text = json.dumps(document).replace('"F10.20"', '"F41.1"')
    for moud in part2.MOUD_MEDICATIONS:
        text = text.replace(f'"{moud.code}"', f'"{clinical.RX_SERTRALINE_50.code}"')
    return json.loads(text)  # type: ignore[no-any-return]


def test_check_submission__every_entry_of_an_sud_package_is_labelled() -> None:
    checked = check_submission(fhir_bundle(60), PARTIES, CONTEXT)
    entries = [e["resource"] for e in checked.bundle["entry"]]
    assert len(entries) == 25
    unlabelled = [r["resourceType"] for r in entries if not security_labels.is_labelled(r)]
    assert unlabelled == []
    # A transaction Bundle is a request, never stored: its entries carry the labels, it none.
    assert "security" not in (checked.bundle.get("meta") or {})


def test_check_submission__labels_already_present_are_kept_once() -> None:
    document = fhir_bundle(61)
    patient = document["entry"][0]["resource"]
    patient["meta"] = {"security": [PART2_SECURITY_LABELS[2].coding()]}
    checked = check_submission(document, PARTIES, CONTEXT)
    security = checked.bundle["entry"][0]["resource"]["meta"]["security"]
    assert [c["code"] for c in security].count(PART2) == 1
    assert security_labels.is_labelled(checked.bundle["entry"][0]["resource"])


def test_check_submission__a_package_without_sud_is_not_labelled() -> None:
    checked = check_submission(_without_sud(fhir_bundle(62)), PARTIES, CONTEXT)
    assert all(PART2 not in _security_codes(e["resource"]) for e in checked.bundle["entry"])


def test_package_bundle__the_domain_package_is_labelled_when_built() -> None:
    package = ReferralSubmission.model_validate(submission(63)).to_domain()
    built = _built(package)
    assert _patient_data_labelled(built)
    assert "PractitionerRole" in {e["resource"]["resourceType"] for e in built["entry"]}
    body = submission(64)
    body["diagnoses"] = [d for d in body["diagnoses"] if not d["icd10_code"].startswith("F1")]
    plain = ReferralSubmission.model_validate(body).to_domain()
    built = _built(plain)
    assert all(PART2 not in _security_codes(e["resource"]) for e in built["entry"])


def _patient_data_labelled(document: dict[str, Any]) -> bool:
    """Every entry labelled but those that describe no patient (the referrer's
    PractitionerRole in a domain package: never labelled, security_labels.NOT_PATIENT_DATA)."""
    return all(
        security_labels.is_labelled(e["resource"])
        for e in document["entry"]
        if e["resource"]["resourceType"] not in security_labels.NOT_PATIENT_DATA
    )


def _built(package: IntakePackage) -> dict[str, Any]:
    return package_bundle(
        package, requester=org_ref(RES), requester_key=RES, owner=org_ref(IOP), context=CONTEXT
    )


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["domain", "fhir"])
async def test_submit__the_enqueued_bundle_carries_the_labels(
    form: str, http: httpx.AsyncClient, store: Engine
) -> None:
    body = submission(65) if form == "domain" else fhir_bundle(66)
    content_type = "application/fhir+json" if form == "fhir" else "application/json"
    response = await http.post(
        "/api/referrals", json=body, headers={**EHR, "Content-Type": content_type}
    )
    assert response.status_code == 201, response.text
    with session_scope(store) as session:
        [payload] = session.scalars(select(OutboxMessage.payload))
    assert _patient_data_labelled(payload)
