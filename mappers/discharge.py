"""IOP discharge summary (DESIGN.md workflow 3): the domain type, the narrative it renders,
and the aftercare referral to the next provider.

The FHIR document Bundle is built in ``mappers.discharge_document`` and read in
``mappers.discharge_reader``.

Codes (constants in ``fhir_profiles.terminology.documents``; each checked in HL7's C-CDA on
FHIR IG, HL7/ccda-on-fhir; no profile of that IG is claimed, the codes are reused for what they
mean):

- Composition.type LOINC 18842-5 "Discharge summary": C-CDA on FHIR ValueSet
  DischargeSummaryDocumentTypeCode (hl7.org/fhir/us/ccda/ValueSet-2.16.840.1.113883.11.20.4.1);
- course 8648-8 "Hospital course", plan of care 18776-5 "Plan of care note", problems 11450-4
  "Problem list - Reported", aftercare 8653-8 "Hospital discharge instructions": section slices
  of the C-CDA on FHIR Discharge Summary profile (input/fsh/profiles/DischargeSummary.fsh) and
  its example (input/fsh/instances/Discharge-Summary-Example.fsh);
- medications 10160-0 "History of Medication use Narrative" and results 30954-2 "Relevant
  diagnostic tests/laboratory data note": the CCD example's Medication and Results sections
  (input/fsh/instances/Continuity-of-Care-Document-Example.fsh). The Discharge Summary's own
  medications code (10183-2) is limited there to MedicationStatement entries, not a List.

PACIO TOC section codes were NOT used: its published FSH (TOCComposition.fsh) codes the problem
section 18776-5 and medications 52471-0, which conflicts with C-CDA on FHIR and with the
research notes (fhir-domain-reference.md 1.4, CONFLICT). The 42 CFR Part 2 notice section has
no verified code: it is text-only.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

# Re-exported for integration.discharges.workflow, which imports it from here.
from fhir_profiles.canonical import DISCHARGE_SUMMARY_ID_SYSTEM as DISCHARGE_SUMMARY_ID_SYSTEM
from fhir_profiles.terminology.clinical import ASAM_1_0_OUTPATIENT
from fhir_profiles.terminology.workflow import BSER_CREATED
from mappers.assessment import Assessment
from mappers.condition import Diagnosis
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import reference_problems, typed_reference_problems
from mappers.fhir_write import XHTML_NS as XHTML_NS
from mappers.fhir_write import datetime_problems, identifier_problems, narrative
from mappers.medication import MedicationList
from mappers.referral import Referral
from mappers.referral_task import ReferralTask

# No verified code names a Part 2 redisclosure notice section: text-only (R4 section.code 0..1).
PART2_SECTION_TEXT: Final = "42 CFR Part 2 redisclosure notice"

# The 988 Suicide & Crisis Lifeline (FCC designated 988; SAMHSA administers the Lifeline).
CRISIS_LINE_988: Final = "988 Suicide & Crisis Lifeline: call or text 988"
DEFAULT_TITLE: Final = "IOP discharge summary"
_AUTHOR_TYPES: Final = ("PractitionerRole", "Organization")


@dataclass(frozen=True, slots=True)
class CourseOfTreatment:
    """What happened in the IOP: its length, attendance and the clinician's summary."""

    weeks: int
    sessions_attended: int
    sessions_missed: int
    summary: str | None = None

    def problems(self, path: str) -> list[Problem]:
        """Weeks at least 1, counts not negative, a summary not blank."""
        found = []
        if self.weeks < 1:
            found.append(Problem(f"{path}.weeks", f"{self.weeks} is not a positive number"))
        for name in ("sessions_attended", "sessions_missed"):
            if getattr(self, name) < 0:
                found.append(Problem(f"{path}.{name}", "must not be negative"))
        found += _blank(self.summary, f"{path}.summary")
        return found


