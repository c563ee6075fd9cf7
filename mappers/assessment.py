"""PHQ-9 / GAD-7 assessment <-> FHIR R4 QuestionnaireResponse against our Questionnaires.

Each scored item is answered with its LOINC answer (valueCoding); the PHQ-9 difficulty item
(69722-7) is asked but not scored; the total item (44261-6 / 70274-6, ``integer`` in the
Questionnaires) is always written with the total recomputed from the answers.

A sender's total that disagrees with the recomputed one is reported as a Loss, not a Problem:
the item answers are the clinical record and stay valid, the sender's arithmetic is what is
dropped, and the loss report makes the discrepancy visible to the caller. The same holds for an
ordinalValue on an answer that disagrees with the Questionnaire's score for that answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_profiles.canonical import questionnaire_url, structure_definition_url
from fhir_profiles.terminology import assessments
from fhir_profiles.terminology.assessments import Instrument
from fhir_profiles.terminology.systems import LOINC, ORDINAL_VALUE_EXTENSION
from mappers import scoring
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_coding import CODING_KEYS
from mappers.fhir_read import read_list_in
from mappers.fhir_reference import reference_problems
from mappers.fhir_write import datetime_problems, identifier_problems
from mappers.loss import Loss, Mapped, unmapped_keys
from mappers.questionnaire_response import (
    QR,
    header_json,
    index_items,
    plain_answer,
    read_header,
    single_answer,
    status_problems,
)

QUESTIONNAIRES: Mapping[str, str] = {
    assessments.PHQ9.key: questionnaire_url("phq-9"),
    assessments.GAD7.key: questionnaire_url("gad-7"),
}
PROFILES: Mapping[str, str] = {
    assessments.PHQ9.key: structure_definition_url("iop-phq9-response"),
    assessments.GAD7.key: structure_definition_url("iop-gad7-response"),
}
_KEY_BY_QUESTIONNAIRE = {url: key for key, url in QUESTIONNAIRES.items()}
_QUESTIONNAIRE_URLS = frozenset(_KEY_BY_QUESTIONNAIRE)
DIFFICULTY_ANSWERS = {c.code: c for c in assessments.DIFFICULTY_ANSWERS}


@dataclass(frozen=True, slots=True)
class Assessment:
    """A PHQ-9 or GAD-7: one score (0-3) per item in questionnaire order."""

    identifier: str
    instrument: str
    item_scores: tuple[int, ...]
    authored: datetime
    status: str = "completed"
    difficulty: str | None = None  # PHQ-9 only: the LOINC answer to 69722-7, not scored
    # The total another system wrote beside the answers (mappers.foreign.screening): kept only
    # to show a disagreement, never used; None for our own responses (we write the recomputed).
    sender_total: float | None = None

    @property
    def total_disagrees(self) -> bool:
        """Whether the sender's own total differs from the total recomputed from the answers."""
        return self.sender_total is not None and self.sender_total != self.total

    @property
    def total(self) -> int:
        """The total recomputed from the item scores."""
        return scoring.total(self.item_scores)

    @property
    def severity(self) -> str:
        """The severity band of the total (scoring.SEVERITY_BANDS)."""
        return scoring.severity(self.instrument, self.total)

    def problems(self) -> list[Problem]:
        """Every reason this assessment cannot be sent, each with its field."""
        found = identifier_problems(self.identifier, "Assessment.identifier")
        instrument = scoring.INSTRUMENTS.get(self.instrument)
        if instrument is None:
            allowed = ", ".join(scoring.INSTRUMENTS)
            return [
                *found,
                Problem("Assessment.instrument", f"{self.instrument!r} not in {allowed}"),
            ]
        expected = len(instrument.scored_items)
        if len(self.item_scores) != expected:
            found.append(
                Problem(
                    "Assessment.item_scores", f"expected {expected}, got {len(self.item_scores)}"
                )
            )
        top = scoring.ITEM_SCORE_MAX
        for index, score in enumerate(self.item_scores):
            if isinstance(score, bool) or not 0 <= score <= top:
                found.append(Problem(f"Assessment.item_scores[{index}]", f"{score!r} is not 0-3"))
        found += datetime_problems(self.authored, "Assessment.authored")
        found += status_problems(self.status, "Assessment.status")
        if self.difficulty is not None and (
            instrument is not assessments.PHQ9 or self.difficulty not in DIFFICULTY_ANSWERS
        ):
            found.append(
                Problem(
                    "Assessment.difficulty", f"{self.difficulty!r} is not a PHQ-9 69722-7 answer"
                )
            )
        return found


