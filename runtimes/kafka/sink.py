"""``plantstream sink``: points from the points topic, and raw readings, to the sinks; then the commit.

The points topic carries what ``process`` computed (window points, roll-ups). The raw readings
reach the sinks as ``reading`` points too (docs/points.md), but they are not sent through Kafka a
second time: the sink takes them from the readings topic, with the plant file's rule for which
signals are recorded, and makes each reading's point as the embedded runtime does. A reading the
sink cannot use is skipped and counted (``process``, which reads the same records, dead-letters
it with its reason).

Each batch the consumer returns is written to every sink in the list, and each sink's write has
returned (the file sink has forced it to disk) before the batch's offsets are committed. A sink
whose write fails is retried with the same batch, backing off up to ``MAX_BACKOFF_S``, while
Kafka holds everything behind it; a stop request during the retries exits without committing. A
crash before the commit writes the batch again after the restart: the same identities,
overwritten downstream (docs/kafka.md). Dead letters from the dead-letter topic are kept by the file sink
under ``<state-dir>/deadletter/``; a record on the points topic that is not a Point becomes one
too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from plantstream.plant.schema import Kafka
from plantstream.records import DeadLetter, Point, ReadingRow, RecordError, decode_reading
from runtimes import heap_trim
from runtimes.gc_tuning import fewer_collections
from runtimes.kafka.topics import dead_letter, ensure_topics, utf8
from sinks.files import JsonLinesSink
from sinks.influx import InfluxSink
from streams.config import EngineSpec
from streams.points import decoded_reading_row

__all__ = ["MAX_BACKOFF_S", "FileSink", "PointSink", "SinkRole", "SinkStats"]

_log = logging.getLogger("plantstream.sink")
_T = TypeVar("_T")
MAX_BACKOFF_S = 30.0
"""Longest wait between two tries of a failing sink."""


class _Stopped(Exception):
    """Asked to stop while a sink was failing: the batch stays uncommitted."""


class PointSink(Protocol):
    """A destination of points: ``write`` returns once the points are durable there."""

    name: str

    async def write(self, points: list[Point | ReadingRow]) -> None:
        """Write ``points`` (raw readings' as rows, records.ReadingRow) durably, or raise."""

    async def dead_letter(self, letters: list[DeadLetter]) -> None:
        """Keep refused input, if this sink keeps any (others ignore it)."""

    async def close(self) -> None:
        """Flush and release."""


class FileSink:
    """The JSON-lines file sink behind the :class:`PointSink` contract: write, then fsync."""

    name = "files"

    def __init__(self, directory: Path, *, readings: bool = True, keep_days: int | None = None) -> None:
        """``readings`` and ``keep_days``: the plant file's ``files:`` (see :class:`JsonLinesSink`)."""
        self.files = JsonLinesSink(directory, readings=readings, keep_days=keep_days)

    async def write(self, points: list[Point | ReadingRow]) -> None:
        """Append and force to disk (in a thread: fsync blocks)."""
        await asyncio.to_thread(self._write, points)

    def _write(self, points: list[Point | ReadingRow]) -> None:
        self.files.write(points)
        self.files.sync()

    async def dead_letter(self, letters: list[DeadLetter]) -> None:
        """Append the dead letters and force them to disk."""
        for letter in letters:
            self.files.dead_letter(letter)
        await asyncio.to_thread(self.files.sync)

    async def close(self) -> None:
        """Sync and close the files."""
        self.files.close()


class OutboxSink:
    """An InfluxDB sink behind the :class:`PointSink` contract, through its durable outbox.

    ``write`` returns once the points are in the outbox and on disk, so the offsets may move; the
    outbox delivers them through outages and restarts, and is drained (for a bounded time) on close.
    """

    def __init__(self, sink: InfluxSink) -> None:
        self.sink = sink
        self.name = sink.id
        sink.start()

    async def write(self, points: list[Point | ReadingRow]) -> None:
        """Into the outbox (waiting for room under ``block``), then forced to disk."""
        await self.sink.submit(points)
        await asyncio.to_thread(self.sink.sync)

    async def dead_letter(self, letters: list[DeadLetter]) -> None:
        """The file sink keeps the dead letters; the database does not."""

    async def close(self) -> None:
        """Deliver what the outbox holds for up to the sink's flush timeout; the rest waits on disk."""
        await self.sink.close()


@dataclass
class SinkStats:
    """What ``sink`` wrote and committed."""

    points: int = 0
    """Points written, raw reading points included."""
    raw_points: int = 0
    """Raw ``reading`` points made from the readings topic."""
    readings_skipped: int = 0
    """Records of the readings topic that make no point: malformed, of an unknown machine or under
    another machine's key (``process`` dead-letters them), or of a signal not recorded."""
    dead_letters: int = 0
    batches: int = 0
    failed_writes: int = 0


class SinkRole:
    """Consumes points (and dead letters) and hands them to every sink before committing."""

    def __init__(
        self,
        settings: Kafka,
        sinks: list[PointSink],
        *,
        spec: EngineSpec | None = None,
        group: str | None = None,
        first_backoff_s: float = 0.5,
    ) -> None:
        """Prepare; ``group`` defaults to ``<kafka.group>.sink``.

        With the plant's ``spec`` the raw readings are written too (``plantstream sink`` always
        passes it); without, only the points topic's points.
        """
        self.settings = settings
        self.sinks = sinks
        self.spec = spec
        self.group = group or f"{settings.group}.sink"
        self.stats = SinkStats()
        self._first_backoff = first_backoff_s
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> SinkStats:
        """Consume, write, commit until ``stop`` is set; the batch in hand is finished first.

        Large blocks get mappings of their own from the start, as in the embedded runtime
        (runtimes.heap_trim): each batch's points are encoded into bodies of hundreds of KB (a
        file's lines, an outbox's write requests) and freed once written, and glibc would
        otherwise raise its threshold to their size and keep the next ones in its heap for good.
        """
        heap_trim.map_large_blocks()
        with fewer_collections():  # millions of short-lived records, few cycles (runtimes.gc_tuning)
            return await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> SinkStats:
        await ensure_topics(self.settings)
        topics = self.settings.topics
        raw = [topics.readings] if self.spec is not None else []
        consumer = AIOKafkaConsumer(
            topics.points,
            topics.deadletter,
            *raw,
            bootstrap_servers=self.settings.servers(),
            group_id=self.group,
            client_id="plantstream-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        self._stop = stop
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                if batch:
                    try:
                        await self._write(batch)
                    except _Stopped:
                        break
                    # Only now, with every sink's write returned, do the offsets move.
                    await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        finally:
            await consumer.stop()
            for sink in self.sinks:
                await sink.close()
        return self.stats

    async def _write(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        points: list[Point | ReadingRow] = []
        letters: list[DeadLetter] = []
        topics = self.settings.topics
        for tp, records in batch.items():
            if tp.topic == topics.readings:
                self._raw_points(records, points)
                continue
            for record in records:
                where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                if tp.topic == topics.deadletter:
                    letters.append(self._letter(record.value, where))
                    continue
                try:
                    points.append(Point.from_json(record.value or b""))
                except RecordError as exc:
                    _log.warning("%s: not a point: %s", where, exc)
                    letters.append(dead_letter("sink", where, "malformed_point", str(exc), record.value))
        for sink in self.sinks:
            if points:
                await self._retrying(sink, sink.write, points)
            if letters:
                await self._retrying(sink, sink.dead_letter, letters)
        self.stats.points += len(points)
        self.stats.dead_letters += len(letters)
        self.stats.batches += 1

    def _raw_points(
        self, records: list[ConsumerRecord[bytes, bytes]], points: list[Point | ReadingRow]
    ) -> None:
        """The ``reading`` points of readings-topic ``records`` whose signal is recorded, as rows."""
        assert self.spec is not None
        machines = self.spec.machines
        made = 0
        for record in records:
            try:
                parts = decode_reading(record.value or b"")
            except RecordError:
                continue
            machine = machines.get(parts[1])
            # A reading under another machine's key is refused by ``process`` too (wrong_key).
            if machine is None or parts[2] not in machine.recorded or record.key != parts[1].encode():
                continue
            points.append(decoded_reading_row(parts, machine.site, machine.line))
            made += 1
        self.stats.raw_points += made
        self.stats.readings_skipped += len(records) - made

    async def _retrying(self, sink: PointSink, write: Callable[[_T], Awaitable[None]], items: _T) -> None:
        """Call ``write(items)`` until it returns; raise :class:`_Stopped` if asked to stop first."""
        backoff = self._first_backoff
        while True:
            try:
                await write(items)
                return
            except Exception as exc:  # any failure of a sink: keep the batch, uncommitted
                self.stats.failed_writes += 1
                _log.error(
                    "sink %s failed (%s); trying the same batch again in %.1f s", sink.name, exc, backoff
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff)
            if self._stop.is_set():
                raise _Stopped
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    @staticmethod
    def _letter(value: bytes | None, where: str) -> DeadLetter:
        try:
            return DeadLetter.model_validate(orjson.loads(value or b""))
        except (orjson.JSONDecodeError, ValueError) as exc:
            return dead_letter("sink", where, "malformed_dead_letter", str(exc), utf8(value))
