"""OPC UA collector throughput and memory against a raw asyncua client, side by side in one run.

What is measured (docs/benchmarks.md has the results and the command):

- **raw**: an ``asyncua.Client`` with one subscription on the simulator's ``--tags`` load tags
  (``nsu=urn:plantstream:simulator;s=load.tag<k>``, Double, written at ``--rate`` Hz), consumed
  through the subscription's async iterator; for each event it only counts the
  ``DataChangeEvent`` s, nothing else;
- **collector**: :class:`collectors.opcua.OpcUaCollector` with a source over the same tags,
  counting the readings it hands over as the embedded pipeline takes them: lists of
  :class:`~plantstream.records.ReadingTuple` from ``tuples()``, each counted (until
  2026-12-03 it counted :class:`~plantstream.records.Reading` objects from ``readings()``, one
  queue call and one object each: ``--api readings`` measures that still).

Both ask for the same things: a publishing interval of 100 ms, monitored items sampled every
100 ms with a server-side queue of 10 (discard oldest) and the collector's data-change filter
(status and value, no deadband), created in batches of at most 1 000 (the collector's default
``max_items_per_call``), and the same bound and overflow policy on asyncua's iterator queue
(``4 × queue.size``, drop the oldest). The collector also monitors the server's clock once a
second (its watchdog), which the raw client does not.

The server is the simulator (:class:`runtimes.simulator.SimulatorServer`, one generic machine plus
the load tags) in a **separate process** started by this script (``--serve``), so its work does not
compete with the consumer inside the measuring process's event loop; with 2 cores each gets one.
The server process answers ``stats`` on its stdin with how many load values it has written, so the
rate it actually served in each timed window is reported beside the offered rate
(``tags × rate``): a pure-Python server may not keep up with the offer, and then neither consumer
can receive more than it serves.

In that process asyncua's server is patched to keep each monitored item's last value by reference
instead of deep-copying every written value for every monitored item
(:func:`_keep_monitored_values_by_reference`). Unpatched, that copy makes one write cost about
five times as much, the server cannot serve 2 000 tags at 10 Hz on one core, and the simulator's
real-time loop (which does not yield while it is behind) then starves everything else in that
process: clients stop receiving and are disconnected. ``--stock-server`` runs it unpatched. The
measuring process always runs asyncua unchanged.

Method: raw and collector rounds alternate ``--repeat`` times (default 3). In each round the
consumer connects and subscribes; once it has counted the initial value of every tag (the
collector also reads every current value at once) it is left ``--warmup`` seconds to work off
that catch-up, then it is timed for ``--seconds`` (default 20). The best round of each kind is
kept and the result is the ratio collector/raw, because the machine is shared and absolute rates
drift. The CPU time this process used in the window is reported too (microseconds per item), and
the server's. Nothing here asserts a wall-clock time; ``--check`` is for a person (or a dedicated
job) who wants a non-zero exit on a miss.

Memory: ``--soak`` seconds (default 300) of the collector alone against the same server, sampling
this process's resident set size (``/proc/self/statm``) every ``--soak-interval`` seconds (default
10). Reported: the first, last and largest sample, the growth over the second half and the slope
(least squares, MiB per minute) over the second half; RSS is called flat when the second half grew
by less than :data:`FLAT_MIB`.

Every wait is bounded: connecting and the first values within ``--connect-timeout``, each timed
window by its length, the server process by a duration of its own (it also stops when this process
closes its stdin), its answers to ``stats`` within :data:`STATS_TIMEOUT_S`.

Run: ``.venv/bin/python bench/opcua.py`` (about 9 minutes); ``--seconds 5 --repeat 1 --soak 30``
for a quick run; ``--profile`` for a cProfile of one timed raw and one timed collector window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import logging
import math
import os
import platform
import resource
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, Subscription

from bench.common import (
    code_revision,
    dies_with_bench,
    print_report_tail,
    profile_text,
    stop_on_sigterm,
    stop_task,
    timed_window,
    today,
)
from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from plantstream.plant.schema import OpcUaSource
from runtimes.simulator import NAMESPACE_URI, SimulatorOptions, SimulatorServer

__all__ = [
    "BenchResult",
    "Counter",
    "Round",
    "ServerProcess",
    "ServerStats",
    "Settings",
    "Soak",
    "consume_collector",
    "consume_raw",
    "load_source",
    "main",
    "measure",
    "monitored_item_requests",
    "profile_round",
    "rss_bytes",
    "run_round",
    "run_soak",
    "serve",
    "subscribe_load_tags",
    "table_row",
]

HOST = "127.0.0.1"
"""The simulator listens on loopback only, and every client connects there."""

DEFAULT_TAGS = 2_000
DEFAULT_RATE = 10.0
DEFAULT_SECONDS = 20.0
DEFAULT_REPEAT = 3
DEFAULT_WARMUP = 3.0
DEFAULT_SOAK = 300.0
DEFAULT_SOAK_INTERVAL = 10.0
DEFAULT_CONNECT_TIMEOUT = 90.0
TARGET_RATIO = 0.9
FLAT_MIB = 4.0
"""RSS is "flat" when it grew by less than this over the second half of the soak."""

STATS_TIMEOUT_S = 30.0
"""How long the server process may take to answer ``stats`` (its loop may be busy writing)."""

Kind = Literal["raw", "collector"]
KINDS: tuple[Kind, Kind] = ("raw", "collector")
_MIB = 2**20


# -- settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What is served and how it is subscribed to, for both consumers alike."""

    tags: int = DEFAULT_TAGS
    rate: float = DEFAULT_RATE
    seconds: float = DEFAULT_SECONDS
    warmup_s: float = DEFAULT_WARMUP
    publishing_ms: float = 100.0
    sampling_ms: float = 100.0
    queue_size: int = 10
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT
    stock_server: bool = False
    """Serve with asyncua's server unpatched (it deep-copies every monitored value)."""
    collector_api: Literal["tuples", "readings"] = "tuples"
    """How the collector's readings are taken: ``tuples()`` lists, as the embedded pipeline takes
    them, or ``readings()`` one :class:`~plantstream.records.Reading` at a time."""

    def __post_init__(self) -> None:
        if self.tags < 1:
            raise ValueError(f"tags must be at least 1, got {self.tags}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be > 0 Hz, got {self.rate}")
        if not self.seconds > 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if not self.warmup_s >= 0:
            raise ValueError(f"warmup must be >= 0 s, got {self.warmup_s}")

    @property
    def offered(self) -> float:
        """Values the simulator is asked to write per second: ``tags × rate``."""
        return self.tags * self.rate