def to_fhir(
    assessment: Assessment,
    *,
    id_system: str,
    subject_reference: str,
    author_reference: str | None = None,
) -> dict[str, Any]:
    """Fill QuestionnaireResponse.meta.profile, identifier, questionnaire, status, subject,
    authored, author and item (one LOINC answer per item, the difficulty answer, the recomputed
    total). PHQ-9 and GAD-7 are patient self-report instruments, so the author is the subject
    unless ``author_reference`` names who recorded it (US Core: author is must support)."""
    problems = assessment.problems()
    problems += reference_problems(subject_reference, "Patient", f"{QR}.subject.reference")
    raise_if_problems("Assessment", problems)
    instrument = scoring.INSTRUMENTS[assessment.instrument]
    resource = header_json(
        profile=PROFILES[instrument.key],
        id_system=id_system,
        identifier=assessment.identifier,
        questionnaire=QUESTIONNAIRES[instrument.key],
        status=assessment.status,
        subject_reference=subject_reference,
        authored=assessment.authored,
        author_reference=author_reference or subject_reference,
    )
    items = [
        _coded_item(code, scoring.answer_for(instrument, index, score).coding())
        for index, (code, score) in enumerate(
            zip(scoring.item_codes(instrument), assessment.item_scores, strict=True)
        )
    ]
    if assessment.difficulty is not None:
        difficulty = DIFFICULTY_ANSWERS[assessment.difficulty].coding()
        items.append(_coded_item(assessments.PHQ9_DIFFICULTY.code, difficulty))
    items.append({"linkId": instrument.total.code, "answer": [{"valueInteger": assessment.total}]})
    resource["item"] = items
    return resource


def from_fhir(resource: Any, *, id_system: str) -> Mapped[Assessment]:
    """Read an Assessment from QuestionnaireResponse.identifier, questionnaire, status,
    authored and item answers; the total is recomputed, and subject is returned as a link."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    header = read_header(resource, _QUESTIONNAIRE_URLS, id_system, problems, losses)
    if header.questionnaire is None:
        raise_if_problems(QR, problems)
    assert header.questionnaire is not None
    instrument = scoring.INSTRUMENTS[_KEY_BY_QUESTIONNAIRE[header.questionnaire]]
    items = index_items(header.items, f"{QR}.item", problems, losses)
    answered = Answered(header.identifier, header.status, header.authored, items)
    assessment = read_answers(instrument, answered, problems, losses)
    return Mapped(assessment, header.links, tuple(losses))


@dataclass(frozen=True, slots=True)
class Answered:
    """A response's header as read (None where a Problem was recorded) and its items by linkId
    with their position in ``QuestionnaireResponse.item``."""

    identifier: str | None
    status: str | None
    authored: datetime | None
    items: Mapping[str, tuple[int, Mapping[str, Any]]]


def read_answers(
    instrument: Instrument,
    answered: Answered,
    problems: list[Problem],
    losses: list[Loss],
    *,
    sender_total: float | None = None,
) -> Assessment:
    """The Assessment the items give, scored and checked once; raises one MappingError with
    ``problems`` and what the items add. A foreign response comes here straight from its own
    items (mappers.foreign.screening), with the total its sender wrote as ``sender_total``."""
    items = answered.items
    scores = _read_scores(instrument, items, problems, losses)
    difficulty = _read_difficulty(instrument, items, problems, losses)
    given = _read_sender_total(instrument, items, problems, losses)
    losses += _unknown_items(instrument, items)
    raise_if_problems(QR, problems)
    assert answered.identifier and answered.status and answered.authored and scores is not None
    assessment = Assessment(
        answered.identifier, instrument.key, scores, answered.authored, answered.status,
        difficulty, sender_total,
    )  # fmt: skip
    raise_if_problems(QR, assessment.problems())
    if given is not None and given[1] != assessment.total:
        path, total = given
        reason = f"sender's total {total!r} disagrees with the recomputed total {assessment.total}"
        losses.append(Loss(path, reason + "; the recomputed total is kept"))
    return assessment


def _unknown_items(
    instrument: Instrument, items: Mapping[str, tuple[int, Mapping[str, Any]]]
) -> list[Loss]:
    """Items our Questionnaire does not define are reported, not read."""
    known = known_items(instrument)
    if known.issuperset(items):
        return []  # the usual case
    return [
        Loss(f"{QR}.item[{index}]", f"item {link!r} is not in the {instrument.key} questionnaire")
        for link, (index, _) in items.items()
        if link not in known
    ]


def known_items(instrument: Instrument) -> frozenset[str]:
    """The linkIds our Questionnaire defines: the scored items, the total and (PHQ-9) the
    difficulty item. Built once per instrument at import; read for every response."""
    built = _KNOWN_ITEMS.get(instrument.key)
    return (built if built is not None and built[0] is instrument else _known_items(instrument))[1]


def _known_items(instrument: Instrument) -> tuple[Instrument, frozenset[str]]:
    codes = {*scoring.item_codes(instrument), instrument.total.code}
    if instrument is assessments.PHQ9:
        codes.add(assessments.PHQ9_DIFFICULTY.code)
    return instrument, frozenset(codes)


_KNOWN_ITEMS = {i.key: _known_items(i) for i in assessments.INSTRUMENTS}


def _coded_item(link_id: str, coding: dict[str, str]) -> dict[str, Any]:
    return {"linkId": link_id, "answer": [{"valueCoding": coding}]}


def _read_scores(
    instrument: Instrument,
    items: Mapping[str, tuple[int, Mapping[str, Any]]],
    problems: list[Problem],
    losses: list[Loss],
) -> tuple[int, ...] | None:
    """The score of every scored item; a missing item or an answer it does not offer is a
    Problem naming the item (and the answer) path."""
    scores: list[int] = []
    for position, link in enumerate(scoring.item_codes(instrument)):
        if link not in items:
            problems.append(Problem(f"{QR}.item", f"no answer to item {link!r}", "required"))
            continue
        index, item = items[link]
        coding = plain_answer(item, "valueCoding")
        code = coding.get("code") if _plain_loinc(coding) else None
        if not isinstance(code, str):  # not the usual shape: read it reporting all it finds
            coding = single_answer(item, f"{QR}.item[{index}]", "valueCoding", problems, losses)
            at = _answer_path(index)
            code = _loinc_code(coding, at, problems, losses, reads_extensions=True)
            if code is None:
                continue
        score = scoring.score_of(instrument, position, code)
        if score is None:
            problems.append(_not_offered(f"{_answer_path(index)}.code", code, link))
            continue
        if "extension" in coding:  # an ordinalValue is optional: usually nothing to check
            _check_ordinal_value(coding, score, _answer_path(index), problems, losses)
        scores.append(score)
    return tuple(scores) if len(scores) == len(instrument.scored_items) else None


def _answer_path(index: int) -> str:
    """The path of an item's answer Coding: built only when something is reported there."""
    return f"{QR}.item[{index}].answer[0].valueCoding"


