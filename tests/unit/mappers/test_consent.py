from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given

from mappers import consent, consent_reader
from mappers.consent import DisclosureConsent, covers
from mappers.errors import MappingError
from tests.builders.referrals import (
    CONSENT_SYSTEM,
    EASTERN,
    IOP_ORGANIZATION,
    RESIDENTIAL_ORGANIZATION,
    make_consent,
)
from tests.strategies.consent import consents
from tests.strategies.encounter import corrupted

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
OTHER_ORGANIZATION = "Organization/outpatient-clinic"
DURING = datetime(2025, 1, 15, 10, 0, tzinfo=EASTERN)


def _fhir(value: DisclosureConsent | None = None) -> dict[str, Any]:
    return consent.to_fhir(value or make_consent(), id_system=CONSENT_SYSTEM)


def _problems(resource: Any) -> dict[str, str]:
    with pytest.raises(MappingError) as caught:
        consent_reader.from_fhir(resource, id_system=CONSENT_SYSTEM)
    return {p.path: p.message for p in caught.value.problems}


# --- to_fhir ------------------------------------------------------------------------------------


def test_to_fhir__part2_consent_content() -> None:
    resource = _fhir()
    assert "meta" not in resource
    assert resource["status"] == "active"
    assert resource["scope"]["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy",
            "display": "Privacy Consent",
        }
    ]
    assert resource["category"][0]["coding"] == [
        {"system": ACT_CODE, "code": "IDSCL", "display": "information disclosure"}
    ]
    assert resource["policyRule"]["coding"] == [
        {"system": ACT_CODE, "code": "42CFRPart2", "display": "42 CFR Part2"}
    ]
    assert resource["organization"] == [{"reference": RESIDENTIAL_ORGANIZATION}]
    assert resource["dateTime"] == "2024-10-02T14:00:00-04:00"
    provision = resource["provision"]
    assert provision["type"] == "permit"
    assert provision["period"] == {"start": "2024-10-02", "end": "2025-10-01"}
    assert provision["actor"] == [
        {
            "role": {
                "coding": [
                    {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
                ],
                "text": "information recipient",
            },
            "reference": {"reference": IOP_ORGANIZATION},
        }
    ]
    assert provision["purpose"] == [{"system": ACT_REASON, "code": "TREAT", "display": "treatment"}]
    assert provision["securityLabel"] == [
        {"system": ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"}
    ]


def test_to_fhir__bad_consent_names_every_field() -> None:
    bad = make_consent(
        status="revoked",
        end=date(2024, 10, 1),
        recipients=(),
        purposes=("TREAT", "RESEARCH"),
        data_classes=("ETH", "ETH"),
        custodian="Practitioner/p1",
    )
    with pytest.raises(MappingError) as caught:
        _fhir(bad)
    assert {p.path for p in caught.value.problems} == {
        "DisclosureConsent.status",
        "DisclosureConsent.end",
        "DisclosureConsent.recipients",
        "DisclosureConsent.purposes[1]",
        "DisclosureConsent.data_classes",
        "DisclosureConsent.custodian",
    }


# --- round trip ---------------------------------------------------------------------------------


def test_round_trip__builder_is_identity() -> None:
    mapped = consent_reader.from_fhir(_fhir(), id_system=CONSENT_SYSTEM)
    assert mapped.value == make_consent()
    assert mapped.losses == ()


@given(consents())
def test_round_trip__any_valid_consent_is_identity(value: DisclosureConsent) -> None:
    mapped = consent_reader.from_fhir(_fhir(value), id_system=CONSENT_SYSTEM)
    assert mapped.value == value
    assert mapped.losses == ()


# --- foreign input ------------------------------------------------------------------------------


def test_from_fhir__foreign_content_is_reported_not_dropped() -> None:
    foreign = _fhir()
    foreign["category"].insert(0, {"coding": [{"system": "http://loinc.org", "code": "59284-0"}]})
    foreign["policyRule"]["coding"].append({"system": "http://x.example/p", "code": "hipaa"})
    foreign["sourceAttachment"] = {"contentType": "application/pdf", "data": "AA=="}
    foreign["organization"].append({"reference": "Organization/second"})
    provision = foreign["provision"]
    provision["actor"].insert(
        0,
        {"role": {"coding": [{"system": PARTICIPATION, "code": "CST"}]},
         "reference": {"reference": RESIDENTIAL_ORGANIZATION}},
    )  # fmt: skip
    provision["purpose"].append({"system": ACT_REASON, "code": "HRESCH"})
    provision["securityLabel"].append({"system": ACT_CODE, "code": "HIV"})
    provision["action"] = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                    "code": "disclose",
                }
            ]
        }
    ]
    mapped = consent_reader.from_fhir(foreign, id_system=CONSENT_SYSTEM)
    assert mapped.value == make_consent()
    assert {loss.path for loss in mapped.losses} == {
        "Consent.category[0]",
        "Consent.policyRule.coding[1]",
        "Consent.sourceAttachment",
        "Consent.organization[1]",
        "Consent.provision.actor[0]",
        "Consent.provision.purpose[1]",
        "Consent.provision.securityLabel[1]",
        "Consent.provision.action",
    }