@dataclass(frozen=True, slots=True)
class DocumentedDiagnosis:
    """A diagnosis in the problems section and the reference of its Condition in the document.
    ``as_sent``: the Condition is the referring program's own, included as that program wrote it
    (integration.discharges.handoff_bundle), so the diagnosis is what iop-bridge read from it and
    is not held to what iop-bridge writes (a text-only diagnosis has no ICD-10-CM code)."""

    reference: str
    diagnosis: Diagnosis
    as_sent: bool = False


@dataclass(frozen=True, slots=True)
class DocumentedMedications:
    """The reconciled medication list and the reference of its List in the document."""

    reference: str
    medication_list: MedicationList


@dataclass(frozen=True, slots=True)
class PlanOfCare:
    """The treatment plan's CarePlan reference and a one-paragraph summary for the narrative."""

    reference: str
    summary: str


@dataclass(frozen=True, slots=True)
class FinalScore:
    """A final PHQ-9 or GAD-7 and its QuestionnaireResponse reference; total and severity are
    recomputed from the item answers (scoring)."""

    reference: str
    assessment: Assessment

    @property
    def total(self) -> int:
        """The recomputed total."""
        return self.assessment.total

    @property
    def severity(self) -> str:
        """The severity band of the recomputed total."""
        return self.assessment.severity


@dataclass(frozen=True, slots=True)
class AftercarePlan:
    """Care after the IOP: next provider, support groups, relapse prevention, medication
    follow-up and the 988 crisis line (always present)."""

    next_provider: str  # Organization reference
    next_provider_name: str
    relapse_prevention: str
    medication_follow_up: str
    support_groups: tuple[str, ...] = ()
    crisis_line: str | None = CRISIS_LINE_988

    def problems(self, path: str) -> list[Problem]:
        """Every reason this plan cannot be handed over, each with its field."""
        found = reference_problems(self.next_provider, "Organization", f"{path}.next_provider")
        for name in ("next_provider_name", "relapse_prevention", "medication_follow_up"):
            if not getattr(self, name).strip():
                found.append(Problem(f"{path}.{name}", "is required", "required"))
        for index, group in enumerate(self.support_groups):
            found += _blank(group, f"{path}.support_groups[{index}]")
        if self.crisis_line is None or "988" not in self.crisis_line:
            message = f"must give the 988 crisis line, e.g. {CRISIS_LINE_988!r}"
            found.append(Problem(f"{path}.crisis_line", message, "required"))
        return found


@dataclass(frozen=True, slots=True)
class DischargeSummary:
    """The IOP discharge summary handed to the next provider."""

    identifier: str
    subject: str  # Patient reference
    author: str  # PractitionerRole reference: the IOP program's role (PACIO TOC, BSeR)
    custodian: str  # Organization reference
    discharged: datetime
    course: CourseOfTreatment
    diagnoses: tuple[DocumentedDiagnosis, ...]  # the problems section
    medications: DocumentedMedications
    aftercare: AftercarePlan
    plan_of_care: PlanOfCare | None = None
    phq9: FinalScore | None = None
    gad7: FinalScore | None = None
    part2_notice: str | None = None  # required when an SUD diagnosis is included
    title: str = DEFAULT_TITLE
    encounter: str | None = None  # Composition.encounter: the IOP episode, when known
    # What of the referral's record the document does not hold, said in the problems and the
    # results sections' narrative (a diagnosis that could not be read, a screening Observation)
    problem_notes: tuple[str, ...] = ()
    result_notes: tuple[str, ...] = ()

    @property
    def has_substance_use(self) -> bool:
        """Whether the document is a Part 2 record: an included diagnosis is a substance use
        disorder (42 CFR 2.11, tobacco excluded) or a listed medication is a MOUD."""
        entries = self.medications.medication_list.entries
        return any(d.diagnosis.is_substance_use for d in self.diagnoses) or any(
            e.is_moud for e in entries
        )

    def problems(self) -> list[Problem]:
        """Every reason this summary cannot be sent as a document, each with its field."""
        path = "DischargeSummary"
        found = identifier_problems(self.identifier, f"{path}.identifier")
        found += reference_problems(self.subject, "Patient", f"{path}.subject")
        # Sent: a PractitionerRole (mappers.discharge_document); read: an Organization too.
        found += typed_reference_problems(self.author, _AUTHOR_TYPES, f"{path}.author")
        found += reference_problems(self.custodian, "Organization", f"{path}.custodian")
        found += datetime_problems(self.discharged, f"{path}.discharged")
        found += self.course.problems(f"{path}.course")
        found += _diagnosis_problems(self.diagnoses, f"{path}.diagnoses")
        found += _medication_problems(self.medications, f"{path}.medications")
        found += self.aftercare.problems(f"{path}.aftercare")
        if self.plan_of_care is not None:
            at = f"{path}.plan_of_care"
            found += reference_problems(self.plan_of_care.reference, "CarePlan", f"{at}.reference")
            found += _blank(self.plan_of_care.summary, f"{at}.summary", required=True)
        for name, score in (("phq9", self.phq9), ("gad7", self.gad7)):
            found += _score_problems(score, name, f"{path}.{name}")
        if not self.title.strip():
            found.append(Problem(f"{path}.title", "is required", "required"))
        found += _part2_problems(self, f"{path}.part2_notice")
        return found