def _read_difficulty(
    instrument: Instrument,
    items: Mapping[str, tuple[int, Mapping[str, Any]]],
    problems: list[Problem],
    losses: list[Loss],
) -> str | None:
    """The PHQ-9 difficulty answer (69722-7), if asked; GAD-7 has no such item."""
    link = assessments.PHQ9_DIFFICULTY.code
    if instrument is not assessments.PHQ9 or link not in items:
        return None
    index, item = items[link]
    path = f"{QR}.item[{index}]"
    coding = single_answer(item, path, "valueCoding", problems, losses)
    code = _loinc_code(coding, f"{path}.answer[0].valueCoding", problems, losses)
    if code is not None and code not in DIFFICULTY_ANSWERS:
        problems.append(_not_offered(f"{path}.answer[0].valueCoding.code", code, link))
        return None
    return code


def _read_sender_total(
    instrument: Instrument,
    items: Mapping[str, tuple[int, Mapping[str, Any]]],
    problems: list[Problem],
    losses: list[Loss],
) -> tuple[str, Any] | None:
    """The sender's total and its path, only to compare: a malformed total is a loss too."""
    if instrument.total.code not in items:
        return None
    index, item = items[instrument.total.code]
    path = f"{QR}.item[{index}]"
    scratch: list[Problem] = []
    value = single_answer(item, path, "valueInteger", scratch, losses)
    if scratch:
        losses += [Loss(p.path, f"sender's total not read: {p.message}") for p in scratch]
        return None
    return f"{path}.answer[0].valueInteger", value


def _plain_loinc(coding: Any) -> bool:
    """A LOINC answer Coding with nothing beyond system, code and display: what _loinc_code
    would read without a problem or a loss (if its code is a string)."""
    return (
        isinstance(coding, dict) and coding.get("system") == LOINC and coding.keys() <= CODING_KEYS
    )


def _loinc_code(
    coding: Any,
    path: str,
    problems: list[Problem],
    losses: list[Loss],
    *,
    reads_extensions: bool = False,
) -> str | None:
    """The code of a LOINC answer Coding; its other parts are losses (extensions too, unless the
    caller reads them)."""
    if coding is None:
        return None
    if not isinstance(coding, dict) or coding.get("system") != LOINC:
        problems.append(Problem(path, f"expected a LOINC answer ({LOINC}), got {coding!r}"))
        return None
    known = _ANSWER_CODING_KEYS if reads_extensions else CODING_KEYS
    losses += unmapped_keys(coding, known, path=path)
    code = coding.get("code")
    if not isinstance(code, str):
        problems.append(Problem(f"{path}.code", "is required", "required"))
        return None
    return code


_ANSWER_CODING_KEYS = CODING_KEYS | {"extension"}


def _check_ordinal_value(
    coding: Mapping[str, Any], score: int, path: str, problems: list[Problem], losses: list[Loss]
) -> None:
    """An ordinalValue equal to the Questionnaire's score is redundant; any other is a loss."""
    extensions = read_list_in(coding, "extension", path, problems)
    for index, extension in enumerate(extensions):
        at = f"{path}.extension[{index}]"
        if isinstance(extension, dict) and extension.get("url") == ORDINAL_VALUE_EXTENSION:
            given = extension.get("valueDecimal")
            if given != score:
                losses.append(
                    Loss(at, f"sender's score {given!r} disagrees with {score}; {score} is kept")
                )
        else:
            losses.append(Loss(at, "extension not modelled by iop-bridge"))


def _not_offered(path: str, code: str, link: str) -> Problem:
    return Problem(
        path,
        f"{code!r} is not an answer the questionnaire offers for item {link!r}",
        "code-invalid",
    )
