"""Logs without PHI: every log record keeps ids and codes only (DESIGN.md, Promises).

A message template is written by us and kept; what is interpolated into it is not trusted:

- numbers, booleans and None pass; an enum passes as its value (a code);
- a string passes when it is one id- or code-shaped token (``Task/123``, ``SD-0001``,
  ``in-progress``, ``HAPI-0958``), or ``Safe`` (text a caller built from codes only); a URL
  passes without its query (``Patient?identifier=...|<MRN>`` is exactly what must not leak);
  anything else (words with spaces, a date, a quoted value) becomes ``[redacted]``;
- dates and containers (dicts, lists, tuples: request bodies, SQL parameters) are redacted;
- an exception becomes its class, HTTP status and HAPI message codes, never its text (server
  diagnostics and mapping problems may quote the resource); a logged traceback keeps its frames
  but not the exception's message.

``install()`` puts this in the log record factory, so it holds for every handler (pytest's too)
and every library (httpx logs request URLs at INFO, SQLAlchemy its parameters once the root
level is INFO or lower). ``configure_logging()`` adds one structured JSON handler on the root.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time
from enum import Enum
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, TextIO

from integration.fhir.errors import FhirError
from mappers.errors import IopBridgeError

REDACTED: Final = "[redacted]"
_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:/|#@+\-]{0,199}")
_DATE_LIKE = re.compile(r"\d{4}-\d{2}(-\d{2})?|\d{1,2}/\d{1,2}/\d{2,4}")
_URL = re.compile(r"(?:https?://[^\s?#]+|/[^\s?#]*)(?:[?#]\S*)?")
_REASON_PHRASES: Final = frozenset(s.phrase for s in HTTPStatus)
_SAFE_ATTR: Final = "phi_safe"
# LogRecord attributes that are not ``extra`` fields (logging.LogRecord.__init__).
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", _SAFE_ATTR}
)


class Safe(str):
    """Text built from codes and ids only (e.g. ``worker.describe_error``): logged as is."""

    __slots__ = ()


def safe_value(value: Any) -> Any:
    """``value`` as it may appear in a log: an id, a code, a number, or ``[redacted]``."""
    if value is None or isinstance(value, bool | int | float | Safe):
        return value
    if isinstance(value, Enum):
        return safe_value(value.value)
    if isinstance(value, BaseException):
        return describe(value)
    if isinstance(value, date | datetime | time | Mapping | list | tuple | set | bytes):
        return REDACTED
    return safe_text(str(value))


def safe_text(text: str) -> str:
    """One id- or code-shaped token, a URL without its query, a reason phrase; else redacted."""
    if text in _REASON_PHRASES:
        return text
    if _URL.fullmatch(text) and (text.startswith("/") or "://" in text):
        base = re.split(r"[?#]", text, maxsplit=1)[0]
        return base if base == text else f"{base}?{REDACTED}"
    if _TOKEN.fullmatch(text) and not _DATE_LIKE.match(text):
        return text
    return REDACTED


def describe(exc: BaseException) -> str:
    """An exception without its text: class, HTTP status and HAPI codes."""
    parts = [type(exc).__name__]
    if isinstance(exc, FhirError):
        parts += [str(exc.status or "-"), *exc.hapi_codes]
    elif isinstance(exc, IopBridgeError):
        parts += [str(exc.http_status), exc.issue_code]
    return " ".join(parts)


def sanitize(record: logging.LogRecord) -> logging.LogRecord:
    """Make ``record`` PHI-free in place (idempotent) and return it."""
    if getattr(record, _SAFE_ATTR, False):
        return record
    if not isinstance(record.msg, str):
        record.msg, record.args = str(safe_value(record.msg)), None
    if isinstance(record.args, Mapping):
        record.args = {k: safe_value(v) for k, v in record.args.items()}
    elif record.args:
        record.args = tuple(safe_value(a) for a in record.args)
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_info = _without_message(record.exc_info[1], record.exc_info[2])
        record.exc_text = None
    setattr(record, _SAFE_ATTR, True)
    return record


_STAND_INS: dict[type[BaseException], type[Exception]] = {}


def _without_message(
    exc: BaseException, tb: TracebackType | None
) -> tuple[type[BaseException], BaseException, TracebackType | None]:
    """The same traceback frames, but an exception that says only what ``describe`` says. The
    stand-in class carries the original's name and module, so the traceback reads the same."""
    kind = type(exc)
    stand_in = _STAND_INS.get(kind)
    if stand_in is None:
        attrs = {"__module__": kind.__module__, "__qualname__": kind.__qualname__}
        stand_in = _STAND_INS[kind] = type(kind.__name__, (Exception,), attrs)
    return stand_in, stand_in(describe(exc)), tb


class PhiFilter(logging.Filter):
    """A handler filter doing what the record factory does, for records made without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Sanitize the record; never drops it."""
        sanitize(record)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and ``extra`` fields (sanitized)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        sanitize(record)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = safe_value(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_installed: dict[str, Callable[..., logging.LogRecord]] = {}


def install() -> None:
    """Sanitize every log record when it is made (idempotent; process-wide)."""
    if "previous" in _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return sanitize(previous(*args, **kwargs))

    _installed["previous"] = previous
    logging.setLogRecordFactory(factory)


def uninstall() -> None:
    """Put back the record factory ``install`` replaced (tests)."""
    previous = _installed.pop("previous", None)
    if previous is not None:
        logging.setLogRecordFactory(previous)


def configure_logging(level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Install the sanitizer and one JSON handler on the root logger (replacing its handlers)."""
    install()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PhiFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
