"""The parts every iop-bridge QuestionnaireResponse shares: identifier, questionnaire, status,
subject, authored, and the one-answer items the Questionnaires define.

Item ``text`` is accepted without a loss: R4 QuestionnaireResponse.item.text is the question as
the Questionnaire states it (the validator rejects any other text), not the client's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mappers.errors import Problem
from mappers.fhir_read import (
    IDENTIFIER_KEYS,
    modifier_extension_problems,
    open_resource,
    read_datetime,
    read_str,
    read_str_in,
)
from mappers.fhir_reference import read_reference, read_reference_to, reference
from mappers.fhir_write import format_datetime
from mappers.loss import Loss, unmapped_keys

QR = "QuestionnaireResponse"
# Required binding on QuestionnaireResponse.status (R4 valueset-questionnaire-answers-status).
STATUSES = frozenset({"in-progress", "completed", "amended", "entered-in-error", "stopped"})
HEADER_ELEMENTS = frozenset(
    {"identifier", "questionnaire", "status", "subject", "authored", "author", "item"}
)
# Who may author a response (R4 QuestionnaireResponse.author; US Core 9 marks it must support).
AUTHOR_TYPES = ("Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson")


@dataclass(frozen=True, slots=True)
class Header:
    """What every response carries besides its items; None where a Problem was recorded."""

    identifier: str | None
    questionnaire: str | None
    status: str | None
    authored: datetime | None
    items: list[Any]
    links: dict[str, str]


def status_problems(status: str, field: str) -> list[Problem]:
    """A response status must be one of the R4 questionnaire-answers-status codes."""
    if status in STATUSES:
        return []
    return [Problem(field, f"{status!r} is not one of {', '.join(sorted(STATUSES))}")]


def header_json(
    *,
    profile: str | None,
    id_system: str,
    identifier: str,
    questionnaire: str,
    status: str,
    subject_reference: str,
    authored: datetime,
    author_reference: str | None,
) -> dict[str, Any]:
    """QuestionnaireResponse.meta.profile, identifier, questionnaire, status, subject, authored,
    author (US Core QuestionnaireResponse: author is must support)."""
    resource: dict[str, Any] = {"resourceType": QR}
    if profile is not None:
        resource["meta"] = {"profile": [profile]}
    resource["identifier"] = {"system": id_system, "value": identifier}
    resource["questionnaire"] = questionnaire
    resource["status"] = status
    resource["subject"] = reference(subject_reference)
    resource["authored"] = format_datetime(authored)
    if author_reference is not None:
        resource["author"] = reference(author_reference)
    return resource


def read_header(
    resource: Any,
    questionnaires: frozenset[str],
    id_system: str,
    problems: list[Problem],
    losses: list[Loss],
) -> Header:
    """Read the response-level elements; report every other top-level element as lost."""
    response, top_losses = open_resource(resource, QR, HEADER_ELEMENTS, problems)
    losses += top_losses
    identifier = _read_identifier(response.get("identifier"), id_system, problems, losses)
    questionnaire = _read_questionnaire(
        response.get("questionnaire"), questionnaires, problems, losses
    )
    status, authored, links = read_response_elements(response, problems, losses)
    items = response.get("item")
    if not isinstance(items, list) or not items:
        problems.append(item_required())
        items = []
    return Header(identifier, questionnaire, status, authored, items, links)


def read_response_elements(
    response: Mapping[str, Any], problems: list[Problem], losses: list[Loss]
) -> tuple[str | None, datetime | None, dict[str, str]]:
    """status, authored and the links (subject, author) of a response; also what a foreign
    response is read with once its identity and items are known (mappers.foreign.screening)."""
    status = read_str_in(response, "status", QR, problems, required=True)
    if status is not None:
        problems += status_problems(status, f"{QR}.status")
    links: dict[str, str] = {}
    subject = response.get("subject")
    if subject is None:
        problems.append(Problem(f"{QR}.subject", "is required", "required"))
    elif target := read_reference(subject, f"{QR}.subject", "Patient", problems, losses):
        links["subject"] = target
    authored = read_datetime(response.get("authored"), f"{QR}.authored", problems, losses)
    if response.get("author") is not None:
        path = f"{QR}.author"
        links["author"] = read_reference_to(
            response["author"], path, AUTHOR_TYPES, problems, losses
        )
    return status, authored, links


def item_required() -> Problem:
    """A response without any answered item."""
    return Problem(f"{QR}.item", "is required", "required")


def index_items(
    items: list[Any], path: str, problems: list[Problem], losses: list[Loss]
) -> dict[str, tuple[int, Mapping[str, Any]]]:
    """Index items by linkId with their position; refuse duplicates and modifier extensions."""
    found: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for index, item in enumerate(items):
        link = item.get("linkId") if isinstance(item, dict) else None
        if (
            isinstance(link, str)
            and link.strip()
            and link not in found
            and "modifierExtension" not in item
        ):
            found[link] = (index, item)  # the usual item: no path needed
        else:
            _item_problems(item, index, path, found, problems)
    return found


def _item_problems(
    item: Any,
    index: int,
    path: str,
    found: dict[str, tuple[int, Mapping[str, Any]]],
    problems: list[Problem],
) -> None:
    """index_items' unusual cases: not an object, a modifier extension, no linkId, a repeat."""
    at = f"{path}[{index}]"
    if not isinstance(item, dict):
        problems.append(Problem(at, "expected an item object", "structure"))
        return
    problems += modifier_extension_problems(item, at)
    link = read_str_in(item, "linkId", at, problems, required=True)
    if link is None:
        return
    if link in found:
        problems.append(Problem(f"{at}.linkId", f"{link!r} is answered twice", "duplicate"))
        return
    found[link] = (index, item)


