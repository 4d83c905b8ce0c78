"""The embedded pipeline's memory over a long run: does its RSS level off at 2,000 tags × 10 Hz?

What is measured (docs/benchmarks.md has the results and the command):

- **baseline**: the OPC UA collector alone (:func:`bench.opcua.run_soak`) against the same
  server, for ``--baseline-minutes``: the memory of the Python OPC UA stack and the collector's
  queues at this rate, which every pipeline pays;
- **pipeline**: :class:`runtimes.embedded.EmbeddedPipeline` on the plant of bench/pipeline.py
  (every load tag is a machine's ``power_kw``, plus ``--machines`` simulated machines with OEE),
  with the plant-file defaults for the correction history (one hour of horizon; at most
  ``correction_history_max`` readings and ``correction_history_bytes``, or ``--history-bytes``),
  the file sink and checkpoints on, for ``--minutes``.

Both run in this process, one after the other, and RSS is sampled every ``--interval`` seconds.
RSS "levels off" when it grew by less than ``--flat-mib`` over the second half of the pipeline's
run (:attr:`bench.opcua.Soak.flat`); the report gives the second half's growth and least-squares
slope, the pipeline's largest RSS over the collector's (the ratio asked for, since absolute
numbers depend on the machine), and what the engine keeps for corrections at the end (readings
of history, snapshots, emitted windows) so a level can be explained.

Run: ``.venv/bin/python bench/soak.py`` (30 + 5 minutes; ``--minutes 3 --baseline-minutes 1`` for a
quick look). ``--check`` exits 1 when the pipeline's RSS did not level off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from bench import memstat
from bench.common import code_revision, stop_on_sigterm, stop_task, today
from bench.endtoend import DEFAULT_MACHINES, PipelineSettings, bench_pipeline
from bench.opcua import (
    ServerProcess,
    Settings,
    Soak,
    _first_values,
    _quiet_logs,
    rss_bytes,
    run_soak,
)
from bench.pipeline import influx_node
from runtimes.embedded import EmbeddedPipeline

__all__ = ["SoakResult", "correction_memory", "main", "measure", "run_pipeline_soak"]

CODE_PATHS = ("streams", "runtimes", "collectors", "sinks", "bench/soak.py")
DEFAULT_MINUTES = 30.0
DEFAULT_BASELINE_MINUTES = 5.0
DEFAULT_INTERVAL_S = 30.0
DEFAULT_FLAT_MIB = 16.0
"""More than the collector's own bound (bench/opcua.py's 4 MiB): the pipeline's file sink and
checkpoint buffers breathe by a few MiB between samples."""
DEFAULT_WINDOW_S = 60
"""A plant's usual minute windows (bench/pipeline.py uses 10 s to see many closes in 20 s)."""
_MIB = 2**20


def correction_memory(pipeline: EmbeddedPipeline) -> dict[str, int]:
    """What the engine keeps for late-data corrections now, summed over its machines."""
    # The bench looks inside on purpose: these are the structures a plateau depends on.
    tracks = pipeline.engine._tracks.values()
    return {
        "history_readings": sum(len(t.history) for t in tracks),
        "snapshots": sum(len(t.snapshots) for t in tracks),
        "emitted_windows": sum(len(t.emitted) for t in tracks),
        "history_bytes": sum(t.history.nbytes for t in tracks),
        "held_readings": sum(len(t.held) for t in tracks),
    }


@dataclass
class SoakResult:
    """The collector's soak (the baseline) and the pipeline's, with what the engine kept."""

    baseline: Soak
    pipeline: Soak
    kept: dict[str, int] = field(default_factory=dict)
    flat_mib: float = DEFAULT_FLAT_MIB

    @property
    def flat(self) -> bool:
        """Whether the pipeline's RSS grew by less than ``flat_mib`` over its second half."""
        return self.pipeline.growth_mib < self.flat_mib

    @property
    def ratio(self) -> float:
        """The pipeline's largest RSS over the collector's."""
        return self.pipeline.max_mib / self.baseline.max_mib