def test_from_fhir__period_with_times_is_narrowed_one_day_each_side() -> None:
    foreign = _fhir()
    foreign["provision"]["period"] = {
        "start": "2024-10-02T14:00:00-04:00",
        "end": "2025-10-01T09:00:00-04:00",
    }
    mapped = consent_reader.from_fhir(foreign, id_system=CONSENT_SYSTEM)
    assert (mapped.value.start, mapped.value.end) == (date(2024, 10, 3), date(2025, 9, 30))
    assert {loss.path for loss in mapped.losses} == {
        "Consent.provision.period.start",
        "Consent.provision.period.end",
    }


# --- bad input ----------------------------------------------------------------------------------


def test_from_fhir__wrong_resource_type_is_named() -> None:
    assert "Consent.resourceType" in _problems({"resourceType": "Contract"})


def test_from_fhir__bare_consent_names_every_missing_element() -> None:
    assert set(_problems({"resourceType": "Consent"})) == {
        "Consent.identifier",
        "Consent.status",
        "Consent.scope",
        "Consent.category",
        "Consent.policyRule",
        "Consent.patient",
        "Consent.dateTime",
        "Consent.provision",
    }


@pytest.mark.parametrize(
    ("element", "value", "path"),
    [
        ("status", "revoked", "Consent.status"),
        (
            "scope",
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "research",
                    }
                ]
            },
            "Consent.scope",
        ),
        (
            "policyRule",
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes",
                        "code": "hipaa-auth",
                    }
                ]
            },
            "Consent.policyRule",
        ),
        ("category", [{"text": "consent form"}], "Consent.category"),
        ("patient", {"reference": "Group/g"}, "Consent.patient.reference"),
        ("dateTime", "2024-10-02", "Consent.dateTime"),
    ],
)
def test_from_fhir__unmappable_values_are_named(element: str, value: Any, path: str) -> None:
    resource = _fhir()
    resource[element] = value
    assert set(_problems(resource)) == {path}


@pytest.mark.parametrize(
    ("element", "value", "path"),
    [
        ("type", "deny", "Consent.provision.type"),
        ("period", {"start": "2024-10-02"}, "Consent.provision.period.end"),
        ("period", {"start": "2024-10-02", "end": "2024-10-01"}, "Consent.provision.period.end"),
        (
            "actor",
            [{"role": {"text": "recipient"}, "reference": {"reference": IOP_ORGANIZATION}}],
            "Consent.provision.actor",
        ),
        ("purpose", [{"system": ACT_REASON, "code": "HMARKT"}], "Consent.provision.purpose"),
        ("securityLabel", [], "Consent.provision.securityLabel"),
        ("provision", [{"type": "deny"}], "Consent.provision.provision"),
        (
            "data",
            [{"meaning": "instance", "reference": {"reference": "Condition/c"}}],
            "Consent.provision.data",
        ),
        (
            "action",
            [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "access",
                        }
                    ]
                }
            ],
            "Consent.provision.action",
        ),
    ],
)
def test_from_fhir__provision_that_cannot_be_decided_on_is_named(
    element: str, value: Any, path: str
) -> None:
    resource = _fhir()
    resource["provision"][element] = value
    assert set(_problems(resource)) == {path}


@given(corrupted(_fhir(make_consent(recipients=(IOP_ORGANIZATION, OTHER_ORGANIZATION)))))
def test_from_fhir__any_corrupted_consent_maps_or_raises(resource: Any) -> None:
    try:
        mapped = consent_reader.from_fhir(resource, id_system=CONSENT_SYSTEM)
    except MappingError as error:
        assert error.problems
    else:
        assert mapped.value.problems() == []


# --- covers -------------------------------------------------------------------------------------


def test_covers__active_consent_for_named_recipient_and_purpose() -> None:
    decision = covers(make_consent(), recipient=IOP_ORGANIZATION, purpose="TREAT", at=DURING)
    assert decision and decision.reasons == ()


