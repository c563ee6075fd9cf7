"""A stand-in inbound handler for tests that only need to know which Task versions arrived."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integration.inbound import engine as inbound


class Recorder:
    """Records (id, meta.lastUpdated) of each Task version handed over; its step does nothing."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, task: Mapping[str, Any]) -> inbound.Apply:
        self.seen.append((str(task["id"]), str(task["meta"]["lastUpdated"])))
        return lambda session, now: None

    def ids(self) -> set[str]:
        """The Task ids seen."""
        return {task_id for task_id, _ in self.seen}
