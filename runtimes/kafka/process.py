"""``plantstream process``: the calculators on the readings topic, in a Kafka consumer group.

Built on aiokafka directly, not faust-streaming: faust 0.15.3 loses records after a restart with
table state to recover (a race in its recovery, faust-streaming/faust#596; see docs/kafka.md).

Workers of one group share the readings topic's partitions. Each keeps, per machine of the
partitions it holds, an engine (the same pure engine as the embedded runtime) and the offset of
the last record that engine took. For every batch the consumer returns, in this order:

1. each record goes through :class:`MachineStates`; points (keyed by machine) and dead letters are
   sent, and the worker waits until the broker has them all;
2. the state of every machine the batch touched, with its offset, is written to the compacted
   state topic (same partition number as the readings it came from), and acknowledged;
3. the batch's offsets are committed.

A crash before 2 repeats the batch from the old state: the same points again (same identity, same
fields: an overwrite at the sink). A crash between 2 and 3 redelivers records the saved state
already holds, which their offsets make the worker skip. So no window is lost and none is counted
twice in what reaches the sink. On assignment a worker reads the state partitions of what it was
given before it fetches a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, IllegalStateError, TopicAlreadyExistsError

from plantstream.plant.schema import Kafka
from runtimes.kafka.calculate import MachineStates
from runtimes.kafka.topics import PRODUCER_BATCH_BYTES, ensure_topics
from streams.config import EngineSpec

__all__ = ["ProcessRole", "ProcessStats", "state_topic"]

_log = logging.getLogger("plantstream.process")


def state_topic(settings: Kafka) -> str:
    """The compacted topic of machine states of ``process`` workers in ``settings.group``."""
    return f"{settings.group}.process-state.v1"


@dataclass
class ProcessStats:
    """What a ``process`` worker did."""

    records: int = 0
    skipped: int = 0
    points: int = 0
    dead_letters: int = 0
    batches: int = 0
    assignments: list[list[int]] = field(default_factory=list)


class ProcessRole:
    """One ``process`` worker: consume readings, run the engines, produce points, save, commit."""

    def __init__(self, settings: Kafka, spec: EngineSpec, *, batch: int = 2000) -> None:
        self.settings = settings
        self.machines = MachineStates(spec)
        self.stats = ProcessStats()
        self._batch = batch
        self._state_topic = state_topic(settings)
        self.new_assignment: list[int] | None = None
        """Readings partitions just assigned, whose machine states are still to be loaded."""

    def missing_rollups(self) -> list[str]:
        """The lines and sites the embedded runtime rolls up and this runtime does not (yet)."""
        lines: dict[tuple[str, str], int] = {}
        sites: dict[str, set[str]] = {}
        for m in self.machines.spec.machines.values():
            lines[m.site, m.line] = lines.get((m.site, m.line), 0) + 1
            sites.setdefault(m.site, set()).add(m.line)
        return [f"line {s}/{li}" for (s, li), n in sorted(lines.items()) if n > 1] + [
            f"site {s}" for s, site_lines in sorted(sites.items()) if len(site_lines) > 1
        ]

    async def run(self, stop: asyncio.Event) -> ProcessStats:
        """Process until ``stop`` is set; the batch in hand is finished and committed first."""
        missing = self.missing_rollups()
        if missing:
            _log.warning(
                "roll-ups are not computed by the kafka runtime yet (docs/kafka.md): %s get machine "
                "points only",
                ", ".join(missing),
            )
        await ensure_topics(self.settings)
        await self._ensure_state_topic()
        servers = self.settings.servers()
        producer = AIOKafkaProducer(
            bootstrap_servers=servers,
            client_id="plantstream-process",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            # A batch's machine states are megabytes (docs/benchmarks.md, the kafka roles).
            max_batch_size=PRODUCER_BATCH_BYTES,
        )
        loader = AIOKafkaConsumer(bootstrap_servers=servers, client_id="plantstream-process-state")
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
            consumer.subscribe([self.settings.topics.readings], listener=_Listener(self))
            await consumer.start()
            try:
                while not stop.is_set():
                    batch = await consumer.getmany(timeout_ms=500, max_records=self._batch)
                    if self.new_assignment is not None:
                        # The states of a new assignment are loaded before any of its records run.
                        partitions, self.new_assignment = self.new_assignment, None
                        await self.assigned(partitions, loader)
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
        topics = self.settings.topics
        sent: list[Awaitable[object]] = []
        touched: dict[str, int] = {}
        for tp, records in batch.items():
            for record in records:
                where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                outcome = self.machines.take(record.key, record.value, record.offset, where)
                self.stats.records += 1
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
        # The points are on the broker before the state that says they were made...
        await asyncio.gather(*sent)
        saved = []
        for machine, partition in touched.items():
            state = self.machines.state(machine)
            saved.append(
                await producer.send(self._state_topic, state, key=machine.encode(), partition=partition)
            )
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

    async def assigned(self, partitions: list[int], loader: AIOKafkaConsumer) -> None:
        """Load the saved machine states of ``partitions`` (the state topic is read to its end)."""
        self.machines.forget()
        self.stats.assignments.append(partitions)
        _log.info("assigned readings partitions %s", partitions)
        print(f"process: assigned readings partitions {partitions}", flush=True)
        if not partitions:
            return
        tps = [TopicPartition(self._state_topic, p) for p in partitions]
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

    async def _ensure_state_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.servers(), client_id="plantstream-admin")
        await admin.start()
        try:
            if self._state_topic in set(await admin.list_topics()):
                return
            topic = NewTopic(
                self._state_topic,
                self.settings.partitions,
                self.settings.replication,
                topic_configs={"cleanup.policy": "compact"},
            )
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([topic])
        finally:
            await admin.close()


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
        """Note the partitions now held."""
        readings = self._role.settings.topics.readings
        self._role.new_assignment = sorted(tp.partition for tp in assigned if tp.topic == readings)
