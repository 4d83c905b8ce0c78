"""``plantstream process``: the calculators on the readings topic, in a Kafka consumer group.

Built on aiokafka directly, not faust-streaming: faust 0.15.3 loses records after a restart with
table state to recover (a race in its recovery, faust-streaming/faust#596; see docs/kafka.md).

Workers of one group share the readings topic's partitions. Each keeps, per machine of the
partitions it holds, an engine (the same pure engine as the embedded runtime) and the offset of
the last record that engine took. Every batch the consumer returns goes through at once: each
reading through :class:`MachineStates`, whose window points (keyed by machine; the raw ``reading``
points are ``sink``'s, from the readings topic), dead letters and new windows and watermarks for
the roll-ups (windows topic, keyed by site) are appended to producer batches; each windows record
through :class:`RollupStates`, whose line and site points are appended too. Then, once
``save_interval_s`` has passed since the last save (and on a new assignment and at stop), a save
point: the states of the machines and sites that moved, and the
offsets after the records taken, as of that moment between two batches. It is completed in a task
of its own while the next batches run (save points one after another, in order):

1. it waits until the broker has every record sent before it;
2. its states, each with the offset of the last record it took, are written to their compacted
   state topic (same partition number as the records they came from), and acknowledged;
3. its offsets are committed.

A crash before 2 repeats the records since the last completed save point from the saved states:
the same points again (same identity, same fields: an overwrite at the sink). A crash between 2 and
3 redelivers records the saved state already holds, which their offsets make the worker skip. So no window is
lost and none is counted twice in what reaches the sink. Saving every few seconds instead of every
batch keeps that rule and costs a state per machine per save point instead of nearly one per
reading (docs/benchmarks.md). On assignment a worker reads the state partitions of what it was given
before it fetches a record. The roll-up stage is the same consumer subscribed to a second topic,
so it shares the group, the batches and the save points (docs/kafka.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from plantstream.plant.schema import Kafka
from plantstream.records import Point
from runtimes import heap_trim
from runtimes.deadletter_log import DeadLetterLog
from runtimes.gc_tuning import fewer_collections
from runtimes.kafka.batches import RecordBatches, partition_of
from runtimes.kafka.calculate import MachineStates
from runtimes.kafka.rollup import RollupStates
from runtimes.kafka.topics import PRODUCER_BATCH_BYTES, STATE_RECORD_BYTES, ensure_compacted, ensure_topics
from streams.config import EngineSpec

__all__ = ["SAVE_INTERVAL_S", "ProcessRole", "ProcessStats", "rollup_state_topic", "state_topic"]

_log = logging.getLogger("plantstream.process")
SAVE_INTERVAL_S = 5.0
"""Longest time between two save points: what a crash makes a worker repeat, at most. The embedded
runtime checkpoints as often; each save point writes a state (about 2 KB, 25 µs to build) per
machine that moved, so with 2 000 meters one a second cost a tenth of the role's CPU."""


def state_topic(settings: Kafka) -> str:
    """The compacted topic of machine states of ``process`` workers in ``settings.group``."""
    return f"{settings.group}.process-state.v1"


def rollup_state_topic(settings: Kafka) -> str:
    """The compacted topic of the sites' roll-up states of ``process`` workers in ``settings.group``."""
    return f"{settings.group}.rollup-state.v1"


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
    saves: int = 0
    """Save points: states written and offsets committed."""
    windows: int = 0
    """Records of the windows topic taken by the roll-up stage (redeliveries included)."""
    windows_skipped: int = 0
    rollup_points: int = 0
    stale_windows: int = 0
    """Machine results for roll-ups already forgotten past the horizon (repeats after a crash)."""
    assignments: list[list[int]] = field(default_factory=list)


