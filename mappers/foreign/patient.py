"""A sender's Patient as a Client: the sender's MRN (any system) is the client's identity.

US Core Patients carry the MRN in the sender's own system, typed v2-0203 ``MR``; gender is
optional in R4 (patient.html: 0..1) and birthDate may be partial (YYYY or YYYY-MM).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mappers import patient
from mappers.errors import Problem, raise_if_problems
from mappers.foreign.identity import as_ours, sender_identifier
from mappers.loss import Loss, Mapped

_OURS = "urn:iop-bridge:foreign"  # a private stand-in: never written anywhere


def from_fhir(resource: Mapping[str, Any]) -> Mapped[patient.Client]:
    """Read a Client from a foreign Patient, keeping the sender's MRN system and value."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    found = sender_identifier(resource, "Patient", problems, losses, type_code="MR")
    raise_if_problems("Patient", problems)
    assert found is not None
    ours = as_ours(resource, _OURS, found)
    if ours.get("gender") is None:
        ours["gender"] = "unknown"  # administrative-gender "unknown": not stated by the sender
        losses.append(Loss("Patient.gender", "not given: read as 'unknown'"))
    birth = ours.get("birthDate")
    if isinstance(birth, str) and len(birth) in (4, 7):
        ours["birthDate"] = (birth + "-01-01")[:10] if len(birth) == 4 else birth + "-01"
        losses.append(Loss("Patient.birthDate", f"partial date {birth!r}: read as its first day"))
    mapped = patient.from_fhir(ours, mrn_system=_OURS)
    client = dataclasses.replace(mapped.value, mrn_system=found.system)
    return Mapped(client, mapped.links, (*losses, *mapped.losses))
