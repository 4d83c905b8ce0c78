"""The correction history's cost: a list of tuples against ``streams.history.History``, in one run.

Both are filled with the same readings, as the soak's plant makes them (``--machines`` histories,
``--readings`` in all, round robin): mostly power meters' floats, some counters' ints, a few state
texts and ticks, now and then an uncertain or bad sample.

- **Memory**: what each holds once filled, and in a steady state (as many readings again, the
  oldest pruned in batches so each machine keeps its share), by ``tracemalloc``, in bytes per
  reading kept. The readings are made one at a time and dropped after the append, as in the
  engine, so only what the structure keeps is counted.
- **Time**: an append, and a slice from an index of ``--slice`` readings (what a correction
  applies again: up to a machine's whole share, about 1 000 readings in the soak), best of
  ``--repeat`` alternating rounds, as a ratio to the list's.
- **In the engine**: the same readings of ``--engine-machines`` machines at 10 Hz for
  ``--engine-minutes`` (power, a counter, now and then a state) pushed into an ``Engine`` with
  each history; each machine keeps about 1 000 readings, as in the soak. Twice: with one reading
  in 500 delivered 20 s late (it corrects: the readings since the snapshot before it are sliced
  out of the history and appended again), and with none. The time of all pushes as a ratio, and
  the points of both compared (they must be the same).

Run: ``.venv/bin/python bench/history.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import platform
import random
import sys
import time
import tracemalloc
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TextIO

from bench.common import code_revision, today
from plantstream.plant import parse_plant
from plantstream.records import QUALITY_TEXT, Quality
from streams.config import build_spec
from streams.engine import Engine, ReadingRejected
from streams.history import History, Row

T0_US = 1_772_438_400_000_000  # 2026-03-02T08:00:00Z
_GOOD, _UNCERTAIN, _BAD = (QUALITY_TEXT[q] for q in (Quality.GOOD, Quality.UNCERTAIN, Quality.BAD))
_STATES = ("running", "down", "idle", "setup")
_SIGNALS = ("power_kw", "total_count", "good_count", "state", "")
TABLE_HEADER = (
    "| day | machines × readings | list B/reading (filled, steady) | History B/reading (filled, steady) "
    "| memory ratio | append ratio | slice ratio | engine ratio (late 0.2 %, none) |\n"
    "|---|---|---|---|---|---|---|---|"
)


def readings(machines: int, count: int, seed: int = 7) -> Iterator[tuple[int, Row]]:
    """``count`` readings as ``(machine index, row)``, 10 Hz a machine, round robin, made on demand.

    A machine's readings are 90 % power (a float of a few decimals), 8 % counters (ints that only
    grow), 1 % state texts and 1 % ticks (``None``); one in 200 is uncertain and one in 500 bad.
    """
    rng = random.Random(seed)
    totals = [0] * machines
    for seq in range(count):
        machine = seq % machines
        ts = T0_US + (seq // machines) * 100_000 + rng.randrange(1_000)
        draw = rng.random()
        value: Any
        if draw < 0.90:
            signal, value = _SIGNALS[0], round(rng.uniform(0.0, 250.0), 3)
        elif draw < 0.98:
            totals[machine] += rng.randrange(3)
            signal, value = _SIGNALS[1 + (draw < 0.94)], totals[machine]
        elif draw < 0.99:
            signal, value = _SIGNALS[3], _STATES[rng.randrange(len(_STATES))]
        else:
            signal, value = _SIGNALS[4], None
        quality = _BAD if seq % 500 == 0 else _UNCERTAIN if seq % 200 == 0 else _GOOD
        yield machine, (ts, seq + 1, signal, value, quality)


@dataclass(frozen=True)
class Memory:
    """Bytes per reading kept: once filled, and in the steady state of pruning."""

    filled: float
    steady: float


def memory(make: Callable[[], Any], machines: int, count: int) -> Memory:
    """Fill ``machines`` histories made by ``make`` with ``count`` readings, then as many again pruned."""
    share = max(1, count // machines)
    batch = max(1, share // 8)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        histories = [make() for _ in range(machines)]
        for machine, row in readings(machines, count):
            histories[machine].append(row)
        filled = (tracemalloc.get_traced_memory()[0] - before) / count
        for machine, row in readings(machines, count, seed=8):
            history = histories[machine]
            history.append(row)
            if len(history) >= share + batch:
                del history[: len(history) - share]
        kept = sum(len(h) for h in histories)
        steady = (tracemalloc.get_traced_memory()[0] - before) / kept
    finally:
        tracemalloc.stop()
    del histories
    return Memory(filled, steady)


def best_of(repeat: int, rounds: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The fastest of ``repeat`` alternating rounds of each timed function (it returns seconds)."""
    times: dict[str, list[float]] = {name: [] for name in rounds}
    for _ in range(repeat):
        for name, timed in rounds.items():
            times[name].append(timed())
    return {name: min(values) for name, values in times.items()}


