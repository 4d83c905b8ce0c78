"""The embedded runtime: collectors -> bounded queue -> calculators -> sinks, in one process.

One ``asyncio.TaskGroup`` of named tasks: a pump per source, one processor, one checkpointer.
The readings queue is bounded with the ``block`` policy (a slow disk back-pressures the sources,
whose own queues then apply their named policies and count what they drop).

While it runs, the garbage collector's young-generation threshold is raised
(:mod:`runtimes.gc_tuning`).

State. The engine's state (open windows, last counter and register values, watermarks) is
checkpointed every few seconds to ``<state-dir>/checkpoint.json``: the points written so far are
forced to disk first, then the checkpoint is written to a temporary file, synced and renamed over
the old one, so a crash (even ``kill -9``) finds either the old or the new checkpoint whole. After a
restart the first sample of each cumulative counter and register is differenced against the
checkpointed value, so no piece and no kWh is lost; windows closed after the checkpoint are written
again with the same identity (an overwrite downstream); time with no data is unknown, unless an
OPC UA source's server keeps history: the checkpoint also holds the newest event time taken per
machine and signal of each such source (``delivered``), and after a restart its collector reads
the gap since then back from the server's history (:mod:`collectors.opcua_history`).

Sinks. Every point the file sink gets also goes to each sink of the plant file (``sinks:``),
through its durable outbox in ``<state-dir>/outbox/<sink-id>.sqlite``, appended before the file
sink writes it and forced to disk before a checkpoint, so a checkpoint never claims points the
outbox does not hold. Points are handed over in groups (when the readings queue is empty, or every
1 000 points) to keep commits few under load. A full outbox under ``block`` makes the processor
wait, which back-pressures the sources. On stop, the sinks deliver for at most
``sink_flush_timeout_s`` and keep the rest for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from collectors.build import AnyCollector, build_collectors
from collectors.mqtt import MqttHealth
from collectors.opcua import OpcUaCollector, OpcUaHealth
from collectors.queue import BoundedQueue
from plantstream.plant import LoadedPlant
from plantstream.plant.schema import OpcUaSource
from plantstream.private import open_private, private_dir
from plantstream.records import (
    EPOCH,
    QUALITY_TEXT,
    DeadLetter,
    FieldValue,
    Point,
    Reading,
    ReadingRow,
    ReadingTuple,
    as_reading,
    reading_row_json,
    reading_row_point,
)
from runtimes import heap_trim
from runtimes.cbam import CbamLedger, open_ledger
from runtimes.deadletter_log import DeadLetterLog
from runtimes.gc_tuning import fewer_collections
from runtimes.http import HttpEndpoint
from runtimes.idle import IdleTicker
from runtimes.shift_so_far import shift_points, status_of_lines
from runtimes.sinks import build_sinks, sink_health_json, sink_health_points, sink_metrics
from sinks.deadletters import DEFAULT_MAX_BYTES, POLICY
from sinks.files import JsonLinesSink
from streams.config import EngineSpec
from streams.engine import Engine, ReadingRejected
from streams.operator_reason import ReasonRefused, code_for, parse_request
from streams.points import reading_row
from streams.stops import OPERATOR_REASON

__all__ = ["EmbeddedPipeline", "PipelineStats"]

_log = logging.getLogger("plantstream.runtime")
CHECKPOINT = "checkpoint.json"
_HAND_OVER = 1_000
"""Points gathered before they go to the sinks and the file while readings keep arriving (and the
readings of one batch in the queue)."""
_IDLE_CHECK_EVERY = 1_000  # readings between two looks for quiet machines (and whenever the queue is empty)
_ONE_US = timedelta(microseconds=1)


@dataclass
class PipelineStats:
    """Counters of the pipeline as a whole (each collector keeps its own health too)."""

    readings: int = 0
    points: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    checkpoints: int = 0
    restored_from: str | None = None
    windows_closed: int = 0
    """Machine windows closed (a corrected window counts once, when it first closed)."""
    lag_s: dict[str, float] = field(default_factory=dict)
    """Per source: how long its newest reading the engine took had waited since the collector
    received it (the queues in between; the wall clock only, so simulated or skewed source
    clocks do not count; the clock skews are in each source's health)."""


class EmbeddedPipeline:
    """Runs a plant's sources through the engine into the file sink until asked to stop."""

    def __init__(
        self,
        plant: LoadedPlant,
        spec: EngineSpec,
        state_dir: Path,
        *,
        checkpoint_every_s: float = 5.0,
        queue_size: int = 10_000,
        on_points: Callable[[list[Point]], None] | None = None,
        on_reading: Callable[[Reading], None] | None = None,
        http_port: int | None = None,
        sink_flush_timeout_s: float = 30.0,
        dead_letter_max_bytes: int = DEFAULT_MAX_BYTES,
        on_shift: Callable[[list[Point]], None] | None = None,
        shift_every_s: float = 1.0,
        status_every_s: float | None = None,
        source_clock: Callable[[int], int] | None = None,
    ) -> None:
        """Prepare the pipeline.

        Args:
            plant: the validated plant file (its sources are collected).
            spec: the plant resolved for the calculators.
            state_dir: where checkpoints, points and dead letters go.
            checkpoint_every_s: how often the engine's state is saved.
            queue_size: bound of the readings queue (policy ``block``).
            on_points: also called with every batch of points (a live view, ``--stdout``).
            on_reading: also called with every reading taken (a live view).
            http_port: serve ``/healthz``, ``/metrics`` and ``/stream`` on this loopback port (0: any).
            sink_flush_timeout_s: how long the sinks keep delivering after a stop.
            dead_letter_max_bytes: the dead-letter folder's bound (policy ``drop_oldest``).
            on_shift: called with each machine's ``shift_so_far`` record (the current shift's
                figures, :mod:`runtimes.shift_so_far`) after the state is restored, every
                ``shift_every_s`` while it runs and once more after the last checkpoint.
            shift_every_s: how often the shift figures go to ``on_shift`` and ``/stream``.
            status_every_s: log a one-line status this often (None: never): for a run
                without a live table.
            source_clock: maps a receipt time on this machine's clock (µs since the epoch) to
                the clock the sources' event times run on, for the check of event times ahead of
                their receipt (``max_future_s``): the demo's simulated clock runs ``speed`` times
                as fast. None: the sources' clocks are the wall clock.

        Raises:
            sinks.influx.SinkConfigError: a sink's token variable is not set.
        """
        self.plant = plant
        self.spec = spec
        self.state_dir = state_dir
        self.stats = PipelineStats()
        files = plant.model.files
        self.sink = JsonLinesSink(
            state_dir,
            dead_letter_max_bytes=dead_letter_max_bytes,
            readings=files.readings,
            keep_days=files.keep_days,
        )
        self.dead_letter_log = DeadLetterLog(_log)
        self.engine = Engine(spec)
        # The CBAM ledger (cbam section only) sees every point written and is committed with checkpoints.
        self.cbam: CbamLedger | None = open_ledger(plant.model, state_dir)
        self._every = checkpoint_every_s
        # Batches of at most _HAND_OVER readings, so the bound in readings stays queue_size.
        self._queue: BoundedQueue[list[Reading | ReadingTuple]] = BoundedQueue(
            max(2, queue_size // _HAND_OVER), "block"
        )
        self._queued = 0  # readings in the queue
        self._on_points = on_points
        self._on_reading = on_reading
        self._on_shift = on_shift
        self._shift_every = shift_every_s
        self._status_every = status_every_s
        self._source_clock = source_clock
        self._has_oee = {mid for mid, m in spec.machines.items() if m.has_oee}
        self._events_at_start: Counter[str] = Counter()
        self.http = (
            HttpEndpoint(
                self.health,
                self.metrics,
                port=http_port,
                current=self._current_states,
                on_reason=self.operator_reason,
            )
            if http_port is not None
            else None
        )
        self._states: dict[str, Reading] = {}
        """Each machine's newest state reading, for a new ``/stream`` listener (``tail --table``)."""
        self.sinks = build_sinks(plant, state_dir, self._dead_letter, flush_timeout_s=sink_flush_timeout_s)
        self._pending: list[Point | ReadingRow] = []
        self._hand_over_lock = asyncio.Lock()
        self._persisting: asyncio.Future[None] | None = None
        opcua_sources = [s.id for s in plant.model.sources if isinstance(s, OpcUaSource)]
        # Quiet machines move on with their source's clock (the engine is replaced on restore).
        self._idle = IdleTicker(self._tick, spec.window_us, opcua_sources)
        self._since_idle_check = 0
        machines = {mid: m.line for mid, m in spec.machines.items()}
        self.collectors = build_collectors(plant.model.sources, machines, self._dead_letter, state_dir)
        # Sources that read a gap back from history, and the newest event time (µs) taken per
        # (machine, signal) of theirs: where a backfill starts after a restart.
        self._backfilling = {
            c.source.id for c in self.collectors if isinstance(c, OpcUaCollector) and c.backfills
        }
        self._delivered: dict[tuple[str, str], int] = {}

    async def run(self, stop: asyncio.Event) -> PipelineStats:
        """Collect and compute until ``stop`` is set; then drain, flush, checkpoint and return.

        Raises:
            runtimes.http.PortUnavailable: the HTTP port cannot be bound; nothing was started
                (a pipeline nobody can watch, whose ``tail`` would follow whatever holds the
                port, is worse than one that does not start).
        """
        private_dir(self.state_dir)
        self._restore()
        # The status counts from this start; the engine's own counters go on across restarts.
        self._events_at_start = Counter(self.engine.stats)
        if self._on_shift is not None:
            self._on_shift(self.shift_points())  # what the checkpoint holds, before any reading
        async with contextlib.AsyncExitStack() as stack:
            if self.http is not None:
                await stack.enter_async_context(self.http)
                _log.info("health on http://127.0.0.1:%s/healthz, /metrics, /stream", self.http.port)
            stack.enter_context(fewer_collections())
            heap_trim.map_large_blocks()  # the process's allocator: large blocks never settle in the heap
            for sink in self.sinks:
                # Leaving the stack (after the last checkpoint) flushes each sink, time-bounded.
                await stack.enter_async_context(sink)
            await self._run(stop)
        return self.stats

    async def _run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                pumps = [
                    tasks.create_task(self._pump(c), name=f"pump[{c.source.id}]") for c in self.collectors
                ]
                processor = tasks.create_task(self._process(), name="processor")
                checkpointer = tasks.create_task(self._checkpoints(), name="checkpointer")
                reporters = [tasks.create_task(self._shift_updates(), name="shift-so-far")]
                if self._status_every:
                    reporters.append(tasks.create_task(self._status(self._status_every), name="status"))
                await stop.wait()
                for task in reporters:
                    task.cancel()
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                for sink in self.sinks:
                    sink.begin_close()  # the queue must drain even if an outbox is full
                while self._queue.qsize():
                    await asyncio.sleep(0.01)
                processor.cancel()
                checkpointer.cancel()
        finally:
            if self._persisting is not None and not self._persisting.done():
                # A checkpoint being written in the background uses the sink's files: let it end.
                await asyncio.wait({self._persisting})
            # The last checkpoint carries the health as every other does (a run shorter than
            # checkpoint_every_s would have none).
            self._pending.extend(self.health_points())
            self._hand_over_now()
            self._checkpoint()
            self.dead_letter_log.digest(now=True)
            self.sink.close()
            if self.cbam is not None:
                self.cbam.close()
            if self._on_shift is not None:
                self._on_shift(self.shift_points())  # what the last checkpoint holds
            if self._status_every:
                _log.info("%s", self.status_line())

    async def _pump(self, collector: AnyCollector) -> None:
        async with collector:
            # Readings move in batches (a queue hop per reading cost as much as the engine), as
            # tuples: a Reading object is made only for what needs one (_watch, _refused).
            async for batch in collector.tuples(_HAND_OVER):
                await self.feed(batch)

    async def feed(self, readings: Sequence[Reading | ReadingTuple]) -> None:
        """Queue ``readings`` for the engine as a source does (also for tools with readings in hand).

        Waits while the queue is full (policy ``block``).
        """
        for first in range(0, len(readings), _HAND_OVER):
            batch = list(readings[first : first + _HAND_OVER])
            await self._queue.put(batch)
            self._queued += len(batch)

    async def _process(self) -> None:
        queue = self._queue
        while True:
            taken = await queue.get()
            # What is already waiting goes in the same turn (about a hand-over's worth, so points
            # keep flowing under load): one pass of the bookkeeping below per batch, not per reading.
            while len(taken) < _HAND_OVER and queue.qsize():
                taken = taken + queue.get_nowait()
            self._queued -= len(taken)
            rows = self._take(taken)
            self._since_idle_check += len(taken)
            if self._since_idle_check >= _IDLE_CHECK_EVERY or not queue.qsize():
                self._tick_quiet_machines()
            engine = self.engine
            produced = engine.take_points() if engine.has_points else []
            if produced:
                self._count_windows(produced)
                if self.cbam is not None:
                    self.cbam.write(produced)  # the ledger keeps windows; raw readings are not its
            if rows or produced:
                self._pending.extend(rows)
                self._pending.extend(produced)
                self.stats.points += len(rows) + len(produced)
                self._show(rows, produced)
            if self._pending and (len(self._pending) >= _HAND_OVER or not queue.qsize()):
                await self._hand_over()
            # A queue that holds readings hands them over without suspending, and so does an
            # outbox with room: without this the loop would run nothing else (the sources' sockets,
            # the sinks' deliveries, the HTTP endpoint) until the queue is empty, up to a whole
            # queue's worth of readings at a time.
            await asyncio.sleep(0)

    def _take(self, readings: list[Reading | ReadingTuple]) -> list[ReadingRow]:
        """Push ``readings`` into the engine; return the rows of those recorded as ``reading`` points."""
        if self._on_reading is not None or self.http is not None:
            self._watch(readings)
        machines = self.spec.machines
        backfilling = self._backfilling
        delivered = self._delivered
        rows: list[ReadingRow] = []
        parts: list[tuple[int, str, str, Any, str]] = []
        receipts: list[int | None] = []
        # The receipt time bounds how far ahead an event time may be (max_future_s).
        now = time.time_ns() // 1000
        source_clock = self._source_clock
        # Readings come many to an event time (a sampling tick) and to a receipt time (a
        # message): each is turned into microseconds once, not per reading.
        ts_then: datetime | None = None
        ingest_then: datetime | None = None
        ts = received = 0
        for reading in readings:
            if reading.ts != ts_then:
                ts_then = reading.ts
                ts = (ts_then - EPOCH) // _ONE_US
            machine = machines.get(reading.machine)
            if machine is not None and reading.signal in machine.recorded:
                # A row, not a Point: the sinks write it as its `reading` point (records.ReadingRow).
                rows.append(reading_row(reading, ts, machine.site, machine.line))
            if reading.source in backfilling:
                key = (reading.machine, reading.signal)
                if ts > delivered.get(key, ts - 1):
                    delivered[key] = ts
            ingest = reading.ingest_ts
            if ingest is None:
                received = now if source_clock is None else source_clock(now)
                ingest_then = None
            elif ingest != ingest_then:
                ingest_then = ingest
                received = (ingest - EPOCH) // _ONE_US
                if source_clock is not None:
                    received = source_clock(received)
            # Plain text, not the member: history tuples of plain values are not tracked by the GC.
            parts.append((ts, reading.machine, reading.signal, reading.value, QUALITY_TEXT[reading.quality]))
            receipts.append(received)
        # One call for the batch; each reading is taken as push_raw would take it, in turn.
        not_taken = set()
        for i, exc in self.engine.push_many(parts, receipts):
            if not self._refused(readings[i], exc):  # a held one refused: this reading was taken
                not_taken.add(i)
        seen = self._idle.seen
        for i, reading in enumerate(readings):
            if i not in not_taken:
                seen(reading.source, reading.machine, parts[i][0])
        self.stats.readings += len(readings)
        # Lag per batch, from its last reading (one pump's batch is one source's, in order).
        last = readings[-1]
        if last.ingest_ts is not None:
            self.stats.lag_s[last.source or "-"] = time.time() - last.ingest_ts.timestamp()
        return rows

    def _show(self, rows: list[ReadingRow], produced: list[Point]) -> None:
        """A turn's points to the live views: ``on_points`` and ``/stream``, raw readings first."""
        if self._on_points is not None:
            self._on_points([reading_row_point(row) for row in rows] + produced)
        if self.http is not None and self.http.listening:
            publish = self.http.publish
            for row in rows:
                publish(reading_row_json(row))
            for point in produced:
                publish(point.to_json())

    def _watch(self, readings: list[Reading | ReadingTuple]) -> None:
        """The live views' part of taking ``readings``: ``on_reading``, ``/stream``, machine states."""
        on_reading = self._on_reading
        stream = self.http if self.http is not None and self.http.listening else None
        # Kept while nobody listens too: whoever connects next learns each machine's state.
        states = self._states if self.http is not None else None
        machines = self.spec.machines
        for item in readings:
            reading = as_reading(item)
            if on_reading is not None:
                on_reading(reading)
            if stream is not None:
                stream.publish(reading.to_json())
            machine = machines.get(reading.machine)
            if states is not None and machine is not None and reading.signal == machine.state_signal:
                held = states.get(reading.machine)
                if held is None or reading.ts >= held.ts:
                    states[reading.machine] = reading

    def _refused(self, reading: Reading | ReadingTuple, exc: ReadingRejected) -> bool:
        """Count and dead-letter a refusal; whether ``reading`` itself was taken all the same.

        A reading held for ordering can be the one refused (``exc.held``): the letter is about
        it, and the reading that released it was taken.
        """
        self.stats.rejected[exc.reason] += 1
        earlier = exc.held
        self._dead_letter(
            DeadLetter(
                ts=datetime.now(tz=UTC),
                source=reading.source or "engine",
                where=f"{earlier[1]}.{earlier[2]}" if earlier else f"{reading.machine}.{reading.signal}",
                reason=exc.reason,
                error=str(exc),
                raw=reading.to_json() if earlier is None else _held_json(earlier),
            )
        )
        return earlier is not None

    def _count_windows(self, points: list[Point]) -> None:
        """Count the machine windows closed for the first time among the engine's ``points``."""
        closed = 0
        for point in points:
            tags = point.tags
            machine = tags.get("machine")
            if machine is None or tags.get("window") == "shift" or point.fields.get("revision") != 0:
                continue
            # One point per window: its oee point, or its energy point for a machine without one.
            kind = "oee" if machine in self._has_oee else "energy"
            if point.measurement == kind:
                closed += 1
        self.stats.windows_closed += closed

    def _tick(self, machine: str, ts: int) -> None:
        self.engine.tick(machine, ts)

    def _tick_quiet_machines(self) -> None:
        self._since_idle_check = 0
        for collector in self.collectors:
            if not collector.health.connected:
                self._idle.forget(collector.source.id)
        self._idle.tick_quiet()

    async def _hand_over(self) -> None:
        """Points gathered so far to every sink's outbox (waiting for room), then to the file."""
        async with self._hand_over_lock:
            points, self._pending = self._pending, []
            try:
                for sink in self.sinks:
                    await sink.submit(points)
            except BaseException:
                # Cancelled while waiting for room: the points go out with the final checkpoint.
                self._pending = points + self._pending
                raise
            self.sink.write(points)

    def _hand_over_now(self) -> None:
        """The last hand-over at shutdown: no waiting, the outbox bound may be exceeded."""
        points, self._pending = self._pending, []
        for sink in self.sinks:
            sink.submit_nowait(points)
        self.sink.write(points)

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self._pending.extend(self.health_points())
            await self._hand_over()
            await self._checkpoint_in_background()
            self.dead_letter_log.digest()

    async def operator_reason(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /reason``: an operator's reason for a past stop, as a reading at the stop's start.

        The request is checked and the stop found against the engine now (so a refusal names
        what is wrong at once), then the reading goes through the readings queue like a
        collector's, and the engine's late-data path writes the stop again with ``revision`` + 1
        (:mod:`streams.operator_reason`). Answers 202 with the stop and the code, or 400 with
        ``error`` (the refusal's reason, counted in ``/metrics``) and ``message``.
        """
        try:
            request = parse_request(body)
            start = self.engine.stop_at(request.machine, request.at)
            machine = self.spec.machines[request.machine]
            code = code_for(self.spec.reasons, machine.machine_type, request.given)
        except ReasonRefused as exc:
            return 400, {"error": exc.reason, "message": str(exc)}
        reason = self.spec.reasons.resolve(code, machine.machine_type)
        at = EPOCH + timedelta(microseconds=start)
        reading = Reading(
            ts=at,
            machine=request.machine,
            signal=OPERATOR_REASON,
            value=code,
            source="operator",
            ingest_ts=datetime.now(tz=UTC),
        )
        await self.feed([reading])
        _log.info(
            "operator's reason for %s's stop at %s: %s (code %s)", request.machine, at, reason.name, code
        )
        answer = {
            "machine": request.machine,
            "stop_start": at.isoformat().replace("+00:00", "Z"),
            "code": code,
            "reason": reason.name,
            "reason_group": reason.group,
        }
        return 202, answer

    def _current_states(self) -> list[str]:
        """What a new ``/stream`` listener gets first: each machine's state, then its shift so far."""
        states = [reading.to_json() for reading in self._states.values()]
        return states + [point.to_json() for point in self.shift_points()]

    def shift_points(self) -> list[Point]:
        """Each machine's current shift so far, as ``shift_so_far`` records (:mod:`runtimes.shift_so_far`)."""
        return shift_points(self.engine)

    async def _shift_updates(self) -> None:
        """Send the shift figures to ``on_shift`` and ``/stream`` listeners, while anyone takes them."""
        while True:
            await asyncio.sleep(self._shift_every)
            stream = self.http is not None and self.http.listening
            if self._on_shift is None and not stream:
                continue
            points = self.shift_points()
            if self._on_shift is not None:
                self._on_shift(points)
            if stream and self.http is not None:
                for point in points:
                    self.http.publish(point.to_json())

    async def _status(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            _log.info("%s", self.status_line())

    def status_line(self) -> str:
        """The pipeline's progress in one line: readings, windows, late data, dead letters, lines' OEE."""
        s = self.stats
        events = self.engine.stats - self._events_at_start
        return (
            f"{s.readings:,} readings, {s.windows_closed:,} windows closed "
            f"({events.get('windows_corrected', 0):,} re-emitted), "
            f"{events.get('late_readings', 0):,} late readings, {s.dead_letters:,} dead letters; "
            f"shift so far: {status_of_lines(self.spec, self.shift_points())}"
        )

    def health_points(self) -> list[Point]:
        """The pipeline's own health as ``health`` points, one per source, for Grafana."""
        now = datetime.now(tz=UTC).replace(microsecond=0)
        points = []
        for collector in self.collectors:
            h = collector.health
            fields: dict[str, FieldValue] = {
                "connected": h.connected,
                "readings": h.readings,
                "reconnects": h.reconnects,
                "dropped": collector.dropped,
                "bad": sum(h.bad.values()) if isinstance(h, MqttHealth) else len(h.items_failed),
            }
            if h.last_error:
                fields["last_error"] = h.last_error
            points.append(
                Point(measurement="health", tags={"source": collector.source.id}, fields=fields, time=now)
            )
        return points + sink_health_points(self.sinks, now)

    def _checkpoint(self) -> None:
        """Checkpoint now, the event loop waiting (at the end of a run)."""
        self._write_checkpoint(*self._prepare_checkpoint())

    async def _checkpoint_in_background(self) -> None:
        """Checkpoint with the disk work in a thread: the loop goes on taking readings meanwhile.

        The fsyncs behind a checkpoint take 0.1-0.4 s with a few seconds of points to write out
        (docs/benchmarks.md); in the loop they held every reading back that long.
        """
        prepared = self._prepare_checkpoint()
        self._persisting = asyncio.ensure_future(asyncio.to_thread(self._write_checkpoint, *prepared))
        await asyncio.shield(self._persisting)

    def _prepare_checkpoint(self) -> tuple[list[int], bytes]:
        """In the loop: the ledger committed, the points flushed to the OS, the state encoded.

        Returns the file descriptors of the points written so far (to be forced to disk before
        the checkpoint) and the encoded checkpoint, which holds nothing newer than those points.
        """
        if self.cbam is not None:
            # The ledger before the checkpoint too; its daily `cbam` points go to every sink.
            before = set(self.cbam.years_before_definitive)
            ledger_points = self.cbam.commit()
            for year in sorted(self.cbam.years_before_definitive - before):
                _log.warning(
                    "CBAM ledger: windows of %s kept without cbam figures: the definitive-period "
                    "methodology (IR 2025/2547) applies from 2026; transitional reports (IR 2023/1773) "
                    "are not supported",
                    year,
                )
            for sink in self.sinks:
                sink.submit_nowait(ledger_points)
            self.sink.write(ledger_points)
        points_files = self.sink.flush()
        # orjson: the checkpoint is a few MB with thousands of machines' held readings, and it
        # encodes about 4 times as fast as json. Numbers in the state are finite; a non-finite
        # value held for ordering becomes null, which is refused when released exactly as NaN
        # would have been.
        state = self.engine.checkpoint()
        # Read back by _restore; the engine ignores it. Written in the same turn as the engine's
        # state, so it claims exactly the readings that state holds.
        state["delivered"] = [[machine, signal, us] for (machine, signal), us in self._delivered.items()]
        encoded = orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS)
        return points_files, encoded

    def _write_checkpoint(self, points_files: list[int], encoded: bytes) -> None:
        """Points first, then the checkpoint: it must never claim windows whose points are not on disk.

        Safe in a worker thread: it touches file descriptors and paths, not the loop's objects
        (an outbox's sync opens its own descriptors).
        """
        for descriptor in points_files:
            os.fsync(descriptor)
        for sink in self.sinks:
            sink.sync()
        path = self.state_dir / CHECKPOINT
        temporary = path.with_suffix(".tmp")
        with open_private(temporary, "wb") as handle:
            handle.write(encoded)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.stats.checkpoints += 1
        # Between two checkpoints the history is cut and the last encoded state freed: without
        # this the C heap kept those pages, about 20 MiB at 2,000 tags x 10 Hz (runtimes.heap_trim).
        heap_trim.trim()

    def _restore(self) -> None:
        path = self.state_dir / CHECKPOINT
        if not path.exists():
            return
        try:
            saved: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            self.engine.restore(saved)
        except (OSError, ValueError, KeyError) as exc:
            # A checkpoint of another plant file or version: start fresh, but say so loudly.
            _log.error("cannot restore %s (%s); starting with empty state", path, exc)
            self.engine = Engine(self.spec)
            return
        self.stats.restored_from = str(path)
        _log.info("restored the calculators' state from %s", path)
        self._resume_collectors(saved.get("delivered", []))

    def _resume_collectors(self, saved: Any) -> None:
        """Tell the sources that backfill from history what the checkpoint says they delivered.

        A checkpoint written before ``delivered`` existed has none: those sources start as
        before, without reading back what the restart missed. A malformed entry is skipped.
        """
        if not isinstance(saved, list):
            _log.error("checkpoint: 'delivered' is not a list; no backfill after this restart")
            return
        moments = {}
        for entry in saved:
            if not (
                isinstance(entry, list)
                and len(entry) == 3
                and isinstance(entry[0], str)
                and isinstance(entry[1], str)
                and type(entry[2]) is int
            ):
                continue
            try:
                moments[(entry[0], entry[1])] = EPOCH + timedelta(microseconds=entry[2])
            except OverflowError:
                continue  # not a time: skipped like any other malformed entry
            self._delivered[(entry[0], entry[1])] = entry[2]
        for collector in self.collectors:
            if isinstance(collector, OpcUaCollector) and collector.backfills:
                collector.resume(moments)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Per-source health; healthy when every source is connected."""
        sources = {}
        for collector in self.collectors:
            h = collector.health
            sources[collector.source.id] = {
                "connected": h.connected,
                "readings": h.readings,
                "reconnects": h.reconnects,
                "last_error": h.last_error,
                "dropped": collector.dropped,
                "lag_s": self.stats.lag_s.get(collector.source.id),
                **(
                    {
                        "items_failed": h.items_failed,
                        "backfilled": h.backfilled,
                        "history_problems": h.history_problems,
                        "unchanged_repeats": h.unchanged_repeats,
                    }
                    if isinstance(h, OpcUaHealth)
                    else {}
                ),
                **(
                    {"events": asdict(h.events)}
                    if isinstance(h, OpcUaHealth) and h.events is not None
                    else {}
                ),
            }
        sinks = sink_health_json(self.sinks)
        # A sink is fine while it writes, or while nothing waits for it.
        ok = all(item["connected"] for item in sources.values()) and all(
            item["connected"] or not item["outbox_lines"] for item in sinks.values()
        )
        body: dict[str, Any] = {"status": "ok" if ok else "degraded", "sources": sources}
        if sinks:
            body["sinks"] = sinks
        body["readings"] = self.stats.readings
        return ok, body

    def health_line(self) -> str:
        """The pipeline's health in a few words, for a live view: lag, drops, queue, refusals."""
        lag = max(self.stats.lag_s.values(), default=0.0)
        dropped = sum(c.dropped for c in self.collectors)
        return (
            f"lag {lag:.2f} s, {dropped:,} dropped, {self._queued:,} queued, "
            f"{sum(self.stats.rejected.values()):,} refused"
        )

    def metrics(self) -> str:
        """Prometheus text exposition of the pipeline's counters."""
        s = self.stats
        engine_events = self.engine.stats
        lines = [
            "# TYPE plantstream_readings_total counter",
            f"plantstream_readings_total {s.readings}",
            "# TYPE plantstream_points_total counter",
            f"plantstream_points_total {s.points}",
            "# TYPE plantstream_dead_letters_total counter",
            f"plantstream_dead_letters_total {s.dead_letters}",
            "# TYPE plantstream_rejected_total counter",
            *(f'plantstream_rejected_total{{reason="{r}"}} {n}' for r, n in sorted(s.rejected.items())),
            "# TYPE plantstream_late_readings_total counter",
            f"plantstream_late_readings_total {engine_events.get('late_readings', 0)}",
            # Everything else the engine counts: corrections, trimmed history, retimed late
            # counter values, re-emitted windows, refusals by reason.
            "# TYPE plantstream_engine_events_total counter",
            *(
                f'plantstream_engine_events_total{{event="{event}"}} {n}'
                for event, n in sorted(engine_events.items())
                if event != "readings"
            ),
            "# TYPE plantstream_idle_ticks_total counter",
            f"plantstream_idle_ticks_total {self._idle.ticks}",
            "# TYPE plantstream_source_lag_seconds gauge",
            *(f'plantstream_source_lag_seconds{{source="{k}"}} {v:.3f}' for k, v in sorted(s.lag_s.items())),
            "# TYPE plantstream_operator_reasons_total counter",
            *(
                f'plantstream_operator_reasons_total{{result="{result}"}} {n}'
                for result, n in sorted((self.http.posts if self.http is not None else {}).items())
            ),
            "# TYPE plantstream_queue_depth gauge",
            f"plantstream_queue_depth {self._queued}",
        ]
        for kind, metric in (
            ("gauge", "source_connected"),
            ("counter", "source_readings_total"),
            ("counter", "source_dropped_total"),
            ("counter", "source_reconnects_total"),
        ):
            lines.append(f"# TYPE plantstream_{metric} {kind}")
            for c in self.collectors:
                value = {
                    "source_connected": int(c.health.connected),
                    "source_readings_total": c.health.readings,
                    "source_dropped_total": c.dropped,
                    "source_reconnects_total": c.health.reconnects,
                }[metric]
                lines.append(f'plantstream_{metric}{{source="{c.source.id}"}} {value}')
        lines += _event_metrics(self.collectors)
        letters = self.sink.dead_letters
        lines += [
            "# TYPE plantstream_dead_letter_folder_bytes gauge",
            f"plantstream_dead_letter_folder_bytes {letters.size}",
            "# TYPE plantstream_dead_letter_folder_max_bytes gauge",
            f"plantstream_dead_letter_folder_max_bytes {letters.max_bytes}",
            "# TYPE plantstream_dead_letters_truncated_total counter",
            f"plantstream_dead_letters_truncated_total {letters.truncated}",
            "# TYPE plantstream_dead_letters_dropped_total counter",
            f'plantstream_dead_letters_dropped_total{{policy="{POLICY}"}} {letters.dropped_letters}',
            "# TYPE plantstream_dead_letter_bytes_dropped_total counter",
            f'plantstream_dead_letter_bytes_dropped_total{{policy="{POLICY}"}} {letters.dropped_bytes}',
        ]
        lines.extend(sink_metrics(self.sinks))
        return "\n".join(lines) + "\n"

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.stats.dead_letters += 1
        self.sink.dead_letter(letter)
        self.dead_letter_log.note(letter)


def _held_json(held: tuple[int, str, str, Any, str]) -> str:
    """The JSON line of a reading the engine refused after holding it (see ``ReadingRejected.held``)."""
    ts, machine, signal, value, quality = held
    at = (EPOCH + timedelta(microseconds=ts)).isoformat().replace("+00:00", "Z")
    record = {"ts": at, "machine": machine, "signal": signal, "value": value, "quality": quality}
    return json.dumps(record)


_EVENT_OUTCOMES = {"events": "received", "reasons": "reason_changes", "active": "", "refreshes": ""}
"""EventHealth counts as metric outcomes ("": not a count of events; active is its own gauge)."""


def _event_metrics(collectors: list[Any]) -> list[str]:
    """OPC UA A&C events by outcome (collectors/opcua_events.py), for the sources that take them."""
    counted = [
        (c.source.id, c.health.events)
        for c in collectors
        if isinstance(c.health, OpcUaHealth) and c.health.events is not None
    ]
    if not counted:
        return []
    lines = ["# TYPE plantstream_opcua_events_total counter"]
    for source, events in counted:
        for name, n in asdict(events).items():
            outcome = _EVENT_OUTCOMES.get(name, name)
            if outcome:
                lines.append(f'plantstream_opcua_events_total{{source="{source}",outcome="{outcome}"}} {n}')
    lines.append("# TYPE plantstream_opcua_active_conditions gauge")
    lines += [f'plantstream_opcua_active_conditions{{source="{source}"}} {e.active}' for source, e in counted]
    return lines
