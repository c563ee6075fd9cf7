"""Request and response models of the EHR-facing API (referrals and discharge handoffs).

The domain JSON form of a submission mirrors the mappers' domain types field for field
(``mappers.patient.Client``, ``condition.Diagnosis``, ``residential.ResidentialStay``,
``assessment.Assessment``, ``medication.MedicationEntry``/``MedicationList``,
``consent.DisclosureConsent``); codes are checked by those types, so the rules live in one place
and the schema only lists the values they accept. Errors are documented once, for every route:
problem JSON (RFC 9457) or, for FHIR callers, an OperationOutcome.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from mappers.assessment import Assessment
from mappers.condition import CATEGORIES, CLINICAL_STATUSES, VERIFICATION_STATUSES, Diagnosis
from mappers.consent import DisclosureConsent
from mappers.discharge import CRISIS_LINE_988
from mappers.errors import InvalidInputError, Problem
from mappers.fhir_write import READABLE_ID
from mappers.medication import Dose, ListSource, MedicationEntry, MedicationList
from mappers.patient import ADMINISTRATIVE_GENDERS, Client
from mappers.referral_package.builder import IntakePackage
from mappers.residential import ResidentialStay

# A referral's business identifier in a path: what the API assigns (mappers READABLE_ID).
ReferralId = Annotated[str, Path(min_length=1, max_length=64, pattern=f"^{READABLE_ID}$")]
# Whose referral, where two senders use one business id: the sender, named as the list's
# ``referrer`` filter names it. Without it such an id answers 409 multiple-matches.
Referrer = Annotated[
    str | None,
    Query(
        max_length=255,
        description="the referral's sender (Organization/<id>, as `referrer` in the list); "
        "needed only where two senders use the same referral id",
    ),
]
Text = Field(min_length=1, max_length=255)


def _has_utc_form(value: datetime) -> datetime:
    """Every moment is stored and compared in UTC: 0001-01-01T00:00:00+14:00 and
    9999-12-31T23:59:59-14:00 have no UTC form (Python's years are 1-9999)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("has no UTC form (it falls outside the years 1-9999 in UTC)") from None
    return value


def _not_in_the_future(value: date) -> date:
    """A birth date after tomorrow (a day of slack for the sender's time zone) is refused."""
    if value > date.today() + timedelta(days=1):
        raise ValueError("is in the future")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_has_utc_form)]
# A search's "to" day covers the whole day (up to the next midnight): the calendar's last day
# has no next one, so it is refused by name instead of overflowing.
LAST_SEARCH_DAY = date.max - timedelta(days=1)
BirthDate = Annotated[date, AfterValidator(_not_in_the_future)]
Identifier = Field(min_length=1, max_length=64, pattern=r"^\S+$")


def _one_of(values: Any, description: str) -> Any:
    return Field(description=description, json_schema_extra={"enum": sorted(values)})


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientIn(_In):
    """The client (Patient): the program's MRN, name, birth date and administrative gender."""

    mrn: str = Identifier
    family_name: str = Text
    given_names: list[str] = Field(default_factory=list, max_length=10)
    birth_date: BirthDate
    gender: str = _one_of(ADMINISTRATIVE_GENDERS, "Patient.gender")

    def to_domain(self) -> Client:
        """The domain Client."""
        names = tuple(self.given_names)
        return Client(self.mrn, self.family_name, names, self.birth_date, self.gender)


class DiagnosisIn(_In):
    """A diagnosis (Condition): ICD-10-CM, optionally SNOMED CT; primary or co-occurring."""

    identifier: str = Identifier
    icd10_code: str = Field(min_length=1, max_length=16, examples=["F10.20"])
    display: str = Text
    category: str = _one_of(CATEGORIES, "Condition.category")
    clinical_status: str = _one_of(CLINICAL_STATUSES, "Condition.clinicalStatus")
    verification_status: str = _one_of(VERIFICATION_STATUSES, "Condition.verificationStatus")
    onset: str | None = Field(None, description="a FHIR date: 2021, 2021-08 or 2021-08-15")
    role: Literal["primary", "co-occurring"] | None = None
    snomed_code: str | None = None
    snomed_display: str | None = None

    def to_domain(self) -> Diagnosis:
        """The domain Diagnosis."""
        return Diagnosis(**self.model_dump())


