"""``plantstream process``: the calculators on the readings topic, in a Kafka consumer group.

Built on aiokafka directly, not faust-streaming: faust 0.15.3 loses records after a restart with
table state to recover (a race in its recovery, faust-streaming/faust#596; see docs/kafka.md).

Workers of one group share the readings topic's partitions. Each keeps, per machine of the
partitions it holds, an engine (the same pure engine as the embedded runtime) and the offset of
the last record that engine took. For every batch the consumer returns, in this order:

1. each reading goes through :class:`MachineStates`; points (keyed by machine), dead letters and
   the machines' new windows and watermarks for the roll-ups (windows topic, keyed by site) are
   sent; each windows record goes through :class:`RollupStates`, whose line and site points are
   sent too; the worker waits until the broker has them all;
2. the state of every machine and site the batch touched, with its offset, is written to its
   compacted state topic (same partition number as the records it came from), and acknowledged;
3. the batch's offsets are committed.

A crash before 2 repeats the batch from the old state: the same points again (same identity, same
fields: an overwrite at the sink). A crash between 2 and 3 redelivers records the saved state
already holds, which their offsets make the worker skip. So no window is lost and none is counted
twice in what reaches the sink. On assignment a worker reads the state partitions of what it was
given before it fetches a record. The roll-up stage is the same consumer subscribed to a second
topic, so it shares the group, the batches and the commit rule (docs/kafka.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.partitioner import murmur2

from plantstream.plant.schema import Kafka
from plantstream.records import Point
from runtimes.kafka.calculate import MachineStates
from runtimes.kafka.rollup import RollupStates
from runtimes.kafka.topics import PRODUCER_BATCH_BYTES, STATE_RECORD_BYTES, ensure_compacted, ensure_topics
from streams.config import EngineSpec

__all__ = ["ProcessRole", "ProcessStats", "partition_of", "rollup_state_topic", "state_topic"]

_log = logging.getLogger("plantstream.process")


def state_topic(settings: Kafka) -> str:
    """The compacted topic of machine states of ``process`` workers in ``settings.group``."""
    return f"{settings.group}.process-state.v1"


def rollup_state_topic(settings: Kafka) -> str:
    """The compacted topic of the sites' roll-up states of ``process`` workers in ``settings.group``."""
    return f"{settings.group}.rollup-state.v1"


def partition_of(key: str, partitions: int) -> int:
    """The partition the producers' default partitioner puts ``key`` in (Kafka's murmur2 rule)."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _point_key(point: Point) -> bytes:
    """A point's record key: its machine, or the line or site it rolls up."""
    tags = point.tags
    return (tags.get("machine") or tags.get("line") or tags.get("site", "")).encode()


@dataclass
class ProcessStats:
    """What a ``process`` worker did."""

    records: int = 0
    skipped: int = 0
    points: int = 0
    dead_letters: int = 0
    batches: int = 0
    windows: int = 0
    """Records of the windows topic taken by the roll-up stage (redeliveries included)."""
    windows_skipped: int = 0
    rollup_points: int = 0
    stale_windows: int = 0
    """Machine results for roll-ups already forgotten past the horizon (repeats after a crash)."""
    assignments: list[list[int]] = field(default_factory=list)


