"""A sender's ServiceRequest as a Referral: a referral for behavioral health care, recognised by
an ASAM level in any coding or text of ``code``, or by what ``code`` and ``category`` say
(counseling, rehabilitation, substance use, mental health, intensive outpatient). Lab, imaging
and other orders are refused naming ``ServiceRequest.code``.

R4 servicerequest.html: performer is 0..*, intent any of the request intents, reasonReference
may point at an Observation, supportingInfo at any resource. What our Referral cannot hold
(no ASAM level, no performer yet, reasons that are not Conditions, supporting information of
other types) is kept as "" or reported as a loss; the package reader reads supportingInfo on
its own (a PACIO transfer-summary Bundle, a screening Observation).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from fhir_profiles.terminology import clinical
from mappers import referral
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_reference import is_reference_to
from mappers.foreign import generic
from mappers.foreign.dates import full_datetime
from mappers.loss import Loss, Mapped

SR = "ServiceRequest"
_LEVELS = tuple(c.code for c in clinical.ASAM_LEVELS)
_LEVEL = re.compile(
    r"(?:ASAM|level)[^0-9]{0,12}(" + "|".join(
        re.escape(c) for c in sorted(_LEVELS, key=len, reverse=True)) + r")(?![\d])",
    re.IGNORECASE,
)  # fmt: skip
_BEHAVIORAL = ("counsel", "rehab", "behavioral", "behavioural", "mental", "psych", "substance",
               "alcohol", "addiction", "intensive outpatient", "partial hospitalization",
               "use disorder", "therapy", "detox", "withdrawal")  # fmt: skip
_ORDER_INTENTS = frozenset({"order", "original-order", "plan", "proposal", "reflex-order"})
_NO_LEVEL = clinical.ASAM_2_1_INTENSIVE_OUTPATIENT  # a stand-in only: cleared after reading


def from_fhir(resource: Mapping[str, Any]) -> Mapped[referral.Referral]:
    """Read a Referral from a foreign ServiceRequest (see the module docstring)."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    words = _words(resource)
    level = _level(resource.get("code"), words)
    if level is None and not any(w in words for w in _BEHAVIORAL):
        problems.append(_not_a_referral(resource))
    intent = resource.get("intent")
    if intent not in _ORDER_INTENTS:
        problems.append(Problem(f"{SR}.intent", f"{intent!r}: a referral is an order or plan"))
    raise_if_problems(SR, problems)
    ours = dict(resource)
    if intent != "order":
        losses.append(Loss(f"{SR}.intent", f"{intent!r} read as an order"))
        ours["intent"] = "order"
    ours["code"] = _NO_LEVEL.codeable_concept() if level is None else _coded(level)
    losses.append(Loss(f"{SR}.code", f"ASAM level {level} read from code" if level else
                       "no ASAM level given: level of care not known"))  # fmt: skip
    ours.pop("category", None)
    losses += [Loss(f"{SR}.category[{i}]", "category not modelled by iop-bridge")
               for i, _ in enumerate(resource.get("category") or [])]  # fmt: skip
    blank_performer = not resource.get("performer")
    if blank_performer:
        ours["performer"] = [{"reference": "Organization/not-stated"}]  # cleared below
        losses.append(Loss(f"{SR}.performer", "no performer named yet"))
    for element, allowed in (("reasonReference", ("Condition",)),
                             ("supportingInfo", referral.SUPPORTING_TYPES)):  # fmt: skip
        ours[element], dropped = _split(resource.get(element), allowed)
        losses += [Loss(f"{SR}.{element}[{i}]", "read with the package, not the referral")
                   for i in dropped]  # fmt: skip
        if not ours[element]:
            ours.pop(element)
    for element in ("authoredOn",):
        ours[element] = full_datetime(resource.get(element), f"{SR}.{element}", losses)
    mapped = generic.adopt(ours, lambda r, s: referral.from_fhir(r, id_system=s))
    value = mapped.value
    if level is None:
        value = dataclasses.replace(value, level_of_care="")
    if blank_performer:
        value = dataclasses.replace(value, performer="")
    return Mapped(value, mapped.links, (*losses, *mapped.losses))


def _words(resource: Mapping[str, Any]) -> str:
    """The displays and texts of code and category, lower case."""
    parts: list[str] = []
    for concept in [resource.get("code"), *(resource.get("category") or [])]:
        if not isinstance(concept, dict):
            continue
        parts += [str(c.get("display", "")) for c in concept.get("coding") or []
                  if isinstance(c, dict)]  # fmt: skip
        parts.append(str(concept.get("text", "")))
    return " ".join(parts).lower()


def _level(concept: Any, words: str) -> str | None:
    for coding in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
        if isinstance(coding, dict) and coding.get("code") in _LEVELS and (
            "asam" in str(coding.get("system", "")).lower() or
            "level" in str(coding.get("display", "")).lower()
        ):  # fmt: skip
            return str(coding["code"])
    match = _LEVEL.search(words)
    return next((c for c in _LEVELS if match and c.lower() == match.group(1).lower()), None)


def _coded(level: str) -> dict[str, Any]:
    return next(c for c in clinical.ASAM_LEVELS if c.code == level).codeable_concept()


def _split(value: Any, allowed: tuple[str, ...]) -> tuple[list[Any], list[int]]:
    kept, dropped = [], []
    for i, item in enumerate(value if isinstance(value, list) else []):
        target = (item or {}).get("reference") if isinstance(item, dict) else None
        if isinstance(target, str) and is_reference_to(target, allowed):
            kept.append(item)
        else:
            dropped.append(i)
    return kept, dropped


def _not_a_referral(resource: Mapping[str, Any]) -> Problem:
    given = resource.get("code")
    code: Mapping[str, Any] = given if isinstance(given, dict) else {}
    shown = code.get("text") or next(
        (c.get("display") for c in code.get("coding") or [] if isinstance(c, dict)), None
    )
    return Problem(
        f"{SR}.code",
        f"{shown!r} is not a referral for behavioral health care (no ASAM level of care, no "
        "counseling, rehabilitation, substance use or mental health service named)",
        "not-supported",
    )