def _blank(text: str | None, path: str, *, required: bool = False) -> list[Problem]:
    if text is None:
        return [Problem(path, "is required", "required")] if required else []
    return [] if text.strip() else [Problem(path, "must not be blank (use None for none)")]


def _diagnosis_problems(diagnoses: Sequence[DocumentedDiagnosis], path: str) -> list[Problem]:
    found: list[Problem] = []
    for index, documented in enumerate(diagnoses):
        at = f"{path}[{index}]"
        found += reference_problems(documented.reference, "Condition", f"{at}.reference")
        if documented.as_sent:
            continue
        found += [
            Problem(p.path.replace("Diagnosis", f"{at}.diagnosis", 1), p.message, p.code)
            for p in documented.diagnosis.problems()
        ]
    return found


def _medication_problems(medications: DocumentedMedications, path: str) -> list[Problem]:
    found = reference_problems(medications.reference, "List", f"{path}.reference")
    return found + [
        Problem(p.path.replace("MedicationList", f"{path}.medication_list", 1), p.message, p.code)
        for p in medications.medication_list.problems()
    ]


def _score_problems(score: FinalScore | None, key: str, path: str) -> list[Problem]:
    if score is None:
        return []
    instrument = {"phq9": "phq-9", "gad7": "gad-7"}[key]
    found = reference_problems(score.reference, "QuestionnaireResponse", f"{path}.reference")
    if score.assessment.instrument != instrument:
        given = score.assessment.instrument
        found.append(
            Problem(f"{path}.assessment.instrument", f"expected {instrument}, got {given}")
        )
    found += [
        Problem(p.path.replace("Assessment", f"{path}.assessment", 1), p.message, p.code)
        for p in score.assessment.problems()
    ]
    return found


def _part2_problems(summary: DischargeSummary, path: str) -> list[Problem]:
    """42 CFR 2.32: a disclosure of Part 2 records carries the redisclosure notice."""
    if summary.part2_notice is not None:
        return _blank(summary.part2_notice, path)
    if summary.has_substance_use:
        message = "is required when an SUD diagnosis or a MOUD medication is included"
        return [Problem(path, message + " (42 CFR 2.32)", "required")]
    return []


# --- Narrative: section text as XHTML (R4 narrative.html) ---------------------------------------

_DIV = re.compile(
    r'<div xmlns="http://www\.w3\.org/1999/xhtml">'
    r"(?P<paragraphs>(?:<p>[^<]*</p>)*)(?:<ul>(?P<items>(?:<li>[^<]*</li>)+)</ul>)?</div>"
)
_PART = re.compile(r"<(?:p|li)>([^<]*)</(?:p|li)>")