class ResidentialStayIn(_In):
    """The residential episode (ASAM 3.x) the client steps down from."""

    identifier: str = Identifier
    asam_level: str = Field(description="ASAM residential level, e.g. 3.5", examples=["3.5"])
    admitted: Moment
    discharged: Moment | None = None
    discharge_disposition: str | None = Field(None, examples=["home"])

    def to_domain(self) -> ResidentialStay:
        """The domain ResidentialStay."""
        return ResidentialStay(**self.model_dump())


class AssessmentIn(_In):
    """A PHQ-9 or GAD-7: one 0-3 score per item, in questionnaire order (totals recomputed)."""

    identifier: str = Identifier
    instrument: Literal["phq-9", "gad-7"]
    item_scores: list[int] = Field(min_length=1, max_length=9)
    authored: Moment
    status: str = "completed"
    difficulty: str | None = Field(None, description="PHQ-9 only: LOINC answer to 69722-7")

    def to_domain(self) -> Assessment:
        """The domain Assessment."""
        fields = self.model_dump() | {"item_scores": tuple(self.item_scores)}
        return Assessment(**fields)


class DoseIn(_In):
    """One structured dose, e.g. 50 mg."""

    value: float = Field(gt=0, le=100_000)
    unit: str = Field(min_length=1, max_length=32)


class MedicationIn(_In):
    """One discharge medication (sent as a US Core MedicationRequest), RxNorm-coded when the code
    is known."""

    identifier: str = Identifier
    medication: str = Text
    rxnorm_code: str | None = None
    status: str = "active"
    dose_text: str | None = None
    dose: DoseIn | None = None
    times_per_day: int | None = Field(None, ge=1, le=24)
    start: date | None = None
    end: date | None = None

    def to_domain(self) -> MedicationEntry:
        """The domain MedicationEntry."""
        dose = Dose(self.dose.value, self.dose.unit) if self.dose else None
        return MedicationEntry(**(self.model_dump() | {"dose": dose}))


class MedicationListIn(_In):
    """The residential discharge medication list (a List of MedicationRequests)."""

    identifier: str = Identifier
    title: str = "Residential discharge medications"
    date: Moment
    entries: list[MedicationIn] = Field(default_factory=list, max_length=100)

    def to_domain(self) -> MedicationList:
        """The domain MedicationList, sourced from the residential discharge."""
        entries = tuple(e.to_domain() for e in self.entries)
        source = ListSource.RESIDENTIAL_DISCHARGE
        return MedicationList(self.identifier, self.title, source, self.date, entries)


class ConsentIn(_In):
    """The client's 42 CFR Part 2 consent to disclose to the IOP (the recipient is the IOP, the
    custodian your organization: both are filled in)."""

    identifier: str = Identifier
    status: str = "active"
    given_at: Moment
    start: date
    end: date = Field(description="Part 2 requires an expiry (42 CFR 2.31(a))")
    purposes: list[str] = Field(default_factory=lambda: ["TREAT"], min_length=1, max_length=10)
    data_classes: list[str] = Field(default_factory=lambda: ["ETH"], min_length=1, max_length=10)

    def to_domain(self) -> DisclosureConsent:
        """The domain consent; patient, recipients and custodian are set by the builder."""
        return DisclosureConsent(
            self.identifier, self.status, "urn:uuid:00000000-0000-0000-0000-000000000000",
            self.given_at, self.start, self.end, (), tuple(self.purposes),
            tuple(self.data_classes),
        )  # fmt: skip


class ReferralSubmission(_In):
    """A step-down referral package as domain JSON: iop-bridge builds the FHIR transaction."""

    identifier: str = Field(
        min_length=1, max_length=64, pattern=f"^{READABLE_ID}$",
        description="the referral's business identifier (ServiceRequest and Task): it names "
        "the referral in URLs and headers, so letters, digits and . _ ~ : @ + - only",
    )  # fmt: skip
    level_of_care: str = Field("2.1", description="ASAM level asked for; 2.1 is an IOP")
    authored_on: Moment
    requested_start: date | None = None
    note: str | None = None
    client: ClientIn
    diagnoses: list[DiagnosisIn] = Field(min_length=1, max_length=20)
    residential_stay: ResidentialStayIn
    assessments: list[AssessmentIn] = Field(default_factory=list, max_length=20)
    medications: MedicationListIn
    consent: ConsentIn

    def to_domain(self) -> IntakePackage:
        """The package as domain values."""
        return IntakePackage(
            self.identifier, self.level_of_care, self.authored_on, self.client.to_domain(),
            tuple(d.to_domain() for d in self.diagnoses), self.residential_stay.to_domain(),
            tuple(a.to_domain() for a in self.assessments), self.medications.to_domain(),
            self.consent.to_domain(), self.requested_start, self.note,
        )  # fmt: skip


