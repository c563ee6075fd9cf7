"""The root of iop-bridge's one error tree, and the input errors the mappers raise.

It lives in the lowest layer that raises, so every layer above (integration, api) can extend and
catch it without breaking the dependency direction. Each error carries the HTTP status it is
rendered with and a FHIR OperationOutcome issue type, so one exception handler in ``api`` can
turn any of them into an OperationOutcome or problem JSON.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a FHIR path or field), what, and its issue type."""

    path: str
    message: str
    code: str = "invalid"  # OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class IopBridgeError(Exception):
    """Base of every error iop-bridge raises on purpose."""

    http_status: int = 500
    issue_code: str = "exception"

    def __init__(self, message: str, *, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems: tuple[Problem, ...] = tuple(problems)

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        details = "; ".join(str(p) for p in self.problems)
        return f"{self.message}: {details}"


class InvalidInputError(IopBridgeError):
    """Input that cannot be accepted; lists every problem found, each with its path."""

    http_status = 422
    issue_code = "invalid"

    @classmethod
    def from_problems(cls, what: str, problems: Iterable[Problem]) -> InvalidInputError:
        """Build one error naming every problem (callers gather them all before raising)."""
        gathered = tuple(problems)
        count = len(gathered)
        noun = "problem" if count == 1 else "problems"
        return cls(f"{what} is invalid ({count} {noun})", problems=gathered)


class MappingError(InvalidInputError):
    """A FHIR resource or domain object that cannot be mapped as given."""


def raise_if_problems(what: str, problems: list[Problem]) -> None:
    """Raise one MappingError listing ``problems`` if there are any."""
    if problems:
        raise MappingError.from_problems(what, problems)


def rename_paths(
    read: list[Problem], checked: Collection[Problem], renames: Mapping[str, str]
) -> list[Problem]:
    """The problems found while reading, plus the domain ``checked`` problems renamed to the
    FHIR paths their fields came from (longest prefix wins), except those about an element
    whose reading already failed (its value there is a placeholder)."""
    gathered = list(read)
    if not checked:
        return gathered  # the usual case: nothing to rename
    ordered = sorted(renames, key=len, reverse=True)
    for problem in checked:
        for prefix in ordered:
            rest = problem.path[len(prefix) :]
            if problem.path.startswith(prefix) and (not rest or rest[0] in ".["):
                problem = Problem(renames[prefix] + rest, problem.message, problem.code)
                break
        if not any(_related(problem.path, r.path) for r in read):
            gathered.append(problem)
    return gathered


def _related(path: str, other: str) -> bool:
    """Whether one path is the other or lies inside it."""
    short, long = sorted((path, other), key=len)
    return long == short or (long.startswith(short) and long[len(short)] in ".[")