async def run_pipeline_soak(
    server: ServerProcess,
    settings: PipelineSettings,
    seconds: float,
    interval_s: float,
    log: TextIO | None = None,
    influx_url: str | None = None,
    account: bool = False,
) -> tuple[Soak, dict[str, int]]:
    """Run the pipeline for ``seconds`` after its first values; sample RSS every ``interval_s``.

    With ``influx_url`` it also writes to that InfluxDB (its readings are counted as accepted there).
    With ``account`` (and a ``log``) it prints where the memory is at the end (bench/memstat.py).
    """
    loop = asyncio.get_running_loop()
    s = settings.opcua
    stop = asyncio.Event()
    result = Soak(seconds)
    prefix = "plantstream-bench-soak-"
    async with bench_pipeline(server, settings, prefix, influx_url) as (pipeline, recorder):
        task = asyncio.create_task(pipeline.run(stop))
        try:
            await _first_values(recorder, task, s.tags, s.connect_timeout_s)
            n0, t0 = recorder.n, loop.time()
            if account and log is not None:
                print(f"memory at the start: {memstat.account()}", file=log, flush=True)
            result.samples.append((0.0, rss_bytes()))
            k = 0
            while (elapsed := loop.time() - t0) < seconds:
                k += 1
                await asyncio.sleep(max(0.0, min(k * interval_s, seconds) - elapsed))
                if task.done():
                    task.result()
                    raise RuntimeError("the pipeline stopped during the soak")
                result.samples.append((loop.time() - t0, rss_bytes()))
                if log is not None:
                    kept = correction_memory(pipeline)
                    print(
                        f"pipeline {result.samples[-1][0]:6.0f}/{seconds:g} s: RSS "
                        f"{result.samples[-1][1] / _MIB:7.1f} MiB, {recorder.n - n0:,} readings written; "
                        f"kept {kept}",
                        file=log,
                        flush=True,
                    )
            result.readings = recorder.n - n0
            kept = correction_memory(pipeline)
            if account and log is not None:
                print(f"memory at the end: {memstat.account()}", file=log, flush=True)
                print(f"objects the GC tracks: {memstat.census()}", file=log, flush=True)
                print(f"one malloc_trim(0): {memstat.trim_experiment()}", file=log, flush=True)
                print(f"memory after it: {memstat.account()}", file=log, flush=True)
        finally:
            await stop_task(task, stop, 60)
        stats = task.result()
    [collector] = pipeline.collectors
    result.dropped = collector.dropped + collector.health.dropped_events
    result.detail = {
        "readings": stats.readings,
        "rejected": sum(stats.rejected.values()),
        "reconnects": collector.health.reconnects,
        **{f"rejected_{reason}": n for reason, n in stats.rejected.items()},
    }
    return result, kept


async def measure(
    settings: PipelineSettings,
    minutes: float,
    baseline_minutes: float,
    interval_s: float,
    log: TextIO | None = None,
    account: bool = False,
) -> SoakResult:
    """Start the server, soak the collector alone, then the pipeline, against the same server.

    With ``settings.influxdb`` the pipeline also writes to an InfluxDB 1.12 node started for the
    run (its memory is its own process's, not counted here).
    """
    s = settings.opcua
    duration = (minutes + baseline_minutes) * 60 + 2 * s.connect_timeout_s + 300
    async with contextlib.AsyncExitStack() as stack:
        influx = await stack.enter_async_context(influx_node()) if settings.influxdb else None
        server = await stack.enter_async_context(
            ServerProcess(s.tags, s.rate, duration, machines=settings.machines)
        )
        if log is not None:
            print(f"simulator process {server.pid} on {server.endpoint}", file=log, flush=True)
        baseline = await run_soak(server, s, baseline_minutes * 60, interval_s, log)
        url = influx.url if influx is not None else None
        pipeline, kept = await run_pipeline_soak(
            server, settings, minutes * 60, interval_s, log, url, account
        )
    return SoakResult(baseline, pipeline, kept)