def append_seconds(make: Callable[[], Any], rows: list[Row]) -> float:
    """Seconds per append of ``rows`` into one history made by ``make``."""
    history = make()
    append = history.append
    began = time.perf_counter()
    for row in rows:
        append(row)
    return (time.perf_counter() - began) / len(rows)


def slice_seconds(history: Any, size: int, times: int) -> float:
    """Seconds per ``history[index:]`` of ``size`` readings (a correction's, from its snapshot on)."""
    index = len(history) - size
    began = time.perf_counter()
    for _ in range(times):
        history[index:]
    return (time.perf_counter() - began) / times


class ListHistory(list[Row]):
    """The history as it was: a list of tuples, with the bisection the engine did on it."""

    def bisect_time(self, ts: int) -> int:
        """``bisect_left(self, ts, key=itemgetter(0))``."""
        return bisect_left(self, ts, key=itemgetter(0))

    nbytes = 0
    """The engine's byte bound does not apply (the plant's budget is 1 TiB): both are cut by count."""

    def nbytes_from(self, index: int) -> int:
        """Nothing counted: see :attr:`nbytes`."""
        return 0


def engine_plant(machines: int) -> str:
    """A plant of ``machines`` machines on one line, each with a state, a counter and a power meter."""
    body = "".join(
        f"          - id: m{i}\n            ideal_cycle_s: 1.0\n            signals:\n"
        f"              state: state\n              total_count: total_count\n"
        f"              power_kw: {{role: power_kw, integration: trapezoid}}\n"
        for i in range(machines)
    )
    return (
        "sites:\n  - id: s\n    timezone: UTC\n    country: VN\n    lines:\n      - id: l\n"
        f"        machines:\n{body}production:\n  correction_history_max: {1_000 * machines}\n"
        f"  correction_history_bytes: {2**40}\n"
    )


def engine_readings(machines: int, minutes: float, late: float) -> list[tuple[int, str, str, Any]]:
    """10 Hz a machine, in delivery order: the fraction ``late`` delivered 20 s late (it corrects)."""
    rng = random.Random(11)
    timed = []
    totals = [0] * machines
    for step in range(int(minutes * 600)):
        for m in range(machines):
            ts = T0_US + step * 100_000 + m
            draw = rng.random()
            if step % 600 == 0 or draw < 0.002:
                signal, value = "state", rng.choice(("running", "running", "idle"))
            elif draw < 0.1:
                totals[m] += 1
                signal, value = "total_count", totals[m]
            else:
                signal, value = "power_kw", round(rng.uniform(0.0, 250.0), 3)
            delay = 20_000_000 if rng.random() < late else 0
            timed.append((ts + delay, ts, f"m{m}", signal, value))
    timed.sort()
    return [(ts, machine, signal, value) for _, ts, machine, signal, value in timed]


def engine_seconds(
    machines: int, pushes: list[tuple[int, str, str, Any]], listed: bool
) -> tuple[float, list[str], dict[str, int]]:
    """Seconds to push everything and flush, the points as JSON lines, and the engine's counts."""
    engine = Engine(build_spec(parse_plant(engine_plant(machines)).model))
    if listed:
        for track in engine._tracks.values():
            track.history = ListHistory()  # type: ignore[assignment]
    push = engine.push_raw
    began = time.perf_counter()
    for ts, machine, signal, value in pushes:
        with contextlib.suppress(ReadingRejected):
            push(ts, machine, signal, value)
    engine.flush()
    seconds = time.perf_counter() - began
    return seconds, [p.to_json() for p in engine.take_points()], dict(engine.stats)


@dataclass(frozen=True)
class Result:
    """One run: memory of each, time of each and the ratios."""

    plain: Memory
    compact: Memory
    append_s: dict[str, float]
    slice_s: dict[str, float]
    engine_s: dict[str, float]
    in_order_s: dict[str, float]

    @property
    def memory_ratio(self) -> float:
        """The compact history's steady bytes per reading over the list's."""
        return self.compact.steady / self.plain.steady

    @property
    def append_ratio(self) -> float:
        """Time per append, compact over list."""
        return self.append_s["compact"] / self.append_s["list"]

    @property
    def slice_ratio(self) -> float:
        """Time per correction-size slice, compact over list."""
        return self.slice_s["compact"] / self.slice_s["list"]

    @property
    def engine_ratio(self) -> float:
        """Time of the engine's pushes with corrections, with the compact history over with the list."""
        return self.engine_s["compact"] / self.engine_s["list"]

    @property
    def in_order_ratio(self) -> float:
        """Time of the engine's pushes all in order, with the compact history over with the list."""
        return self.in_order_s["compact"] / self.in_order_s["list"]


