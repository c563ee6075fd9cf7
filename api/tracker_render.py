"""The tracker's one template environment and the headers of its pages (PHI: never cached, never
framed, no scripts at all; the one inline stylesheet allowed by its hash)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from mappers.errors import IopBridgeError

HERE = Path(__file__).resolve().parent
_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    auto_reload=False,  # templates ship with the code: no stat() per page
)


def readable_path(path: str) -> str:
    """A problem's path in words. A FHIR search (``Type?name=value``, as a batch entry's URL)
    reads as what was looked for: ``QuestionnaireResponse?identifier=<system>|PHQ-1`` is "the
    QuestionnaireResponse with identifier PHQ-1 (system <system>)"; a token's ``system|code``
    split as R4 search.html 3.1.1.5.4 defines it. Other paths (element paths, references, form
    fields) are words already."""
    kind, query, rest = path.partition("?")
    if not query or not kind.isalpha():
        return path
    criteria = []
    for name, value in parse_qsl(rest, keep_blank_values=True):
        system, bar, code = value.rpartition("|")
        if bar and system:
            criteria.append(f"{name} {code} (system {system})")
        else:
            criteria.append(f"{name} {code if bar else value}")
    return f"the {kind} with {' and '.join(criteria)}" if criteria else f"any {kind}"


_ENV.filters["readable_path"] = readable_path
_CSS = Markup((HERE / "static" / "tracker.css").read_text(encoding="utf-8"))  # ours, as is
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on the
    # forms' POSTs, and the POSTs' Origin check needs the real one
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from its template, with the stylesheet inline and the PHI-page headers."""
    html = _ENV.get_template(name).render(css=_CSS, **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def error_page(error: IopBridgeError, viewer: Any) -> HTMLResponse:
    """A service's deliberate refusal (not found, bad filter, forged form) as a page."""
    return render(
        "error.html",
        error.http_status,
        viewer=viewer,
        status=error.http_status,
        title=error.message,
        problems=error.problems,
    )
