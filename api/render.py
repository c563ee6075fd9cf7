"""Domain values and mapping results as plain JSON for the CLI and the API."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from enum import Enum
from typing import Any

from mappers.loss import Mapped


def to_jsonable(value: Any) -> Any:
    """Dataclasses, dates, enums, tuples and mappings turned into JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


_DERIVED = ("total", "severity", "total_disagrees", "is_substance_use", "is_mental_health")


def mapped_view(resource_type: str, mapped: Mapped[Any]) -> dict[str, Any]:
    """One mapping result: the domain view, its links and the loss report."""
    domain = to_jsonable(mapped.value)
    for name in _DERIVED:  # what iop-bridge works out itself: the recomputed total, the flags
        if isinstance(domain, dict) and hasattr(mapped.value, name):
            domain[name] = getattr(mapped.value, name)
    return {
        "resourceType": resource_type,
        "domain": domain,
        "links": dict(mapped.links),
        "losses": [{"path": loss.path, "reason": loss.reason} for loss in mapped.losses],
    }
