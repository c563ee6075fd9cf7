"""What the ``to_fhir`` mappers share: rendering small FHIR values, and the checks a domain value
must pass before it is rendered (each returns Problems, never raises)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from mappers.errors import Problem

# FHIR R4 dateTime (datatypes.html#dateTime): the R4 regex allows offsets up to 13:59 either way,
# and 14:00.
MAX_TIMEZONE_OFFSET = timedelta(hours=14)
_MINUTE = timedelta(minutes=1)


def datetime_problems(value: datetime, field: str) -> list[Problem]:
    """Why ``value`` cannot be sent as a FHIR dateTime with timezone (empty if it can)."""
    offset = value.utcoffset()
    if offset is None:
        return [Problem(field, "needs a timezone (FHIR dateTime with a time SHALL have one)")]
    if not offset:
        return []  # UTC, as nearly every value: no arithmetic on the offset needed
    if offset % _MINUTE or abs(offset) > MAX_TIMEZONE_OFFSET:
        return [Problem(field, f"timezone offset {offset} is not a whole-minute offset <= 14h")]
    return []


def format_datetime(value: datetime) -> str:
    """Render an aware datetime as a FHIR dateTime (``Z`` for UTC, microseconds if any)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def identifier_problems(value: str, field: str) -> list[Problem]:
    """A business identifier must be a non-blank string."""
    return [] if value.strip() else [Problem(field, "is required", "required")]


# An id that can be read back wherever iop-bridge puts it: one URL path segment (no '/', '?',
# '#', RFC 3986 3.3), an HTTP header (ASCII, RFC 9110 5.5) and an audit record's id check
# (mappers.audit_event). Ids the API assigns must match it; ids read from the FHIR server are
# the sender's and are never held to it.
READABLE_ID = r"[A-Za-z0-9][A-Za-z0-9._~:@+\-]{0,63}"
_READABLE_ID = re.compile(READABLE_ID)


def readable_id_problems(value: str, field: str) -> list[Problem]:
    """An id the API will hand back in URLs, headers and audit records (READABLE_ID)."""
    if _READABLE_ID.fullmatch(value):
        return []
    message = (
        f"{value!r} cannot be used as an id here: up to 64 of A-Z a-z 0-9 . _ ~ : @ + -, "
        "starting with a letter or digit"
    )
    return [Problem(field, message, "value")]


def number(value: float) -> int | float:
    """A JSON number for a FHIR decimal: ``3`` rather than ``3.0`` when the value is whole."""
    return int(value) if float(value).is_integer() else value


# Narrative as XHTML (R4 narrative.html): the div carries the XHTML namespace.
XHTML_NS: Final = "http://www.w3.org/1999/xhtml"


def narrative(paragraphs: Sequence[str], items: Sequence[str] = ()) -> dict[str, str]:
    """A Narrative (status generated) of paragraphs then one bulleted list, text escaped."""
    body = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    if items:
        body += "<ul>" + "".join(f"<li>{html.escape(i, quote=False)}</li>" for i in items)
        body += "</ul>"
    return {"status": "generated", "div": f'<div xmlns="{XHTML_NS}">{body}</div>'}