_ITEM_KEYS = frozenset({"linkId", "text", "answer"})


def plain_answer(item: Mapping[str, Any], value_key: str) -> Any:
    """What ``single_answer`` returns for the usual item (linkId, text and one answer holding
    only ``value_key``), where it has nothing to report; None for any other item, which is then
    read with ``single_answer``."""
    answers = item.get("answer")
    if not (item.keys() <= _ITEM_KEYS and isinstance(answers, list) and len(answers) == 1):
        return None
    answer = answers[0]
    return answer.get(value_key) if isinstance(answer, dict) and len(answer) == 1 else None


def single_answer(
    item: Mapping[str, Any], path: str, value_key: str, problems: list[Problem], losses: list[Loss]
) -> Any:
    """The ``value_key`` value of the one answer of an item (R4 QuestionnaireResponse.item.answer).

    A missing answer, several answers or another value type are Problems naming the path.
    """
    losses += unmapped_keys(item, _ITEM_KEYS, path=path)
    answers = item.get("answer")
    if not isinstance(answers, list) or not answers:
        problems.append(Problem(f"{path}.answer", "is required", "required"))
        return None
    if len(answers) > 1:
        problems.append(Problem(f"{path}.answer", f"expected one answer, got {len(answers)}"))
        return None
    answer = answers[0]
    if not isinstance(answer, dict):
        problems.append(Problem(f"{path}.answer[0]", "expected an answer object", "structure"))
        return None
    if len(answer) != 1 or value_key not in answer:  # else nothing but the value is there
        losses += unmapped_keys(answer, {value_key}, path=f"{path}.answer[0]")
    if answer.get(value_key) is None:
        at = f"{path}.answer[0]"  # built only for the Problem: nearly every answer is valid
        given = ", ".join(f"{k}={answer[k]!r}" for k in answer if k.startswith("value")) or "none"
        problems.append(Problem(at, f"expected {value_key}, got {given}"))
        return None
    return answer[value_key]


def _read_identifier(
    value: Any, id_system: str, problems: list[Problem], losses: list[Loss]
) -> str | None:
    path = f"{QR}.identifier"
    if not isinstance(value, dict) or value.get("system") != id_system:
        problems.append(Problem(path, f"no identifier in system {id_system}", "required"))
        return None
    losses += unmapped_keys(value, IDENTIFIER_KEYS, path=path)
    return read_str_in(value, "value", path, problems, required=True)


def _read_questionnaire(
    value: Any, questionnaires: frozenset[str], problems: list[Problem], losses: list[Loss]
) -> str | None:
    """The canonical without its ``|version`` (we send it unversioned; a version is a loss)."""
    path = f"{QR}.questionnaire"
    canonical = read_str(value, path, problems, required=True)
    if canonical is None:
        return None
    url = canonical.split("|", 1)[0]
    if url not in questionnaires:
        allowed = ", ".join(sorted(questionnaires))
        problems.append(Problem(path, f"{canonical!r} is not one of: {allowed}", "not-supported"))
        return None
    if url != canonical:
        losses.append(Loss(path, f"questionnaire version in {canonical!r} is not kept"))
    return url
