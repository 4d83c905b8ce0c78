"""A bounded queue with a named overflow policy that counts what it drops.

``block`` back-pressures the producer (nothing is lost; the source slows down); ``drop_oldest``
keeps the newest data (right for latest-state values and cumulative counters, which lose
resolution, not totals); ``drop_newest`` keeps what is already queued.
"""

from __future__ import annotations

import asyncio
from typing import Generic, Literal, TypeVar

__all__ = ["BoundedQueue", "OverflowPolicy"]

T = TypeVar("T")
OverflowPolicy = Literal["block", "drop_oldest", "drop_newest"]


class BoundedQueue(Generic[T]):
    """An ``asyncio.Queue`` of at most ``size`` items with an overflow policy and a drop counter."""

    def __init__(self, size: int, policy: OverflowPolicy) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=size)
        self.policy = policy
        self.dropped = 0
        """Items dropped by the policy since the queue was made."""

    async def put(self, item: T) -> None:
        """Add ``item``; wait for room under ``block``, drop under the other policies."""
        if self.policy == "block":
            await self._queue.put(item)
            return
        if 2 * self._queue.qsize() >= self._queue.maxsize:
            # Half full: let the reader run before anything is dropped (a producer working through
            # a backlog would otherwise never yield, and the policy would drop what a reader
            # waiting to be scheduled could have taken).
            await asyncio.sleep(0)
        self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """Add ``item`` without waiting: ``block`` raises ``asyncio.QueueFull``, the others drop."""
        if self.policy != "block" and self._queue.full():
            self.dropped += 1
            if self.policy == "drop_newest":
                return
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    async def get(self) -> T:
        """Wait for and return the oldest item."""
        return await self._queue.get()

    def get_nowait(self) -> T:
        """Return the oldest item now; raise ``asyncio.QueueEmpty`` when there is none."""
        return self._queue.get_nowait()

    def qsize(self) -> int:
        """Items waiting."""
        return self._queue.qsize()

    def room(self) -> int:
        """Items that can be added before the policy applies."""
        return self._queue.maxsize - self._queue.qsize()
