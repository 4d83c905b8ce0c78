"""The pipeline end to end (OPC UA server -> embedded or kafka runtime -> file sink) beside raw asyncua.

What is measured (docs/benchmarks.md has the results and the command):

- **server**: the OPC UA benchmark's simulator process (:class:`bench.opcua.ServerProcess`, the
  same patched asyncua server), serving ``--tags`` load tags written at ``--rate`` Hz plus
  ``--machines`` generic simulated machines (state, three counters, power, energy register);
- **raw** and **collector**: exactly :func:`bench.opcua.run_round`'s rounds (a bare asyncua
  subscription counting data changes; :class:`collectors.opcua.OpcUaCollector` alone);
- **pipeline** (``--runtimes embedded``, the default): :class:`runtimes.embedded.EmbeddedPipeline`
  with a plant file made for the run (:func:`bench.endtoend.plant_document`): one OPC UA source
  with the same group settings as the other two consumers over the load tags and the machines'
  signals; each load tag is the ``power_kw`` of a machine ``load<k>`` of line ``load`` (so the
  engine integrates it into energy and carbon windows), the simulated machines ``m<k>`` on line
  ``sim`` give OEE windows. The windows are ``--window`` seconds long (10 by default, shorter
  than a plant's minute so that a timed round sees several closes; that makes closes more
  frequent, not fewer); every other setting is the plant-file default (allowed lateness 5 s,
  raw readings recorded, checkpoints every 5 s with an fsync, the file sink on);
- **kafka** (``--runtimes kafka``, or ``embedded,kafka`` for both in one run): the same plant
  through ``collect``, ``process`` and ``sink`` on a Kafka node started for the run
  (:mod:`bench.pipeline_kafka` says how each role runs and why in processes of their own).

With ``--influxdb`` the embedded pipeline also has an ``influxdb`` sink writing to an InfluxDB OSS
1.12 node started for the run (:mod:`bench.influxdb_node`; raw readings at millisecond precision),
as ``plantstream run`` with the plant file's ``sinks:`` does; then the readings' count and latency
come from the sink's ``on_accepted`` hook instead of the file sink: **source -> accepted by the v2
write API**, what issue 18 asks for (OEE latencies stay at the file sink's write).

Per pipeline or kafka round, from the file sink's ``on_write`` hook (called after each batch is
flushed; in the kafka sink role after each batch's write and fsync returned):

- **readings/s end to end**: ``reading`` points of the load tags written per second of the window;
- **reading latency**: write time minus the reading's source timestamp, for every load-tag
  ``reading`` point written in the window (a load tag is written every period, so its source time
  is when it was written; a machine's state read again after a reconnect keeps an old one);
- **OEE latency** for every ``oee`` point of a window: from the window's close by the watermark
  (the wall-clock instant the engine took the reading that moved the watermark past the window's
  end, recorded by wrapping ``engine.push_raw``, or in the kafka ``process`` role its per-record
  steps) to the write (**close -> write**); and from that
  closing reading's source timestamp to the write (**source -> write**, what a dashboard sees).

One clock: the simulator stamps SourceTimestamp with its simulated clock, which at speed 1 runs at
wall-clock rate but starts at a whole second before the address space is built; the server
process reports the difference to its wall clock (``clock_offset_s``, :func:`bench.opcua.serve`)
and every source timestamp is shifted by it, so both ends of a latency are on the machine's wall
clock (``time.time()``, shared by the two processes).

Method: raw, collector, pipeline and kafka rounds alternate ``--repeat`` times (default 3)
against one server process; each connects, waits for every tag's first value, gets ``--warmup``
seconds, is timed for ``--seconds`` (default 20) and disconnects. The best round of each kind
gives the rates and the ratio to the raw client; latencies are pooled over every round's window
of a runtime (p50, p99, max). Targets (issue 5): embedded >= 80 % of the raw rate with p99 <= 1 s,
kafka roles >= 50 % with p99 <= 2 s. Nothing here asserts a time; ``--check`` exits 1 on a missed
target.

Run: ``.venv/bin/python bench/pipeline.py`` (about 5 minutes); ``--influxdb`` into InfluxDB;
``--runtimes embedded,kafka`` for
both runtimes; ``--seconds 5 --repeat 1`` for a quick run; ``--profile`` for a cProfile of one
timed round of the first runtime named.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from bench.common import (
    code_revision,
    print_report_tail,
    profile_text,
    stop_on_sigterm,
    stop_task,
    timed_window,
    today,
)
from bench.endtoend import (
    DEFAULT_MACHINES,
    DEFAULT_WINDOW_S,
    RUNTIMES,
    Kind,
    LatencyName,
    PipelineRound,
    PipelineSettings,
    Recorder,
    Runtime,
    bench_pipeline,
    describe_pipeline,
    percentile,
    plant_document,
    summary,
)
from bench.influxdb_node import InfluxNode
from bench.kafka_node import KAFKA_VERSION, KafkaBroker, free_port
from bench.opcua import (
    HOST,
    LATENCY_SAMPLE_EVERY,
    Round,
    ServerProcess,
    Settings,
    _first_values,
    _quiet_logs,
    describe,
    run_round,
)
from bench.pipeline_kafka import describe_cpu, run_kafka_round
from plantstream.records import EPOCH, Point, Reading
from runtimes.embedded import EmbeddedPipeline

__all__ = [
    "KAFKA_TABLE_HEADER",
    "TABLE_HEADER",
    "TARGETS",
    "BenchResult",
    "PipelineRound",
    "PipelineSettings",
    "Recorder",
    "main",
    "measure",
    "percentile",
    "plant_document",
    "profile_kafka",
    "profile_pipeline",
    "run_pipeline_round",
    "table_row",
]

_ONE_US = timedelta(microseconds=1)

TARGET_RATIO = 0.8
TARGET_P99_S = 1.0
KAFKA_TARGET_RATIO = 0.5
KAFKA_TARGET_P99_S = 2.0


def _watch_closes(pipeline: EmbeddedPipeline, recorder: Recorder) -> None:
    """Wrap the pipeline's batch step so the wall-clock time of a window close is known.

    Timed per batch, not per reading: a wrapper around every ``push`` cost the measured process
    about half a microsecond a reading. The close is placed at the batch's start and its source
    time at the batch's first reading, both no later than the push that closed it, so the OEE
    latencies reported are never less than the true ones.
    """
    engine = pipeline.engine
    take = pipeline._take

    def timed_take(readings: list[Reading]) -> list[Point]:
        started = time.time()
        points = take(readings)
        if engine.has_points and readings:
            recorder.pushed((readings[0].ts - EPOCH) // _ONE_US, started)
        return points

    pipeline._take = timed_take  # type: ignore[method-assign]


# -- one pipeline round ---------------------------------------------------------------------------


async def run_pipeline_round(
    server: ServerProcess,
    settings: PipelineSettings,
    *,
    profiler: cProfile.Profile | None = None,
    influx: InfluxNode | None = None,
) -> PipelineRound:
    """Start the pipeline on a fresh state directory, let it catch up, time it, stop it.

    With ``influx`` the pipeline also writes to it, and readings are timed at its acceptance.
    """
    loop = asyncio.get_running_loop()
    s = settings.opcua
    stop = asyncio.Event()
    url = influx.url if influx is not None else None
    async with bench_pipeline(server, settings, "plantstream-bench-pipeline-", url) as (pipeline, recorder):
        _watch_closes(pipeline, recorder)
        started = loop.time()
        task = asyncio.create_task(pipeline.run(stop))
        try:
            await _first_values(recorder, task, s.tags, s.connect_timeout_s)
            connect_s = loop.time() - started
            await asyncio.sleep(s.warmup_s)
            before = await server.stats()
            recorder.clock_offset_s = before.clock_offset_s
            window = await timed_window(s.seconds, lambda: recorder.timed, recorder, profiler)
            after = await server.stats()
        finally:
            await stop_task(task, stop, 60)
        stats = task.result()
    [collector] = pipeline.collectors
    health = collector.health
    detail = {
        "readings": stats.readings,
        "points": stats.points,
        "rejected": sum(stats.rejected.values()),
        **{f"rejected_{reason}": n for reason, n in stats.rejected.items()},
        "dead_letters": stats.dead_letters,
        "checkpoints": stats.checkpoints,
        "dropped_events": health.dropped_events,
        "queue_dropped": collector.dropped,
        "reconnects": health.reconnects,
        "items_ok": health.items_ok,
        "items_failed": len(health.items_failed),
    }
    for sink in pipeline.sinks:
        detail |= {
            f"{sink.id}_written": sink.health.written,
            f"{sink.id}_requests": sink.health.requests,
            f"{sink.id}_errors": sum(sink.health.errors.values()),
            f"{sink.id}_left_in_outbox": sink.outbox.lines,
        }
    r = Round(
        "collector",
        window.wall_s,
        window.count,
        after.load_writes - before.load_writes,
        after.t - before.t,
        window.cpu_s,
        after.cpu_s - before.cpu_s,
        after.late_steps - before.late_steps,
        window.per_second,
        health.dropped_events + collector.dropped,
        detail,
        connect_s,
    )
    return PipelineRound(r, recorder.reading_s, recorder.oee_close_s, recorder.oee_source_s, detail)


# -- the whole run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What one runtime must reach: a share of the raw client's rate and a bound on p99 latencies."""

    ratio: float
    p99_s: float


