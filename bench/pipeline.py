"""The embedded pipeline end to end (OPC UA server -> ``EmbeddedPipeline`` -> file sink) beside raw asyncua.

What is measured (docs/benchmarks.md has the results and the command):

- **server**: the OPC UA benchmark's simulator process (:class:`bench.opcua.ServerProcess`, the
  same patched asyncua server), serving ``--tags`` load tags written at ``--rate`` Hz plus
  ``--machines`` generic simulated machines (state, three counters, power, energy register);
- **raw** and **collector**: exactly :func:`bench.opcua.run_round`'s rounds (a bare asyncua
  subscription counting data changes; :class:`collectors.opcua.OpcUaCollector` alone);
- **pipeline**: :class:`runtimes.embedded.EmbeddedPipeline` with a plant file made for the run
  (:func:`plant_document`): one OPC UA source with the same group settings as the other two
  consumers over the load tags and the machines' signals; each load tag is the ``power_kw`` of a
  machine ``load<k>`` of line ``load`` (so the engine integrates it into energy and carbon
  windows), the simulated machines ``m<k>`` on line ``sim`` give OEE windows. The windows are
  ``--window`` seconds long (10 by default, shorter than a plant's minute so that a timed round
  sees several closes; that makes closes more frequent, not fewer); every other setting is the
  plant-file default (allowed lateness 5 s, raw readings recorded, checkpoints every 5 s with an
  fsync, the file sink on).

Per pipeline round, from the file sink's ``on_write`` hook (called after each batch is flushed):

- **readings/s end to end**: ``reading`` points of the load tags written per second of the window;
- **reading latency**: write time minus the reading's source timestamp, for every load-tag
  ``reading`` point written in the window (a load tag is written every period, so its source time
  is when it was written; a machine's state read again after a reconnect keeps an old one);
- **OEE latency** for every ``oee`` point of a window: from the window's close by the watermark
  (the wall-clock instant the engine took the reading that moved the watermark past the window's
  end, recorded by wrapping ``engine.push``) to the write (**close -> write**); and from that
  closing reading's source timestamp to the write (**source -> write**, what a dashboard sees).

One clock: the simulator stamps SourceTimestamp with its simulated clock, which at speed 1 runs at
wall-clock rate but starts at a whole second before the address space is built; the server
process reports the difference to its wall clock (``clock_offset_s``, :func:`bench.opcua.serve`)
and every source timestamp is shifted by it, so both ends of a latency are on the machine's wall
clock (``time.time()``, shared by the two processes).

Method: raw, collector and pipeline rounds alternate ``--repeat`` times (default 3) against one
server process; each connects, waits for every tag's first value, gets ``--warmup`` seconds, is
timed for ``--seconds`` (default 20) and disconnects. The best round of each kind gives the rates
and the ratio pipeline/raw; latencies are pooled over every pipeline round's window (p50, p99,
max). Nothing here asserts a time; ``--check`` exits 1 on a missed target.

Run: ``.venv/bin/python bench/pipeline.py`` (about 5 minutes); ``--seconds 5 --repeat 1`` for a
quick run; ``--profile`` for a cProfile of one timed pipeline window.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from bench.common import (
    code_revision,
    count_each_second,
    print_report_tail,
    profile_text,
    stop_task,
    today,
)
from bench.opcua import (
    HOST,
    LATENCY_SAMPLE_EVERY,
    Counter,
    Round,
    ServerProcess,
    Settings,
    _first_values,
    _quiet_logs,
    describe,
    run_round,
)
from plantstream.records import Point
from runtimes.embedded import EmbeddedPipeline
from runtimes.plant import load_and_resolve
from runtimes.simulator import NAMESPACE_URI

__all__ = [
    "BenchResult",
    "PipelineRound",
    "PipelineSettings",
    "Recorder",
    "main",
    "measure",
    "percentile",
    "plant_document",
    "run_pipeline_round",
    "table_row",
]

DEFAULT_MACHINES = 10
DEFAULT_WINDOW_S = 10
TARGET_RATIO = 0.8
TARGET_P99_S = 1.0
GENERIC_SIGNALS: dict[str, Any] = {
    "state": "state",
    "total_count": "total_count",
    "good_count": "good_count",
    "reject_count": "reject_count",
    "power_kw": {"role": "power_kw", "integration": "trapezoid"},
    "energy_kwh": "energy_kwh",
}
"""The simulator's generic machine (:func:`runtimes.simulator.model.generic_plant`), signal by role."""

