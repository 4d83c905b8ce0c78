"""What holds the engine's memory at 2,000 meters × 10 Hz, offline: no OPC UA, minutes in seconds.

The soak (``bench/soak.py``) runs the whole pipeline against a server for half an hour, and how
many readings it gets a second depends on what else the machine is doing. This pushes the
soak's plant (bench/pipeline.py's: every load tag a machine's ``power_kw``) straight into an
:class:`streams.engine.Engine`, ``--tags`` meters at ``--rate`` Hz of event time, as fast as it
goes, with each reading's receipt time equal to its event time (so the plant's lateness and
time checks apply as in ``run``). Every simulated minute it takes the points (as a sink would)
and reports RSS and what the engine keeps: readings of correction history and their bytes as
the history counts them, snapshots, emitted windows, readings held for ordering.

With ``--trace`` it also starts ``tracemalloc`` after the engine is built and, at the end, gives
the largest allocations by file and line: what holds the memory above the engine's start
(several times slower).

Run: ``.venv/bin/python bench/memory.py`` (2,000 tags, 5 simulated minutes, about 2 minutes);
``--history-bytes 16777216`` for the plant's ``correction_history_bytes``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from bench.common import code_revision
from bench.endtoend import PipelineSettings, plant_document
from bench.opcua import Settings, rss_bytes
from plantstream.plant import parse_plant
from runtimes.gc_tuning import fewer_collections
from streams.config import build_spec
from streams.engine import Engine, ReadingRejected

__all__ = ["Minute", "kept", "main", "run"]

CODE_PATHS = ("streams", "bench/memory.py")
T0_US = 1_780_000_000_000_000  # 2026-05-28
_MIB = 2**20


@dataclass
class Minute:
    """The engine after one more simulated minute."""

    minute: int
    rss_mib: float
    kept: dict[str, int] = field(default_factory=dict)


def kept(engine: Engine) -> dict[str, int]:
    """What the engine keeps now, summed over its machines (bench/soak.py reports the same)."""
    # The bench looks inside on purpose: these are the structures memory depends on.
    tracks = engine._tracks.values()
    return {
        "history_readings": sum(len(t.history) for t in tracks),
        "history_bytes": sum(t.history.nbytes for t in tracks),
        "snapshots": sum(len(t.snapshots) for t in tracks),
        "emitted_windows": sum(len(t.emitted) for t in tracks),
        "held_readings": sum(len(t.held) for t in tracks),
    }


def run(
    tags: int,
    rate: float,
    minutes: int,
    history_bytes: int | None = None,
    trace: int = 0,
    log: TextIO | None = None,
) -> tuple[list[Minute], list[str]]:
    """Push ``minutes`` of ``tags`` meters at ``rate`` Hz; the engine after each minute.

    With ``trace`` > 0, also the ``trace`` largest allocations by line at the end.
    """
    settings = PipelineSettings(Settings(tags=tags, rate=rate), history_bytes=history_bytes, collector=False)
    document = plant_document("opc.tcp://127.0.0.1:4840", dataclasses.replace(settings, window_s=60))
    spec = build_spec(parse_plant(json.dumps(document)).model)
    engine = Engine(spec)
    names = [f"load{k}" for k in range(1, tags + 1)]
    push = engine.push_raw
    step_us = round(1e6 / rate)
    per_minute = round(60 * rate)
    rng = random.Random(1)
    out: list[Minute] = []
    if trace:
        tracemalloc.start(1)
    with fewer_collections():
        for step in range(minutes * per_minute):
            base = T0_US + step * step_us
            for i, machine in enumerate(names):
                # A meter's three decimals; ``i`` µs apart, as a server's samples are.
                with contextlib.suppress(ReadingRejected):
                    push(base + i, machine, "power_kw", round(rng.uniform(0.0, 250.0), 3), "good", base + i)
            if step % per_minute == per_minute - 1:
                engine.take_points()
                out.append(Minute(len(out) + 1, rss_bytes() / _MIB, kept(engine)))
                if log is not None:
                    m = out[-1]
                    print(
                        f"minute {m.minute:3d}: RSS {m.rss_mib:7.1f} MiB, kept {m.kept}", file=log, flush=True
                    )
    top: list[str] = []
    if trace:
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        top = [str(stat) for stat in snapshot.statistics("lineno")[:trace]]
    return out, top


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tags", type=int, default=2_000, help="meters, one machine each")
    parser.add_argument("--rate", type=float, default=10.0, help="readings per second of event time, each")
    parser.add_argument("--minutes", type=int, default=5, help="simulated minutes")
    parser.add_argument(
        "--history-bytes", type=int, default=None, help="the plant's correction_history_bytes"
    )
    parser.add_argument("--trace", type=int, default=0, help="give this many largest allocations by line")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print the engine's memory minute by minute."""
    args = _arguments(argv)
    budget = "default" if args.history_bytes is None else f"{args.history_bytes:,}"
    print(
        f"code {code_revision(CODE_PATHS)}, python {platform.python_version()}; {args.tags:,} meters at "
        f"{args.rate:g} Hz, {args.minutes} simulated minutes; correction_history_bytes {budget}",
        flush=True,
    )
    began = time.perf_counter()
    minutes, top = run(args.tags, args.rate, args.minutes, args.history_bytes, args.trace, sys.stdout)
    print(
        f"{time.perf_counter() - began:.0f} s; RSS after the first minute {minutes[0].rss_mib:.1f} MiB, "
        f"largest {max(m.rss_mib for m in minutes):.1f}, last {minutes[-1].rss_mib:.1f}"
    )
    for line in top:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