TARGETS: dict[Runtime, Target] = {
    "embedded": Target(TARGET_RATIO, TARGET_P99_S),
    "kafka": Target(KAFKA_TARGET_RATIO, KAFKA_TARGET_P99_S),
}
KIND_OF: dict[Runtime, Kind] = {"embedded": "pipeline", "kafka": "kafka"}
"""The kind of round that times each runtime."""


@dataclass
class BenchResult:
    """Every round of every kind."""

    settings: PipelineSettings
    raw: list[Round] = field(default_factory=list)
    collector: list[Round] = field(default_factory=list)
    pipeline: list[PipelineRound] = field(default_factory=list)
    kafka: list[PipelineRound] = field(default_factory=list)

    def rounds(self, runtime: Runtime = "embedded") -> list[PipelineRound]:
        """The rounds of ``runtime``."""
        return self.pipeline if runtime == "embedded" else self.kafka

    @property
    def best_raw(self) -> Round:
        """The raw round with the highest rate."""
        return max(self.raw, key=lambda r: r.rate)

    def best(self, runtime: Runtime = "embedded") -> PipelineRound:
        """The round of ``runtime`` with the highest rate."""
        return max(self.rounds(runtime), key=lambda p: p.round.rate)

    @property
    def best_pipeline(self) -> PipelineRound:
        """The embedded pipeline round with the highest rate."""
        return self.best("embedded")

    def ratio_of(self, runtime: Runtime = "embedded") -> float:
        """Best readings/s of ``runtime`` over best raw notifications/s (NaN if the raw client got none)."""
        raw = self.best_raw.rate
        return self.best(runtime).round.rate / raw if raw > 0 else math.nan

    @property
    def ratio(self) -> float:
        """Best embedded pipeline readings/s over best raw notifications/s."""
        return self.ratio_of("embedded")

    def pooled(self, name: LatencyName, runtime: Runtime = "embedded") -> list[float]:
        """One latency of every round's window of ``runtime``, pooled."""
        out: list[float] = []
        for p in self.rounds(runtime):
            out.extend(getattr(p, name))
        return out

    def latency(self, name: LatencyName, runtime: Runtime = "embedded") -> tuple[float, float, float]:
        """(p50, p99, max) of a pooled latency, in seconds (NaN without samples)."""
        return summary(self.pooled(name, runtime))

    def raw_latency(self) -> tuple[float, float, float]:
        """(p50, p99, max) of the raw client's sampled source -> receipt latency, pooled."""
        return summary([x for r in self.raw for x in (r.latency_s or ())])

    def failures(self) -> list[str]:
        """The targets missed by every runtime measured (empty when all are met)."""
        out = []
        for runtime in self.settings.runtimes:
            target = TARGETS[runtime]
            prefix = "" if runtime == "embedded" else f"{runtime}: "
            ratio = self.ratio_of(runtime)
            if not ratio >= target.ratio:  # NaN (no raw rate) is a miss too
                out.append(f"{prefix}ratio {ratio:.2f} < {target.ratio}")
            for name, label in (
                ("reading_s", "reading source -> write"),
                ("oee_close_s", "OEE close -> write"),
            ):
                _, p99, _ = self.latency(name, runtime)
                if math.isnan(p99):
                    out.append(f"{prefix}no {label} latency was recorded")
                elif p99 > target.p99_s:
                    out.append(f"{prefix}{label} p99 {p99:.2f} s > {target.p99_s:g} s")
        timed = self.raw + [p.round for p in self.pipeline + self.kafka]
        if any(r.count == 0 for r in timed):
            out.append("a round counted nothing")
        return out