def parse_submission(document: Any) -> IntakePackage:
    """The domain form read from JSON; InvalidInputError naming every field that is wrong."""
    try:
        return ReferralSubmission.model_validate(document).to_domain()
    except ValidationError as error:
        raise InvalidInputError.from_problems("the referral", validation_problems(error)) from None


def validation_problems(error: ValidationError) -> list[Problem]:
    """Pydantic's errors as Problems with dotted paths (``diagnoses[0].icd10_code``)."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
        problems.append(Problem(path.lstrip(".") or "body", item["msg"]))
    return problems


class DischargeRequest(_In):
    """What the case manager states at IOP discharge: when, and the aftercare handoff."""

    discharged_at: Moment
    next_provider: str = Field(
        min_length=1, max_length=64, pattern=r"^\S+$",
        description="the next provider's organization identifier (as registered)",
    )  # fmt: skip
    next_provider_name: str = Text
    relapse_prevention: str = Text
    medication_follow_up: str = Text
    support_groups: list[str] = Field(default_factory=list, max_length=20)
    crisis_line: str = CRISIS_LINE_988
    course_summary: str | None = Field(None, max_length=4000)


# --- responses -------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class BusinessStatusOut(_Out):
    """The BSeR milestone of the referral's Task (Task.businessStatus)."""

    code: str
    display: str | None


class PackageProblemOut(_Out):
    """Something in the package iop-bridge could not map (the referral can only be declined)."""

    resource: str | None = None
    path: str
    message: str


class LossOut(_Out):
    """An element received but not kept in iop-bridge's records (the FHIR server has it)."""

    resource: str | None = None
    path: str
    reason: str


class PageLinks(_Out):
    """Where this page, the next and the previous one are (None at the ends)."""

    self: str
    next: str | None
    prev: str | None


class ReferralOut(_Out):
    """A referral's status and the IOP's response."""

    id: str
    status: str = Field(description="Task.status")
    business_status: BusinessStatusOut | None
    status_reason: str | None = Field(description="Task.statusReason, e.g. why it was declined")
    decision: Literal["accepted", "declined"] | None
    decision_reason: str | None
    decided_at: datetime | None
    received_at: datetime
    residential_discharge_date: date | None
    intake_date: date | None = Field(description="the intake appointment, once scheduled")
    first_session: date | None = Field(description="the first attended IOP session")
    referrer: str | None = Field(description="the requesting Organization")
    program: str = Field(description="the IOP's Organization (Task.owner)")
    task: str | None = Field(description="the Task on the FHIR server, once delivered")
    submission: Literal["pending", "in-flight", "delivered", "dead"] | None = Field(
        description="delivery of an API submission to the FHIR server; null if received there"
    )
    problems: list[PackageProblemOut]
    losses: list[LossOut]
    links: dict[str, str]


class ReferralPageOut(_Out):
    """One page of referrals."""

    items: list[ReferralOut]
    total: int
    page: int
    page_size: int
    links: PageLinks


class DischargeOut(_Out):
    """A discharge handoff and its aftercare loop."""

    id: str = Field(description="the referral's identifier")
    discharged_at: datetime
    next_provider: str
    aftercare_task: str | None
    task_status: str | None = Field(description="Task.status as the next provider left it")
    business_status: str | None
    acknowledged: bool
    acknowledged_at: datetime | None
    delivery: Literal["pending", "in-flight", "delivered", "dead"] | None
    links: dict[str, str]


class DischargePageOut(_Out):
    """One page of discharge handoffs."""

    items: list[DischargeOut]
    total: int
    page: int
    page_size: int
    links: PageLinks


def page_links(request: Request, page: int, page_size: int, total: int) -> PageLinks:
    """self, next and prev of a paged list, keeping the request's filters."""

    def at(number: int) -> str:
        others = request.url.remove_query_params(["page", "page_size"])
        url = others.include_query_params(page=number, page_size=page_size)
        return f"{url.path}?{url.query}"

    last = max(1, -(-total // page_size))
    return PageLinks(
        self=at(page), next=at(page + 1) if page < last else None,
        prev=at(min(page - 1, last)) if page > 1 else None,
    )  # fmt: skip