def load_source(endpoint: str, settings: Settings) -> OpcUaSource:
    """The collector's source: the ``tags`` load tags by namespace URI, one subscription group.

    Security mode None (the simulator offers nothing else); every other setting is the plant-file
    default except the intervals and the server-side queue, which come from ``settings``.
    """
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "bench",
            "endpoint": endpoint,
            "security": {"mode": "None", "allow_insecure": True},
            "groups": [
                {
                    "publishing_interval_ms": settings.publishing_ms,
                    "sampling_interval_ms": settings.sampling_ms,
                    "queue_size": settings.queue_size,
                    "tags": [
                        {"node": f"nsu={NAMESPACE_URI};s=load.tag{k}", "machine": "load", "signal": f"tag{k}"}
                        for k in range(1, settings.tags + 1)
                    ],
                }
            ],
        }
    )


def rss_bytes() -> int:
    """This process's resident set size now, in bytes (peak RSS where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# -- the server process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerStats:
    """One answer of the server process to ``stats``."""

    t: float
    """The server's monotonic clock, in seconds."""
    load_writes: int
    late_steps: int
    cpu_s: float
    """User plus system CPU time of the server process so far."""
    clock_offset_s: float = 0.0
    """The server's wall clock minus its simulated clock, in seconds (see :func:`serve`)."""
    sessions: int = 0
    """Client sessions the server holds, those whose connection is gone included."""


def _keep_monitored_values_by_reference() -> None:
    """Make asyncua's server keep each monitored item's last value by reference, not a deep copy.

    ``MonitoredItemValues.set_current_datavalue`` deep-copies every written ``DataValue`` for every
    monitored item (asyncua PR #1243, so that a value mutated in place still counts as a change).
    With 2 000 items at 10 Hz that copy is about four fifths of the server's work and the server
    cannot serve the offered rate on one core. The simulator writes a new ``DataValue`` every time
    and never mutates one, so a reference behaves identically here. Only the ``--serve`` process is
    patched; the measuring process (raw client and collector) runs asyncua unchanged.
    """
    from asyncua.server import monitored_item_service  # noqa: PLC0415 - only the server process

    def set_current_datavalue(self: Any, cur_val: ua.DataValue) -> None:
        self.old_dvalue = self.current_dvalue
        self.current_dvalue = cur_val

    monitored_item_service.MonitoredItemValues.set_current_datavalue = set_current_datavalue


