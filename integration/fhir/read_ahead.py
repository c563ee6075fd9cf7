"""Read pages ahead of their consumer, and hand them over a batch of several pages at a time.

The poll is a pipeline of two steps: the server answers a search's next page in a few to a few
tens of milliseconds, while taking a batch in costs a seen-check query and a commit (an fsync).
Reading ahead keeps the server busy while a batch commits, and a batch of several pages pays one
commit for them all, so the consumer keeps up with the pages instead of lagging one commit each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")

_END = object()  # the pages are done


class _Failed:
    """The pages raised ``error`` after the pages before it were queued."""

    def __init__(self, error: Exception) -> None:
        self.error = error


async def read_ahead(
    pages: AsyncIterator[list[T]], *, depth: int, least: int = 1
) -> AsyncGenerator[list[T], None]:
    """Yield the items of ``pages`` in order, in batches of ``least`` to ``depth`` pages.

    A background task reads up to ``depth`` pages ahead; a batch waits for ``least`` pages (fewer
    only at the end) and takes every further page already read, up to ``depth``. An error from
    ``pages`` is raised after the batches of the pages read before it. Closing this generator
    early cancels the reading.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=depth)
    reader = asyncio.create_task(_fill(pages, queue))
    try:
        while True:
            item = await queue.get()
            batch: list[T] = []
            taken = 0
            while isinstance(item, list):
                batch.extend(item)
                taken += 1
                if taken < least:
                    item = await queue.get()
                elif taken < depth and not queue.empty():
                    item = queue.get_nowait()  # already read: it joins this batch
                else:
                    item = None
            if batch:
                yield batch
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
    finally:
        reader.cancel()
        await asyncio.wait([reader])  # let it close ``pages``; its outcome is not ours to raise


async def _fill(pages: AsyncIterator[list[T]], queue: asyncio.Queue[object]) -> None:
    """Put every page, then the end (or the error), into ``queue``."""
    try:
        async for page in pages:
            await queue.put(page)
    except Exception as exc:  # handed to the consumer, raised where it reads
        await queue.put(_Failed(exc))
        return
    finally:
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()
    await queue.put(_END)
