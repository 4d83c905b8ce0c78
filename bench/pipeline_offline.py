"""The embedded pipeline's CPU per reading without OPC UA: readings fed straight into it.

What is measured: :class:`runtimes.embedded.EmbeddedPipeline` on a plant of ``--tags`` machines of
one ``power_kw`` signal each (raw readings recorded, so every reading is also a ``reading`` point),
with the file sink and one ``influxdb`` sink whose write is replaced by what the real one does
before the network (gzip level 1 of the body): the engine, the output side and the sink's worker
thread, but no collector and no server. ``--ticks`` sampling ticks of every tag, 100 ms apart, are
fed through :meth:`EmbeddedPipeline.feed` in batches of 1 000 as a collector would, as fast as the
pipeline takes them; the result is this process's CPU seconds (all threads) per reading, and the
longest stall of the event loop seen by a probe that sleeps 10 ms at a time.

It imports only the installed packages, so the same file measures any checkout: run it with that
checkout's interpreter, e.g. ``/work/base/.venv/bin/python bench/pipeline_offline.py`` against
``.venv/bin/python bench/pipeline_offline.py``, alternating (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import gzip
import json
import os
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import stop_on_sigterm
from plantstream.records import Quality, ReadingTuple, reading_tuple
from runtimes.embedded import EmbeddedPipeline
from runtimes.plant import load_and_resolve

TOKEN_ENV = "PLANTSTREAM_OFFLINE_TOKEN"


def plant_document(tags: int) -> dict[str, Any]:
    """A plant of ``tags`` machines with one power signal each, and one InfluxDB sink."""
    machines = [{"id": f"load{k}", "signals": {"power_kw": {"role": "power_kw"}}} for k in range(tags)]
    return {
        "sites": [
            {
                "id": "bench",
                "timezone": "UTC",
                "country": "VN",
                "lines": [{"id": "load", "machines": machines}],
            }
        ],
        "production": {"window_s": 10},
        "sources": [],
        "sinks": [
            {
                "type": "influxdb",
                "id": "influx",
                "url": "http://127.0.0.1:1",
                "org": "bench",
                "bucket": "bench",
                "token_env": TOKEN_ENV,
                "precision": {"default": "s", "reading": "ms"},
            }
        ],
    }


def make_batches(tags: int, ticks: int) -> list[list[ReadingTuple]]:
    """One batch of readings per tick: every tag's power, 100 ms apart, ending a minute ago.

    As the OPC UA collector hands them to the pipeline: :class:`ReadingTuple` lists.
    """
    start = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(seconds=ticks / 10 + 60)
    names = [f"load{k}" for k in range(tags)]
    batches = []
    seq = 0
    for tick in range(ticks):
        ts = start + timedelta(milliseconds=100 * tick)
        batch = []
        for k, name in enumerate(names):
            value = float((tick * 7 + k) % 50) + 0.25
            batch.append(
                reading_tuple((ts, name, "power_kw", value, Quality.GOOD, None, None, ts, "-", seq, False))
            )
            seq += 1
        batches.append(batch)
    return batches


class Pauses:
    """The event loop's stalls (a probe sleeping 10 ms at a time) and the GC's passes by generation."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_busy = 0.0
        self.stalls = 0
        self.gc: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._began = 0.0

    async def probe(self) -> None:
        """Sleep 10 ms at a time and note how much later than that the loop came back."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            busy = time.thread_time()
            await asyncio.sleep(0.01)
            stall = loop.time() - before - 0.01
            self.longest = max(self.longest, stall)
            self.stalls += stall > 0.1
            # The loop's own CPU in that time: a stall without it was the machine's (no core free).
            self.longest_busy = max(self.longest_busy, min(stall, time.thread_time() - busy))

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """A ``gc.callbacks`` entry timing each pass."""
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.gc[info["generation"]].append(time.perf_counter() - self._began)

    def report(self) -> dict[str, float]:
        """The figures as JSON-ready numbers (ms)."""
        return {
            "longest_stall_ms": self.longest * 1000,
            "stalls_over_100ms": self.stalls,
            "longest_busy_stall_ms": self.longest_busy * 1000,
            **{f"gc{g}_count": len(p) for g, p in self.gc.items()},
            **{f"gc{g}_max_ms": max(p, default=0.0) * 1000 for g, p in self.gc.items()},
        }


async def measure(tags: int, ticks: int, state: Path, paced: bool) -> dict[str, float]:
    """Feed ``ticks`` ticks of ``tags`` readings; CPU µs per reading, loop stalls, GC passes.

    ``paced``: a tick every 100 ms of wall-clock time, as a server at 10 Hz would send them;
    otherwise as fast as the pipeline takes them.
    """
    plant_file = state / "plant.json"
    plant_file.write_text(json.dumps(plant_document(tags)), encoding="utf-8")
    plant, spec = load_and_resolve(plant_file)
    os.environ.setdefault(TOKEN_ENV, "offline")
    pipeline = EmbeddedPipeline(plant, spec, state / "state")
    pipeline.collectors = []
    accepted = 0

    def write(body: bytes, precision: str) -> None:
        nonlocal accepted
        gzip.compress(body, compresslevel=1)
        accepted += body.count(b"\n") + 1

    for sink in pipeline.sinks:
        sink._writer = write
    batches = make_batches(tags, ticks)
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    await asyncio.sleep(0.5)
    pauses = Pauses()
    prober = asyncio.create_task(pauses.probe())
    gc.callbacks.append(pauses.on_gc)
    cpu = time.process_time()
    wall = time.perf_counter()
    for tick, batch in enumerate(batches):
        await pipeline.feed(batch)
        if paced:
            await asyncio.sleep(max(0.0, wall + (tick + 1) / 10 - time.perf_counter()))
    while pipeline._queued:
        await asyncio.sleep(0.001)
    for sink in pipeline.sinks:
        await sink.drain(60)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    prober.cancel()
    gc.callbacks.remove(pauses.on_gc)
    stop.set()
    await task
    readings = tags * ticks
    return {
        "cpu_us_per_reading": cpu / readings * 1e6,
        "wall_s": wall,
        **pauses.report(),
        "accepted": accepted,
        "readings": readings,
    }


def main() -> int:
    """Run once and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--paced", action="store_true", help="a tick every 100 ms, not as fast as taken")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run (cumulative)")
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="plantstream-offline-") as tmp:
        if profiler is not None:
            profiler.enable()
        result = asyncio.run(measure(args.tags, args.ticks, Path(tmp), args.paced))
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(35)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
