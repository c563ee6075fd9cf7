"""Dates as senders write them: R4 dateTime may be a date alone (datatypes.html#dateTime:
"YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz"). Our readers want a time and zone;
a date-only value is read as the start of that day in UTC and reported, never refused."""

from __future__ import annotations

import re
from typing import Any

from mappers.loss import Loss

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def full_datetime(value: Any, path: str, losses: list[Loss]) -> Any:
    """``value`` with a date-only dateTime made ``T00:00:00Z`` (a loss says so); else as is."""
    if isinstance(value, str) and _DATE_ONLY.match(value):
        losses.append(Loss(path, f"date only ({value}): read as 00:00 UTC that day"))
        return value + "T00:00:00Z"
    return value