def measure(
    machines: int,
    count: int,
    slice_size: int,
    repeat: int,
    out: TextIO,
    engine_machines: int = 20,
    engine_minutes: float = 5.0,
) -> Result:
    """Measure both, report as it goes on ``out``, and return the result."""
    plain = memory(list, machines, count)
    print(f"list of tuples: {plain.filled:.1f} B/reading filled, {plain.steady:.1f} steady", file=out)
    compact = memory(History, machines, count)
    print(f"History: {compact.filled:.1f} B/reading filled, {compact.steady:.1f} steady", file=out)
    rows = [row for _, row in readings(1, min(count, 200_000), seed=9)]
    append_s = best_of(
        repeat, {"list": lambda: append_seconds(list, rows), "compact": lambda: append_seconds(History, rows)}
    )
    filled_list: list[Row] = []
    filled = History()
    for row in rows:
        filled_list.append(row)
        filled.append(row)
    assert filled[:] == filled_list, "the two histories differ"
    size = min(slice_size, len(rows) // 2)
    times = max(1, 200_000 // size)
    slice_s = best_of(
        repeat,
        {
            "list": lambda: slice_seconds(filled_list, size, times),
            "compact": lambda: slice_seconds(filled, size, times),
        },
    )
    for name, seconds in (("append", append_s), (f"slice of {size}", slice_s)):
        print(
            f"{name}: list {seconds['list'] * 1e6:.3f} µs, History {seconds['compact'] * 1e6:.3f} µs, "
            f"ratio {seconds['compact'] / seconds['list']:.1f}",
            file=out,
        )
    engine_s = engine_best(engine_machines, engine_minutes, 0.002, repeat, out)
    in_order_s = engine_best(engine_machines, engine_minutes, 0.0, repeat, out)
    return Result(plain, compact, append_s, slice_s, engine_s, in_order_s)


def engine_best(machines: int, minutes: float, late: float, repeat: int, out: TextIO) -> dict[str, float]:
    """The fastest of ``repeat`` alternating runs of the engine with each history; same points checked."""
    pushes = engine_readings(machines, minutes, late)
    runs: dict[str, list[float]] = {"list": [], "compact": []}
    outputs = {}
    for _ in range(repeat):
        for name, run_times in runs.items():
            seconds, points, stats = engine_seconds(machines, pushes, listed=name == "list")
            run_times.append(seconds)
            outputs[name] = (points, stats)
    assert outputs["list"] == outputs["compact"], "the engine's points differ"
    best = {name: min(values) for name, values in runs.items()}
    stats = outputs["compact"][1]
    print(
        f"engine, {len(pushes)} readings ({stats.get('late_readings', 0)} corrections, "
        f"{stats.get('history_trimmed', 0)} trimmed): list {best['list']:.2f} s, "
        f"History {best['compact']:.2f} s, ratio {best['compact'] / best['list']:.3f}",
        file=out,
    )
    return best


def table_row(result: Result, machines: int, count: int, day: str) -> str:
    """The run's row for docs/benchmarks.md."""
    return (
        f"| {day} | {machines:,} × {count:,} | {result.plain.filled:.0f}, {result.plain.steady:.0f} "
        f"| {result.compact.filled:.1f}, {result.compact.steady:.1f} | {result.memory_ratio:.2f} "
        f"| {result.append_ratio:.1f} | {result.slice_ratio:.1f} "
        f"| {result.engine_ratio:.2f}, {result.in_order_ratio:.2f} |"
    )


def main() -> None:
    """Measure and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=2_000, help="histories, one a machine")
    parser.add_argument("--readings", type=int, default=2_000_000, help="readings kept in all")
    parser.add_argument(
        "--slice", type=int, default=1_000, help="readings a correction applies again (the soak's share)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--engine-machines", type=int, default=20)
    parser.add_argument("--engine-minutes", type=float, default=5.0)
    args = parser.parse_args()
    revision = code_revision(["streams/history.py", "streams/engine.py", "bench/history.py"])
    print(
        f"code {revision}, Python {platform.python_version()}, "
        f"{args.machines} machines, {args.readings} readings"
    )
    result = measure(
        args.machines,
        args.readings,
        args.slice,
        args.repeat,
        sys.stdout,
        args.engine_machines,
        args.engine_minutes,
    )
    print()
    print(TABLE_HEADER)
    print(table_row(result, args.machines, args.readings, today()))


if __name__ == "__main__":
    main()
