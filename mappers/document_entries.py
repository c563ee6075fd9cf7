"""Reading the entries of a FHIR document Bundle (R4 documents.html): find each by its fullUrl,
map it with a concept mapper, and name what no modelled element reaches."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mappers.errors import MappingError, Problem
from mappers.fhir_read import read_str
from mappers.loss import Loss, Mapped, unmapped_keys

T = TypeVar("T")


class DocumentEntries:
    """The entries of a document Bundle by fullUrl, and which of them were read.

    Problems and losses are recorded in the caller's lists, with the entry's path
    (``Bundle.entry[i].resource...``) in place of the resource type a concept mapper names.
    """

    def __init__(self, entries: list[Any], problems: list[Problem], losses: list[Loss]) -> None:
        self.problems, self.losses = problems, losses
        self.by_url: dict[str, tuple[int, Mapping[str, Any]]] = {}
        self.used: set[int] = {0}
        for index, entry in enumerate(entries):
            at = f"Bundle.entry[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                problems.append(Problem(f"{at}.resource", "is required", "required"))
                continue
            losses += unmapped_keys(entry, {"fullUrl", "resource"}, path=at)
            url = read_str(entry.get("fullUrl"), f"{at}.fullUrl", problems, required=True)
            if url is not None:
                self.by_url[url] = (index, entry["resource"])
        self.count = len(entries)

    def resolve(self, target: str, kind: str, path: str) -> tuple[str, Mapping[str, Any]] | None:
        """The entry ``target`` names (its path and resource); a Problem if absent or mistyped."""
        found = self.by_url.get(target)
        if found is None:
            self.problems.append(Problem(path, f"{target!r} is not a fullUrl in this document"))
            return None
        index, resource = found
        if resource.get("resourceType") != kind:
            given = resource.get("resourceType")
            self.problems.append(Problem(path, f"{target!r} is a {given}, expected a {kind}"))
            return None
        self.used.add(index)
        return f"Bundle.entry[{index}].resource", resource

    def read(
        self, mapper: Callable[[Any], Mapped[T]], target: str, kind: str, path: str
    ) -> T | None:
        """Map the entry ``target`` names with a concept mapper, its problems and losses
        renamed to the entry's path."""
        found = self.resolve(target, kind, path)
        if found is None:
            return None
        at, resource = found
        try:
            mapped = mapper(resource)
        except MappingError as error:
            self.problems += [_moved(p, kind, at) for p in error.problems]
            return None
        self.losses += [Loss(_rename(loss.path, kind, at), loss.reason) for loss in mapped.losses]
        return mapped.value

    def unread(self) -> list[Loss]:
        """Entries no modelled element of the Composition reaches."""
        return [
            Loss(f"Bundle.entry[{i}]", "resource not referenced by a modelled section or header")
            for i in range(self.count)
            if i not in self.used
        ]


def _rename(path: str, kind: str, at: str) -> str:
    return at + path[len(kind) :] if path.startswith(kind) else f"{at}: {path}"


def _moved(problem: Problem, kind: str, at: str) -> Problem:
    return Problem(_rename(problem.path, kind, at), problem.message, problem.code)
