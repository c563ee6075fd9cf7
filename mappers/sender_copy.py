"""A referring program's own resource, included in a document iop-bridge writes as that program
wrote it (the discharge summary's foreign Patient, Conditions and QuestionnaireResponses:
``integration.discharges.handoff_bundle``).

Strict in what we send: a copy is made only of a well-formed R4 resource (every element of its
R4 type, ``registry.shape_problems``). The storing server's bookkeeping (the id, and versionId,
lastUpdated and source in ``meta``: R4 resource.html#Meta, set by whichever server stores the
resource) is left out; the sender's ``meta.security`` labels and ``meta.profile`` claims are
kept, since they are the sender's statements about the resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mappers.errors import MappingError, Problem
from mappers.referral_package.submission import rewrite_references
from mappers.registry import shape_problems

_SERVER_META = frozenset({"versionId", "lastUpdated", "source"})


def copy_problems(resource: Mapping[str, Any]) -> list[Problem]:
    """Why ``resource`` cannot be sent as it is: each element that is not of its R4 type."""
    if not isinstance(resource.get("resourceType"), str):
        return [Problem("resourceType", "is required", "required")]
    return shape_problems(resource)


def sender_copy(resource: Mapping[str, Any], moved: Callable[[str], str | None]) -> dict[str, Any]:
    """The resource as its sender wrote it, to be held in a document under a fullUrl of the
    document's own: without its server id (R4 bundle.html: a urn:uuid fullUrl is the entry's
    identity) and the storing server's meta bookkeeping, each reference to another resource
    the document holds swapped for that resource's fullUrl (``moved``; None: kept)."""
    problems = copy_problems(resource)
    if problems:
        raise MappingError.from_problems(str(resource.get("resourceType")), problems)
    copy: dict[str, Any] = {}
    for key, value in resource.items():
        if key == "id":
            continue
        if key != "meta":
            copy[key] = rewrite_references(value, moved)
        elif kept := {k: v for k, v in value.items() if k not in _SERVER_META}:
            copy["meta"] = kept
    return copy