Kind = Literal["raw", "collector", "pipeline"]
LatencyName = Literal["reading_s", "oee_close_s", "oee_source_s"]


@dataclass(frozen=True)
class PipelineSettings:
    """The OPC UA settings every consumer shares, and what only the pipeline has."""

    opcua: Settings = field(default_factory=Settings)
    machines: int = DEFAULT_MACHINES
    window_s: int = DEFAULT_WINDOW_S
    collector: bool = True
    """Also time the collector alone (the middle step between raw and pipeline)."""

    def __post_init__(self) -> None:
        if self.machines < 1:
            raise ValueError(f"machines must be at least 1, got {self.machines}")
        if self.window_s < 1:
            raise ValueError(f"window must be at least 1 s, got {self.window_s}")

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """The kinds of round, in the order they alternate."""
        return ("raw", "collector", "pipeline") if self.collector else ("raw", "pipeline")


def plant_document(endpoint: str, settings: PipelineSettings) -> dict[str, Any]:
    """The plant file the pipeline runs (see the module's docstring), as a JSON-ready mapping."""
    s = settings.opcua
    machines = [f"m{k}" for k in range(1, settings.machines + 1)]
    tags = [
        {"node": f"nsu={NAMESPACE_URI};s={m}.{signal}", "machine": m, "signal": signal}
        for m in machines
        for signal in GENERIC_SIGNALS
    ]
    tags += [
        {"node": f"nsu={NAMESPACE_URI};s=load.tag{k}", "machine": f"load{k}", "signal": "power_kw"}
        for k in range(1, s.tags + 1)
    ]
    return {
        "sites": [
            {
                "id": "bench",
                "timezone": "UTC",
                "country": "VN",
                "carbon": {"grid": {"country": "VN", "basis": "annual", "year": 2023}},
                "lines": [
                    {
                        "id": "sim",
                        "machines": [
                            {"id": m, "ideal_cycle_s": 1.0, "signals": GENERIC_SIGNALS} for m in machines
                        ],
                    },
                    {
                        "id": "load",
                        "machines": [
                            {"id": f"load{k}", "signals": {"power_kw": {"role": "power_kw"}}}
                            for k in range(1, s.tags + 1)
                        ],
                    },
                ],
            }
        ],
        "production": {"window_s": settings.window_s},
        "sources": [
            {
                "type": "opcua",
                "id": "bench",
                "endpoint": endpoint,
                "security": {"mode": "None", "allow_insecure": True},
                "groups": [
                    {
                        "publishing_interval_ms": s.publishing_ms,
                        "sampling_interval_ms": s.sampling_ms,
                        "queue_size": s.queue_size,
                        "tags": tags,
                    }
                ],
            }
        ],
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by nearest rank; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _summary(values: Sequence[float]) -> tuple[float, float, float]:
    return percentile(values, 0.5), percentile(values, 0.99), max(values, default=math.nan)


# -- what the sink writes ---------------------------------------------------------------------------


class Recorder(Counter):
    """Counts and times what the pipeline's file sink writes (its ``on_write`` hook).

    ``n`` counts every ``reading`` point written (for :func:`bench.opcua._first_values`); while
    ``timing`` is set, the load tags' reading points are counted in ``timed`` and every reading
    and OEE point's latency is kept (seconds, on the wall clock; see the module's docstring).
    """

    def __init__(self, clock_offset_s: float) -> None:
        super().__init__()
        self.clock_offset_s = clock_offset_s
        self.timing = False
        self.timed = 0
        self.reading_s = array("d")
        self.oee_close_s = array("d")
        self.oee_source_s = array("d")
        self.close_wall: float | None = None
        """When the engine closed the first window of the batch being built (``time.time()``)."""
        self.close_source: float | None = None
        """The source time of the reading that closed it (epoch seconds, source clock)."""

    def pushed(self, ts_us: int, started: float) -> None:
        """The engine took a reading of source time ``ts_us`` (µs) and now has window points.

        Its push began at ``started`` (wall clock).
        """
        if self.close_wall is None:
            self.close_wall = started
            self.close_source = ts_us / 1e6

    def on_write(self, batch: Sequence[Point], wall: float) -> None:
        """The sink flushed ``batch`` at ``wall``."""
        offset = self.clock_offset_s
        for point in batch:
            measurement = point.measurement
            if measurement == "reading":
                self.n += 1
                # Only the load tags: a machine's value read again after a reconnect keeps the
                # source time of its last change, minutes ago, which is no delay of the pipeline.
                if self.timing and point.tags["line"] == "load":
                    self.timed += 1
                    self.reading_s.append(wall - point.time.timestamp() - offset)
            elif measurement == "oee" and self.timing and self.close_wall is not None:
                self.oee_close_s.append(wall - self.close_wall)
                assert self.close_source is not None
                self.oee_source_s.append(wall - self.close_source - offset)
        self.close_wall = self.close_source = None


def _watch_closes(pipeline: EmbeddedPipeline, recorder: Recorder) -> None:
    """Wrap the engine's ``push_raw`` so the wall-clock time of each window close is known."""
    engine = pipeline.engine
    push = engine.push_raw

    def timed_push(ts: int, machine: str, signal: str, value: Any, quality: str = "good") -> None:
        started = time.time()
        push(ts, machine, signal, value, quality)
        if engine.has_points:
            recorder.pushed(ts, started)

    engine.push_raw = timed_push  # type: ignore[method-assign]


# -- one pipeline round ---------------------------------------------------------------------------


@dataclass
class PipelineRound:
    """One timed window of the embedded pipeline."""

    round: Round
    """Rate, served values and CPU, as for the other kinds (``count``: load-tag reading points)."""
    reading_s: array[float]
    oee_close_s: array[float]
    oee_source_s: array[float]
    detail: dict[str, int] = field(default_factory=dict)


async def run_pipeline_round(
    server: ServerProcess,
    settings: PipelineSettings,
    *,
    profiler: cProfile.Profile | None = None,
) -> PipelineRound:
    """Start the pipeline on a fresh state directory, let it catch up, time it, stop it."""
    loop = asyncio.get_running_loop()
    s = settings.opcua
    stop = asyncio.Event()
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="plantstream-bench-pipeline-") as tmp:
        state_dir = Path(tmp)
        plant_file = state_dir / "plant.yaml"
        plant_file.write_text(json.dumps(plant_document(server.endpoint, settings)), encoding="utf-8")
        plant, spec = load_and_resolve(plant_file)
        pipeline = EmbeddedPipeline(plant, spec, state_dir / "state")
        recorder = Recorder(server.clock_offset_s)
        pipeline.sink.on_write = recorder.on_write
        _watch_closes(pipeline, recorder)
        started = loop.time()
        task = asyncio.create_task(pipeline.run(stop))
        try:
            await _first_values(recorder, task, s.tags, s.connect_timeout_s)
            connect_s = loop.time() - started
            await asyncio.sleep(s.warmup_s)
            before = await server.stats()
            recorder.clock_offset_s = before.clock_offset_s
            c0, cpu0, t0 = recorder.timed, time.process_time(), loop.time()
            recorder.timing = True
            if profiler is not None:
                profiler.enable()
            per_second = await count_each_second(s.seconds, lambda: recorder.timed)
            c1, cpu1, t1 = recorder.timed, time.process_time(), loop.time()
            recorder.timing = False
            if profiler is not None:
                profiler.disable()
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
    r = Round(
        "collector",
        t1 - t0,
        c1 - c0,
        after.load_writes - before.load_writes,
        after.t - before.t,
        cpu1 - cpu0,
        after.cpu_s - before.cpu_s,
        after.late_steps - before.late_steps,
        per_second,
        health.dropped_events + collector.dropped,
        detail,
        connect_s,
    )
    return PipelineRound(r, recorder.reading_s, recorder.oee_close_s, recorder.oee_source_s, detail)


