"""Reading FHIR JSON files for the CLI: every failure becomes an error naming file and position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from mappers.errors import InvalidInputError, Problem


def read_fhir_json(path: Path) -> dict[str, Any]:
    """Parse one FHIR JSON file; malformed JSON or a non-resource is an InvalidInputError."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        problem = Problem(str(path), f"malformed JSON: {exc}", "structure")
        raise InvalidInputError.from_problems(str(path), [problem]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        problem = Problem(f"{path}: resourceType", "not a FHIR resource (no resourceType)")
        raise InvalidInputError.from_problems(str(path), [problem])
    return data