class ProcessRole:
    """One ``process`` worker: consume readings, run the engines, produce points, save, commit."""

    def __init__(self, settings: Kafka, spec: EngineSpec, *, batch: int = 2000) -> None:
        self.settings = settings
        self.machines = MachineStates(spec)
        self.rollups = RollupStates(spec)
        self.stats = ProcessStats()
        self._batch = batch
        self._state_topic = state_topic(settings)
        self._rollup_state_topic = rollup_state_topic(settings)
        self._newest: dict[int, int] = {}
        self._by_partition: dict[int, list[str]] = {}
        self.new_assignment: dict[str, list[int]] | None = None
        """Partitions just assigned, per topic, whose saved states are still to be loaded."""

    async def run(self, stop: asyncio.Event) -> ProcessStats:
        """Process until ``stop`` is set; the batch in hand is finished and committed first."""
        await ensure_topics(self.settings)
        await ensure_compacted(self.settings, self._state_topic)
        await ensure_compacted(self.settings, self._rollup_state_topic)
        servers = self.settings.servers()
        producer = AIOKafkaProducer(
            bootstrap_servers=servers,
            client_id="plantstream-process",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # A batch's machine states are megabytes (docs/benchmarks.md, the kafka roles).
            max_batch_size=PRODUCER_BATCH_BYTES,
            # A roll-up state of a large site is one record of megabytes (topics.STATE_RECORD_BYTES).
            max_request_size=STATE_RECORD_BYTES,
        )
        loader = AIOKafkaConsumer(
            bootstrap_servers=servers,
            client_id="plantstream-process-state",
            max_partition_fetch_bytes=STATE_RECORD_BYTES,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=self.settings.group,
            client_id="plantstream-process",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            # A worker that dies without leaving the group holds its partitions this long.
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        await producer.start()
        await loader.start()
        try:
            topics = self.settings.topics
            consumer.subscribe([topics.readings, topics.windows], listener=_Listener(self))
            await consumer.start()
            try:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=500, max_records=self._batch)
                    if self.new_assignment is not None:
                        # The states of a new assignment are loaded before any of its records run.
                        assignment, self.new_assignment = self.new_assignment, None
                        await self.assigned(assignment.get(topics.readings, []), loader)
                        count = len(consumer.partitions_for_topic(topics.readings) or ())
                        self._by_partition = self.machines_by_partition(count)
                        await self.assigned_windows(assignment.get(topics.windows, []), loader)
                    held = consumer.assignment()
                    batch = {tp: records for tp, records in batch.items() if tp in held}
                    if batch:
                        await self._process(batch, producer, consumer)
            finally:
                await consumer.stop()
        finally:
            await loader.stop()
            await producer.stop()
        return self.stats

    async def _process(
        self,
        batch: dict[TopicPartition, list],  # type: ignore[type-arg]
        producer: AIOKafkaProducer,
        consumer: AIOKafkaConsumer,
    ) -> None:
        windows_topic = self.settings.topics.windows
        sent: list[Awaitable[object]] = []
        touched: dict[str, int] = {}
        sites: dict[str, int] = {}
        for tp, records in batch.items():
            if tp.topic != windows_topic:
                await self._readings(tp, records, producer, sent, touched)
        messages = [self.machines.windows(machine) for machine in touched]
        for tp in batch:
            newest = self._newest.get(tp.partition)
            if tp.topic != windows_topic and newest is not None:
                until = newest - self.machines.spec.allowed_lateness_us
                messages += self.machines.silences(self._by_partition.get(tp.partition, []), until)
        for message in messages:
            if message is not None:
                site, value = message
                sent.append(await producer.send(windows_topic, value, key=site.encode()))
        for tp, records in batch.items():
            if tp.topic == windows_topic:
                await self._windows(tp, records, producer, sent, sites)
        # The points and windows are on the broker before the state that says they were made...
        await asyncio.gather(*sent)
        saved = []
        for machine, partition in touched.items():
            state = self.machines.state(machine)
            saved.append(
                await producer.send(self._state_topic, state, key=machine.encode(), partition=partition)
            )
        for site, partition in sites.items():
            state = self.rollups.state(site)
            topic = self._rollup_state_topic
            saved.append(await producer.send(topic, state, key=site.encode(), partition=partition))
        # ... and the state is before the offsets that say the records were taken.
        await asyncio.gather(*saved)
        try:
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions during the batch: their new owner takes the same
            # records from the same states and sends the same points; nothing is lost.
            _log.warning("batch not committed (%s); the partitions' new owner repeats it", exc)
            return
        self.stats.batches += 1

    async def _readings(
        self,
        tp: TopicPartition,
        records: list,  # type: ignore[type-arg]
        producer: AIOKafkaProducer,
        sent: list[Awaitable[object]],
        touched: dict[str, int],
    ) -> None:
        """Readings through the machine engines; note each machine whose state moved on."""
        topics = self.settings.topics
        for record in records:
            where = f"{tp.topic}[{tp.partition}]@{record.offset}"
            outcome = self.machines.take(record.key, record.value, record.offset, where)
            self.stats.records += 1
            if outcome.ts is not None:
                self._newest[tp.partition] = max(outcome.ts, self._newest.get(tp.partition, outcome.ts))
            if outcome.skipped:
                self.stats.skipped += 1
                continue
            if outcome.machine is not None:
                touched[outcome.machine] = tp.partition
            for point in outcome.points:
                key = point.tags.get("machine", outcome.machine or "").encode()
                sent.append(await producer.send(topics.points, point.to_json().encode(), key=key))
            self.stats.points += len(outcome.points)
            if outcome.dead_letter is not None:
                _log.warning("dead letter %s: %s", where, outcome.dead_letter.error)
                letter = outcome.dead_letter.to_json().encode()
                sent.append(await producer.send(topics.deadletter, letter, key=record.key))
                self.stats.dead_letters += 1

    async def _windows(
        self,
        tp: TopicPartition,
        records: list,  # type: ignore[type-arg]
        producer: AIOKafkaProducer,
        sent: list[Awaitable[object]],
        sites: dict[str, int],
    ) -> None:
        """Machine windows through the roll-up stage; note each site whose state moved on."""
        topics = self.settings.topics
        for record in records:
            where = f"{tp.topic}[{tp.partition}]@{record.offset}"
            rolled = self.rollups.take(record.key, record.value, record.offset, where)
            self.stats.windows += 1
            if rolled.skipped:
                self.stats.windows_skipped += 1
                continue
            if rolled.site is not None:
                sites[rolled.site] = tp.partition
            for point in rolled.points:
                value = point.to_json().encode()
                sent.append(await producer.send(topics.points, value, key=_point_key(point)))
            self.stats.rollup_points += len(rolled.points)
            self.stats.stale_windows += rolled.stale
            if rolled.dead_letter is not None:
                _log.warning("dead letter %s: %s", where, rolled.dead_letter.error)
                letter = rolled.dead_letter.to_json().encode()
                sent.append(await producer.send(topics.deadletter, letter, key=record.key))
                self.stats.dead_letters += 1

    async def assigned(self, partitions: list[int], loader: AIOKafkaConsumer) -> None:
        """Load the saved machine states of ``partitions`` (the state topic is read to its end)."""
        self.machines.forget()
        self._newest = {}
        self.stats.assignments.append(partitions)
        _log.info("assigned readings partitions %s", partitions)
        print(f"process: assigned readings partitions {partitions}", flush=True)
        if not partitions:
            return
        latest = await _read_to_end(loader, self._state_topic, partitions)
        for machine, value in latest.items():
            if machine not in self.machines.spec.machines:
                _log.error("state of machine %r, which the plant file no longer has: ignored", machine)
                continue
            try:
                offset = self.machines.load(machine, value)
                _log.info("machine %s goes on after offset %d", machine, offset)
            except (ValueError, KeyError) as exc:
                # A state of another plant file or engine version: start the machine afresh, loudly.
                _log.error("cannot restore machine %s (%s); it starts with empty state", machine, exc)
        _log.info("restored %d machine state(s) for partitions %s", len(latest), partitions)

    def machines_by_partition(self, partitions: int) -> dict[int, list[str]]:
        """The machines of each readings partition, for a readings topic of ``partitions``."""
        out: dict[int, list[str]] = {}
        if partitions < 1:
            return out  # no metadata: no silences, the roll-ups wait for the machines' own data
        for machine in sorted(self.machines.spec.machines):
            out.setdefault(partition_of(machine, partitions), []).append(machine)
        return out

    async def assigned_windows(self, partitions: list[int], loader: AIOKafkaConsumer) -> None:
        """Load the saved roll-up states of the sites of windows ``partitions``."""
        self.rollups.forget()
        print(f"process: assigned windows partitions {partitions}", flush=True)
        if not partitions:
            return
        latest = await _read_to_end(loader, self._rollup_state_topic, partitions)
        for site, value in latest.items():
            try:
                offset = self.rollups.load(site, value)
                _log.info("roll-ups of site %s go on after offset %d", site, offset)
            except (ValueError, KeyError, TypeError) as exc:
                # Another plant file or version: the site's waiting roll-ups are lost, loudly.
                _log.error("cannot restore the roll-ups of site %s (%s); they start afresh", site, exc)
        _log.info("restored %d site roll-up state(s) for windows partitions %s", len(latest), partitions)