async def serve(
    tags: int, rate: float, port: int, duration: float, *, stock: bool = False, machines: int = 1
) -> None:
    """The ``--serve`` process: run the simulator, answer ``stats`` on stdin, stop on EOF.

    Prints one JSON line ``{"endpoint": ..., "clock_offset_s": ...}`` when the server listens,
    then one JSON line of :class:`ServerStats` for every ``stats`` line read. Stops when stdin
    closes, on ``stop``, or after ``duration`` seconds, whichever comes first. Unless ``stock``,
    asyncua's server keeps monitored values by reference
    (:func:`_keep_monitored_values_by_reference`). ``machines`` generic machines are simulated
    beside the load tags, at speed 1.

    ``clock_offset_s`` is this process's wall clock minus the simulated clock that stamps every
    SourceTimestamp (the simulator starts at a whole second, before its address space is built,
    and then advances by the monotonic clock). Adding it to a source timestamp gives the wall-clock
    instant the value was written, on the clock every process on this machine shares.
    """
    if not stock:
        _keep_monitored_values_by_reference()
    options = SimulatorOptions(
        machines=machines, host=HOST, port=port, tags=tags, rate=rate, duration=duration
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async with SimulatorServer(options) as sim:
            ready = {
                "endpoint": sim.endpoint,
                "namespace_index": sim.namespace_index,
                "clock_offset_s": _clock_offset_s(sim),
            }
            print(json.dumps(ready), flush=True)

            async def answer() -> None:
                while True:
                    line = await reader.readline()
                    if not line or line.strip() == b"stop":
                        return
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    stats = {
                        "t": loop.time(),
                        "load_writes": sim.stats.load_writes,
                        "late_steps": sim.stats.late_steps,
                        "cpu_s": usage.ru_utime + usage.ru_stime,
                        "clock_offset_s": _clock_offset_s(sim),
                        "sessions": _sessions(sim),
                    }
                    print(json.dumps(stats), flush=True)

            waiters = [asyncio.create_task(answer()), asyncio.create_task(sim.finished())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
    finally:
        transport.close()


def _sessions(sim: SimulatorServer) -> int:
    """The sessions asyncua's server holds (it keeps no count in its diagnostics nodes)."""
    server = sim._server
    return len(server.iserver._external_sessions) if server is not None else 0


def _clock_offset_s(sim: SimulatorServer) -> float:
    return (datetime.now(tz=UTC) - sim.simulated_now()).total_seconds()


class ServerProcess:
    """The simulator in a child process (``bench/opcua.py --serve``), as an async context manager.

    Args:
        tags: load tags to serve.
        rate: how often they are written, in Hz.
        duration: the child stops by itself after this many seconds whatever happens here.
        stock: run asyncua's server unpatched (see :func:`_keep_monitored_values_by_reference`).
        start_timeout_s: how long building the address space and listening may take.
        machines: generic simulated machines served beside the load tags.
    """

    def __init__(
        self,
        tags: int,
        rate: float,
        duration: float,
        *,
        stock: bool = False,
        start_timeout_s: float = 120.0,
        machines: int = 1,
    ) -> None:
        self.tags = tags
        self.rate = rate
        self.duration = duration
        self.stock = stock
        self.start_timeout_s = start_timeout_s
        self.machines = machines
        self.endpoint = ""
        self.clock_offset_s = 0.0
        """The child's wall clock minus its simulated clock when it became ready (see :func:`serve`)."""
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ServerProcess:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "--tags",
            str(self.tags),
            "--rate",
            repr(self.rate),
            "--duration",
            repr(self.duration),
            "--machines",
            str(self.machines),
            *(["--stock-server"] if self.stock else []),
        ]
        # Forked from the loop's thread (the main thread of a bench), which lives as long as the bench.
        self._proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, **dies_with_bench()
        )
        try:
            ready = await self._line(self.start_timeout_s)
            self.endpoint = str(ready["endpoint"])
            self.clock_offset_s = float(ready["clock_offset_s"])
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._proc is not None
        return self._proc.pid

    async def stats(self) -> ServerStats:
        """Ask the child how much it has written so far."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(b"stats\n")
        await self._proc.stdin.drain()
        answer = await self._line(STATS_TIMEOUT_S)
        return ServerStats(
            float(answer["t"]),
            int(answer["load_writes"]),
            int(answer["late_steps"]),
            float(answer["cpu_s"]),
            float(answer["clock_offset_s"]),
            int(answer["sessions"]),
        )

    async def _line(self, timeout_s: float) -> dict[str, Any]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"the simulator process did not answer within {timeout_s:g} s: its event loop is saturated"
            ) from None
        if not line:
            raise RuntimeError(f"the simulator process ended (exit status {await self._proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(OSError):
                await proc.stdin.wait_closed()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- the consumers --------------------------------------------------------------------------------


class Counter:
    """What a consumer has counted so far (notifications or readings) and what it saw dropped."""

    def __init__(self) -> None:
        self.n = 0
        self.dropped = 0
        """Events asyncua's iterator queue dropped (raw) or events plus readings (collector)."""
        self.detail: dict[str, int] = {}
        self.latency_s: array[float] | None = None
        """With ``latency_s`` set, the raw client samples latencies into it while ``timing`` is set."""
        self.timing = False
        self.clock_offset_s = 0.0


LATENCY_SAMPLE_EVERY = 10
"""The raw client times every tenth notification (when asked), so timing costs it next to nothing."""