class ProcessRole:
    """One ``process`` worker: consume readings, run the engines, produce points, save, commit."""

    def __init__(
        self,
        settings: Kafka,
        spec: EngineSpec,
        *,
        batch: int = 2000,
        save_interval_s: float = SAVE_INTERVAL_S,
    ) -> None:
        self.settings = settings
        self.machines = MachineStates(spec)
        self.rollups = RollupStates(spec)
        self.stats = ProcessStats()
        self.dead_letter_log = DeadLetterLog(_log)
        self._batch = batch
        self._save_interval_s = save_interval_s
        self._state_topic = state_topic(settings)
        self._rollup_state_topic = rollup_state_topic(settings)
        self._newest: dict[int, int] = {}
        self._by_partition: dict[int, list[str]] = {}
        self._unsaved_machines: dict[str, int] = {}
        self._unsaved_sites: dict[str, int] = {}
        self._uncommitted: dict[TopicPartition, int] = {}
        self._sent: list[asyncio.Future[object]] = []
        self._last_save = time.monotonic()
        self.new_assignment: dict[str, list[int]] | None = None
        """Partitions just assigned, per topic, whose saved states are still to be loaded."""

    async def run(self, stop: asyncio.Event) -> ProcessStats:
        """Process until ``stop`` is set; the batch in hand is finished and committed first.

        The C heap is kept compact as in the embedded runtime (runtimes.heap_trim): the engines'
        correction history is cut at window closes and every save point's states are freed once
        on the broker, so large blocks get mappings of their own from the start, and the free
        pages go back to the system after each save point.
        """
        heap_trim.map_large_blocks()
        with fewer_collections():  # millions of short-lived records, few cycles (runtimes.gc_tuning)
            return await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> ProcessStats:
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
            outgoing = RecordBatches(producer, PRODUCER_BATCH_BYTES)
            saving = _Saver(consumer, RecordBatches(producer, PRODUCER_BATCH_BYTES), self.stats)
            try:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=500, max_records=self._batch)
                    saving.raise_failure()
                    if self.new_assignment is not None:
                        # What moved on in partitions still held is saved, then every state of the
                        # new assignment is loaded before any of its records run.
                        await saving.until_done(await self._save_point(outgoing, only=consumer.assignment()))
                        assignment, self.new_assignment = self.new_assignment, None
                        await self.assigned(assignment.get(topics.readings, []), loader)
                        count = len(consumer.partitions_for_topic(topics.readings) or ())
                        self._by_partition = self.machines_by_partition(count)
                        await self.assigned_windows(assignment.get(topics.windows, []), loader)
                    held = consumer.assignment()
                    batch = {tp: records for tp, records in batch.items() if tp in held}
                    if batch:
                        await self._process(batch, outgoing)
                    self.dead_letter_log.digest()
                    due = time.monotonic() - self._last_save >= self._save_interval_s
                    if due and saving.idle():
                        # Completed in the background while the next batches run; one at a time,
                        # so a slow broker delays the next save point instead of stacking them.
                        saving.start(await self._save_point(outgoing))
                await saving.until_done(await self._save_point(outgoing))
            finally:
                saving.cancel()
                await consumer.stop()
        finally:
            await loader.stop()
            await producer.stop()
            self.dead_letter_log.digest(now=True)
        return self.stats

    async def _process(
        self,
        batch: dict[TopicPartition, list],  # type: ignore[type-arg]
        outgoing: RecordBatches,
    ) -> None:
        windows_topic = self.settings.topics.windows
        touched: dict[str, int] = {}
        for tp, got in batch.items():
            if tp.topic != windows_topic:
                await self._readings(tp, got, outgoing, touched)
        messages = [self.machines.windows(machine) for machine in touched]
        for tp in batch:
            newest = self._newest.get(tp.partition)
            if tp.topic != windows_topic and newest is not None:
                until = newest - self.machines.spec.allowed_lateness_us
                messages += self.machines.silences(self._by_partition.get(tp.partition, []), until)
        for message in messages:
            if message is not None:
                site, value = message
                await outgoing.add(windows_topic, site.encode(), value)
        for tp, got in batch.items():
            if tp.topic == windows_topic:
                await self._windows(tp, got, outgoing)
            self._uncommitted[tp] = got[-1].offset + 1
        self._unsaved_machines.update(touched)
        # The roll-up stage's messages go out now, not at the next save: its points wait for them.
        self._sent += await outgoing.flush()
        self.stats.batches += 1

    async def _save_point(
        self, outgoing: RecordBatches, only: set[TopicPartition] | None = None
    ) -> _SavePoint:
        """What a save point writes, as of now (module docstring); with ``only``, of those partitions.

        Built at once, between two batches, so the states and offsets are those of the records
        taken so far and the sends those that made their points.
        """
        topics = self.settings.topics
        sent, self._sent = [*self._sent, *await outgoing.flush()], []
        states = [
            (self._state_topic, machine.encode(), self.machines.state(machine), partition)
            for machine, partition in self._unsaved_machines.items()
            if only is None or TopicPartition(topics.readings, partition) in only
        ]
        states += [
            (self._rollup_state_topic, site.encode(), self.rollups.state(site), partition)
            for site, partition in self._unsaved_sites.items()
            if only is None or TopicPartition(topics.windows, partition) in only
        ]
        offsets = {tp: offset for tp, offset in self._uncommitted.items() if only is None or tp in only}
        self._unsaved_machines.clear()
        self._unsaved_sites.clear()
        self._uncommitted.clear()
        self._last_save = time.monotonic()
        return _SavePoint(sent, states, offsets)

    async def _readings(
        self,
        tp: TopicPartition,
        records: list,  # type: ignore[type-arg]
        batches: RecordBatches,
        touched: dict[str, int],
    ) -> None:
        """Readings through the machine engines; note each machine whose state moved on."""
        topics = self.settings.topics
        for record in records:
            where = f"{tp.topic}[{tp.partition}]@{record.offset}"
            # The producer's send time (CreateTime) or the broker's (LogAppendTime), in ms.
            sent_ms = record.timestamp
            received = sent_ms * 1000 if sent_ms is not None and sent_ms >= 0 else None
            outcome = self.machines.take(record.key, record.value, record.offset, where, received)
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
                await batches.add(topics.points, key, point.to_json().encode())
            self.stats.points += len(outcome.points)
            if outcome.dead_letter is not None:
                self.dead_letter_log.note(outcome.dead_letter)
                letter = outcome.dead_letter.to_json().encode()
                await batches.add(topics.deadletter, record.key, letter)
                self.stats.dead_letters += 1

    async def _windows(
        self,
        tp: TopicPartition,
        records: list,  # type: ignore[type-arg]
        batches: RecordBatches,
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
                self._unsaved_sites[rolled.site] = tp.partition
            for point in rolled.points:
                value = point.to_json().encode()
                await batches.add(topics.points, _point_key(point), value)
            self.stats.rollup_points += len(rolled.points)
            self.stats.stale_windows += rolled.stale
            if rolled.dead_letter is not None:
                self.dead_letter_log.note(rolled.dead_letter)
                letter = rolled.dead_letter.to_json().encode()
                await batches.add(topics.deadletter, record.key, letter)
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
            out.setdefault(partition_of(machine.encode(), partitions), []).append(machine)
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


@dataclass
class _SavePoint:
    """A save point's content, taken between two batches (:meth:`ProcessRole._save_point`)."""

    sent: list[asyncio.Future[object]]
    """Every send before it: points, dead letters, windows records."""
    states: list[tuple[str, bytes, bytes, int]]
    """(state topic, key, state, partition) of each machine and site that moved since the last."""
    offsets: dict[TopicPartition, int]
    """The offsets to commit: after the last record each partition's states include."""


class _Saver:
    """Completes save points in order, each in a task of its own, while the worker goes on.

    After each save point the C heap's free pages go back to the system (runtimes.heap_trim).
    """

    def __init__(self, consumer: AIOKafkaConsumer, states: RecordBatches, stats: ProcessStats) -> None:
        self._consumer = consumer
        self._states = states
        self._stats = stats
        self._task: asyncio.Task[None] | None = None

    def start(self, point: _SavePoint) -> None:
        """Complete ``point`` after the save points started before it."""
        self._task = asyncio.create_task(self._complete(self._task, point))

    async def until_done(self, point: _SavePoint) -> None:
        """Complete ``point`` (and those before it) before returning."""
        self.start(point)
        assert self._task is not None
        task, self._task = self._task, None
        await task

    def idle(self) -> bool:
        """True when no save point is in the air."""
        return self._task is None or self._task.done()

    def raise_failure(self) -> None:
        """Raise the error of a save point that failed (a send the broker refused)."""
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            task.result()

    def cancel(self) -> None:
        """Give up a save point still in the air (the worker is failing; a restart repeats its records)."""
        if self._task is not None:
            self._task.cancel()

    async def _complete(self, previous: asyncio.Task[None] | None, point: _SavePoint) -> None:
        if previous is not None:
            await previous
        # The points and windows are on the broker before the states that say they were made...
        await asyncio.gather(*point.sent)
        for topic, key, state, partition in point.states:
            await self._states.add(topic, key, state, partition=partition)
        # ... and the states before the offsets that say the records were taken.
        await asyncio.gather(*await self._states.flush())
        await self._commit(point.offsets)
        # The states (a few KB per machine that moved) are on the broker: let them go before the
        # trim, so it returns their pages with those of the history cut since the last. On the
        # loop, not in a worker thread: 1-5 ms once a save point (every few seconds), and no
        # thread to outlive the role or hold the heap's lock while it stops.
        point.states.clear()
        heap_trim.trim()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit a save point's ``offsets``; one a rebalance refused is left to the new owner."""
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took partitions since the last save: their new owner takes the records
            # since then from the saved states and sends the same points; nothing is lost.
            _log.warning("offsets not committed (%s); the partitions' new owner repeats them", exc)
            return
        self._stats.saves += 1


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
        """Nothing to finish here: aiokafka may still be fetching.

        At the new assignment the worker saves what moved on in the partitions it keeps; the new
        owner of the others repeats their records since the last save from the saved states.
        """

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Note the partitions now held, per topic."""
        topics = self._role.settings.topics
        self._role.new_assignment = {
            topic: sorted(tp.partition for tp in assigned if tp.topic == topic)
            for topic in (topics.readings, topics.windows)
        }