def read_narrative(value: object) -> tuple[list[str], list[str]] | None:
    """Paragraphs and list items of a narrative in the shape ``narrative`` writes, else None."""
    div = value.get("div") if isinstance(value, dict) else None
    match = _DIV.fullmatch(div) if isinstance(div, str) else None
    if match is None:
        return None
    paragraphs = [html.unescape(p) for p in _PART.findall(match.group("paragraphs"))]
    items = [html.unescape(i) for i in _PART.findall(match.group("items") or "")]
    return paragraphs, items


COURSE_LABELS: Final = ("Weeks in the IOP", "Sessions attended", "Sessions missed")
AFTERCARE_LABELS: Final = (
    "Next provider",
    "Relapse-prevention plan",
    "Medication follow-up",
    "Crisis line",
)
SUPPORT_GROUPS_LABEL: Final = "Support groups:"


def course_narrative(course: CourseOfTreatment) -> dict[str, str]:
    """The course section text: weeks, attended and missed sessions, then the summary."""
    counts = (course.weeks, course.sessions_attended, course.sessions_missed)
    paragraphs = [f"{label}: {value}" for label, value in zip(COURSE_LABELS, counts, strict=True)]
    return narrative(paragraphs + ([course.summary] if course.summary is not None else []))


def aftercare_narrative(plan: AftercarePlan) -> dict[str, str]:
    """The aftercare section text: labelled paragraphs, then the support groups as a list."""
    values = (
        plan.next_provider_name,
        plan.relapse_prevention,
        plan.medication_follow_up,
        plan.crisis_line or "",
    )
    paragraphs = [f"{label}: {v}" for label, v in zip(AFTERCARE_LABELS, values, strict=True)]
    if plan.support_groups:
        paragraphs.append(SUPPORT_GROUPS_LABEL)
    return narrative(paragraphs, plan.support_groups)


def score_line(name: str, score: FinalScore) -> str:
    """One results line, e.g. ``PHQ-9 total 7 (mild), 2024-11-29``."""
    when = score.assessment.authored.date().isoformat()
    return f"{name} total {score.total} ({score.severity}), {when}"


# --- Aftercare referral (workflow 3: the loop to the next provider) -----------------------------


@dataclass(frozen=True, slots=True)
class AftercareReferral:
    """The ServiceRequest to the next provider and the Task that tracks it."""

    referral: Referral
    task: ReferralTask


def aftercare_referral(
    summary: DischargeSummary,
    *,
    referral_identifier: str,
    task_identifier: str,
    referral_reference: str,
    document_reference: str,
    authored_on: datetime,
    requested_start: date | None = None,
    level_of_care: str = ASAM_1_0_OUTPATIENT.code,
) -> AftercareReferral:
    """Build the Referral (ServiceRequest.supportingInfo -> the document Bundle) and its Task
    (status requested, businessStatus 2.0, focus -> the ServiceRequest, owner -> next provider)."""
    raise_if_problems("DischargeSummary", summary.problems())
    # Document-local urn:uuid references mean nothing outside the document Bundle.
    reasons = tuple(d.reference for d in summary.diagnoses if not d.reference.startswith("urn:"))
    note = f"Aftercare after IOP discharge on {summary.discharged.date().isoformat()}"
    referral = Referral(
        referral_identifier, "active", level_of_care, summary.subject, summary.author,
        summary.aftercare.next_provider, authored_on, requested_start, reasons,
        (document_reference,), note,
    )  # fmt: skip
    task = ReferralTask(
        task_identifier,
        "requested",
        referral_reference,
        summary.subject,
        summary.author,
        authored_on,
        owner=summary.aftercare.next_provider,
        business_status=BSER_CREATED.code,
    )
    # BSeR: the referral's requester is a PractitionerRole (the IOP's); the next provider, whose
    # roles iop-bridge does not know, is its Organization.
    problems = referral.problems(("Organization", "PractitionerRole")) + task.problems()
    raise_if_problems("Aftercare referral", problems)
    return AftercareReferral(referral, task)
