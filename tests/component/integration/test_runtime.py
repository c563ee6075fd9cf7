"""The background runtime freezes the start-up heap once the FHIR side is set up, never before."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from integration import runtime
from integration.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (the freeze is process-wide)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freeze_keeps_what_is_alive_and_collects_start_up_garbage_first() -> None:
    kept, dropped = _Cycle(), _Cycle()
    kept_ref, dropped_ref = weakref.ref(kept), weakref.ref(dropped)
    del dropped  # only its own cycle keeps it: garbage the collector alone can free

    frozen = runtime.freeze_startup_heap()

    assert frozen == gc.get_freeze_count() > 0
    assert dropped_ref() is None  # collected, not frozen for the process's lifetime
    assert kept_ref() is kept
    assert any(obj is kept for obj in _frozen_objects())


def _frozen_objects() -> list[Any]:
    # gc.get_objects() leaves frozen objects out; unfreezing puts them back in the oldest generation
    before = {id(obj) for obj in gc.get_objects()}
    gc.unfreeze()
    return [obj for obj in gc.get_objects() if id(obj) not in before]


async def _run_background() -> None:
    no_engine: Any = None  # the stand-ins below never touch the database or the server
    no_fhir: Any = None
    await runtime.run_background(
        no_engine, no_fhir, Settings(), worker_id="w", stop_event=asyncio.Event()
    )


async def test_run_background_freezes_after_the_set_up_and_before_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_at: dict[str, int] = {}

    async def set_up(*_args: Any, **_kwargs: Any) -> str:
        frozen_at["set-up"] = gc.get_freeze_count()
        return "Organization/iop"

    async def worker(*_args: Any, **_kwargs: Any) -> None:
        frozen_at["worker"] = gc.get_freeze_count()

    async def poller(*_args: Any, **_kwargs: Any) -> None:
        frozen_at["poller"] = gc.get_freeze_count()

    monkeypatch.setattr(runtime, "set_up_fhir_side", set_up)
    monkeypatch.setattr(runtime, "run_worker", worker)
    monkeypatch.setattr(runtime, "run_inbound", poller)

    await _run_background()

    assert frozen_at["set-up"] == 0
    assert frozen_at["worker"] > 0 and frozen_at["poller"] > 0


async def test_run_background_stopped_during_set_up_freezes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def stopped(*_args: Any, **_kwargs: Any) -> None:
        return None

    monkeypatch.setattr(runtime, "set_up_fhir_side", stopped)

    await _run_background()

    assert gc.get_freeze_count() == 0
