"""Readers of FHIR CodeableConcept and Coding shared by the ``from_fhir`` mappers.

Like ``mappers.fhir_read``, each records Problems and Losses instead of raising.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from mappers.errors import Problem
from mappers.fhir_read import read_list_in, read_str_in
from mappers.loss import Loss, unmapped_keys

# Keys of the small elements read everywhere, as constants rather than a set literal per call.
CODING_KEYS = frozenset({"system", "code", "display"})
CONCEPT_KEYS = frozenset({"coding", "text"})


def find_coding(
    concept: Any, system: str, path: str, problems: list[Problem]
) -> tuple[Mapping[str, Any] | None, int | None]:
    """Find the first coding of ``system`` in a CodeableConcept; return it and its index."""
    if not isinstance(concept, dict):
        problems.append(Problem(path, "expected a CodeableConcept object", "structure"))
        return None, None
    codings = concept.get("coding") or []
    for index, coding in enumerate(codings):
        if isinstance(coding, dict) and coding.get("system") == system:
            return coding, index
    return None, None


def read_coded(
    concept: Any,
    system: str,
    path: str,
    problems: list[Problem],
    losses: list[Loss],
    *,
    derived: Collection[tuple[str, str]] = (),
) -> str | None:
    """Read the code of the first coding in ``system``. Other codings are reported, except the
    ``derived`` (system, code) pairs the mapper writes itself; so is a text that differs from
    the display (the display renders the code, so it is not kept)."""
    if not isinstance(concept, dict):
        problems.append(Problem(path, "expected a CodeableConcept", "structure"))
        return None
    losses += unmapped_keys(concept, CONCEPT_KEYS, path=path)
    index: int | None = None
    coding: Mapping[str, Any] = {}
    for i, item in enumerate(concept.get("coding") or []):
        other = item if isinstance(item, dict) else {}
        if index is None and other.get("system") == system:
            index, coding = i, other
        elif (other.get("system"), other.get("code")) not in derived:
            losses.append(Loss(f"{path}.coding[{i}]", "coding in another system"))
    if index is None:
        problems.append(Problem(f"{path}.coding", f"no coding in {system}", "code-invalid"))
        return None
    at = f"{path}.coding[{index}]"
    losses += unmapped_keys(coding, CODING_KEYS, path=at)
    code = read_str_in(coding, "code", at, problems, required=True)
    text = concept.get("text")
    if text is not None and text != coding.get("display"):
        losses.append(Loss(f"{path}.text", "free text differs from the code's display"))
    return code


def read_known_coding(
    concept: Any,
    path: str,
    known: Mapping[tuple[str, str], Any],
    problems: list[Problem],
    *,
    owned_systems: frozenset[str] = frozenset(),
) -> tuple[Any, list[Loss]]:
    """Find the meaning of a CodeableConcept from its recognised codings.

    Returns the value of the recognised codings (they must agree) and the losses inside the
    concept: every other coding, and unmodelled keys. ``text`` is a label of the same concept and
    is regenerated on output, so it is not a loss. A code in one of ``owned_systems`` that is not
    in ``known`` is a Problem, not a loss: in those systems iop-bridge knows every legal code.
    """
    if not isinstance(concept, dict):
        problems.append(Problem(path, "expected a CodeableConcept object", "structure"))
        return None, []
    losses = unmapped_keys(concept, CONCEPT_KEYS, path=path)
    found: dict[Any, None] = {}
    for index, coding in enumerate(read_list_in(concept, "coding", path, problems)):
        key = _coding_key(coding)
        if key is not None and key in known:
            found[known[key]] = None
            if not coding.keys() <= CODING_KEYS:  # the path is built only for a loss
                losses.extend(unmapped_keys(coding, CODING_KEYS, path=f"{path}.coding[{index}]"))
            continue
        at = f"{path}.coding[{index}]"
        if key is not None and key[0] in owned_systems:
            problems.append(
                Problem(f"{at}.code", f"{key[1]!r} is not allowed here", "code-invalid")
            )
        else:
            losses.append(Loss(at, "coding in a system or code iop-bridge does not map here"))
    if len(found) > 1:
        problems.append(Problem(f"{path}.coding", f"codings disagree: {sorted(map(str, found))}"))
    return next(iter(found), None), losses


def has_coding_in(codings: Any, system: str) -> bool:
    """Whether any Coding in a ``coding`` list (None or empty: none) is in ``system``."""
    for coding in codings or []:
        if isinstance(coding, dict) and coding.get("system") == system:
            return True
    return False


def _coding_key(coding: Any) -> tuple[str, str] | None:
    """(system, code) of a Coding with both as strings, else None."""
    if not isinstance(coding, dict):
        return None
    system, code = coding.get("system"), coding.get("code")
    return (system, code) if isinstance(system, str) and isinstance(code, str) else None
