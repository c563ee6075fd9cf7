"""Whose identifier a resource carries: the sender's business identifiers stay the sender's.

A foreign resource is identified by the sender's own identifier (any system), never by ours
(R4 datatypes.html#Identifier: the system is the namespace of the issuer). For a Patient the
v2-0203 ``MR`` type or ``use`` usual/official is preferred; without any identifier the sender's
logical id stands in, and that is reported. The chosen identifier is returned with its system,
so that a referral is keyed by its sender and the sender's identifier, a client by the sender's
patient identifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_profiles.terminology.systems import V2_IDENTIFIER_TYPE
from mappers.errors import Problem
from mappers.loss import Loss

# The logical id stands in only where no business identifier is given (R4 resource.html#id:
# the id is the server's, so it identifies the resource only together with that server).
LOGICAL_ID = "urn:iop-bridge:sender-logical-id"
_PREFERRED_USES = ("official", "usual")


@dataclass(frozen=True, slots=True)
class SenderIdentifier:
    """The identifier a sender gave a resource: (system, value), and where it was found."""

    system: str
    value: str
    path: str

    @property
    def key(self) -> tuple[str, str]:
        return self.system, self.value


def has_system(resource: Mapping[str, Any], system: str) -> bool:
    """Whether any identifier of ``resource`` is in ``system`` (our dialect)."""
    found = resource.get("identifier")
    # A loop rather than any(generator): this runs for every resource read.
    for entry in found if isinstance(found, list) else [found]:
        if isinstance(entry, dict) and entry.get("system") == system:
            return True
    return False


def sender_identifier(
    resource: Mapping[str, Any],
    kind: str,
    problems: list[Problem],
    losses: list[Loss],
    *,
    type_code: str | None = None,
) -> SenderIdentifier | None:
    """The sender's identifier of ``resource``: typed ``type_code`` first, then official or
    usual, then the first with a value; else the logical id (reported as a loss)."""
    raw = resource.get("identifier")
    entries = raw if isinstance(raw, list) else ([raw] if isinstance(raw, dict) else [])
    usable = [
        (i, e) for i, e in enumerate(entries)
        if isinstance(e, dict) and isinstance(e.get("value"), str) and e["value"].strip()
    ]  # fmt: skip
    if usable:
        # Nearly every resource carries one identifier: nothing to rank then.
        index, chosen = usable[0] if len(usable) == 1 else _best(usable, type_code)
        path = f"{kind}.identifier[{index}]" if isinstance(raw, list) else f"{kind}.identifier"
        if len(entries) > 1:  # the others are reported; usually there are none
            losses += [
                Loss(f"{kind}.identifier[{i}]", f"another identifier; {path} identifies it")
                for i in range(len(entries)) if i != index and isinstance(raw, list)
            ]  # fmt: skip
        system = chosen.get("system")
        if not isinstance(system, str) or not system.strip():
            losses.append(Loss(f"{path}.system", "no system: the value alone identifies it"))
            system = ""
        return SenderIdentifier(system, chosen["value"], path)
    logical = resource.get("id")
    if isinstance(logical, str) and logical.strip():
        losses.append(
            Loss(f"{kind}.identifier", "no business identifier: the sender's id stands in")
        )
        return SenderIdentifier(LOGICAL_ID, logical, f"{kind}.id")
    problems.append(Problem(f"{kind}.identifier", "no identifier and no id", "required"))
    return None


def _best(
    usable: Sequence[tuple[int, Mapping[str, Any]]], type_code: str | None
) -> tuple[int, Mapping[str, Any]]:
    """The best-ranked identifier; the first of equals (``min`` keeps the first, like a stable
    sort)."""
    return min(usable, key=lambda pair: _rank(pair[1], type_code))


def _rank(identifier: Mapping[str, Any], type_code: str | None) -> int:
    if type_code is not None and _typed(identifier, type_code):
        return 0
    return 1 if identifier.get("use") in _PREFERRED_USES else 2


def _typed(identifier: Mapping[str, Any], code: str) -> bool:
    concept = identifier.get("type")
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return any(
        isinstance(c, dict) and c.get("system") == V2_IDENTIFIER_TYPE and c.get("code") == code
        for c in codings or []
    )


def as_ours(
    resource: Mapping[str, Any], our_system: str, found: SenderIdentifier
) -> dict[str, Any]:
    """A shallow copy whose identifier is the sender's value under ``our_system``, so that our
    dialect's reader reads it; the caller keeps ``found`` as the real identity."""
    copy = dict(resource)
    copy["identifier"] = [{"system": our_system, "value": found.value}]
    return copy