def monitored_item_requests(
    nodes: Sequence[ua.NodeId], settings: Settings, first_handle: int = 100
) -> list[ua.MonitoredItemCreateRequest]:
    """Requests equal to the collector's for its default group settings and ``settings``."""
    requests = []
    for handle, node in enumerate(nodes, start=first_handle):
        target = ua.ReadValueId()
        target.NodeId = node
        target.AttributeId = ua.AttributeIds.Value
        params = ua.MonitoringParameters()
        params.ClientHandle = handle
        params.SamplingInterval = settings.sampling_ms
        params.QueueSize = settings.queue_size
        params.DiscardOldest = True
        change = ua.DataChangeFilter()
        change.Trigger = ua.DataChangeTrigger.StatusValue
        change.DeadbandType = ua.DeadbandType.None_
        change.DeadbandValue = 0.0
        params.Filter = change
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = target
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        requests.append(request)
    return requests


async def subscribe_load_tags(
    client: Client, settings: Settings, on_drop: Callable[[], None] | None = None
) -> Subscription:
    """One subscription of ``client`` to the load tags, asked for as the collector asks.

    The same publishing interval, monitored-item requests (:func:`monitored_item_requests`),
    batches of ``max_items_per_call`` and iterator queue (``4 × queue.size``, drop the oldest) as
    :func:`load_source`'s collector; ``on_drop`` is called for each event that queue drops.
    """
    source = load_source(client.server_url.geturl(), settings)
    ns = await client.get_namespace_index(NAMESPACE_URI)
    nodes = [ua.NodeId(f"load.tag{k}", ns) for k in range(1, settings.tags + 1)]
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = settings.publishing_ms
    params.RequestedLifetimeCount = 10_000
    params.RequestedMaxKeepAliveCount = 10
    params.PublishingEnabled = True
    sub = await client.create_subscription(
        params, queue_maxsize=4 * source.queue.size, overflow=OverflowPolicy.DROP_OLDEST
    )
    if on_drop is not None:
        overflow = sub._handle_overflow

        def counted(event: Any) -> None:
            on_drop()
            overflow(event)

        sub._handle_overflow = counted
    requests = monitored_item_requests(nodes, settings)
    limit = source.max_items_per_call
    for start in range(0, len(requests), limit):
        await sub.create_monitored_items(requests[start : start + limit])
    return sub


async def consume_raw(endpoint: str, settings: Settings, counter: Counter, stop: asyncio.Event) -> None:
    """Subscribe to the load tags with a bare asyncua client and count data changes until ``stop``."""
    source = load_source(endpoint, settings)
    async with Client(endpoint, timeout=source.timeout_s) as client:

        def dropped() -> None:
            counter.dropped += 1

        sub = await subscribe_load_tags(client, settings, dropped)
        counting = asyncio.create_task(_count_events(sub, counter))
        try:
            await stop.wait()
        finally:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting
            with contextlib.suppress(ua.UaError, OSError, TimeoutError):
                await asyncio.wait_for(sub.delete(), 5)


async def _count_events(sub: Subscription, counter: Counter) -> None:
    async for event in sub:
        if isinstance(event, DataChangeEvent):
            counter.n += 1
            if counter.timing and counter.n % LATENCY_SAMPLE_EVERY == 0:
                _sample_latency(event, counter)


def _sample_latency(event: DataChangeEvent, counter: Counter) -> None:
    """Receipt time minus the value's source time (shifted onto the wall clock, see :func:`serve`)."""
    source = event.data.monitored_item.Value.SourceTimestamp
    if source is not None and counter.latency_s is not None:
        source_s = source.replace(tzinfo=UTC).timestamp() + counter.clock_offset_s
        counter.latency_s.append(time.time() - source_s)


async def consume_collector(
    endpoint: str, settings: Settings, counter: Counter, stop: asyncio.Event, state_dir: Path
) -> None:
    """Run the collector over the load tags and count the readings it yields until ``stop``."""
    source = load_source(endpoint, settings)
    async with OpcUaCollector(source, backoff=Backoff(0.2, 2.0), state_dir=state_dir) as collector:
        counting = asyncio.create_task(_count_readings(collector, counter, settings.collector_api))
        try:
            await stop.wait()
        finally:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting
            health = collector.health
            counter.dropped = health.dropped_events + collector.dropped
            counter.detail = {
                "notifications": health.notifications,
                "readings": health.readings,
                "dropped_events": health.dropped_events,
                "queue_dropped": collector.dropped,
                "reconnects": health.reconnects,
                "items_ok": health.items_ok,
                "items_failed": len(health.items_failed),
            }


_TAKEN_AT_ONCE = 1_000
"""The most readings one ``tuples()`` list holds: the embedded pipeline's hand-over size."""


async def _count_readings(collector: OpcUaCollector, counter: Counter, api: str) -> None:
    if api == "readings":
        async for _ in collector.readings():
            counter.n += 1
        return
    async for batch in collector.tuples(_TAKEN_AT_ONCE):
        counter.n += len(batch)