def describe_pipeline(p: PipelineRound) -> str:
    """One line about a pipeline round, for the log."""
    text = describe(p.round).replace("collector", "pipeline ", 1)
    return (
        f"{text}; reading latency p50 {percentile(p.reading_s, 0.5) * 1e3:.0f} ms, "
        f"p99 {percentile(p.reading_s, 0.99) * 1e3:.0f} ms; {len(p.oee_close_s)} OEE points"
    )


# -- the whole run --------------------------------------------------------------------------------


@dataclass
class BenchResult:
    """Every round of every kind."""

    settings: PipelineSettings
    raw: list[Round] = field(default_factory=list)
    collector: list[Round] = field(default_factory=list)
    pipeline: list[PipelineRound] = field(default_factory=list)

    @property
    def best_raw(self) -> Round:
        """The raw round with the highest rate."""
        return max(self.raw, key=lambda r: r.rate)

    @property
    def best_pipeline(self) -> PipelineRound:
        """The pipeline round with the highest rate."""
        return max(self.pipeline, key=lambda p: p.round.rate)

    @property
    def ratio(self) -> float:
        """Best pipeline readings/s over best raw notifications/s."""
        return self.best_pipeline.round.rate / self.best_raw.rate

    def pooled(self, name: LatencyName) -> list[float]:
        """One latency of every pipeline round's window, pooled."""
        out: list[float] = []
        for p in self.pipeline:
            out.extend(getattr(p, name))
        return out

    def latency(self, name: LatencyName) -> tuple[float, float, float]:
        """(p50, p99, max) of a pooled latency, in seconds (NaN without samples)."""
        return _summary(self.pooled(name))

    def raw_latency(self) -> tuple[float, float, float]:
        """(p50, p99, max) of the raw client's sampled source -> receipt latency, pooled."""
        return _summary([x for r in self.raw for x in (r.latency_s or ())])

    def failures(self) -> list[str]:
        """The targets missed (empty when met)."""
        out = []
        if self.ratio < TARGET_RATIO:
            out.append(f"ratio {self.ratio:.2f} < {TARGET_RATIO}")
        for name, label in (
            ("reading_s", "reading source -> write"),
            ("oee_close_s", "OEE close -> write"),
        ):
            _, p99, _ = self.latency(name)
            if math.isnan(p99):
                out.append(f"no {label} latency was recorded")
            elif p99 > TARGET_P99_S:
                out.append(f"{label} p99 {p99:.2f} s > {TARGET_P99_S:g} s")
        if any(r.count == 0 for r in self.raw + [p.round for p in self.pipeline]):
            out.append("a round counted nothing")
        return out


