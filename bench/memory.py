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
(several times slower). With ``--owners`` it gives, once the engine is built and again at the
end, the bytes each part of the engine holds per machine (:func:`owners`).

Run: ``.venv/bin/python bench/memory.py`` (2,000 tags, 5 simulated minutes, about 2 minutes);
``--history-bytes 16777216`` for the plant's ``correction_history_bytes``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import platform
import random
import sys
import time
import tracemalloc
import types
from array import array
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

__all__ = ["Minute", "deep_size", "kept", "main", "owners", "run"]

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


_NOT_DATA = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it refers to (``sys.getsizeof``), not counting ``seen``.

    Adds what it counts to ``seen``, so a run of calls counts an object shared by several roots
    once, for the first. Classes, modules and functions are code, not data, and are skipped.
    """
    size = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _NOT_DATA):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack += obj.keys()
            stack += obj.values()
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += obj
        elif isinstance(obj, str | bytes | int | float | array) or obj is None:
            continue
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__self__)
        elif isinstance(obj, functools.partial):
            stack += (obj.args, obj.keywords)
        else:
            if hasattr(obj, "__dict__"):
                stack.append(obj.__dict__)
            for cls in type(obj).__mro__:
                slots = cls.__dict__.get("__slots__", ())
                for name in (slots,) if isinstance(slots, str) else slots:
                    if hasattr(obj, name):
                        stack.append(getattr(obj, name))
    return size


def owners(engine: Engine) -> dict[str, int]:
    """Bytes the engine holds by owner, summed over its machines (:func:`deep_size`).

    Counted in this order, an object shared by several owners going to the first: the resolved
    plant (``spec``), the roll-ups, then each machine's parts. The engine itself is not walked
    into from its parts (a roll-up refers back to it).
    """
    seen = {id(engine)}
    out = {"spec": deep_size(engine.spec, seen), "rollups": deep_size(engine._rollup, seen)}
    parts = {
        "state": lambda t: t.calc.state,
        "calc": lambda t: t.calc,
        "points": lambda t: t.points,
        "routes": lambda t: t.routes,
        "history": lambda t: t.history,
        "held": lambda t: t.held,
        "snapshots": lambda t: t.snapshots,
        "emitted": lambda t: t.emitted,
        "stops": lambda t: t.stops,
        "track": lambda t: t,
    }
    for name in parts:
        out[name] = 0
    for track in engine._tracks.values():
        for name, part in parts.items():
            out[name] += deep_size(part(track), seen)
    return out


def _print_owners(label: str, engine: Engine, log: TextIO) -> None:
    counted = owners(engine)
    machines = len(engine.spec.machines)
    print(f"{label}: bytes by owner, MiB and B a machine ({machines:,} machines)", file=log)
    for name, size in sorted(counted.items(), key=lambda item: -item[1]):
        print(f"  {name:10s} {size / _MIB:8.2f} MiB {size / machines:8.0f} B", file=log)
    total = sum(counted.values())
    print(f"  {'total':10s} {total / _MIB:8.2f} MiB {total / machines:8.0f} B", file=log, flush=True)


def run(
    tags: int,
    rate: float,
    minutes: int,
    history_bytes: int | None = None,
    trace: int = 0,
    log: TextIO | None = None,
    by_owner: bool = False,
) -> tuple[list[Minute], list[str]]:
    """Push ``minutes`` of ``tags`` meters at ``rate`` Hz; the engine after each minute.

    With ``trace`` > 0, also the ``trace`` largest allocations by line at the end. With
    ``by_owner`` and a ``log``, the engine's bytes by owner (:func:`owners`) are written to it
    once the engine is built and at the end.
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
    if by_owner and log is not None:
        _print_owners("before any reading", engine, log)
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
    if by_owner and log is not None:
        _print_owners(f"after {minutes} simulated minutes", engine, log)
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
    parser.add_argument("--owners", action="store_true", help="give the engine's bytes by owner")
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
    minutes, top = run(
        args.tags, args.rate, args.minutes, args.history_bytes, args.trace, sys.stdout, args.owners
    )
    print(
        f"{time.perf_counter() - began:.0f} s; RSS after the first minute {minutes[0].rss_mib:.1f} MiB, "
        f"largest {max(m.rss_mib for m in minutes):.1f}, last {minutes[-1].rss_mib:.1f}"
    )
    for line in top:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
