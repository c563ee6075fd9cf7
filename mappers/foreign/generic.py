"""Resources whose only foreign part is usually whose identifier they carry (Goal, CarePlan,
ServiceRequest, Task, Consent, MedicationStatement, List): the sender's identifier is adopted
(``identity.as_ours``) and our reader reads the rest, liberal where R4 is (CarePlan as a
proposal or without an end). What our reader refuses stays refused, naming the element.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any, TypeVar

from mappers.errors import Problem, raise_if_problems
from mappers.foreign.identity import as_ours, sender_identifier
from mappers.loss import Loss, Mapped

T = TypeVar("T")
STAND_IN = "urn:iop-bridge:foreign"


def adopt(
    resource: Mapping[str, Any], read: Callable[[Mapping[str, Any], str], Mapped[T]]
) -> Mapped[T]:
    """Read ``resource`` with our ``read(resource, id_system)`` under the sender's identifier."""
    problems: list[Problem] = []
    losses: list[Loss] = []
    kind = str(resource.get("resourceType"))
    found = sender_identifier(resource, kind, problems, losses)
    raise_if_problems(kind, problems)
    assert found is not None
    mapped = read(as_ours(resource, STAND_IN, found), STAND_IN)
    return Mapped(mapped.value, mapped.links, (*losses, *mapped.losses))


def care_plan(
    resource: Mapping[str, Any], read: Callable[[Mapping[str, Any], str], Mapped[Any]]
) -> Mapped[Any]:
    """A CarePlan as a proposal or order is read as the plan it proposes; without an end date
    its planned length is not known (``weeks`` 0), both reported (R4 careplan.html#intent)."""
    losses: list[Loss] = []
    copy = dict(resource)
    if copy.get("intent") in ("proposal", "order", "option", "directive"):
        losses.append(Loss("CarePlan.intent", f"{copy['intent']!r} read as a plan"))
        copy["intent"] = "plan"
    period = copy.get("period")
    period = period if isinstance(period, dict) else {}
    open_ended = "end" not in period and "start" in period
    if open_ended:
        start = str(period["start"])[:10]
        try:
            end = date.fromisoformat(start) + timedelta(days=6)
        except ValueError:
            open_ended = False
        else:
            copy["period"] = {**period, "end": end.isoformat()}  # one week, undone below
            losses.append(Loss("CarePlan.period.end", "no end date: planned length not known"))
    mapped = adopt(copy, read)
    value = dataclasses.replace(mapped.value, weeks=0) if open_ended else mapped.value
    return Mapped(value, mapped.links, (*losses, *mapped.losses))
