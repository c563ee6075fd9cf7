"""IOP intake: the six ASAM dimensions <-> FHIR R4 QuestionnaireResponse (asam-intake).

No verified LOINC or SNOMED CT code exists for the ASAM dimensions or their risk ratings
(fhir-domain-reference.md 2.1, 6.7), so the response answers our own Questionnaire
``questionnaire_url("asam-intake")`` with text-only items: one group per dimension
(``dimension-N``), holding the risk rating 0-4 (``dimension-N-risk``, valueInteger) and an
optional clinician note (``dimension-N-note``, valueString).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_profiles.canonical import questionnaire_url, structure_definition_url
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_read import read_list
from mappers.fhir_reference import reference_problems
from mappers.fhir_write import datetime_problems, identifier_problems
from mappers.loss import Loss, Mapped, unmapped_keys
from mappers.questionnaire_response import (
    QR,
    header_json,
    index_items,
    read_header,
    single_answer,
    status_problems,
)

INTAKE_QUESTIONNAIRE = questionnaire_url("asam-intake")
INTAKE_PROFILE = structure_definition_url("iop-asam-intake-response")

# The six dimensions of the ASAM Criteria, in their numbered order.
ASAM_DIMENSIONS = (
    "Acute intoxication and/or withdrawal potential",
    "Biomedical conditions and complications",
    "Emotional, behavioral, or cognitive conditions and complications",
    "Readiness to change",
    "Relapse, continued use, or continued problem potential",
    "Recovery/living environment",
)
RISK_MIN, RISK_MAX = 0, 4


@dataclass(frozen=True, slots=True)
class DimensionRating:
    """The risk rating (0 none - 4 severe) of one ASAM dimension, with an optional note."""

    risk: int
    note: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeAssessment:
    """The intake's six ASAM dimension ratings, dimension 1 first."""

    identifier: str
    authored: datetime
    ratings: tuple[DimensionRating, ...]
    status: str = "completed"

    def problems(self) -> list[Problem]:
        """Every reason this intake cannot be sent, each with its field."""
        found = identifier_problems(self.identifier, "IntakeAssessment.identifier")
        if len(self.ratings) != len(ASAM_DIMENSIONS):
            found.append(
                Problem(
                    "IntakeAssessment.ratings", f"expected 6 dimensions, got {len(self.ratings)}"
                )
            )
        for index, rating in enumerate(self.ratings):
            field = f"IntakeAssessment.ratings[{index}]"
            if isinstance(rating.risk, bool) or not RISK_MIN <= rating.risk <= RISK_MAX:
                found.append(Problem(f"{field}.risk", f"{rating.risk!r} is not 0-4"))
            if rating.note is not None and not rating.note.strip():
                found.append(Problem(f"{field}.note", "must be None or non-blank text"))
        found += datetime_problems(self.authored, "IntakeAssessment.authored")
        found += status_problems(self.status, "IntakeAssessment.status")
        return found


def to_fhir(
    intake: IntakeAssessment,
    *,
    id_system: str,
    subject_reference: str,
    author_reference: str | None = None,
) -> dict[str, Any]:
    """Fill QuestionnaireResponse.meta.profile, identifier, questionnaire, status, subject,
    authored, author (the clinician or program that assessed, when known: the intake is not a
    self-report) and one item group per ASAM dimension (risk rating, note)."""
    problems = intake.problems()
    problems += reference_problems(subject_reference, "Patient", f"{QR}.subject.reference")
    raise_if_problems("IntakeAssessment", problems)
    resource = header_json(
        profile=INTAKE_PROFILE,
        id_system=id_system,
        identifier=intake.identifier,
        questionnaire=INTAKE_QUESTIONNAIRE,
        status=intake.status,
        subject_reference=subject_reference,
        authored=intake.authored,
        author_reference=author_reference,
    )
    resource["item"] = [_dimension_item(n, r) for n, r in enumerate(intake.ratings, start=1)]
    return resource