async def measure(
    settings: PipelineSettings, repeat: int = 3, *, log: TextIO | None = None, keep: Path | None = None
) -> BenchResult:
    """Start the server process (and the Kafka node) and alternate the kinds of round ``repeat`` times.

    ``keep``: where kafka rounds leave their roles' logs (see :func:`run_kafka_round`).
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    s = settings.opcua
    per_round = s.seconds + s.warmup_s + s.connect_timeout_s + 60
    duration = len(settings.kinds) * repeat * per_round + s.connect_timeout_s + 120
    result = BenchResult(settings)
    async with contextlib.AsyncExitStack() as stack:
        broker = await stack.enter_async_context(kafka_node()) if "kafka" in settings.runtimes else None
        influx = await stack.enter_async_context(influx_node()) if settings.influxdb else None
        server = await stack.enter_async_context(
            ServerProcess(s.tags, s.rate, duration, stock=s.stock_server, machines=settings.machines)
        )
        if log is not None:
            print(
                f"simulator process {server.pid} on {server.endpoint}; its wall clock is "
                f"{server.clock_offset_s:.3f} s ahead of its source timestamps"
                + (f"; Kafka {KAFKA_VERSION} (process {broker.pid}) on {broker.bootstrap}" if broker else "")
                + (f"; InfluxDB 1.12 on {influx.url}" if influx else ""),
                file=log,
                flush=True,
            )
        for round_no in range(1, repeat + 1):
            for kind in settings.kinds:
                if kind == "pipeline":
                    p = await run_pipeline_round(server, settings, influx=influx)
                    result.pipeline.append(p)
                    line = describe_pipeline(p)
                elif kind == "kafka":
                    assert broker is not None
                    p = await run_kafka_round(server, broker, settings, keep=keep)
                    result.kafka.append(p)
                    line = f"{describe_pipeline(p)}; CPU {describe_cpu(p)}"
                else:
                    r = await run_round(kind, server, s, latencies=True)
                    (result.raw if kind == "raw" else result.collector).append(r)
                    line = describe(r)
                if log is not None:
                    print(f"round {round_no}/{repeat}: {line}", file=log, flush=True)
    return result


@contextlib.asynccontextmanager
async def kafka_node() -> AsyncIterator[KafkaBroker]:
    """A Kafka node for the run, flushing as Kafka does by default (as deployed), in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="plantstream-bench-kafka-node-") as tmp:
        broker = KafkaBroker(Path(tmp), flush_every_append=False)
        await asyncio.to_thread(broker.start)
        try:
            yield broker
        finally:
            await asyncio.to_thread(broker.stop)