def _consumer(
    kind: Kind, endpoint: str, settings: Settings, counter: Counter, stop: asyncio.Event, state_dir: Path
) -> Coroutine[Any, Any, None]:
    if kind == "raw":
        return consume_raw(endpoint, settings, counter, stop)
    return consume_collector(endpoint, settings, counter, stop, state_dir)


# -- one round ------------------------------------------------------------------------------------


@dataclass
class Round:
    """One timed window of one consumer."""

    kind: Kind
    seconds: float
    count: int
    served: int
    """Load values the server wrote during the window."""
    server_seconds: float
    client_cpu_s: float
    server_cpu_s: float
    late_steps: int
    per_second: list[int] = field(default_factory=list)
    dropped: int = 0
    detail: dict[str, int] = field(default_factory=dict)
    connect_s: float = 0.0
    """From the start of the round until every tag's first value was counted."""
    latency_s: array[float] | None = None
    """Sampled latencies from source time to receipt, seconds (raw rounds asked for them)."""

    @property
    def rate(self) -> float:
        """Items counted per second of the window."""
        return self.count / self.seconds

    @property
    def served_rate(self) -> float:
        """Values the server wrote per second of the window (its own clock)."""
        return self.served / self.server_seconds if self.server_seconds > 0 else 0.0

    @property
    def delivered(self) -> float:
        """Items counted over values the server wrote in the window (about 1 when keeping up).

        Publishing in batches of up to ``tags`` values makes this move by a few per cent per round.
        """
        expected = self.served_rate * self.seconds
        return self.count / expected if expected else 0.0

    @property
    def client_cpu_share(self) -> float:
        """CPU time of this process over the window's wall time (1.0 is one core)."""
        return self.client_cpu_s / self.seconds

    @property
    def server_cpu_share(self) -> float:
        """CPU time of the server process over the window's wall time."""
        return self.server_cpu_s / self.server_seconds if self.server_seconds > 0 else 0.0

    @property
    def cpu_us_per_item(self) -> float:
        """This process's CPU microseconds per item counted (the cost of the consumer's path)."""
        return 1e6 * self.client_cpu_s / self.count if self.count else math.inf


async def _first_values(counter: Counter, task: asyncio.Task[None], wanted: int, timeout_s: float) -> None:
    """Wait until ``counter`` reaches ``wanted`` (the initial values), the task fails, or time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while counter.n < wanted:
        if task.done():
            task.result()  # its failure, if it failed
            raise RuntimeError("the consumer stopped before receiving the first values")
        if loop.time() > deadline:
            raise TimeoutError(f"only {counter.n} of the {wanted} first values arrived in {timeout_s:g} s")
        await asyncio.sleep(0.05)


async def run_round(
    kind: Kind,
    server: ServerProcess,
    settings: Settings,
    *,
    profiler: cProfile.Profile | None = None,
    latencies: bool = False,
) -> Round:
    """Connect ``kind``, let it catch up, then time it for ``settings.seconds``; disconnect.

    With ``profiler``, the profiler is enabled for the timed window only. With ``latencies``, a
    raw client samples the latency from source time to receipt (:attr:`Round.latency_s`).
    """
    loop = asyncio.get_running_loop()
    counter = Counter()
    if latencies and kind == "raw":
        counter.latency_s = array("d")
    stop = asyncio.Event()
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="plantstream-bench-opcua-") as state_dir:
        started = loop.time()
        task = asyncio.create_task(_consumer(kind, server.endpoint, settings, counter, stop, Path(state_dir)))
        try:
            await _first_values(counter, task, settings.tags, settings.connect_timeout_s)
            connect_s = loop.time() - started
            await asyncio.sleep(settings.warmup_s)
            before = await server.stats()
            counter.clock_offset_s = before.clock_offset_s
            window = await timed_window(settings.seconds, lambda: counter.n, counter, profiler)
            after = await server.stats()
        finally:
            await stop_task(task, stop, 30)
        task.result()
    return Round(
        kind,
        window.wall_s,
        window.count,
        after.load_writes - before.load_writes,
        after.t - before.t,
        window.cpu_s,
        after.cpu_s - before.cpu_s,
        after.late_steps - before.late_steps,
        window.per_second,
        counter.dropped,
        counter.detail,
        connect_s,
        counter.latency_s,
    )


def describe(r: Round) -> str:
    """One line about a round, for the log."""
    low, high = (min(r.per_second), max(r.per_second)) if r.per_second else (0, 0)
    extra = f", {r.dropped:,} dropped" if r.dropped else ""
    return (
        f"{r.kind:9} {r.rate:9,.0f}/s (per second {low:,}-{high:,}; served {r.served_rate:,.0f}/s, "
        f"delivered {r.delivered:.1%}{extra}); "
        f"CPU here {r.client_cpu_share:.0%} ({r.cpu_us_per_item:.1f} µs/item), "
        f"server {r.server_cpu_share:.0%}; connect and first values {r.connect_s:.1f} s"
    )


# -- the soak -------------------------------------------------------------------------------------


@dataclass
class Soak:
    """RSS samples of this process while the collector alone runs for a while."""

    seconds: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the first sample, RSS bytes)."""
    readings: int = 0
    dropped: int = 0
    detail: dict[str, int] = field(default_factory=dict)

    @property
    def first_mib(self) -> float:
        """The first sample, MiB."""
        return self.samples[0][1] / _MIB

    @property
    def last_mib(self) -> float:
        """The last sample, MiB."""
        return self.samples[-1][1] / _MIB

    @property
    def max_mib(self) -> float:
        """The largest sample, MiB."""
        return max(rss for _, rss in self.samples) / _MIB

    def _second_half(self) -> list[tuple[float, int]]:
        end = self.samples[-1][0]
        return [(t, rss) for t, rss in self.samples if t >= end / 2]

    @property
    def growth_mib(self) -> float:
        """RSS at the end minus RSS at the first sample of the second half, MiB."""
        half = self._second_half()
        return (half[-1][1] - half[0][1]) / _MIB

    @property
    def slope_mib_per_min(self) -> float:
        """Least-squares slope of RSS over the second half, MiB per minute (0 with < 2 samples)."""
        half = self._second_half()
        if len(half) < 2:
            return 0.0
        mean_t = sum(t for t, _ in half) / len(half)
        mean_r = sum(r for _, r in half) / len(half)
        var = sum((t - mean_t) ** 2 for t, _ in half)
        if var == 0:
            return 0.0
        cov = sum((t - mean_t) * (r - mean_r) for t, r in half)
        return cov / var * 60 / _MIB

    @property
    def flat(self) -> bool:
        """Whether RSS grew by less than :data:`FLAT_MIB` over the second half."""
        return self.growth_mib < FLAT_MIB

    @property
    def rate(self) -> float:
        """Readings per second over the soak."""
        return self.readings / self.seconds if self.seconds else 0.0


