"""A step-down referral package given as domain values, turned into the transaction Bundle a
residential EHR would post (the ``sandbox/step_down_package`` shape), with the concept mappers.

The package is what a residential program knows at discharge: the client, diagnoses, the
residential stay, PHQ-9/GAD-7, the discharge medication list (US Core MedicationRequests by
``iop-medicationrequest``, category ``discharge``, written by ``mappers.medication_request`` as
the reconciliation and the discharge document write them), the Part 2 consent and the referral
itself (level of care, requested start). The two organizations come from the caller (the
referring program) and this service (the IOP); the consent names the IOP as its recipient and
the referring program as its custodian. Who is named where (BSeR, SDOHCC):

- ServiceRequest.requester: the referring program's PractitionerRole (``mappers.
  practitioner_role``, of the caller's Organization, keyed on its identifier value and
  conditionally created with the package): BSeRReferralServiceRequest admits only a
  PractitionerRole there.
- Task.requester: the caller's Organization. BSeR's ReferralTask and SDOHCC's Task admit a
  PractitionerRole or an Organization, and the Task's requester is who the referral belongs to
  in iop-bridge (the sender that keys its identifier, the referrer's scope, the rule that takes
  over only the requester's own changes: ``mappers.task_trust``); the caller authenticates as
  that Organization, so it stays the one party every reader compares.
- Task.owner and ServiceRequest.performer: the IOP's Organization, as the residential EHR
  addresses it (it does not know the IOP's roles, as the IOP does not know the next provider's
  in an aftercare referral) and as iop-bridge's Subscription and poll find its Tasks
  (``Task?owner=Organization/<IOP>``). BSeR admits an Organization performer; its BSeR Task
  profile asks for a PractitionerRole owner, which we do not claim.

Each to_fhir's problems are gathered, placed under the part they are about
(``diagnoses[1].icd10_code``), and raised together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from typing import Any

from fhir_profiles.terminology.workflow import MEDICATION_DISCHARGE
from mappers import (
    assessment,
    bundle,
    condition,
    consent,
    medication,
    medication_request,
    patient,
    practitioner_role,
    referral,
    referral_task,
    residential,
    security_labels,
)
from mappers.assessment import Assessment
from mappers.condition import Diagnosis
from mappers.consent import DisclosureConsent
from mappers.errors import InvalidInputError, MappingError, Problem
from mappers.medication import MedicationList
from mappers.patient import Client
from mappers.referral import Referral
from mappers.referral_package.submission import canonical_url
from mappers.referral_task import DEFAULT_BUSINESS_STATUS, ReferralTask
from mappers.registry import MappingContext
from mappers.residential import ResidentialStay


@dataclass(frozen=True, slots=True)
class IntakePackage:
    """A step-down referral package as domain values (the API's domain JSON form)."""

    identifier: str  # of the ServiceRequest and the Task: the referral's id
    level_of_care: str  # ASAM code asked for, "2.1" for an IOP
    authored_on: datetime
    client: Client
    diagnoses: tuple[Diagnosis, ...]
    stay: ResidentialStay
    assessments: tuple[Assessment, ...]
    medications: MedicationList
    consent: DisclosureConsent  # patient, recipients and custodian are filled in here
    requested_start: date | None = None
    note: str | None = None


class _Entries:
    """Conditional-create entries in order, each under its canonical fullUrl."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.problems: list[Problem] = []

    def add(self, where: str, build: Callable[[], dict[str, Any]], system: str, value: str) -> str:
        """Build one resource (its problems placed under ``where``); its fullUrl."""
        condition = bundle.identifier_query(system, value)
        try:
            resource = build()
        except MappingError as error:
            self.problems += [_under(where, p) for p in error.problems]
            resource = {"resourceType": where}
        url = canonical_url(str(resource["resourceType"]), condition)
        self.entries.append(
            bundle.conditional_create_entry(resource, full_url=url, if_none_exist=condition)
        )
        return url

    def each(
        self,
        where: str,
        items: Sequence[Any],
        to_fhir: Callable[..., dict[str, Any]],
        system: str,
        subject: str,
    ) -> list[str]:
        """One entry per item (a concept whose to_fhir takes id_system and subject_reference)."""
        return [
            self.add(
                f"{where}[{i}]",
                partial(to_fhir, item, id_system=system, subject_reference=subject),
                system,
                item.identifier,
            )
            for i, item in enumerate(items)
        ]


def _recorded(package: IntakePackage) -> tuple[Diagnosis, ...]:
    """Each diagnosis with Condition.recordedDate (US Core must support): the sender's date, or
    the day the package was authored, by which the referrer had recorded it."""
    day = package.authored_on.date().isoformat()
    return tuple(d if d.recorded else replace(d, recorded=day) for d in package.diagnoses)


def package_bundle(
    package: IntakePackage,
    *,
    requester: str,
    requester_key: str,
    owner: str,
    context: MappingContext,
) -> dict[str, Any]:
    """The whole package as one transaction of conditional creates keyed on identifiers, its
    entries labelled (meta.security, 42 CFR Part 2) when any of them names an SUD or a MOUD.
    ``requester`` is the referring Organization's reference, ``requester_key`` its identifier
    value (which keys its PractitionerRole), ``owner`` the IOP Organization's reference."""
    out, c, client = _Entries(), context, package.client
    build = partial(patient.to_fhir, client, mrn_system=c.mrn_system)
    subject = out.add("client", build, c.mrn_system, client.mrn)
    reasons = out.each("diagnoses", _recorded(package), condition.to_fhir,
                       c.condition_id_system, subject)  # fmt: skip
    supporting = [_stay(out, package, subject, requester, c)]
    supporting += out.each("assessments", package.assessments, assessment.to_fhir,
                           c.assessment_id_system, subject)  # fmt: skip
    supporting.append(_medications(out, package.medications, subject, c))
    supporting.append(_consent(out, package, subject, requester, owner, c))
    role = _requester_role(out, requester, requester_key, c)
    request = Referral(
        package.identifier, "active", package.level_of_care, subject, role, owner,
        package.authored_on, package.requested_start, tuple(reasons), tuple(supporting),
        package.note,
    )  # fmt: skip
    system = c.referral_id_system
    build = partial(referral.to_fhir, request, id_system=system)
    focus = out.add("referral", build, system, request.identifier)
    task = ReferralTask(
        package.identifier, "requested", focus, subject, requester, package.authored_on,
        owner=owner, business_status=DEFAULT_BUSINESS_STATUS["requested"],
    )  # fmt: skip
    build = partial(referral_task.to_fhir, task, id_system=c.task_id_system)
    out.add("referral", build, c.task_id_system, task.identifier)
    if out.problems:
        raise InvalidInputError.from_problems("the referral package", out.problems)
    # Part 2 by the one rule (mappers.security_labels): an SUD diagnosis or a MOUD medication.
    transaction = bundle.transaction(out.entries)
    return security_labels.label(
        transaction, sud_derived=security_labels.contains_sud([transaction])
    )


def _stay(
    out: _Entries, package: IntakePackage, subject: str, requester: str, context: MappingContext
) -> str:
    system = context.residential_stay_id_system
    build = partial(
        residential.to_fhir, package.stay, id_system=system, subject_reference=subject,
        service_provider_reference=requester,
    )  # fmt: skip
    return out.add("residential_stay", build, system, package.stay.identifier)


def _medications(out: _Entries, meds: MedicationList, subject: str, context: MappingContext) -> str:
    """The discharge List and its MedicationRequests (category ``discharge``: the list the
    client leaves residential treatment with, recorded when the list was)."""
    requests = out.each(
        "medications.entries", meds.entries,
        partial(medication_request.to_fhir, category=MEDICATION_DISCHARGE, authored_on=meds.date),
        context.medication_request_id_system, subject,
    )  # fmt: skip
    system = context.medication_list_id_system
    build = partial(
        medication.list_to_fhir, meds, id_system=system, subject_reference=subject,
        entry_references=requests,
    )  # fmt: skip
    return out.add("medications", build, system, meds.identifier)


def _requester_role(
    out: _Entries, organization: str, organization_key: str, context: MappingContext
) -> str:
    """The referring program's PractitionerRole (the ServiceRequest's requester, BSeR), one per
    referring Organization: keyed on that Organization's identifier value, as the IOP's own."""
    system = context.practitioner_role_id_system
    build = partial(
        practitioner_role.to_fhir, identifier=organization_key, id_system=system,
        organization_reference=organization, organization_name="",
        role_text=practitioner_role.REFERRER_ROLE_TEXT,
    )  # fmt: skip
    return out.add("requester", build, system, organization_key)


def _consent(
    out: _Entries,
    package: IntakePackage,
    subject: str,
    requester: str,
    owner: str,
    context: MappingContext,
) -> str:
    given = replace(package.consent, patient=subject, recipients=(owner,), custodian=requester)

    def build() -> dict[str, Any]:
        return consent.to_fhir(given, id_system=context.consent_id_system)

    return out.add("consent", build, context.consent_id_system, given.identifier)


def _under(where: str, problem: Problem) -> Problem:
    """``Diagnosis.icd10_code`` about ``diagnoses[1]`` -> ``diagnoses[1].icd10_code``."""
    inner = problem.path.split(".", 1)[1] if "." in problem.path else ""
    return Problem(f"{where}.{inner}" if inner else where, problem.message, problem.code)
