"""PHQ-9 and GAD-7 from other systems' QuestionnaireResponses, recognised by LOINC wherever the
sender put it: the Questionnaire canonical (``http://loinc.org/q/44249-1``, with or without
``|version``), ``item.code``, or a linkId that ends with the LOINC item code (US Core's
``/44250-9``), in nested groups too. Substance-use screenings (AUDIT-C, TAPS) are accepted as
answered but not scored.

The items found (one per LOINC code) are scored by ``mappers.assessment.read_answers``, so the
rules are the same as for our own responses: every answer must be one the instrument offers,
and the total is recomputed from the answers. They are read once, where the sender put them:
no response in our dialect is built to be read and checked a second time. The sender's total
is kept beside it (``Assessment.sender_total``) so that a disagreement is shown, never
trusted. Problems and losses are reported at the sender's own paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from fhir_profiles.terminology import assessments
from fhir_profiles.terminology.assessments import Instrument
from fhir_profiles.terminology.systems import LOINC
from mappers import assessment, questionnaire_response, scoring
from mappers.errors import MappingError, Problem, raise_if_problems
from mappers.foreign.dates import full_datetime
from mappers.foreign.identity import sender_identifier
from mappers.loss import Loss, Mapped

QR = "QuestionnaireResponse"
_LOINC_AT_END = re.compile(r"(\d{3,6}-\d)$")
_OURS = assessment.QUESTIONNAIRES
_HEADER = frozenset({"resourceType", "id", "meta", "identifier", "questionnaire", "status",
                     "subject", "authored", "item", "text"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScreeningResponse:
    """A substance-use screening iop-bridge keeps but does not score (AUDIT-C, TAPS)."""

    identifier: str
    instrument: str
    authored: str | None
    answered_items: int
    sender_total: str | None = None


class Leaf(NamedTuple):
    """One answered question: its LOINC code (None when not found), its answers, its path.
    (A NamedTuple: as immutable as a frozen dataclass, and made several times per response
    at a third of the cost.)"""

    code: str | None
    answers: list[Any]
    path: str


def leaves(items: Any, path: str) -> list[Leaf]:
    """Every item with answers, nested groups flattened, with its LOINC code."""
    found: list[Leaf] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        at = f"{path}[{index}]"
        if item.get("answer"):
            found.append(Leaf(_item_code(item), list(item["answer"]), at))
        if "item" in item:  # a group (or an answer with nested items): most items are neither
            found += leaves(item["item"], f"{at}.item")
    return found


def _item_code(item: Mapping[str, Any]) -> str | None:
    for coding in item.get("code") or []:
        if isinstance(coding, dict) and coding.get("system") == LOINC and coding.get("code"):
            return str(coding["code"])
    match = _LOINC_AT_END.search(str(item.get("linkId") or ""))
    return match.group(1) if match else None


def instrument_of(canonical: Any, codes: set[str]) -> Instrument | None:
    """PHQ-9 or GAD-7 by the panel code in the canonical, else by every scored item present."""
    url = str(canonical or "").split("|", 1)[0]
    for instrument in scoring.INSTRUMENTS.values():
        if url.endswith(("/" + instrument.panel.code, "=" + instrument.panel.code)):
            return instrument
    for instrument in scoring.INSTRUMENTS.values():
        if {item.code for item, _ in instrument.scored_items} <= codes:
            return instrument
    return None


def from_fhir(resource: Mapping[str, Any]) -> Mapped[Any]:
    """An Assessment (PHQ-9, GAD-7) or a ScreeningResponse from a foreign response."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    found = sender_identifier(resource, QR, problems, losses)
    items = leaves(resource.get("item"), f"{QR}.item")
    codes = {leaf.code for leaf in items if leaf.code}
    instrument = instrument_of(resource.get("questionnaire"), codes)
    if instrument is None:
        screening = _unscored(resource, codes, items, found.value if found else "")
        if screening is not None:
            return screening
        problems.append(_not_recognised(resource.get("questionnaire")))
    raise_if_problems(QR, problems)
    assert found is not None and instrument is not None
    return read_as(instrument, resource, items, found.value, losses)