async def run_soak(
    server: ServerProcess,
    settings: Settings,
    seconds: float,
    interval_s: float = DEFAULT_SOAK_INTERVAL,
    log: TextIO | None = None,
) -> Soak:
    """Run the collector alone for ``seconds`` after its catch-up; sample RSS every ``interval_s``."""
    loop = asyncio.get_running_loop()
    counter = Counter()
    stop = asyncio.Event()
    result = Soak(seconds)
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="plantstream-bench-opcua-") as state_dir:
        task = asyncio.create_task(
            consume_collector(server.endpoint, settings, counter, stop, Path(state_dir))
        )
        try:
            await _first_values(counter, task, settings.tags, settings.connect_timeout_s)
            await asyncio.sleep(settings.warmup_s)
            c0, t0 = counter.n, loop.time()
            result.samples.append((0.0, rss_bytes()))
            samples = max(1, math.ceil(seconds / interval_s))
            for k in range(1, samples + 1):
                offset = min(k * interval_s, seconds)
                await asyncio.sleep(max(0.0, t0 + offset - loop.time()))
                if task.done():
                    task.result()
                    raise RuntimeError("the collector stopped during the soak")
                result.samples.append((loop.time() - t0, rss_bytes()))
                if log is not None:
                    print(
                        f"soak {offset:5.0f}/{seconds:g} s: RSS {result.samples[-1][1] / _MIB:7.1f} MiB, "
                        f"{counter.n - c0:,} readings",
                        file=log,
                        flush=True,
                    )
            result.seconds = loop.time() - t0
            result.readings = counter.n - c0
        finally:
            await stop_task(task, stop, 30)
        task.result()
    result.dropped = counter.dropped
    result.detail = counter.detail
    return result


