"""A server that stalls: the OPC UA collector beside a raw asyncua client, both against it at once.

A PLC under load or a gateway on a small box may not answer for seconds. Here the simulator
(``bench/opcua.py --serve``: ``--tags`` load tags written at ``--rate`` Hz, in its own process) is
stopped with SIGSTOP for ``--stall`` seconds every ``--every`` seconds (default 3 s every 30 s) for
``--minutes`` (default 10), and two consumers subscribe to the same tags at the same time:

- **collector**: :class:`collectors.opcua.OpcUaCollector` with the plant-file defaults (the group's
  intervals as in bench/opcua.py: publishing and sampling 100 ms, a queue of 10 per item);
- **raw**: an ``asyncua.Client`` with its defaults (a liveness probe every second with a second to
  answer, asyncua's re-creation of a subscription quiet for 1.5 keep-alive periods) and its own
  ``auto_reconnect``, the recovery a careful user of the library would switch on; the same
  subscription and monitored-item requests as the collector's.

Counted for each consumer: the values received, the values lost and the session rebuilds. Every
write of the load tags stamps all of them with the same source time (a tick), so a value is
identified by (tag, tick); each consumer counts, per tick, the tags whose value for that tick it
received (a tag's value counts once: a repeat after a reconnect is not news). A tick someone
received was served; the values a consumer lost are, over the ticks of the measured window, the
tags it did not receive. The window opens once both consumers have every tag's first value and
``--warmup`` has passed; after the last stall the server runs ``--drain`` seconds more, and the
window ends half a drain before the last tick anyone received. The server's session count is
sampled between stalls (its maximum is reported: one session per consumer is 2).

Nothing here asserts a time; ``--check`` exits 1 when the collector rebuilt a session, lost a value
or the server held more sessions than consumers. Run: ``.venv/bin/python bench/opcua_stall.py``
(about 11 minutes); ``--minutes 2`` for a quick look.
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
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncua import Client
from asyncua.common.subscription import DataChangeEvent

from bench.common import code_revision, today
from bench.opcua import (
    HOST,
    ServerProcess,
    Settings,
    _quiet_logs,
    load_source,
    subscribe_load_tags,
)
from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from plantstream.records import Reading

__all__ = ["Received", "main", "measure"]

CODE_PATHS = ["collectors/opcua.py", "bench/opcua_stall.py", "bench/opcua.py"]
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
    """What one consumer received: per tick, how many distinct tags; and how often it lost its session."""

    kind: str
    per_tick: Tally[datetime] = field(default_factory=Tally)
    last: dict[Any, datetime] = field(default_factory=dict)
    repeats: int = 0
    session_losses: int = 0
    subscriptions_recreated: int = 0
    dropped: int = 0

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
            if received.kind != "collector":
                continue
            if received.session_losses:
                out.append(f"the collector rebuilt its session {received.session_losses} times")
            if lost:
                out.append(f"the collector lost {lost:,} values")
        if self.max_sessions > len(self.consumers):
            out.append(f"the server held {self.max_sessions} sessions for {len(self.consumers)} consumers")
        return out


def _tick(moment: datetime | None) -> datetime | None:
    """A source time as a comparable tick (asyncua may hand out naive UTC, the collector aware)."""
    return None if moment is None else moment.replace(tzinfo=None)


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


async def measure(
    settings: Settings, minutes: float, stall_s: float, every_s: float, drain_s: float, log: Any = sys.stdout
) -> Result:
    """Serve, run both consumers, stall the server on schedule, and count (see the module docstring)."""
    loop = asyncio.get_running_loop()
    total_s = settings.warmup_s + minutes * 60 + drain_s
    raw, collector = Received("raw"), Received("collector")
    stop = asyncio.Event()
    max_sessions = 0
    stalls = 0
    async with ServerProcess(settings.tags, settings.rate, total_s + 120) as server:
        with tempfile.TemporaryDirectory(prefix="plantstream-bench-stall-") as state_dir:
            tasks = [
                asyncio.create_task(_raw(server.endpoint, settings, raw, stop)),
                asyncio.create_task(_collector(server.endpoint, settings, collector, stop, Path(state_dir))),
            ]
            try:
                deadline = loop.time() + settings.connect_timeout_s
                while (
                    raw.complete_since(settings.tags) is None
                    or collector.complete_since(settings.tags) is None
                ):
                    for task in tasks:
                        if task.done():
                            task.result()
                    if loop.time() > deadline:
                        raise TimeoutError("the consumers did not receive every tag in time")
                    await asyncio.sleep(0.5)
                await asyncio.sleep(settings.warmup_s)
                opened = max(*raw.per_tick, *collector.per_tick)
                print(f"window opens at tick {opened.isoformat()}", file=log, flush=True)
                started = loop.time()
                while loop.time() - started < minutes * 60:
                    max_sessions = max(max_sessions, (await server.stats()).sessions)
                    await asyncio.sleep(max(0.0, every_s - stall_s))
                    os.kill(server.pid, signal.SIGSTOP)
                    try:
                        await asyncio.sleep(stall_s)
                    finally:
                        os.kill(server.pid, signal.SIGCONT)
                    stalls += 1
                    print(
                        f"stall {stalls}: raw lost its session {raw.session_losses}×, collector "
                        f"{collector.session_losses}×; server sessions up to {max_sessions}",
                        file=log,
                        flush=True,
                    )
                await asyncio.sleep(drain_s)
                max_sessions = max(max_sessions, (await server.stats()).sessions)
            finally:
                stop.set()
                await asyncio.wait(tasks, timeout=30)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    # Ticks in the window: served (someone received them) between the opening and the drain.
    served = sorted(set(raw.per_tick) | set(collector.per_tick))
    closed = served[-1] if served else opened
    window = [t for t in served if opened < t and (closed - t).total_seconds() > drain_s / 2]
    consumers = []
    for received in (raw, collector):
        got = sum(min(received.per_tick.get(t, 0), settings.tags) for t in window)
        consumers.append((received, got, len(window) * settings.tags - got))
    return Result(len(window), settings.tags, consumers, max_sessions, stalls)


def report(result: Result, out: Any) -> None:
    """The result as a table (also what docs/benchmarks.md records)."""
    served = result.ticks * result.tags
    print(
        f"\n{result.stalls} stalls; {result.ticks:,} ticks x {result.tags} tags = {served:,} values served "
        f"in the window; the server held at most {result.max_sessions} sessions (2 consumers)\n",
        file=out,
    )
    header = ("consumer", "received", "lost", "session losses", "subscriptions re-created", "same tick again")
    print("| " + " | ".join(header) + " |", file=out)
    print("|---" * len(header) + "|", file=out)
    for received, got, lost in result.consumers:
        print(
            f"| {received.kind} | {got:,} ({got / served:.2%}) | {lost:,} | {received.session_losses} "
            f"| {received.subscriptions_recreated} | {received.repeats:,} |",
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
    parser.add_argument("--check", action="store_true", help="exit 1 when the collector misses the target")
    args = parser.parse_args(argv)
    if not 0 < args.stall < args.every:
        parser.error("--stall must be > 0 and shorter than --every")
    return args


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
        result = asyncio.run(measure(settings, args.minutes, args.stall, args.every, args.drain))
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report(result, sys.stdout)
    failures = result.failures()
    for failure in failures:
        print(f"MISS: {failure}")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
