"""A server that stalls: the OPC UA collector beside a raw asyncua client, both against it at once.

A PLC under load or a gateway on a small box may not answer for seconds. Here the simulator
(``bench/opcua.py --serve``: ``--tags`` load tags written at ``--rate`` Hz, in its own process) is
stopped with SIGSTOP for ``--stall`` seconds every ``--every`` seconds (default 3 s every 30 s) for
``--minutes`` (default 10), and these consumers subscribe to the same tags at the same time:

- **collector**: :class:`collectors.opcua.OpcUaCollector` with the plant-file defaults (the group's
  intervals as in bench/opcua.py: publishing and sampling 100 ms, a queue of 10 per item);
- **raw**: an ``asyncua.Client`` with its defaults (a liveness probe every second with a second to
  answer, asyncua's re-creation of a subscription quiet for 1.5 keep-alive periods) and its own
  ``auto_reconnect``, the recovery a careful user of the library would switch on; the same
  subscription and monitored-item requests as the collector's;
- **pipeline** (``--pipeline``): ``plantstream run``'s embedded pipeline on bench/pipeline.py's plant
  (each load tag a machine's power), its values counted as ``reading`` points where they leave it:
  written by the file sink, or with ``--influxdb`` accepted by the v2 write API of an InfluxDB 1.12
  node started for the run (at millisecond precision, as bench/pipeline.py writes them). So what
  is counted went through the collector, the engine and the sink, outbox and retries included.

Counted for each consumer: the values received, the values lost and the session rebuilds. Every
write of the load tags stamps all of them with the same source time (a tick), so a value is
identified by (tag, tick); each consumer counts, per tick, the tags whose value for that tick it
received (a tag's value counts once: a repeat after a reconnect is not news). A tick someone
received was served; the values a consumer lost are, over the ticks of the measured window, the
tags it did not receive. The window opens once both consumers have every tag's first value and
``--warmup`` has passed; after the last stall the server runs ``--drain`` seconds more, and the
window ends half a drain before the last tick anyone received. The server's session count is
sampled between stalls (its maximum is reported: one session per consumer).

Nothing here asserts a time; ``--check`` exits 1 when the collector (or the pipeline) rebuilt a
session, lost a value or the server held more sessions than consumers. Run:
``.venv/bin/python bench/opcua_stall.py`` (about 11 minutes); ``--minutes 2`` for a quick look;
``--pipeline --influxdb`` for the whole path into InfluxDB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import sys
import tempfile
from collections import Counter as Tally
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Client
from asyncua.common.subscription import DataChangeEvent

from bench.common import code_revision, stop_on_sigterm, today
from bench.endtoend import PipelineSettings, bench_pipeline
from bench.opcua import (
    HOST,
    ServerProcess,
    Settings,
    _quiet_logs,
    load_source,
    subscribe_load_tags,
)
from bench.pipeline import influx_node
from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from plantstream.records import Point, Reading, ReadingRow
from runtimes.embedded import EmbeddedPipeline

__all__ = ["Received", "main", "measure"]

CODE_PATHS = [
    "collectors/opcua.py",
    "collectors/opcua_items.py",
    "collectors/opcua_reads.py",
    "collectors/opcua_state.py",
    "collectors/opcua_values.py",
    "bench/opcua_stall.py",
    "bench/opcua.py",
    "runtimes/embedded.py",
    "sinks",
]
DEFAULTS = {
    "tags": 200,
    "rate": 10.0,
    "minutes": 10.0,
    "stall": 3.0,
    "every": 30.0,
    "warmup": 10.0,
    "drain": 10.0,
}


@dataclass
class Received:
    """What one consumer received: per tick, how many distinct tags; and how often it lost its session.

    A consumer "is ours" (``ours``) when the target applies to it: the collector and the pipeline.
    """

    kind: str
    per_tick: Tally[datetime] = field(default_factory=Tally)
    last: dict[Any, datetime] = field(default_factory=dict)
    repeats: int = 0
    session_losses: int = 0
    subscriptions_recreated: int = 0
    dropped: int = 0
    ours: bool = True
    rejected: int = 0
    """Readings the pipeline's engine refused (too late, implausible, ...): none are expected."""
    left_in_outbox: int = 0
    """Lines an InfluxDB sink had not delivered when the pipeline stopped."""

    def take(self, tag: Any, tick: datetime | None) -> None:
        """Count ``tag``'s value of ``tick`` unless that tag's value of this tick (or later) came already."""
        if tick is None:
            return
        seen = self.last.get(tag)
        if seen is not None and tick <= seen:
            self.repeats += 1
            return
        self.last[tag] = tick
        self.per_tick[tick] += 1

    def complete_since(self, tags: int) -> datetime | None:
        """The first tick with every tag received (the consumer is up and caught up)."""
        full = [tick for tick, n in self.per_tick.items() if n >= tags]
        return min(full) if full else None