def from_fhir(resource: Any, *, id_system: str) -> Mapped[IntakeAssessment]:
    """Read an IntakeAssessment from QuestionnaireResponse.identifier, status, authored and the
    dimension groups; subject is returned as a link."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    header = read_header(resource, frozenset({INTAKE_QUESTIONNAIRE}), id_system, problems, losses)
    groups = index_items(header.items, f"{QR}.item", problems, losses)
    ratings = [
        _read_dimension(number, groups, problems, losses)
        for number in range(1, len(ASAM_DIMENSIONS) + 1)
    ]
    expected = {_link(n) for n in range(1, len(ASAM_DIMENSIONS) + 1)}
    losses += [
        Loss(f"{QR}.item[{index}]", f"item {link!r} is not in the asam-intake questionnaire")
        for link, (index, _) in groups.items()
        if link not in expected
    ]
    raise_if_problems(QR, problems)
    assert header.identifier and header.status and header.authored
    kept = tuple(r for r in ratings if r is not None)
    intake = IntakeAssessment(header.identifier, header.authored, kept, header.status)
    raise_if_problems(QR, intake.problems())
    return Mapped(intake, header.links, tuple(losses))


def _link(number: int, part: str | None = None) -> str:
    return f"dimension-{number}" if part is None else f"dimension-{number}-{part}"


def _dimension_item(number: int, rating: DimensionRating) -> dict[str, Any]:
    children: list[dict[str, Any]] = [
        {"linkId": _link(number, "risk"), "answer": [{"valueInteger": rating.risk}]}
    ]
    if rating.note is not None:
        children.append({"linkId": _link(number, "note"), "answer": [{"valueString": rating.note}]})
    return {"linkId": _link(number), "item": children}


def _read_dimension(
    number: int,
    groups: Mapping[str, tuple[int, Mapping[str, Any]]],
    problems: list[Problem],
    losses: list[Loss],
) -> DimensionRating | None:
    """Read one dimension group: its risk rating (required, 0-4) and note (optional)."""
    if _link(number) not in groups:
        problems.append(Problem(f"{QR}.item", f"no group {_link(number)!r}", "required"))
        return None
    index, group = groups[_link(number)]
    path = f"{QR}.item[{index}]"
    losses += unmapped_keys(group, {"linkId", "text", "item", "modifierExtension"}, path=path)
    child_items = read_list(group.get("item"), f"{path}.item", problems)
    children = index_items(child_items, f"{path}.item", problems, losses)
    known = {_link(number, "risk"), _link(number, "note")}
    losses += [
        Loss(f"{path}.item[{i}]", f"item {link!r} is not in dimension {number}")
        for link, (i, _) in children.items()
        if link not in known
    ]
    if _link(number, "risk") not in children:
        problems.append(Problem(f"{path}.item", f"no {_link(number, 'risk')!r}", "required"))
        return None
    risk = _read_child(number, "risk", "valueInteger", children, path, problems, losses)
    note = _read_child(number, "note", "valueString", children, path, problems, losses)
    before = len(problems)
    risk_at = f"{path}.item[{children[_link(number, 'risk')][0]}].answer[0].valueInteger"
    if risk is not None and (isinstance(risk, bool) or not isinstance(risk, int)):
        problems.append(Problem(risk_at, f"expected an integer, got {risk!r}"))
    elif risk is not None and not RISK_MIN <= risk <= RISK_MAX:
        problems.append(Problem(risk_at, f"risk rating {risk} is not 0-4"))
    if note is not None and (not isinstance(note, str) or not note.strip()):
        note_at = f"{path}.item[{children[_link(number, 'note')][0]}].answer[0].valueString"
        problems.append(Problem(note_at, f"expected non-blank text, got {note!r}"))
    if risk is None or len(problems) > before:
        return None
    return DimensionRating(risk, note)


def _read_child(
    number: int,
    part: str,
    value_key: str,
    children: Mapping[str, tuple[int, Mapping[str, Any]]],
    path: str,
    problems: list[Problem],
    losses: list[Loss],
) -> Any:
    link = _link(number, part)
    if link not in children:
        return None
    index, child = children[link]
    return single_answer(child, f"{path}.item[{index}]", value_key, problems, losses)
