"""A bounded queue with a named overflow policy that counts what it drops.

``block`` back-pressures the producer (nothing is lost; the source slows down); ``drop_oldest``
keeps the newest data (right for latest-state values and cumulative counters, which lose
resolution, not totals); ``drop_newest`` keeps what is already queued.

Items go in and come out one at a time (:meth:`BoundedQueue.put`, :meth:`BoundedQueue.get`) or
as lists (:meth:`BoundedQueue.put_many`, :meth:`BoundedQueue.get_many`): a producer with a whole
message's worth of items, and a consumer that takes everything waiting, pay per list, not per
item. The bound and the policy are in items either way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, Literal, TypeVar

__all__ = ["BoundedQueue", "OverflowPolicy"]

T = TypeVar("T")
OverflowPolicy = Literal["block", "drop_oldest", "drop_newest"]


class _Fifo(Generic[T]):
    """The items in order and the waits on them (for items, for room); no policy."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a queue holds at least one item, not {size}")
        self.items: deque[T] = deque()
        self.maxsize = size
        # Set exactly while items wait / while there is room (kept so by _changed).
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def _changed(self) -> None:
        count = len(self.items)
        if count:
            self._readable.set()
        else:
            self._readable.clear()
        if count < self.maxsize:
            self._writable.set()
        else:
            self._writable.clear()

    async def wait_items(self) -> None:
        """Return once an item waits."""
        while not self.items:
            await self._readable.wait()

    async def wait_room(self) -> None:
        """Return once there is room for an item."""
        while len(self.items) >= self.maxsize:
            await self._writable.wait()

    def put_nowait(self, item: T) -> None:
        """Add ``item``; raise ``asyncio.QueueFull`` when there is no room."""
        if len(self.items) >= self.maxsize:
            raise asyncio.QueueFull
        self.items.append(item)
        self._changed()

    def extend(self, items: list[T]) -> None:
        """Add ``items`` in order (the caller has made room for them)."""
        self.items.extend(items)
        self._changed()

    def drop_oldest(self, count: int) -> None:
        """Remove the ``count`` oldest items."""
        items = self.items
        if count >= len(items):
            items.clear()
        else:
            for _ in range(count):
                items.popleft()
        self._changed()

    def get_nowait(self) -> T:
        """The oldest item; ``asyncio.QueueEmpty`` when there is none."""
        if not self.items:
            raise asyncio.QueueEmpty
        item = self.items.popleft()
        self._changed()
        return item

    def get_many_nowait(self, limit: int) -> list[T]:
        """The oldest ``limit`` items (fewer if fewer wait), in order."""
        items = self.items
        if len(items) <= limit:
            taken = list(items)
            items.clear()
        else:
            popleft = items.popleft
            taken = [popleft() for _ in range(limit)]
        self._changed()
        return taken


class BoundedQueue(Generic[T]):
    """A queue of at most ``size`` items with an overflow policy and a drop counter."""

    def __init__(self, size: int, policy: OverflowPolicy) -> None:
        self._queue: _Fifo[T] = _Fifo(size)
        self.policy = policy
        self.dropped = 0
        """Items dropped by the policy since the queue was made."""

    async def put(self, item: T) -> None:
        """Add ``item``; wait for room under ``block``, drop under the other policies."""
        queue = self._queue
        if self.policy == "block":
            await queue.wait_room()
            queue.put_nowait(item)
            return
        if 2 * len(queue.items) >= queue.maxsize:
            # Half full: let the reader run before anything is dropped (a producer working through
            # a backlog would otherwise never yield, and the policy would drop what a reader
            # waiting to be scheduled could have taken).
            await asyncio.sleep(0)
        self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        """Add ``item`` without waiting: ``block`` raises ``asyncio.QueueFull``, the others drop."""
        queue = self._queue
        if self.policy != "block" and len(queue.items) >= queue.maxsize:
            self.dropped += 1
            if self.policy == "drop_newest":
                return
            queue.drop_oldest(1)
        queue.put_nowait(item)

    async def put_many(self, items: list[T]) -> None:
        """Add ``items`` in order, as :meth:`put` would one by one, but at the cost of one call.

        Under ``block`` it waits for room as often as needed (a list longer than the room goes in
        parts, in order). Under the other policies it yields to the reader first when the queue
        is half full or the list would not fit; a list longer than the room then goes in parts,
        yielding to the reader between them, for as long as the reader takes something each
        turn (a Publish response may hold more values than the queue). What still does not fit
        is left to the policy: the newest (``drop_oldest``) or the oldest (``drop_newest``)
        ``size`` items of queue and list together are kept, the rest counted.
        """
        if not items:
            return
        queue = self._queue
        maxsize = queue.maxsize
        if self.policy == "block":
            start, end = 0, len(items)
            while start < end:
                await queue.wait_room()
                room = maxsize - len(queue.items)
                queue.extend(items[start : start + room])
                start += room
            return
        while True:
            waiting = len(queue.items)
            if 2 * waiting >= maxsize or waiting + len(items) > maxsize:
                await asyncio.sleep(0)  # as in put: the reader first
            room = maxsize - len(queue.items)
            if len(items) <= room or room == 0:
                break  # it fits, or the reader took nothing in its turn: the policy decides
            queue.extend(items[:room])
            items = items[room:]
        self.put_many_nowait(items)

    def put_many_nowait(self, items: list[T]) -> None:
        """Add ``items`` without waiting; the drop policies drop as :meth:`put_many` says.

        ``block`` raises ``asyncio.QueueFull``, adding none, when they do not all fit.
        """
        queue = self._queue
        over = len(queue.items) + len(items) - queue.maxsize
        if over > 0:
            if self.policy == "block":
                raise asyncio.QueueFull
            self.dropped += over
            if self.policy == "drop_newest":
                items = items[: len(items) - over]
            elif over > len(queue.items):
                # More than the queue holds: all of it goes, and the list's own oldest too.
                items = items[over - len(queue.items) :]
                queue.drop_oldest(len(queue.items))
            else:
                queue.drop_oldest(over)
        queue.extend(items)

    async def get(self) -> T:
        """Wait for and return the oldest item."""
        queue = self._queue
        if not queue.items:
            await queue.wait_items()
        return queue.get_nowait()

    def get_nowait(self) -> T:
        """Return the oldest item now; raise ``asyncio.QueueEmpty`` when there is none."""
        return self._queue.get_nowait()

    async def get_many(self, limit: int) -> list[T]:
        """Wait for an item; return the oldest ``limit`` waiting (at least one), in order."""
        queue = self._queue
        if not queue.items:
            await queue.wait_items()
        return queue.get_many_nowait(limit)

    def qsize(self) -> int:
        """Items waiting."""
        return len(self._queue.items)

    def room(self) -> int:
        """Items that can be added before the policy applies."""
        return self._queue.maxsize - len(self._queue.items)