# -- the whole run --------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """Every round of both kinds, and the soak if there was one."""

    settings: Settings
    raw: list[Round] = field(default_factory=list)
    collector: list[Round] = field(default_factory=list)
    soak: Soak | None = None

    @property
    def best_raw(self) -> Round:
        """The raw round with the highest rate."""
        return max(self.raw, key=lambda r: r.rate)

    @property
    def best_collector(self) -> Round:
        """The collector round with the highest rate."""
        return max(self.collector, key=lambda r: r.rate)

    @property
    def ratio(self) -> float:
        """Best collector readings/s over best raw notifications/s (NaN if the raw client counted nothing)."""
        raw = self.best_raw.rate
        return self.best_collector.rate / raw if raw else math.nan

    @property
    def served_rate(self) -> float:
        """The best rate the server achieved in any window (what it could serve at most)."""
        return max(r.served_rate for r in self.raw + self.collector)

    def verdicts(self) -> list[str]:
        """Plain statements about the offered rate: who kept up with what."""
        offered = self.settings.offered
        out = []
        served = self.served_rate
        if served < 0.95 * offered:
            out.append(
                f"the simulator served at most {served:,.0f} values/s, {served / offered:.0%} of the "
                f"{offered:,.0f}/s offered: the server, not the consumers, limits both rates"
            )
        for r in self.collector:
            if r.detail.get("reconnects"):
                out.append(f"the collector reconnected {r.detail['reconnects']} times in a timed round")
        if self.soak is not None and self.soak.detail.get("reconnects"):
            out.append(
                f"the collector reconnected {self.soak.detail['reconnects']} times during the soak "
                "(the server stopped answering in time): the RSS samples include the catch-up after it"
            )
        for name, best in (("raw client", self.best_raw), ("collector", self.best_collector)):
            if best.rate < 0.95 * offered:
                out.append(
                    f"the {name} did not keep up with the offered rate "
                    f"({best.rate:,.0f}/s of {offered:,.0f}/s)"
                )
        return out

    def failures(self) -> list[str]:
        """The targets missed (empty when met)."""
        out = []
        if self.ratio < TARGET_RATIO:
            out.append(f"ratio {self.ratio:.2f} < {TARGET_RATIO}")
        if self.soak is not None and not self.soak.flat:
            out.append(f"RSS grew {self.soak.growth_mib:.1f} MiB over the second half of the soak")
        if any(r.count == 0 for r in self.raw + self.collector):
            out.append("a round counted nothing")
        return out