@dataclass
class Result:
    """Both consumers over the measured window."""

    ticks: int
    tags: int
    consumers: list[tuple[Received, int, int]]
    """Each consumer with the values it received and lost in the window."""
    max_sessions: int
    stalls: int

    def failures(self) -> list[str]:
        """What misses the target for the collector (the raw client is the reference)."""
        out = []
        for received, _, lost in self.consumers:
            if not received.ours:
                continue
            if received.session_losses:
                out.append(f"the {received.kind} rebuilt its session {received.session_losses} times")
            if lost:
                out.append(f"the {received.kind} lost {lost:,} values")
        if self.max_sessions > len(self.consumers):
            out.append(f"the server held {self.max_sessions} sessions for {len(self.consumers)} consumers")
        return out


def _tick(moment: datetime | None) -> datetime | None:
    """A source time as a comparable tick, floored to the millisecond.

    Naive UTC (asyncua may hand out naive UTC, the collector aware); milliseconds are what the
    InfluxDB sink keeps of a reading's time.
    """
    if moment is None:
        return None
    return moment.replace(tzinfo=None, microsecond=moment.microsecond // 1000 * 1000)


def _tick_ms(ms: int) -> datetime:
    """A tick from a line protocol timestamp in milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


async def _raw(endpoint: str, settings: Settings, received: Received, stop: asyncio.Event) -> None:
    source = load_source(endpoint, settings)
    client = Client(endpoint, timeout=source.timeout_s, auto_reconnect=True)

    async def lost(exc: Exception) -> None:
        received.session_losses += 1

    client.connection_lost_callback = lost
    async with client:
        sub = await subscribe_load_tags(client, settings)

        async def count() -> None:
            async for event in sub:
                if isinstance(event, DataChangeEvent):
                    value = event.data.monitored_item.Value
                    received.take(event.data.subscription_data.client_handle, _tick(value.SourceTimestamp))

        await _count_until(stop, count())
        received.subscriptions_recreated = sub._recreate_count


async def _count_until(stop: asyncio.Event, counting: Coroutine[Any, Any, None]) -> None:
    """Run ``counting`` until ``stop`` is set."""
    task = asyncio.create_task(counting)
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _collector(
    endpoint: str, settings: Settings, received: Received, stop: asyncio.Event, state_dir: Path
) -> None:
    source = load_source(endpoint, settings)
    async with OpcUaCollector(source, backoff=Backoff(0.2, 2.0), state_dir=state_dir) as collector:

        async def count() -> None:
            reading: Reading
            async for reading in collector.readings():
                # The reading's time is the value's SourceTimestamp (timestamps: source).
                received.take(reading.signal, _tick(reading.ts))

        try:
            await _count_until(stop, count())
        finally:
            health = collector.health
            received.session_losses = health.reconnects
            received.dropped = health.dropped_events + collector.dropped


_LOAD_READING = b"reading,line=load,machine="
"""How a load tag's ``reading`` line begins (the encoder sorts tags by key: line, machine, ...)."""


def _count_accepted(received: Received) -> Any:
    """An InfluxDB sink's ``on_accepted`` hook counting the load tags' readings into ``received``."""

    def on_accepted(body: bytes, precision: str, wall: float) -> None:
        if precision != "ms":
            return  # bench/endtoend.py writes readings at ms, nothing else
        for line in body.split(b"\n"):
            if line.startswith(_LOAD_READING):
                machine = line[len(_LOAD_READING) :].split(b",", 1)[0]
                received.take(machine.decode(), _tick_ms(int(line.rsplit(b" ", 1)[1])))

    return on_accepted


def _count_written(received: Received) -> Any:
    """The file sink's ``on_write`` hook counting the load tags' readings into ``received``."""

    def on_write(batch: Sequence[Point | ReadingRow], wall: float) -> None:
        for point in batch:
            if isinstance(point, tuple):  # the embedded runtime's raw readings
                if point[3] == "load":
                    received.take(point[4], _tick(point[1]))
            elif point.measurement == "reading" and point.tags["line"] == "load":
                received.take(point.tags["machine"], _tick(point.time))

    return on_write


async def _pipeline(
    server: ServerProcess, settings: Settings, received: Received, stop: asyncio.Event, influx_url: str | None
) -> None:
    pipeline: EmbeddedPipeline
    plant = PipelineSettings(opcua=settings, machines=server.machines, influxdb=influx_url is not None)
    async with bench_pipeline(server, plant, "plantstream-bench-stall-", influx_url) as (pipeline, _):
        if influx_url is None:
            pipeline.sink.on_write = _count_written(received)
        else:
            for sink in pipeline.sinks:
                sink.on_accepted = _count_accepted(received)
        try:
            await pipeline.run(stop)
        finally:
            [collector] = pipeline.collectors
            assert isinstance(collector, OpcUaCollector)
            received.session_losses = collector.health.reconnects
            received.dropped = collector.health.dropped_events + collector.dropped
            received.rejected = sum(pipeline.stats.rejected.values())
            received.left_in_outbox = sum(sink.outbox.lines for sink in pipeline.sinks)


async def _stall(
    server: ServerProcess, seconds: float, stall_s: float, every_s: float, everyone: list[Received], log: Any
) -> tuple[int, int]:
    """Stop the server ``stall_s`` every ``every_s`` for ``seconds``: (stalls, most sessions seen)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    stalls = max_sessions = 0
    while loop.time() - started < seconds:
        max_sessions = max(max_sessions, (await server.stats()).sessions)
        await asyncio.sleep(max(0.0, every_s - stall_s))
        os.kill(server.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(stall_s)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        stalls += 1
        so_far = ", ".join(f"{r.kind} {sum(r.per_tick.values()):,}" for r in everyone)
        print(f"stall {stalls}: {max_sessions} sessions at most; so far {so_far}", file=log, flush=True)
    return stalls, max_sessions


async def measure(
    settings: Settings,
    minutes: float,
    stall_s: float,
    every_s: float,
    drain_s: float,
    log: Any = sys.stdout,
    *,
    pipeline: bool = False,
    influx_url: str | None = None,
) -> Result:
    """Serve, run the consumers, stall the server on schedule, and count (see the module docstring).

    ``pipeline`` adds the embedded pipeline; with ``influx_url`` it also writes to that InfluxDB,
    and its values are counted as the write API accepts them.
    """
    loop = asyncio.get_running_loop()
    total_s = settings.warmup_s + minutes * 60 + drain_s
    raw, collector = Received("raw", ours=False), Received("collector")
    everyone = [raw, collector]
    stop = asyncio.Event()
    max_sessions = stalls = 0
    async with ServerProcess(settings.tags, settings.rate, total_s + 120) as server:
        with tempfile.TemporaryDirectory(prefix="plantstream-bench-stall-") as state_dir:
            tasks = [
                asyncio.create_task(_raw(server.endpoint, settings, raw, stop)),
                asyncio.create_task(_collector(server.endpoint, settings, collector, stop, Path(state_dir))),
            ]
            if pipeline:
                whole = Received("pipeline")
                everyone.append(whole)
                tasks.append(asyncio.create_task(_pipeline(server, settings, whole, stop, influx_url)))
            try:
                deadline = loop.time() + settings.connect_timeout_s
                while any(received.complete_since(settings.tags) is None for received in everyone):
                    for task in tasks:
                        if task.done():
                            task.result()
                    if loop.time() > deadline:
                        raise TimeoutError("the consumers did not receive every tag in time")
                    await asyncio.sleep(0.5)
                await asyncio.sleep(settings.warmup_s)
                opened = max(max(received.per_tick) for received in everyone)
                print(f"window opens at tick {opened.isoformat()}", file=log, flush=True)
                stalls, max_sessions = await _stall(server, minutes * 60, stall_s, every_s, everyone, log)
                await asyncio.sleep(drain_s)
                max_sessions = max(max_sessions, (await server.stats()).sessions)
            finally:
                stop.set()
                await asyncio.wait(tasks, timeout=60)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    # Ticks in the window: served (someone received them) between the opening and the drain.
    served = sorted(set().union(*(received.per_tick for received in everyone)))
    closed = served[-1] if served else opened
    window = [t for t in served if opened < t and (closed - t).total_seconds() > drain_s / 2]
    consumers = []
    for received in everyone:
        got = sum(min(received.per_tick.get(t, 0), settings.tags) for t in window)
        consumers.append((received, got, len(window) * settings.tags - got))
    return Result(len(window), settings.tags, consumers, max_sessions, stalls)


def report(result: Result, out: Any) -> None:
    """The result as a table (also what docs/benchmarks.md records)."""
    served = result.ticks * result.tags
    print(
        f"\n{result.stalls} stalls; {result.ticks:,} ticks x {result.tags} tags = {served:,} values served "
        f"in the window; the server held at most {result.max_sessions} sessions "
        f"({len(result.consumers)} consumers)\n",
        file=out,
    )
    header = (
        "consumer",
        "received",
        "lost",
        "session losses",
        "subscriptions re-created",
        "same tick again",
        "dropped by a queue",
        "refused by the engine",
        "left in the outbox",
    )
    print("| " + " | ".join(header) + " |", file=out)
    print("|---" * len(header) + "|", file=out)
    for received, got, lost in result.consumers:
        print(
            f"| {received.kind} | {got:,} ({got / served:.2%}) | {lost:,} | {received.session_losses} "
            f"| {received.subscriptions_recreated} | {received.repeats:,} | {received.dropped:,} "
            f"| {received.rejected:,} | {received.left_in_outbox:,} |",
            file=out,
        )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=DEFAULTS["tags"])
    parser.add_argument("--rate", type=float, default=DEFAULTS["rate"], help="Hz")
    parser.add_argument("--minutes", type=float, default=DEFAULTS["minutes"])
    parser.add_argument("--stall", type=float, default=DEFAULTS["stall"], help="seconds stopped")
    parser.add_argument("--every", type=float, default=DEFAULTS["every"], help="seconds between stall starts")
    parser.add_argument("--warmup", type=float, default=DEFAULTS["warmup"])
    parser.add_argument("--drain", type=float, default=DEFAULTS["drain"])
    parser.add_argument(
        "--pipeline", action="store_true", help="also run the embedded pipeline and count what it writes"
    )
    parser.add_argument(
        "--influxdb",
        action="store_true",
        help="the pipeline also writes to an InfluxDB 1.12 node started for the run; its values "
        "are counted as the write API accepts them (implies --pipeline)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the collector or the pipeline misses the target"
    )
    args = parser.parse_args(argv)
    if not 0 < args.stall < args.every:
        parser.error("--stall must be > 0 and shorter than --every")
    return args


async def _measure(settings: Settings, args: argparse.Namespace) -> Result:
    async with contextlib.AsyncExitStack() as stack:
        influx = await stack.enter_async_context(influx_node()) if args.influxdb else None
        return await measure(
            settings,
            args.minutes,
            args.stall,
            args.every,
            args.drain,
            pipeline=args.pipeline or args.influxdb,
            influx_url=influx.url if influx is not None else None,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the result; the exit status for ``--check``."""
    args = _arguments(argv)
    _quiet_logs()
    settings = Settings(tags=args.tags, rate=args.rate, warmup_s=args.warmup)
    print(
        f"{today()}, code {code_revision(CODE_PATHS)}, python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; simulator in its own process on {HOST}; {args.tags:,} tags at "
        f"{args.rate:g} Hz; stopped {args.stall:g} s every {args.every:g} s for {args.minutes:g} min",
        flush=True,
    )
    try:
        result = asyncio.run(_measure(settings, args))
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(result, sys.stdout)
    failures = result.failures()
    for failure in failures:
        print(f"MISS: {failure}")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