def test_covers__treatment_consent_covers_coordination_of_care_not_payment() -> None:
    assert covers(make_consent(), recipient=IOP_ORGANIZATION, purpose="COC", at=DURING)
    decision = covers(make_consent(), recipient=IOP_ORGANIZATION, purpose="HPAYMT", at=DURING)
    assert not decision
    assert decision.reasons == ("purpose HPAYMT is not permitted (consent permits TREAT)",)


def test_covers__expired_consent_is_refused_with_its_end_date() -> None:
    decision = covers(
        make_consent(), recipient=IOP_ORGANIZATION, purpose="TREAT", at=date(2025, 10, 2)
    )
    assert not decision.permitted
    assert decision.reasons == ("consent expired on 2025-10-01",)


def test_covers__period_bounds_are_inclusive_whole_days() -> None:
    value = make_consent()
    for day in (value.start, value.end):
        assert covers(value, recipient=IOP_ORGANIZATION, purpose="TREAT", at=day)
    late = datetime(2025, 10, 1, 23, 59, 59, tzinfo=EASTERN)
    assert covers(value, recipient=IOP_ORGANIZATION, purpose="TREAT", at=late)
    utc_next_day = late.astimezone(UTC)  # the same instant is 2 Oct in UTC
    assert not covers(value, recipient=IOP_ORGANIZATION, purpose="TREAT", at=utc_next_day)


def test_covers__not_yet_started_consent_is_refused() -> None:
    decision = covers(
        make_consent(), recipient=IOP_ORGANIZATION, purpose="TREAT", at=date(2024, 10, 1)
    )
    assert decision.reasons == ("consent period starts on 2024-10-02",)


@pytest.mark.parametrize(
    "status", ["draft", "proposed", "rejected", "inactive", "entered-in-error"]
)
def test_covers__only_an_active_consent_permits(status: str) -> None:
    decision = covers(
        make_consent(status=status), recipient=IOP_ORGANIZATION, purpose="TREAT", at=DURING
    )
    assert decision.reasons == (f"consent is {status}, not active",)


def test_covers__gathers_every_reason() -> None:
    decision = covers(
        make_consent(status="inactive"),
        recipient=OTHER_ORGANIZATION,
        purpose="MARKETING",
        at=DURING + timedelta(days=365),
    )
    assert decision.reasons == (
        "consent is inactive, not active",
        "consent expired on 2025-10-01",
        f"recipient {OTHER_ORGANIZATION} is not named (consent names {IOP_ORGANIZATION})",
        "purpose 'MARKETING' is not a known purpose of use",
    )


def test_covers__an_invalid_consent_never_permits() -> None:
    decision = covers(
        make_consent(recipients=(IOP_ORGANIZATION, IOP_ORGANIZATION)),
        recipient=IOP_ORGANIZATION,
        purpose="TREAT",
        at=DURING,
    )
    assert not decision
    assert decision.reasons == ("DisclosureConsent.recipients: must not repeat a value",)


@given(consents())
def test_covers__permits_exactly_inside_the_rules(value: DisclosureConsent) -> None:
    recipient, purpose = value.recipients[0], value.purposes[0]
    inside = covers(value, recipient=recipient, purpose=purpose, at=value.end)
    assert inside.permitted == (value.status == "active")
    after = covers(value, recipient=recipient, purpose=purpose, at=value.end + timedelta(days=1))
    assert not after


# --- what may be disclosed (the consent an IOP records for the next provider) -----------------


def test_to_fhir__what_may_be_disclosed_is_the_escaped_narrative() -> None:
    given = make_consent(recipients=(OTHER_ORGANIZATION,), disclosed="discharge summary <& plan>")
    resource = _fhir(given)
    assert resource["text"] == {
        "status": "additional",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Disclosure of: '
        "discharge summary &lt;&amp; plan&gt;</p></div>",
    }
    # our profile's shape, as our reader enforces it: the same consent, the narrative a loss
    mapped = consent_reader.from_fhir(resource, id_system=CONSENT_SYSTEM)
    assert mapped.value == replace(given, disclosed=None)
    assert [loss.path for loss in mapped.losses] == ["Consent.text"]


def test_to_fhir__without_a_description_there_is_no_narrative() -> None:
    assert "text" not in _fhir(make_consent())


def test_to_fhir__a_blank_description_is_refused() -> None:
    with pytest.raises(MappingError) as caught:
        _fhir(make_consent(disclosed="  "))
    assert [p.path for p in caught.value.problems] == ["DisclosureConsent.disclosed"]
