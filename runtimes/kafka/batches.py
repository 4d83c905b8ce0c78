"""Records appended straight into producer batches, one open batch per topic partition.

``AIOKafkaProducer.send`` costs about 15 µs a record (a future per record, the murmur2
partitioner in Python, the accumulator's bookkeeping); appending to a batch builder costs about
2 µs, and the partition of a key is computed once. ``collect`` and ``process`` send every reading
and every point this way (docs/benchmarks.md, the kafka roles).

Order within a partition is kept: a partition's batches are handed to the producer in the order
they were filled, and the producer sends one partition's batches in order. A batch is handed over
when it is full or on :meth:`RecordBatches.flush`; its delivery is known from the futures that
``flush`` and :meth:`RecordBatches.take_sent` return.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

__all__ = ["RecordBatches", "partition_of"]

_KEYS_REMEMBERED = 100_000
"""Partitions of this many keys are remembered; then the memory starts afresh (keys are machine,
line and site ids, so a plant never comes near it)."""


class _Builder(Protocol):
    """What is used of aiokafka's ``BatchBuilder`` (the package has no type hints)."""

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None) -> object | None:
        """The record's metadata, or ``None`` when the batch is full (and now closed)."""

    def close(self) -> None:
        """Refuse any further record."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the producers' default partitioner puts ``key`` in (Kafka's murmur2 rule)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class RecordBatches:
    """One open batch per topic partition of ``producer``; full batches go out as they fill."""

    def __init__(self, producer: AIOKafkaProducer, batch_bytes: int) -> None:
        """Batches for ``producer``, whose ``max_batch_size`` is ``batch_bytes``."""
        self._producer = producer
        self._largest = batch_bytes // 2
        self._open: dict[tuple[str, int], _Builder] = {}
        self._sent: list[asyncio.Future[object]] = []
        self._partitions: dict[str, int] = {}
        self._keys: dict[tuple[str, bytes], int] = {}
        self._spread: Iterator[int] = itertools.count()
        self.records = 0
        """Records appended since the start."""

    async def add(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Append one record: to ``partition``, else to its key's partition (spread when no key).

        Safe to call from several tasks at once (``collect`` runs one per source).
        """
        if partition is None:
            partition = await self._partition(topic, key)
        slot = (topic, partition)
        if len(value) > self._largest:
            # A record near a batch's size goes on its own, through the producer's size checks,
            # after what the partition already holds.
            waiting = self._open.get(slot)
            if waiting is not None:
                await self._send(slot, waiting)
            self._sent.append(await self._producer.send(topic, value, key=key, partition=partition))
        else:
            while True:
                builder = self._open.get(slot)
                if builder is None:
                    builder = self._open[slot] = self._producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is not None:
                    break
                # Full: hand it over; the next turn starts the partition's next batch.
                await self._send(slot, builder)
        self.records += 1

    async def flush(self) -> list[asyncio.Future[object]]:
        """Hand every open batch to the producer; return the futures of all batches sent since last asked."""
        for slot, builder in list(self._open.items()):
            await self._send(slot, builder)
        return self.take_sent()

    def take_sent(self) -> list[asyncio.Future[object]]:
        """The delivery futures of the batches handed over since the last call (and forget them)."""
        sent, self._sent = self._sent, []
        return sent

    async def _send(self, slot: tuple[str, int], builder: _Builder) -> None:
        if self._open.get(slot) is not builder:
            return  # another task has handed it over already
        del self._open[slot]
        builder.close()  # nothing but this class appends to it, not even the producer's own send
        topic, partition = slot
        self._sent.append(await self._producer.send_batch(builder, topic, partition=partition))

    async def _partition(self, topic: str, key: bytes | None) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = self._partitions[topic] = len(await self._producer.partitions_for(topic))
        if key is None:
            return next(self._spread) % count
        slot = (topic, key)
        partition = self._keys.get(slot)
        if partition is None:
            if len(self._keys) >= _KEYS_REMEMBERED:
                self._keys.clear()
            partition = self._keys[slot] = partition_of(key, count)
        return partition