async def _read_to_end(loader: AIOKafkaConsumer, topic: str, partitions: list[int]) -> dict[str, bytes]:
    """The latest value of every key in ``partitions`` of the compacted ``topic``, read to its end."""
    tps = [TopicPartition(topic, p) for p in partitions]
    loader.assign(tps)
    await loader.seek_to_beginning(*tps)
    ends = await loader.end_offsets(tps)
    latest: dict[str, bytes] = {}
    remaining = {tp for tp in tps if ends[tp] > 0}
    while remaining:
        got = await loader.getmany(*remaining, timeout_ms=1000)
        for tp, records in got.items():
            for record in records:
                if record.key is not None and record.value is not None:
                    latest[record.key.decode()] = record.value
                if record.offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    return latest


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the worker of a new assignment; the worker loads its states before the next batch.

    Nothing here awaits: aiokafka may hand out records of the new assignment while a listener is
    still awaiting, so the loading is done by the worker's own loop.
    """

    def __init__(self, role: ProcessRole) -> None:
        self._role = role

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to finish: every batch is committed before the next fetch."""

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Note the partitions now held, per topic."""
        topics = self._role.settings.topics
        self._role.new_assignment = {
            topic: sorted(tp.partition for tp in assigned if tp.topic == topic)
            for topic in (topics.readings, topics.windows)
        }