def _report(result: SoakResult, out: TextIO) -> None:
    b, p = result.baseline, result.pipeline
    print(file=out)
    print(
        f"collector alone: {b.rate:,.0f} readings/s; RSS {b.first_mib:.0f} -> {b.last_mib:.0f} MiB "
        f"(max {b.max_mib:.0f}); second half {b.growth_mib:+.1f} MiB ({b.slope_mib_per_min:+.2f} MiB/min)",
        file=out,
    )
    print(
        f"pipeline:        {p.rate:,.0f} readings/s; RSS {p.first_mib:.0f} -> {p.last_mib:.0f} MiB "
        f"(max {p.max_mib:.0f}); second half {p.growth_mib:+.1f} MiB ({p.slope_mib_per_min:+.2f} MiB/min); "
        f"dropped {p.dropped:,}; {p.detail}",
        file=out,
    )
    print(f"kept for corrections at the end: {result.kept}", file=out)
    print(f"ratio of largest RSS, pipeline/collector: {result.ratio:.2f}", file=out)
    verdict = "levels off" if result.flat else "still grows"
    print(f"pipeline RSS {verdict} (second-half growth bound {result.flat_mib:g} MiB)", file=out)


def table_row(result: SoakResult, settings: PipelineSettings, minutes: float, day: str) -> str:
    """The docs/benchmarks.md row of this run."""
    b, p, s = result.baseline, result.pipeline, settings.opcua
    return (
        f"| {day} | {s.tags:,} × {s.rate:g} Hz, {minutes:g} min | {b.max_mib:.0f} | {p.first_mib:.0f} -> "
        f"{p.max_mib:.0f} | {p.growth_mib:+.1f} ({p.slope_mib_per_min:+.2f}/min) | {result.ratio:.2f} | "
        f"{'yes' if result.flat else 'no'} |"
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=2_000, help="load tags served and subscribed")
    parser.add_argument("--rate", type=float, default=10.0, help="writes per second of every tag")
    parser.add_argument("--machines", type=int, default=DEFAULT_MACHINES, help="simulated machines (OEE)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_S, help="window length, s")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="the pipeline's soak")
    parser.add_argument("--baseline-minutes", type=float, default=DEFAULT_BASELINE_MINUTES)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between samples")
    parser.add_argument("--flat-mib", type=float, default=DEFAULT_FLAT_MIB)
    parser.add_argument(
        "--history-bytes",
        type=int,
        default=None,
        help="the plant's production.correction_history_bytes (default: the plant file's default)",
    )
    parser.add_argument(
        "--influxdb",
        action="store_true",
        help="the pipeline also writes to an InfluxDB 1.12 node started for the run",
    )
    parser.add_argument(
        "--account", action="store_true", help="print where the memory is at the end (bench/memstat.py)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 unless the pipeline's RSS levels off")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Soak, print the report and the table row; the exit status for ``--check``."""
    args = _arguments(argv)
    _quiet_logs()
    settings = PipelineSettings(
        Settings(tags=args.tags, rate=args.rate, seconds=args.minutes * 60),
        machines=args.machines,
        window_s=args.window,
        collector=False,
        history_bytes=args.history_bytes,
        influxdb=args.influxdb,
    )
    print(
        f"code {code_revision(CODE_PATHS)}, python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{args.tags:,} tags at {args.rate:g} Hz, {args.machines} machines, {args.window} s windows; "
        f"collector {args.baseline_minutes:g} min, then pipeline {args.minutes:g} min; "
        f"RSS every {args.interval:g} s; correction_history_bytes "
        f"{'default' if args.history_bytes is None else args.history_bytes}"
        f"{'; also into InfluxDB 1.12' if args.influxdb else ''}",
        flush=True,
    )
    try:
        result = asyncio.run(
            measure(settings, args.minutes, args.baseline_minutes, args.interval, sys.stdout, args.account)
        )
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.flat_mib = args.flat_mib
    _report(result, sys.stdout)
    print()
    print("| day | load, run | collector max RSS, MiB | pipeline RSS, MiB | 2nd half, MiB | ratio | flat |")
    print(table_row(result, settings, args.minutes, today()))
    return 1 if args.check and not result.flat else 0


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
