"""PHQ-9 / GAD-7 sent as screening Observations (US Core screening-assessment profile): a panel
Observation (LOINC 44249-1 / 69737-5) whose items are its ``component``s or the Observations of
its ``hasMember``. The answers are gathered into a response and read by
``mappers.foreign.screening``: the total is recomputed; the sender's total item (44261-6 /
70274-6) is only compared. One item Observation alone is not an assessment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir_profiles.terminology.systems import LOINC
from mappers import scoring
from mappers.errors import MappingError, Problem
from mappers.fhir_reference import reference_tail
from mappers.foreign import screening
from mappers.foreign.identity import sender_identifier
from mappers.loss import Loss, Mapped

OBS = "Observation"
_STATUS = {"final": "completed", "amended": "amended", "corrected": "amended",
           "preliminary": "in-progress", "entered-in-error": "entered-in-error"}  # fmt: skip


def loinc_code(concept: Any) -> str | None:
    """The first LOINC code of a CodeableConcept."""
    for coding in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
        if isinstance(coding, dict) and coding.get("system") == LOINC:
            return str(coding.get("code"))
    return None


def from_fhir(
    panel: Mapping[str, Any], members: Mapping[str, Mapping[str, Any]] | None = None
) -> Mapped[Any]:
    """An Assessment from a panel Observation; ``members`` holds the package's Observations by
    reference for ``hasMember``."""
    code = loinc_code(panel.get("code"))
    instrument = next((i for i in scoring.INSTRUMENTS.values() if i.panel.code == code), None)
    if instrument is None:
        raise MappingError.from_problems(OBS, [_not_a_panel(panel, code)])
    problems: list[Problem] = []
    losses: list[Loss] = []
    found = sender_identifier(panel, OBS, problems, losses)
    items = _component_items(panel) + _member_items(panel, members or {}, problems)
    if problems:
        raise MappingError.from_problems(OBS, problems)
    assert found is not None
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": _STATUS.get(str(panel.get("status")), panel.get("status")),
        "subject": panel.get("subject"),
        "authored": panel.get("effectiveDateTime") or panel.get("issued"),
    }
    leaves = [screening.Leaf(c, [answer], path) for c, answer, path in items]
    return screening.read_as(instrument, response, leaves, found.value, losses)


def _component_items(panel: Mapping[str, Any]) -> list[tuple[str | None, Any, str]]:
    return [
        (loinc_code(c.get("code")), _answer(c), f"{OBS}.component[{i}]")
        for i, c in enumerate(panel.get("component") or [])
        if isinstance(c, dict)
    ]


def _member_items(
    panel: Mapping[str, Any], members: Mapping[str, Mapping[str, Any]], problems: list[Problem]
) -> list[tuple[str | None, Any, str]]:
    found = []
    for i, ref in enumerate(panel.get("hasMember") or []):
        target = str((ref or {}).get("reference"))
        member = members.get(target) or members.get(reference_tail(target))
        if member is None:
            problems.append(Problem(f"{OBS}.hasMember[{i}]", f"{target!r} is not in the package"))
            continue
        found.append((loinc_code(member.get("code")), _answer(member), f"{OBS}.hasMember[{i}]"))
    return found


def _answer(observation: Mapping[str, Any]) -> dict[str, Any]:
    """The Observation's value as a QuestionnaireResponse answer (valueCodeableConcept's LOINC
    answer coding becomes valueCoding; numbers stay numbers)."""
    concept = observation.get("valueCodeableConcept")
    if isinstance(concept, dict):
        codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
        first = codings[0] if codings else {}
        loinc = next((c for c in codings if c.get("system") == LOINC), first)
        return {"valueCoding": {k: v for k, v in loinc.items() if k in ("system", "code")}}
    for key in ("valueInteger", "valueQuantity", "valueString", "valueDecimal"):
        if key in observation:
            value = observation[key]
            return {"valueDecimal": value.get("value")} if key == "valueQuantity" else {key: value}
    return {}


def _not_a_panel(observation: Mapping[str, Any], code: str | None) -> Problem:
    for instrument in scoring.INSTRUMENTS.values():
        codes = {item.code for item, _ in instrument.scored_items} | {instrument.total.code}
        if code in codes:
            return Problem(
                f"{OBS}.code", f"LOINC {code} is one item of the {instrument.key}, not the "
                f"assessment: read it with its panel Observation ({instrument.panel.code})",
                "not-supported",
            )  # fmt: skip
    return Problem(
        f"{OBS}.code",
        f"{code or 'no LOINC code'}: not a PHQ-9 or GAD-7 panel (44249-1 / 69737-5); other "
        "Observations are not part of an IOP referral",
        "not-supported",
    )