async def measure(settings: PipelineSettings, repeat: int = 3, *, log: TextIO | None = None) -> BenchResult:
    """Start the server process and alternate the kinds of round ``repeat`` times."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    s = settings.opcua
    per_round = s.seconds + s.warmup_s + s.connect_timeout_s + 60
    duration = len(settings.kinds) * repeat * per_round + s.connect_timeout_s + 120
    result = BenchResult(settings)
    async with ServerProcess(
        s.tags, s.rate, duration, stock=s.stock_server, machines=settings.machines
    ) as server:
        if log is not None:
            print(
                f"simulator process {server.pid} on {server.endpoint}; its wall clock is "
                f"{server.clock_offset_s:.3f} s ahead of its source timestamps",
                file=log,
                flush=True,
            )
        for round_no in range(1, repeat + 1):
            for kind in settings.kinds:
                if kind == "pipeline":
                    p = await run_pipeline_round(server, settings)
                    result.pipeline.append(p)
                    line = describe_pipeline(p)
                else:
                    r = await run_round(kind, server, s, latencies=True)
                    (result.raw if kind == "raw" else result.collector).append(r)
                    line = describe(r)
                if log is not None:
                    print(f"round {round_no}/{repeat}: {line}", file=log, flush=True)
    return result


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


def _ms(pair: tuple[float, float, float]) -> str:
    p50, p99, _ = pair
    return f"{p50 * 1e3:,.0f} / {p99 * 1e3:,.0f}"


def table_row(result: BenchResult, day: str) -> str:
    """One Markdown row under :data:`TABLE_HEADER`."""
    s = result.settings.opcua
    raw, pipe = result.best_raw, result.best_pipeline.round
    col = max(result.collector, key=lambda r: r.rate) if result.collector else None
    served = max(r.served_rate for r in [*result.raw, *result.collector, *(p.round for p in result.pipeline)])
    col_rate = f"{col.rate:,.0f}" if col else "-"
    col_cpu = f"{col.cpu_us_per_item:.1f}" if col else "-"
    return (
        f"| {day} | {s.tags:,} × {s.rate:g} | {served:,.0f} | {raw.rate:,.0f} | {col_rate} | "
        f"{pipe.rate:,.0f} | "
        f"{result.ratio:.2f} | {_ms(result.raw_latency())} | {_ms(result.latency('reading_s'))} | "
        f"{_ms(result.latency('oee_close_s'))} | "
        f"{_ms(result.latency('oee_source_s'))} | "
        f"{raw.cpu_us_per_item:.1f} / {col_cpu} / {pipe.cpu_us_per_item:.1f} |"
    )


def _report(result: BenchResult, out: TextIO) -> None:
    raw, best = result.best_raw, result.best_pipeline
    print(file=out)
    print(f"raw asyncua client: {raw.rate:10,.0f} notifications/s (best of {len(result.raw)})", file=out)
    if result.collector:
        col = max(result.collector, key=lambda r: r.rate)
        print(f"collector alone:    {col.rate:10,.0f} readings/s (best of {len(result.collector)})", file=out)
    print(
        f"embedded pipeline:  {best.round.rate:10,.0f} load-tag readings/s written "
        f"(best of {len(result.pipeline)})",
        file=out,
    )
    print(f"ratio pipeline/raw: {result.ratio:.3f}  (target >= {TARGET_RATIO})", file=out)
    p50, p99, worst = result.raw_latency()
    print(
        f"raw client source -> receipt (every {LATENCY_SAMPLE_EVERY}th): p50 {p50 * 1e3:,.1f} ms, "
        f"p99 {p99 * 1e3:,.1f} ms, max {worst * 1e3:,.1f} ms",
        file=out,
    )
    for name, label in (
        ("reading_s", "reading source -> write"),
        ("oee_close_s", "OEE close -> write"),
        ("oee_source_s", "OEE closing reading's source -> write"),
    ):
        values = result.pooled(name)
        p50, p99, worst = result.latency(name)
        print(
            f"{label}: p50 {p50 * 1e3:,.1f} ms, p99 {p99 * 1e3:,.1f} ms, max {worst * 1e3:,.1f} ms "
            f"({len(values):,} samples)",
            file=out,
        )
    print(f"pipeline health in its best round: {best.detail}", file=out)


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
        "--profile", action="store_true", help="instead of measuring, profile one timed pipeline window"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless ratio >= {TARGET_RATIO} and both p99 latencies <= {TARGET_P99_S:g} s",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or profile), print the results; the exit status for ``--check``."""
    args = _arguments(argv)
    _quiet_logs()
    opcua = Settings(
        tags=args.tags,
        rate=args.rate,
        seconds=args.seconds,
        warmup_s=args.warmup,
        connect_timeout_s=args.connect_timeout,
    )
    settings = PipelineSettings(opcua, args.machines, args.window, collector=not args.no_collector)
    if args.profile:
        p, text = asyncio.run(profile_pipeline(settings))
        print(f"pipeline round under cProfile: {describe_pipeline(p)}")
        print(text)
        return 0
    print(
        f"code {code_revision(CODE_PATHS)}, python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"simulator in its own process on {HOST}; {opcua.tags:,} tags at {opcua.rate:g} Hz and "
        f"{settings.machines} machines; windows of {settings.window_s} s; "
        f"{args.repeat} × {opcua.seconds:g} s rounds of {', '.join(settings.kinds)}",
        flush=True,
    )
    try:
        result = asyncio.run(measure(settings, args.repeat, log=sys.stdout))
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _report(result, sys.stdout)
    failures = result.failures()
    print_report_tail(TABLE_HEADER, table_row(result, today()), failures, sys.stdout)
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
