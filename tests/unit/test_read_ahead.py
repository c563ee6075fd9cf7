"""read_ahead: pages in order, the waiting ones batched, errors after the pages before them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from integration.fhir.read_ahead import read_ahead

pytestmark = pytest.mark.anyio


class Pages:
    """An async source of numbered pages of two items that records being closed."""

    def __init__(self, count: int, *, fail_after: int | None = None, pause: float = 0) -> None:
        self.count, self.fail_after, self.pause = count, fail_after, pause
        self.read = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[list[int]]:
        try:
            for number in range(self.count):
                if number == self.fail_after:
                    raise LookupError("page gone")
                await asyncio.sleep(self.pause)
                self.read += 1
                yield [2 * number, 2 * number + 1]
        finally:
            self.closed = True


async def test_read_ahead__keeps_the_order_and_batches_what_is_waiting() -> None:
    source = Pages(12)
    batches = []
    async for batch in read_ahead(aiter(source), depth=4):
        batches.append(batch)
        await asyncio.sleep(0.01)  # a slow consumer: pages pile up meanwhile
    assert [item for batch in batches for item in batch] == list(range(24))
    assert all(2 <= len(batch) <= 8 for batch in batches)  # 1 to 4 pages each
    assert any(len(batch) > 2 for batch in batches)  # some pages were taken together
    assert source.closed


async def test_read_ahead__a_fast_consumer_gets_one_page_at_a_time() -> None:
    batches = [b async for b in read_ahead(aiter(Pages(3, pause=0.01)), depth=4)]
    assert batches == [[0, 1], [2, 3], [4, 5]]


async def test_read_ahead__an_error_comes_after_the_pages_before_it() -> None:
    items: list[int] = []
    with pytest.raises(LookupError):
        async for batch in read_ahead(aiter(Pages(5, fail_after=3)), depth=2):
            items.extend(batch)
    assert items == [0, 1, 2, 3, 4, 5]


async def test_read_ahead__closing_early_stops_the_reading() -> None:
    source = Pages(100)
    batches = read_ahead(aiter(source), depth=2)
    async with contextlib.aclosing(batches):
        async for _ in batches:
            break
    assert source.closed
    assert source.read <= 4  # at most the batch taken, the queue and the page being put


async def test_read_ahead__a_batch_waits_for_least_pages_except_at_the_end() -> None:
    source = Pages(7, pause=0.005)
    batches = [b async for b in read_ahead(aiter(source), depth=4, least=3)]
    assert [item for batch in batches for item in batch] == list(range(14))
    assert all(6 <= len(batch) <= 8 for batch in batches[:-1])  # 3 or 4 pages
    assert 2 <= len(batches[-1]) <= 8


async def test_read_ahead__an_error_while_a_batch_waits_ends_that_batch_first() -> None:
    items: list[int] = []
    with pytest.raises(LookupError):
        async for batch in read_ahead(aiter(Pages(5, fail_after=2)), depth=4, least=3):
            items.extend(batch)
    assert items == [0, 1, 2, 3]
