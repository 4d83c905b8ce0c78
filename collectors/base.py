"""What every collector shares: a background session task, a bounded queue, an async iterator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from types import TracebackType
from typing import Any, Self

from collectors.queue import BoundedQueue, OverflowPolicy
from plantstream.records import Reading, ReadingTuple

__all__ = ["Collector"]


class Collector:
    """A source's readings: ``async with collector: async for reading in collector.readings()``.

    Subclasses implement :meth:`_session_loop`, the one reconnect loop, which puts readings into
    ``self._queue`` and never returns. The queue holds them as :class:`ReadingTuple`: the embedded
    runtime takes them so (:meth:`tuples`), and the others get :class:`Reading` objects.
    """

    _name = "collector"

    def __init__(self, source_id: str, queue_size: int, overflow: OverflowPolicy) -> None:
        self._queue: BoundedQueue[ReadingTuple] = BoundedQueue(queue_size, overflow)
        self._source_id = source_id
        self._task: asyncio.Task[None] | None = None

    @property
    def dropped(self) -> int:
        """Readings dropped by the queue's overflow policy."""
        return self._queue.dropped

    def _session_loop(self) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(
            self._session_loop(), name=f"{self._name}[{self._source_id}].session"
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        while not task.done():
            # Cancel again until it ends: on Python 3.11 asyncio.wait_for (used inside the client
            # libraries) can swallow a cancellation that arrives as the awaited reply completes,
            # and the session would then wait for messages forever.
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        try:
            await task
        except* asyncio.CancelledError:
            pass  # also from inside a task group, and asyncua's CancelledWithResultError

    async def readings(self) -> AsyncIterator[Reading]:
        """Readings as they arrive, until the collector is closed."""
        get = self._queue.get
        while True:
            yield (await get()).reading()

    async def batches(self, limit: int) -> AsyncIterator[list[Reading]]:
        """Readings as they arrive, in order, as lists of everything waiting (1 to ``limit``).

        The same stream as :meth:`readings`, for a consumer whose own per-item cost matters:
        one suspension and one queue call per batch instead of one per reading.
        """
        get_many = self._queue.get_many
        while True:
            yield [reading.reading() for reading in await get_many(limit)]

    async def tuples(self, limit: int) -> AsyncIterator[list[ReadingTuple]]:
        """:meth:`batches` without making a :class:`Reading` of each: the readings as tuples.

        For the embedded runtime, which reads their fields and makes a :class:`Reading` only for
        what needs one (a live view, a dead letter).
        """
        get_many = self._queue.get_many
        while True:
            yield await get_many(limit)