def read_as(
    instrument: Instrument,
    resource: Mapping[str, Any],
    items: list[Leaf],
    identifier: str,
    losses: list[Loss],
) -> Mapped[assessment.Assessment]:
    """Score the sender's items with ``mappers.assessment``'s rules, read once from where the
    sender put them (no response in our dialect is built and read again); problems and losses
    are reported at the sender's paths."""
    known = assessment.known_items(instrument)
    index: dict[str, tuple[int, Mapping[str, Any]]] = {}  # one item per LOINC code
    paths: list[str] = []  # the sender's path of each item in ``index``, by its position
    sender_total: float | None = None
    for leaf in items:
        if leaf.code not in known or leaf.code in index:
            losses.append(Loss(leaf.path, f"not an item of the {instrument.key} questionnaire"))
            continue
        if leaf.code == instrument.total.code:
            sender_total = _number(leaf.answers)
            continue  # recomputed, never read: the sender's figure is only compared
        index[leaf.code] = (len(paths), {"linkId": leaf.code, "answer": leaf.answers})
        paths.append(leaf.path)
    elements = {
        "status": resource.get("status"),
        "subject": resource.get("subject"),
        "authored": full_datetime(resource.get("authored"), f"{QR}.authored", losses),
    }
    losses += [Loss(f"{QR}.{key}", "element not modelled by iop-bridge")
               for key in resource if key not in _HEADER]  # fmt: skip
    if "questionnaire" in resource and resource["questionnaire"] != _OURS[instrument.key]:
        losses.append(Loss(f"{QR}.questionnaire", f"read as {instrument.key} by its LOINC codes"))
    problems: list[Problem] = []
    read: list[Loss] = []  # what scoring reports, at the item positions of ``index``
    status, authored, links = questionnaire_response.read_response_elements(
        elements, problems, read
    )
    if not index:
        problems.append(questionnaire_response.item_required())
    answered = assessment.Answered(identifier, status, authored, index)
    try:
        value = assessment.read_answers(
            instrument, answered, problems, read, sender_total=sender_total
        )
    except MappingError as error:
        moved = [_renamed(p, paths) for p in error.problems]
        raise MappingError.from_problems(QR, moved) from None
    moved_losses = [Loss(_renamed_path(x.path, paths), x.reason) for x in read]
    return Mapped(value, links, (*losses, *moved_losses))


def _number(answers: list[Any]) -> float | None:
    """The sender's total from valueInteger, valueDecimal, valueString or valueQuantity."""
    answer = answers[0] if answers and isinstance(answers[0], dict) else {}
    quantity = answer.get("valueQuantity")
    given = next(
        (answer[k] for k in ("valueInteger", "valueDecimal", "valueString") if k in answer),
        quantity.get("value") if isinstance(quantity, dict) else None,
    )
    try:
        return None if given is None or isinstance(given, bool) else float(given)
    except (TypeError, ValueError):
        return None


_ITEM_PATH = re.compile(r"^QuestionnaireResponse\.item\[(\d+)\]")


def _renamed_path(path: str, paths: list[str]) -> str:
    """The path of an item at position n of the scored index -> the sender's path of it."""
    match = _ITEM_PATH.match(path)
    if match is None or int(match.group(1)) >= len(paths):
        return path
    return paths[int(match.group(1))] + path[match.end() :]


def _renamed(problem: Problem, paths: list[str]) -> Problem:
    return Problem(_renamed_path(problem.path, paths), problem.message, problem.code)


def _unscored(
    resource: Mapping[str, Any], codes: set[str], items: list[Leaf], identifier: str
) -> Mapped[ScreeningResponse] | None:
    """AUDIT-C or TAPS, recognised by their LOINC item codes; answered, not scored."""
    for screening in assessments.UNSCORED_SCREENINGS:
        if screening.items <= codes:
            total = next((leaf for leaf in items if leaf.code == screening.total), None)
            given = _number(total.answers) if total else None
            value = ScreeningResponse(
                identifier, screening.key, resource.get("authored"), len(items),
                None if given is None else f"{given:g}",
            )  # fmt: skip
            loss = Loss(f"{QR}.item", f"{screening.key} is kept as answered, not scored")
            return Mapped(value, {}, (loss,))
    return None


def _not_recognised(canonical: Any) -> Problem:
    return Problem(
        f"{QR}.questionnaire",
        f"{canonical!r} is not PHQ-9 or GAD-7 (LOINC 44249-1 / 69737-5 in the canonical, or "
        "every scored item's LOINC code in item.code or the linkIds), nor AUDIT-C or TAPS",
        "not-supported",
    )