@contextlib.asynccontextmanager
async def influx_node() -> AsyncIterator[InfluxNode]:
    """An InfluxDB 1.12 node for the run (no authentication), in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="plantstream-bench-influxdb-") as tmp:
        node = InfluxNode(port=free_port(), directory=Path(tmp))
        await asyncio.to_thread(node.start)
        try:
            yield node
        finally:
            await asyncio.to_thread(node.stop)


async def profile_pipeline(settings: PipelineSettings, top: int = 25) -> tuple[PipelineRound, str]:
    """One pipeline round with its timed window under cProfile; the top ``top`` by tottime."""
    s = settings.opcua
    duration = s.seconds + s.warmup_s + 2 * s.connect_timeout_s + 120
    profiler = cProfile.Profile()
    async with ServerProcess(
        s.tags, s.rate, duration, stock=s.stock_server, machines=settings.machines
    ) as server:
        p = await run_pipeline_round(server, settings, profiler=profiler)
    return p, profile_text(profiler, top)


async def profile_kafka(settings: PipelineSettings, top: int = 20) -> tuple[PipelineRound, str]:
    """One kafka round: ``collect`` and ``process`` under cProfile for their whole life, the sink's window.

    The text is the top ``top`` by tottime of each, role by role.
    """
    s = settings.opcua
    duration = s.seconds + s.warmup_s + 2 * s.connect_timeout_s + 120
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="plantstream-bench-kafka-profile-") as tmp:
        keep = Path(tmp)
        server_process = ServerProcess(
            s.tags, s.rate, duration, stock=s.stock_server, machines=settings.machines
        )
        async with kafka_node() as broker, server_process as server:
            p = await run_kafka_round(server, broker, settings, profiler=profiler, keep=keep)
        parts = []
        for role in ("collect", "process"):
            path = next(keep.glob(f"*/{role}.prof"), None)
            if path is not None:
                parts.append(f"== {role} (its whole run)\n" + profile_text(path, top))
        parts.append("== sink (the timed window)\n" + profile_text(profiler, top))
    return p, "\n".join(parts)


# -- the command ----------------------------------------------------------------------------------

CODE_PATHS = ("collectors", "runtimes", "plantstream", "streams", "sinks")
"""A change to these makes the measured code ``+dirty``."""

TABLE_HEADER = (
    "| date | tags × Hz | served/s | raw notifications/s | collector readings/s | pipeline readings/s "
    "| ratio pipeline/raw | raw receipt latency p50 / p99 ms | reading latency p50 / p99 ms "
    "| OEE close → write p50 / p99 ms "
    "| OEE source → write p50 / p99 ms | µs CPU per item raw / collector / pipeline |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)
KAFKA_TABLE_HEADER = TABLE_HEADER.replace("pipeline", "kafka roles")
"""The kafka roles' table: the same columns (the roles' CPU is collect + process + sink)."""


def _ms(pair: tuple[float, float, float]) -> str:
    p50, p99, _ = pair
    return f"{p50 * 1e3:,.0f} / {p99 * 1e3:,.0f}"


def table_row(result: BenchResult, day: str, runtime: Runtime = "embedded") -> str:
    """One Markdown row under :data:`TABLE_HEADER` (or :data:`KAFKA_TABLE_HEADER`) for ``runtime``."""
    s = result.settings.opcua
    raw, pipe = result.best_raw, result.best(runtime).round
    col = max(result.collector, key=lambda r: r.rate) if result.collector else None
    timed = [*result.raw, *result.collector, *(p.round for p in result.rounds(runtime))]
    served = max(r.served_rate for r in timed)
    col_rate = f"{col.rate:,.0f}" if col else "-"
    col_cpu = f"{col.cpu_us_per_item:.1f}" if col else "-"
    return (
        f"| {day} | {s.tags:,} × {s.rate:g} | {served:,.0f} | {raw.rate:,.0f} | {col_rate} | "
        f"{pipe.rate:,.0f} | "
        f"{result.ratio_of(runtime):.2f} | {_ms(result.raw_latency())} | "
        f"{_ms(result.latency('reading_s', runtime))} | "
        f"{_ms(result.latency('oee_close_s', runtime))} | "
        f"{_ms(result.latency('oee_source_s', runtime))} | "
        f"{raw.cpu_us_per_item:.1f} / {col_cpu} / {pipe.cpu_us_per_item:.1f} |"
    )


_LABELS: dict[Runtime, str] = {"embedded": "embedded pipeline", "kafka": "kafka roles"}


def _report(result: BenchResult, out: TextIO) -> None:
    raw = result.best_raw
    print(file=out)
    print(f"raw asyncua client: {raw.rate:10,.0f} notifications/s (best of {len(result.raw)})", file=out)
    if result.collector:
        col = max(result.collector, key=lambda r: r.rate)
        print(f"collector alone:    {col.rate:10,.0f} readings/s (best of {len(result.collector)})", file=out)
    p50, p99, worst = result.raw_latency()
    print(
        f"raw client source -> receipt (every {LATENCY_SAMPLE_EVERY}th): p50 {p50 * 1e3:,.1f} ms, "
        f"p99 {p99 * 1e3:,.1f} ms, max {worst * 1e3:,.1f} ms",
        file=out,
    )
    for runtime in result.settings.runtimes:
        best, target = result.best(runtime), TARGETS[runtime]
        label = _LABELS[runtime]
        if runtime == "embedded" and result.settings.influxdb:
            label += " into InfluxDB"
        print(file=out)
        print(
            f"{label}: {best.round.rate:,.0f} load-tag readings/s written "
            f"(best of {len(result.rounds(runtime))}; {best.round.delivered:.1%} of what the server served)",
            file=out,
        )
        print(f"ratio {label}/raw: {result.ratio_of(runtime):.3f}  (target >= {target.ratio})", file=out)
        for name, text in (
            ("reading_s", "reading source -> write"),
            ("oee_close_s", "OEE close -> write"),
            ("oee_source_s", "OEE closing reading's source -> write"),
        ):
            values = result.pooled(name, runtime)
            p50, p99, worst = result.latency(name, runtime)
            print(
                f"{text}: p50 {p50 * 1e3:,.1f} ms, p99 {p99 * 1e3:,.1f} ms, max {worst * 1e3:,.1f} ms "
                f"({len(values):,} samples)",
                file=out,
            )
        print(f"{label} in its best round: {best.detail}", file=out)
        if best.cpu_s:
            print(f"CPU in its best round: {describe_cpu(best)}", file=out)


def _runtimes(text: str) -> tuple[Runtime, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    bad = [name for name in names if name not in RUNTIMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{', '.join(bad) or 'nothing'}: choose from {', '.join(RUNTIMES)}, comma-separated"
        )
    return tuple(name for name in RUNTIMES if name in names)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=defaults.tags, help="load tags served and subscribed")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="writes per second of every tag")
    parser.add_argument("--machines", type=int, default=DEFAULT_MACHINES, help="simulated machines (OEE)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_S, help="window length of the plant, s")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="timed window of a round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each kind")
    parser.add_argument(
        "--warmup", type=float, default=defaults.warmup_s, help="untimed seconds after catch-up"
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=defaults.connect_timeout_s,
        help="bound on connecting and receiving every tag's first value",
    )
    parser.add_argument("--no-collector", action="store_true", help="skip the collector-alone rounds")
    parser.add_argument(
        "--runtimes",
        type=_runtimes,
        default=("embedded",),
        help="embedded, kafka or embedded,kafka: the runtimes timed (default embedded)",
    )
    parser.add_argument("--kafka", action="store_true", help="the same as --runtimes kafka")
    parser.add_argument(
        "--influxdb",
        action="store_true",
        help="the embedded pipeline also writes to an InfluxDB 1.12 node started for the run; its "
        "readings are counted and timed when the v2 write API accepts them",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy each kafka round's role logs into this folder"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of measuring, profile one timed round of the (first) runtime",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 on a missed target: embedded ratio >= {TARGET_RATIO} and p99 <= {TARGET_P99_S:g} s, "
        f"kafka ratio >= {KAFKA_TARGET_RATIO} and p99 <= {KAFKA_TARGET_P99_S:g} s",
    )
    args = parser.parse_args(argv)
    if args.kafka:
        args.runtimes = ("kafka",)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or profile), print the results; the exit status for ``--check``."""
    args = _arguments(argv)
    _quiet_logs()
    # The sink role's consumer logs errors while a fresh group's coordinator is being set up; a
    # role that really fails ends its round with its error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    opcua = Settings(
        tags=args.tags,
        rate=args.rate,
        seconds=args.seconds,
        warmup_s=args.warmup,
        connect_timeout_s=args.connect_timeout,
    )
    settings = PipelineSettings(
        opcua,
        args.machines,
        args.window,
        collector=not args.no_collector,
        runtimes=args.runtimes,
        influxdb=args.influxdb,
    )
    if args.profile:
        if settings.runtimes[0] == "kafka":
            p, text = asyncio.run(profile_kafka(settings))
            print(f"kafka round under cProfile: {describe_pipeline(p)}; CPU {describe_cpu(p)}")
        else:
            p, text = asyncio.run(profile_pipeline(settings))
            print(f"pipeline round under cProfile: {describe_pipeline(p)}")
        print(text)
        return 0
    print(
        f"code {code_revision(CODE_PATHS)}, python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"simulator in its own process on {HOST}; {opcua.tags:,} tags at {opcua.rate:g} Hz and "
        f"{settings.machines} machines; windows of {settings.window_s} s; "
        f"{args.repeat} × {opcua.seconds:g} s rounds of {', '.join(settings.kinds)}"
        + ("; readings timed at acceptance by InfluxDB's v2 write API" if settings.influxdb else ""),
        flush=True,
    )
    try:
        result = asyncio.run(measure(settings, args.repeat, log=sys.stdout, keep=args.keep))
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(result, sys.stdout)
    failures = result.failures()
    tables = [
        (TABLE_HEADER if runtime == "embedded" else KAFKA_TABLE_HEADER, table_row(result, today(), runtime))
        for runtime in settings.runtimes
    ]
    for header, row in tables[:-1]:
        print(f"\n{header}\n{row}", file=sys.stdout)
    print_report_tail(*tables[-1], failures, sys.stdout)
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
