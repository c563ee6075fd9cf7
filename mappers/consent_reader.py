"""42 CFR Part 2 disclosure consent <- FHIR R4 Consent: ``from_fhir``, the reader of what
``mappers.consent`` writes.

Safety rule: anything that would *narrow* a permit (nested provisions, data, dataPeriod, class,
code, an action other than disclose) cannot be ignored without making the consent look broader
than signed, so it is refused rather than reported as a loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from fhir_profiles.terminology import privacy
from fhir_profiles.terminology.code import Code
from fhir_profiles.terminology.privacy import DATA_CLASSES, PURPOSES, ROLE_RECIPIENT
from fhir_profiles.terminology.systems import CONSENT_ACTION, V3_ACT_CODE
from mappers.consent import CONSENT_STATUSES, DisclosureConsent
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_coding import CODING_KEYS, read_known_coding
from mappers.fhir_read import (
    PERIOD_KEYS,
    modifier_extension_problems,
    open_resource,
    read_code,
    read_date,
    read_datetime,
    read_identifier_list,
    read_list,
)
from mappers.fhir_reference import (
    PARTY_TYPES,
    REFERENCE_KEYS,
    read_reference_to,
    read_required_reference,
    typed_reference_problems,
)
from mappers.loss import Loss, Mapped, unmapped_keys

# Provision elements that restrict a permit: ignoring them would widen the consent.
_NARROWING = ("class", "code", "data", "dataPeriod", "provision")


_MAPPED = frozenset(
    {"identifier", "modifierExtension", "status", "scope", "category", "patient", "dateTime"}
    | {"organization", "policyRule", "provision"}
)


def from_fhir(resource: Any, *, id_system: str) -> Mapped[DisclosureConsent]:
    """Read a DisclosureConsent from Consent.identifier, status, scope, category, patient,
    dateTime, organization, policyRule and the permit provision."""
    problems: list[Problem] = []
    fhir, losses = open_resource(resource, "Consent", _MAPPED, problems)
    identifier = read_identifier_list(
        fhir.get("identifier"), id_system, "Consent.identifier", problems, losses
    )
    status = read_code(fhir.get("status"), "Consent.status", CONSENT_STATUSES, problems)
    scope = privacy.CONSENT_SCOPE_PATIENT_PRIVACY
    _require_coding(fhir.get("scope"), "Consent.scope", scope, problems, losses)
    _read_category(fhir.get("category"), problems, losses)
    policy = privacy.POLICY_42CFR_PART2
    _require_coding(fhir.get("policyRule"), "Consent.policyRule", policy, problems, losses)
    patient = read_required_reference(fhir, "Consent", "patient", "Patient", problems, losses)
    when = read_datetime(fhir.get("dateTime"), "Consent.dateTime", problems, losses)
    custodian = _read_custodian(fhir.get("organization"), problems, losses)
    provision = _read_provision(fhir.get("provision"), problems, losses)
    raise_if_problems("Consent", problems)
    assert identifier and status and when and provision
    start, end, recipients, purposes, classes = provision
    consent = DisclosureConsent(
        identifier, status, patient, when, start, end, recipients, purposes, classes, custodian
    )
    # Validated once: every check of DisclosureConsent.problems() was made above, on the element
    # it came from (tests/unit/mappers/test_validated_once.py pins that), so not run again here.
    return Mapped(consent, {}, tuple(losses))


def _require_coding(
    concept: Any, path: str, code: Code, problems: list[Problem], losses: list[Loss]
) -> None:
    """A CodeableConcept that must carry ``code``; its other codings are reported as lost."""
    if concept is None:
        problems.append(Problem(path, "is required", "required"))
        return
    before = len(problems)
    found, inner = read_known_coding(concept, path, {(code.system, code.code): True}, problems)
    if found is None and len(problems) == before:
        problems.append(Problem(path, f"expected {code.system}#{code.code}", "code-invalid"))
    losses += inner


_IDSCL_KNOWN = {(privacy.CONSENT_CATEGORY_IDSCL.system, privacy.CONSENT_CATEGORY_IDSCL.code): True}


def _read_category(value: Any, problems: list[Problem], losses: list[Loss]) -> None:
    """One category must be IDSCL (information disclosure); the others are reported as lost."""
    idscl = privacy.CONSENT_CATEGORY_IDSCL
    kept = False
    for index, concept in enumerate(read_list(value, "Consent.category", problems)):
        path = f"Consent.category[{index}]"
        found, inner = read_known_coding(concept, path, _IDSCL_KNOWN, problems)
        if found and not kept:
            kept = True
            losses += inner
        else:
            losses.append(Loss(path, "category not modelled by iop-bridge"))
    if not kept:
        message = f"no {V3_ACT_CODE}#{idscl.code} category (a disclosure consent)"
        problems.append(Problem("Consent.category", message, "required"))


def _read_custodian(value: Any, problems: list[Problem], losses: list[Loss]) -> str | None:
    entries = read_list(value, "Consent.organization", problems)
    if not entries:
        return None
    if len(entries) > 1:
        losses += [
            Loss(f"Consent.organization[{i}]", "only one custodian is kept")
            for i in range(1, len(entries))
        ]
    path = "Consent.organization[0]"
    return read_reference_to(entries[0], path, ("Organization",), problems, losses) or None


Provision = tuple[date, date, tuple[str, ...], tuple[str, ...], tuple[str, ...]]


_NARROWING_KEYS = frozenset(_NARROWING)


_PROVISION_KEYS = _NARROWING_KEYS | frozenset(
    {"modifierExtension", "type", "period", "actor", "purpose", "securityLabel", "action"}
)


_PERMIT = frozenset({"permit"})


# (system, code) -> code of PURPOSES and DATA_CLASSES, as _read_codes looks codings up.
_PURPOSE_BY_CODING = {(c.system, c.code): c.code for c in PURPOSES.values()}


_DATA_CLASS_BY_CODING = {(c.system, c.code): c.code for c in DATA_CLASSES.values()}


def _read_provision(value: Any, problems: list[Problem], losses: list[Loss]) -> Provision | None:
    """The permit provision: period, IRCP actors, purposes and security labels."""
    path = "Consent.provision"
    if not isinstance(value, dict):
        problems.append(Problem(path, "is required (a permit provision)", "required"))
        return None
    problems += modifier_extension_problems(value, path)
    losses += unmapped_keys(value, _PROVISION_KEYS, path=path)
    if not _NARROWING_KEYS.isdisjoint(value):
        problems += [
            Problem(
                f"{path}.{name}", "narrows the permit; not supported by iop-bridge", "not-supported"
            )
            for name in _NARROWING
            if name in value
        ]
    read_code(value.get("type"), f"{path}.type", _PERMIT, problems)
    _read_action(value.get("action"), problems, losses)
    start, end = _read_period(value.get("period"), problems, losses)
    recipients = _read_recipients(value.get("actor"), problems, losses)
    purposes = _read_codes(
        value.get("purpose"), f"{path}.purpose", PURPOSES, _PURPOSE_BY_CODING, problems, losses
    )
    classes = _read_codes(
        value.get("securityLabel"),
        f"{path}.securityLabel",
        DATA_CLASSES,
        _DATA_CLASS_BY_CODING,
        problems,
        losses,
    )
    if start is None or end is None:
        return None
    return start, end, recipients, purposes, classes


def _read_action(value: Any, problems: list[Problem], losses: list[Loss]) -> None:
    """Some action must be consentaction#disclose: a permit only to access or use does not
    allow a disclosure. The element itself is not sent back (IDSCL already says it)."""
    actions = read_list(value, "Consent.provision.action", problems)
    if not actions:
        return  # the action element is optional
    known = {(CONSENT_ACTION, "disclose"): True}
    found = [
        read_known_coding(concept, f"Consent.provision.action[{i}]", known, problems)[0]
        for i, concept in enumerate(actions)
    ]
    if actions and not any(found):
        problems.append(
            Problem("Consent.provision.action", "permits no disclose action", "not-supported")
        )
    if actions:
        losses.append(Loss("Consent.provision.action", "not kept: IDSCL means disclosure"))


def _read_period(
    value: Any, problems: list[Problem], losses: list[Loss]
) -> tuple[date | None, date | None]:
    """Whole days. A bound with a time of day is moved one day inwards and reported, so the
    consent is never read as broader than signed."""
    path = "Consent.provision.period"
    if not isinstance(value, dict):
        problems.append(Problem(path, "is required (Part 2 needs an expiry)", "required"))
        return None, None
    losses += unmapped_keys(value, PERIOD_KEYS, path=path)
    days: list[date | None] = []
    for name, inwards in (("start", 1), ("end", -1)):
        at, raw = f"{path}.{name}", value.get(name)
        if isinstance(raw, str) and len(raw) > len("YYYY-MM-DD"):
            moment = read_datetime(raw, at, problems, losses)
            day = None if moment is None else moment.date() + timedelta(days=inwards)
            losses.append(Loss(at, "time of day not kept: the bound is moved one day inwards"))
        else:
            if raw is None:
                problems.append(Problem(at, "is required", "required"))
            day = read_date(raw, at, problems)
        days.append(day)
    start, end = days
    if start is not None and end is not None and end < start:
        problems.append(Problem(f"{path}.end", "is before the period start"))
    return start, end


_RECIPIENT_ROLE_KNOWN = {(ROLE_RECIPIENT.system, ROLE_RECIPIENT.code): True}


_ACTOR_KEYS = frozenset({"role", "reference"})


def _read_recipients(value: Any, problems: list[Problem], losses: list[Loss]) -> tuple[str, ...]:
    """Organizations acting as IRCP; other actors are lost, which can only narrow the permit."""
    known = _RECIPIENT_ROLE_KNOWN
    recipients: list[str] = []
    for index, actor in enumerate(read_list(value, "Consent.provision.actor", problems)):
        path = f"Consent.provision.actor[{index}]"
        if not isinstance(actor, dict):
            problems.append(Problem(path, "expected an actor object", "structure"))
            continue
        held = actor.get("reference")
        held = held if isinstance(held, dict) else {}
        target = held.get("reference")
        found, role_losses = read_known_coding(actor.get("role"), f"{path}.role", known, [])
        if (
            not found
            or not isinstance(target, str)
            or typed_reference_problems(target, PARTY_TYPES, path)
            or target in recipients
        ):
            losses.append(Loss(path, "actor is not a further information recipient (IRCP)"))
            continue
        losses += role_losses + unmapped_keys(actor, _ACTOR_KEYS, path=path)
        losses += unmapped_keys(held, REFERENCE_KEYS, path=f"{path}.reference")
        recipients.append(target)
    if not recipients:
        problems.append(Problem("Consent.provision.actor", "no recipient Organization (IRCP)"))
    return tuple(recipients)


def _read_codes(
    value: Any,
    path: str,
    known: Mapping[str, Code],
    by_coding: Mapping[tuple[Any, Any], str],
    problems: list[Problem],
    losses: list[Loss],
) -> tuple[str, ...]:
    """Codings of ``known`` codes (found by ``by_coding``), in order; other codings are lost
    (that narrows the permit)."""
    kept: list[str] = []
    for index, coding in enumerate(read_list(value, path, problems)):
        at = f"{path}[{index}]"
        pair = (coding.get("system"), coding.get("code")) if isinstance(coding, dict) else None
        code = (
            by_coding.get(pair)
            if pair and isinstance(pair[0], str) and isinstance(pair[1], str)
            else None
        )
        if code is None or code in kept:
            losses.append(Loss(at, "coding not modelled by iop-bridge (or repeated)"))
            continue
        losses += unmapped_keys(coding, CODING_KEYS, path=at)
        kept.append(code)
    if not kept:
        problems.append(Problem(path, f"none of: {', '.join(known)}", "required"))
    return tuple(kept)
