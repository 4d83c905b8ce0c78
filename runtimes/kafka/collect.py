"""``plantstream collect``: the plant's collectors produce Readings to the readings topic.

Each Reading goes out in its own JSON form (plantstream/records.py), keyed by machine so that one machine's
readings stay in one partition, in order. The producer is idempotent with ``acks=all``: a retry
after a lost acknowledgement does not duplicate, and a reading is acknowledged only once every
in-sync replica has it. SIGINT / SIGTERM stop the collectors and flush the producer before exit.
Input a collector cannot turn into a Reading goes to the dead-letter topic with its reason.

Readings are taken from a collector in lists of what is waiting and appended straight into
producer batches (:mod:`runtimes.kafka.batches`), which are handed to the producer at the end of
each list: a busy source fills batches, a quiet one sends each reading at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from collectors.build import AnyCollector, build_collectors
from plantstream.plant import LoadedPlant
from plantstream.plant.schema import Kafka
from plantstream.records import DeadLetter, Reading, ReadingTuple, RecordError
from runtimes.deadletter_log import DeadLetterLog
from runtimes.gc_tuning import fewer_collections
from runtimes.kafka.batches import RecordBatches
from runtimes.kafka.topics import PRODUCER_BATCH_BYTES, dead_letter, ensure_topics
from streams.config import EngineSpec

__all__ = ["CollectStats", "Collector", "file_readings"]

_log = logging.getLogger("plantstream.collect")
_IN_FLIGHT = 10_000
"""Sends (a batch or a dead letter each) not yet known to be delivered, at most: enough to keep
the producer busy, bounded so memory is too."""
_LIST_LIMIT = 1000
"""Readings taken from a collector (or a file) at a time."""


@dataclass
class CollectStats:
    """What ``collect`` sent."""

    readings: int = 0
    dead_letters: int = 0
    sources: list[str] = field(default_factory=list)


class Collector:
    """Produces a plant's readings to Kafka until asked to stop."""

    def __init__(self, plant: LoadedPlant, spec: EngineSpec, settings: Kafka, state_dir: Path) -> None:
        """Prepare the collectors of ``plant`` and a producer for ``settings``."""
        self.plant = plant
        self.settings = settings
        self.stats = CollectStats()
        self.dead_letter_log = DeadLetterLog(_log)
        self._pending: list[asyncio.Future[object]] = []
        self._producer: AIOKafkaProducer | None = None
        self._batches: RecordBatches | None = None
        machines = {mid: m.line for mid, m in spec.machines.items()}
        self.collectors = build_collectors(plant.model.sources, machines, self._dead_letter, state_dir)
        self.stats.sources.extend(source.id for source in plant.model.sources)

    async def run(
        self, stop: asyncio.Event, readings: AsyncIterator[list[Reading]] | None = None
    ) -> CollectStats:
        """Produce until ``stop`` is set (or ``readings``, lists given instead of the collectors, end)."""
        with fewer_collections():  # millions of short-lived records, few cycles (runtimes.gc_tuning)
            return await self._run(stop, readings)

    async def _run(self, stop: asyncio.Event, readings: AsyncIterator[list[Reading]] | None) -> CollectStats:
        await ensure_topics(self.settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.servers(),
            client_id="plantstream-collect",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=PRODUCER_BATCH_BYTES,
        )
        await producer.start()
        self._producer = producer
        self._batches = RecordBatches(producer, PRODUCER_BATCH_BYTES)
        try:
            if readings is not None:
                await self._until(stop, self._digests(), self._pump(readings))
            else:
                await self._until(stop, self._digests(), *(self._collect(c) for c in self.collectors))
        finally:
            # Whatever was handed to the producer is delivered before we exit.
            await self._drain()
            await producer.flush()
            await producer.stop()
            self._producer = None
            self._batches = None
            self.dead_letter_log.digest(now=True)
        return self.stats

    @staticmethod
    async def _until(stop: asyncio.Event, *jobs: Coroutine[Any, Any, None]) -> None:
        """Run ``jobs`` until ``stop`` is set or one of them ends; a job's error is raised."""
        tasks = [asyncio.create_task(job) for job in jobs]
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _digests(self) -> None:
        """Sum the dead letters in the log every interval, also when they came in one burst."""
        while True:
            await asyncio.sleep(self.dead_letter_log.interval_s)
            self.dead_letter_log.digest()

    async def _collect(self, collector: AnyCollector) -> None:
        async with collector:
            # As tuples: a reading's JSON line is all this role makes of it (records.ReadingTuple).
            await self._pump(collector.tuples(_LIST_LIMIT))

    async def _pump(self, lists: AsyncIterator[list[Reading]] | AsyncIterator[list[ReadingTuple]]) -> None:
        assert self._batches is not None
        topic = self.settings.topics.readings
        add = self._batches.add
        async for readings in lists:
            for reading in readings:
                await add(topic, reading.machine.encode(), reading.to_json().encode())
            self.stats.readings += len(readings)
            await self._hand_over()

    async def _hand_over(self) -> None:
        """Hand the open batches to the producer; past the bound, wait for the oldest to be delivered."""
        assert self._batches is not None
        self._pending += await self._batches.flush()
        if len(self._pending) >= _IN_FLIGHT:
            await self._settle()

    async def _settle(self) -> None:
        """Forget the sends already delivered; if half the bound is still pending, wait for the oldest.

        Waiting for all of them would stop reading the collectors for a whole round trip every
        ``_IN_FLIGHT`` readings. A send that failed raises its error here, as in :meth:`_drain`.
        """
        pending = []
        for future in self._pending:
            if future.done():
                future.result()
            else:
                pending.append(future)
        half = _IN_FLIGHT // 2
        self._pending = pending[-half:]
        if len(pending) > half:
            await asyncio.gather(*pending[:-half])

    async def _drain(self) -> None:
        if self._batches is not None:
            self._pending += await self._batches.flush()
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    def _dead_letter(self, letter: DeadLetter) -> None:
        """Collectors call this synchronously; the send is scheduled on the running loop."""
        self.stats.dead_letters += 1
        self.dead_letter_log.note(letter)
        if self._producer is None:
            return
        send = self._producer.send_and_wait(self.settings.topics.deadletter, letter.to_json().encode())
        self._pending.append(asyncio.ensure_future(send))

    async def send_dead_letter(self, letter: DeadLetter) -> None:
        """Send one dead letter (for input read by ``collect`` itself, such as ``--from-file``)."""
        assert self._batches is not None
        self.stats.dead_letters += 1
        self.dead_letter_log.note(letter)
        await self._batches.add(self.settings.topics.deadletter, None, letter.to_json().encode())


async def file_readings(
    collector: Collector, path: Path, lines: Iterable[str]
) -> AsyncIterator[list[Reading]]:
    """A JSON-lines file's readings, in lists; bad lines go to the dead-letter topic with their reason."""
    readings: list[Reading] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            readings.append(Reading.from_json(line))
        except RecordError as exc:
            await collector.send_dead_letter(
                dead_letter("collect", f"{path}:{lineno}", "malformed", str(exc), line.rstrip("\n"))
            )
        if len(readings) >= _LIST_LIMIT:
            yield readings
            readings = []
    if readings:
        yield readings
