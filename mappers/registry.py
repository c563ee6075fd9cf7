"""The explicit registry of ``from_fhir`` mappers, keyed by resourceType.

Each entry adapts one concept module's ``from_fhir`` to a shared ``MappingContext`` (the business
identifier systems a deployment uses), so callers such as ``iop-bridge map`` can map any
supported resource without knowing which module handles it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mappers import condition, patient
from mappers.errors import MappingError, Problem
from mappers.loss import Mapped


@dataclass(frozen=True, slots=True)
class MappingContext:
    """Identifier systems that tell our business identifiers apart from everyone else's."""

    mrn_system: str
    condition_id_system: str


FromFhir = Callable[[Any, MappingContext], Mapped[Any]]

FROM_FHIR: Mapping[str, FromFhir] = MappingProxyType(
    {
        "Patient": lambda r, c: patient.from_fhir(r, mrn_system=c.mrn_system),
        "Condition": lambda r, c: condition.from_fhir(r, id_system=c.condition_id_system),
    }
)


def from_fhir(resource: Any, context: MappingContext) -> Mapped[Any]:
    """Map any supported resource to its domain value, links and loss report."""
    resource_type = resource.get("resourceType") if isinstance(resource, Mapping) else None
    mapper = FROM_FHIR.get(str(resource_type))
    if mapper is None:
        supported = ", ".join(sorted(FROM_FHIR))
        problem = Problem(
            "resourceType", f"{resource_type!r} is not mapped (supported: {supported})",
            "not-supported",
        )  # fmt: skip
        raise MappingError.from_problems("resource", [problem])
    return mapper(resource, context)
