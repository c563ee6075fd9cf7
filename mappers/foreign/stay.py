"""A sender's residential Encounter as a ResidentialStay: the stay recognised from its class
(v3 ActCode IMP, ACUTE, NONAC), its type codes or its text; the ASAM level from any coding
whose code or display names a 3.x level, or from text ("ASAM Level 3.5"); date-only periods.

Without an ASAM 3.x level or the word "residential" anywhere in class, type, serviceType or
text, an Encounter is not a residential treatment stay (a delivery, a clinic visit) and is
refused naming the element that was read, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from fhir_profiles.terminology import clinical
from mappers.errors import Problem, raise_if_problems
from mappers.fhir_read import read_datetime
from mappers.foreign.dates import full_datetime
from mappers.foreign.identity import sender_identifier
from mappers.loss import Loss, Mapped
from mappers.residential import ResidentialStay

ENC = "Encounter"
INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC"})  # v3 ActCode (R4 v3-ActEncounterCode)
RESIDENTIAL_LEVELS = tuple(c.code for c in clinical.ASAM_LEVELS if c.code.startswith("3."))
# "3.5", "Level 3.5", "ASAM 3.7-WM" style mentions; the longest code first so 3.7x beats 3.7.
_LEVEL = re.compile(
    r"(?<![\d.])(" + "|".join(re.escape(c) for c in sorted(RESIDENTIAL_LEVELS, key=len,
                                                                reverse=True)) + r")(?![\d])",
    re.IGNORECASE,
)  # fmt: skip
_READ = frozenset({"resourceType", "id", "meta", "identifier", "status", "class", "type",
                   "serviceType", "period", "hospitalization", "subject", "serviceProvider",
                   "text", "reasonCode"})  # fmt: skip


def looks_residential(resource: Mapping[str, Any]) -> bool:
    """Whether anything in class, type, serviceType or text names a residential stay."""
    return any("residential" in text.lower() or _LEVEL.search(text) for _, text in _words(resource))


def from_fhir(resource: Mapping[str, Any]) -> Mapped[ResidentialStay]:
    """Read a ResidentialStay from a foreign Encounter; subject and serviceProvider in links."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    found = sender_identifier(resource, ENC, problems, losses)
    level, where = _level(resource)
    if level is None and not looks_residential(resource):
        problems.append(_not_residential(resource))
    elif level is None:
        losses.append(Loss(f"{ENC}.type", "no ASAM 3.x level given: level not known"))
    elif where is not None:
        losses.append(Loss(where, f"ASAM level {level} read from this element"))
    status = resource.get("status")
    if status not in ("finished", "in-progress"):
        problems.append(Problem(f"{ENC}.status", f"{status!r}: a stay is in-progress or finished"))
    admitted, discharged = _period(resource.get("period"), problems, losses)
    if status == "finished" and discharged is None:
        problems.append(Problem(f"{ENC}.period.end", "a finished stay needs its discharge date"))
    disposition = _disposition(resource.get("hospitalization"), losses)
    links = _links(resource, losses)
    losses += [Loss(f"{ENC}.{k}", "element not modelled by iop-bridge")
               for k in resource if k not in _READ]  # fmt: skip
    raise_if_problems(ENC, problems)
    assert found is not None and admitted is not None
    stay = ResidentialStay(found.value, level or "", admitted, discharged, disposition)
    return Mapped(stay, links, tuple(losses))


def _words(resource: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(path, text) of every code, display and text that may name the kind of stay."""
    kind = resource.get("class")
    if isinstance(kind, dict):
        yield f"{ENC}.class", f"{kind.get('code', '')} {kind.get('display', '')}"
    for element in ("type", "serviceType"):
        value = resource.get(element)
        concepts = value if isinstance(value, list) else [value]
        for i, concept in enumerate(concepts):
            if not isinstance(concept, dict):
                continue
            at = f"{ENC}.{element}[{i}]" if isinstance(value, list) else f"{ENC}.{element}"
            for j, coding in enumerate(concept.get("coding") or []):
                if isinstance(coding, dict):
                    text = f"{coding.get('code', '')} {coding.get('display', '')}"
                    yield f"{at}.coding[{j}]", text
            if isinstance(concept.get("text"), str):
                yield f"{at}.text", concept["text"]
    narrative = resource.get("text")
    if isinstance(narrative, dict) and isinstance(narrative.get("div"), str):
        yield f"{ENC}.text.div", re.sub(r"<[^>]+>", " ", narrative["div"])


def _level(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The ASAM 3.x level and the path it was read from (None when our own coding)."""
    for path, text in _words(resource):
        if path.endswith("class"):
            continue
        match = _LEVEL.search(text)
        if match:
            code = next(c for c in RESIDENTIAL_LEVELS if c.lower() == match.group(1).lower())
            return code, path
    return None, None


def _not_residential(resource: Mapping[str, Any]) -> Problem:
    kind = (resource.get("class") or {}).get("code")
    shown = next((text.strip() for path, text in _words(resource) if "type" in path), None)
    what = f"type {shown!r}" if shown else f"class {kind!r}"
    return Problem(
        f"{ENC}.type",
        f"an Encounter of {what} is not a residential treatment stay (no ASAM 3.x level or "
        "'residential' in class, type, serviceType or text) nor an IOP session",
        "not-supported",
    )


def not_a_session(resource: Mapping[str, Any]) -> Problem:
    """Why another system's ambulatory or virtual Encounter is not read (sessions are ours)."""
    kind = (resource.get("class") or {}).get("code")
    shown = next((text.strip() for path, text in _words(resource) if "type" in path), None)
    return Problem(
        f"{ENC}.class",
        f"a {kind} Encounter of type {shown!r} from another system is not an IOP session "
        "(sessions are recorded by the IOP) nor a residential stay",
        "not-supported",
    )


def _period(
    value: Any, problems: list[Problem], losses: list[Loss]
) -> tuple[datetime | None, datetime | None]:
    period = value if isinstance(value, dict) else {}
    if "start" not in period:
        problems.append(Problem(f"{ENC}.period.start", "is required (the admission)", "required"))
        return None, None
    start = full_datetime(period["start"], f"{ENC}.period.start", losses)
    admitted = read_datetime(start, f"{ENC}.period.start", problems, losses)
    discharged = None
    if "end" in period:
        end = full_datetime(period["end"], f"{ENC}.period.end", losses)
        discharged = read_datetime(end, f"{ENC}.period.end", problems, losses)
    return admitted, discharged


def _disposition(value: Any, losses: list[Loss]) -> str | None:
    concept = (value or {}).get("dischargeDisposition") if isinstance(value, dict) else None
    if isinstance(value, dict):
        losses += [Loss(f"{ENC}.hospitalization.{k}", "element not modelled by iop-bridge")
                   for k in value if k != "dischargeDisposition"]  # fmt: skip
    if not isinstance(concept, dict):
        return None
    codes = [c.get("code") for c in concept.get("coding") or [] if isinstance(c, dict)]
    return next((str(c) for c in codes if c), None) or concept.get("text")


def _links(resource: Mapping[str, Any], losses: list[Loss]) -> dict[str, str]:
    links: dict[str, str] = {}
    for element in ("subject", "serviceProvider"):
        target = (resource.get(element) or {}).get("reference")
        if isinstance(target, str):
            links[element] = target
    return links