async def measure(
    settings: Settings,
    repeat: int = DEFAULT_REPEAT,
    *,
    soak_s: float = 0.0,
    soak_interval_s: float = DEFAULT_SOAK_INTERVAL,
    log: TextIO | None = None,
) -> BenchResult:
    """Start the server process, alternate raw and collector rounds, then soak the collector."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    per_round = settings.seconds + settings.warmup_s + settings.connect_timeout_s + 40
    duration = 2 * repeat * per_round + soak_s + settings.connect_timeout_s + 120
    result = BenchResult(settings)
    async with ServerProcess(settings.tags, settings.rate, duration, stock=settings.stock_server) as server:
        if log is not None:
            print(f"simulator process {server.pid} on {server.endpoint}", file=log, flush=True)
        for round_no in range(1, repeat + 1):
            for kind in KINDS:
                r = await run_round(kind, server, settings)
                (result.raw if kind == "raw" else result.collector).append(r)
                if log is not None:
                    print(f"round {round_no}/{repeat}: {describe(r)}", file=log, flush=True)
        if soak_s > 0:
            result.soak = await run_soak(server, settings, soak_s, soak_interval_s, log)
    return result


async def profile_round(settings: Settings, kind: Kind, top: int = 15) -> tuple[Round, str]:
    """One round of ``kind`` with its timed window under cProfile; the top ``top`` by tottime.

    Only this process is profiled (the server runs in its own). cProfile slows the consumer.
    """
    duration = settings.seconds + settings.warmup_s + 2 * settings.connect_timeout_s + 120
    profiler = cProfile.Profile()
    async with ServerProcess(settings.tags, settings.rate, duration, stock=settings.stock_server) as server:
        r = await run_round(kind, server, settings, profiler=profiler)
    return r, profile_text(profiler, top)


# -- the command ----------------------------------------------------------------------------------

CODE_PATHS = ("collectors", "runtimes", "plantstream")
"""A change to these makes the measured code ``+dirty``."""

TABLE_HEADER = (
    "| date | tags | rate Hz | offered/s | served/s | raw notifications/s | collector readings/s | ratio "
    "| µs CPU per item raw / collector | RSS first / last / max MiB | RSS slope MiB/min (2nd half) |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def table_row(result: BenchResult, day: str) -> str:
    """One Markdown row under :data:`TABLE_HEADER`."""
    s = result.settings
    raw, col = result.best_raw, result.best_collector
    soak = result.soak
    memory = (
        f"{soak.first_mib:,.0f} / {soak.last_mib:,.0f} / {soak.max_mib:,.0f}" if soak is not None else "-"
    )
    slope = f"{soak.slope_mib_per_min:+.2f}" if soak is not None else "-"
    return (
        f"| {day} | {s.tags:,} | {s.rate:g} | {s.offered:,.0f} | {result.served_rate:,.0f} | "
        f"{raw.rate:,.0f} | {col.rate:,.0f} | {result.ratio:.2f} | "
        f"{raw.cpu_us_per_item:.1f} / {col.cpu_us_per_item:.1f} | {memory} | {slope} |"
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=DEFAULT_TAGS, help="load tags served and subscribed")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="writes per second of every tag")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="timed window of a round")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="rounds of each kind")
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP, help="untimed seconds after catch-up")
    parser.add_argument(
        "--soak",
        type=float,
        default=DEFAULT_SOAK,
        help="seconds of the collector alone, sampling RSS (0: none)",
    )
    parser.add_argument(
        "--soak-interval", type=float, default=DEFAULT_SOAK_INTERVAL, help="seconds between RSS samples"
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT,
        help="bound on connecting and receiving every tag's first value",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of measuring, profile the timed window of one raw and one collector round",
    )
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 unless ratio >= {TARGET_RATIO} and RSS is flat"
    )
    parser.add_argument(
        "--stock-server",
        action="store_true",
        help="serve with asyncua's server unpatched (it deep-copies every monitored value; see the docs)",
    )
    parser.add_argument(
        "--api",
        choices=("tuples", "readings"),
        default="tuples",
        help="how the collector's readings are taken: tuples() lists as the pipeline does (default), "
        "or readings() one Reading at a time",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument("--machines", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _report(result: BenchResult, out: TextIO) -> None:
    s = result.settings
    raw, col = result.best_raw, result.best_collector
    print(file=out)
    print(f"offered: {s.tags:,} tags × {s.rate:g} Hz = {s.offered:,.0f} values/s", file=out)
    print(f"served by the simulator (best window): {result.served_rate:,.0f} values/s", file=out)
    print(f"raw asyncua client:  {raw.rate:10,.0f} notifications/s (best of {len(result.raw)})", file=out)
    best_of = f"best of {len(result.collector)}"
    print(f"plantstream collector: {col.rate:8,.0f} readings/s via {s.collector_api}() ({best_of})", file=out)
    print(f"ratio collector/raw: {result.ratio:.3f}  (target >= {TARGET_RATIO})", file=out)
    print(
        "delivered / served per round: raw "
        + ", ".join(f"{r.delivered:.1%}" for r in result.raw)
        + "; collector "
        + ", ".join(f"{r.delivered:.1%}" for r in result.collector),
        file=out,
    )
    print(
        f"CPU of this process per item: raw {raw.cpu_us_per_item:.1f} µs, collector "
        f"{col.cpu_us_per_item:.1f} µs ({col.cpu_us_per_item / raw.cpu_us_per_item:.2f}×)",
        file=out,
    )
    if col.detail:
        print(f"collector health in its best round: {col.detail}", file=out)
    soak = result.soak
    if soak is not None:
        print(
            f"soak {soak.seconds:.0f} s, {soak.rate:,.0f} readings/s, {soak.dropped:,} dropped: "
            f"RSS first {soak.first_mib:.1f} MiB, last {soak.last_mib:.1f} MiB, max {soak.max_mib:.1f} MiB; "
            "second half "
            f"{soak.growth_mib:+.1f} MiB, slope {soak.slope_mib_per_min:+.3f} MiB/min -> "
            f"{'flat' if soak.flat else 'NOT flat'} (threshold {FLAT_MIB:g} MiB)",
            file=out,
        )
    for verdict in result.verdicts():
        print(f"note: {verdict}", file=out)


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # asyncua logs tracebacks for teardown races (a publish after the subscription was deleted);
    # the collector's own warnings (reconnects, failed items) stay visible.
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or profile, or serve), print the results; the exit status for ``--check``."""
    args = _arguments(argv)
    _quiet_logs()
    if args.serve:
        served = serve(
            args.tags, args.rate, args.port, args.duration, stock=args.stock_server, machines=args.machines
        )
        asyncio.run(served)
        return 0
    stop_on_sigterm()  # here, not in the simulator (--serve): the bench's cleanup stops it
    settings = Settings(
        tags=args.tags,
        rate=args.rate,
        seconds=args.seconds,
        warmup_s=args.warmup,
        connect_timeout_s=args.connect_timeout,
        stock_server=args.stock_server,
        collector_api=args.api,
    )
    if args.profile:
        for kind in KINDS:
            r, text = asyncio.run(profile_round(settings, kind))
            print(f"{kind} round under cProfile: {describe(r)}")
            print(text)
        return 0
    print(
        f"code {code_revision(CODE_PATHS)}, python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"simulator in its own process on {HOST}; {settings.tags:,} tags at {settings.rate:g} Hz; "
        f"publishing {settings.publishing_ms:g} ms, sampling {settings.sampling_ms:g} ms, queue "
        f"{settings.queue_size}; asyncua server {'stock' if settings.stock_server else 'patched'}; "
        f"{args.repeat} × {settings.seconds:g} s rounds of each kind, best kept; "
        f"soak {args.soak:g} s",
        flush=True,
    )
    try:
        result = asyncio.run(
            measure(
                settings, args.repeat, soak_s=args.soak, soak_interval_s=args.soak_interval, log=sys.stdout
            )
        )
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(result, sys.stdout)
    failures = result.failures()
    print_report_tail(TABLE_HEADER, table_row(result, today()), failures, sys.stdout)
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
