"""Replay throughput against the parse-only baseline, side by side in one run.

What is measured (docs/benchmarks.md has the results and the command):

- **baseline**: ``Reading.from_json(line)`` for every line of the readings file, which is exactly
  the per-line decoding ``runtimes.replay.replay`` does, and nothing else;
- **replay**: ``runtimes.replay.replay`` with a fresh ``Engine(spec, reorder=False)`` over the same
  lines, writing every point as JSON to ``os.devnull`` (so point serialisation is included).

The file is read into memory as a list of lines *before* timing, so disk I/O is measured by
neither. Baseline and replay rounds alternate ``--repeat`` times and the fastest round of each is
kept; the result is a ratio replay/baseline, which is what the targets are about, because the
machine is shared and absolute rates drift from run to run. Wall-clock rates are never asserted in
tests; ``--check`` is for a person (or a dedicated job) who wants a non-zero exit on a miss.

The input is generated deterministically (seeded :class:`random.Random`) into ``bench/data/``:
a plant of ``--machines`` machines (default 100: 4 lines x 25) in Asia/Ho_Chi_Minh with a
two-shift calendar, and ``--readings`` readings (default 1 000 000) in event-time order,
interleaved across machines the way a live plant produces them. Files are reused when they
already exist for the same parameters.

Run: ``.venv/bin/python bench/replay.py --repeat 3`` (``--readings 100000`` for a quick run).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import os
import platform
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import yaml

from bench.common import code_revision, print_report_tail, profile_text, today
from plantstream.records import Reading
from runtimes.plant import load_and_resolve
from runtimes.replay import ReplaySummary, replay
from streams.config import EngineSpec
from streams.engine import Engine

__all__ = [
    "BenchResult",
    "Dataset",
    "generate",
    "load_lines",
    "main",
    "measure",
    "profile_replay",
    "time_baseline",
    "time_replay",
]

GENERATOR_VERSION = 1
"""Part of the data file names: bump it when the generator's output changes."""

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_READINGS = 1_000_000
DEFAULT_MACHINES = 100
DEFAULT_SEED = 20261128
TARGET_RATIO = 0.5
TARGET_RATE = 100_000.0

TIMEZONE = "Asia/Ho_Chi_Minh"
START_LOCAL = datetime(2026, 11, 27, 11, 0, tzinfo=ZoneInfo(TIMEZONE))
"""Plant time starts at 11:00 local: a 1M-reading run crosses the 12:00 break and the 14:00 shift change."""

SHIFTS = (
    # (name, start, end, break start, break end), local time.
    ("early", "06:00", "14:00", "12:00", "12:30"),
    ("late", "14:00", "22:00", "18:00", "18:30"),
)

STATE_CODES = {0: "off", 1: "running", 2: "idle", 3: "down", 4: "setup", 5: "planned_stop"}
_RUNNING, _IDLE, _DOWN, _SETUP, _PLANNED = 1, 2, 3, 4, 5

# Sampling periods in ms: counters and power often, the energy register each minute; the state
# is reported on change only.
_STATE, _TOTAL, _GOOD, _REJECT, _POWER, _ENERGY = range(6)
_SIGNALS = ("state", "total_count", "good_count", "reject_count", "power_kw", "energy_kwh")
_PERIOD_MS = {_TOTAL: 5_000, _GOOD: 5_000, _REJECT: 10_000, _POWER: 5_000, _ENERGY: 60_000}
_JITTER_MS = 40

# From running, the next stop and its mean length in s; the share of each kind of stop.
_STOPS = ((_DOWN, 0.40, 240.0), (_IDLE, 0.30, 120.0), (_SETUP, 0.18, 600.0), (_PLANNED, 0.12, 480.0))
_MEAN_RUN_S = 1_200.0
# Power drawn in each state, as a share of the machine's running power.
_POWER_SHARE = {0: 0.005, _RUNNING: 1.0, _IDLE: 0.30, _DOWN: 0.10, _SETUP: 0.20, _PLANNED: 0.08}


# -- the generated plant and readings ------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A generated plant file and readings file, and what they were generated from."""

    plant: Path
    readings: Path
    n_readings: int
    machines: int
    seed: int


@dataclass
class _MachineSim:
    """One simulated machine: its parameters and the live values its PLC would report."""

    id: str
    cycle_s: float
    reject_p: float
    run_kw: float
    state: int = _RUNNING
    on_break: bool = False
    next_change_ms: int = 0
    next_state: int = _RUNNING
    next_is_break: bool = False
    made: float = 0.0
    total: int = 0
    reject: int = 0
    kw: float = 0.0
    register: float = 0.0
    last_ms: int = 0


def _machine_ids(machines: int) -> list[tuple[str, list[str]]]:
    """Lines and their machine ids: 4 lines (fewer for tiny plants), machines spread evenly."""
    n_lines = max(1, min(4, machines))
    per_line = [machines // n_lines + (1 if i < machines % n_lines else 0) for i in range(n_lines)]
    return [
        (f"l{i + 1}", [f"l{i + 1}-m{j + 1:02d}" for j in range(count)]) for i, count in enumerate(per_line)
    ]


def _machine_params(machines: int, seed: int) -> list[dict[str, Any]]:
    """Per-machine parameters, drawn from ``seed`` alone so plant and readings always agree."""
    rng = random.Random(seed)
    params = []
    for line, ids in _machine_ids(machines):
        for mid in ids:
            run_kw = round(rng.uniform(4.0, 45.0), 1)
            params.append(
                {
                    "line": line,
                    "id": mid,
                    "ideal_cycle_s": round(rng.uniform(2.0, 8.0), 1),
                    "performance": rng.uniform(0.85, 0.97),
                    "reject_p": rng.uniform(0.005, 0.03),
                    "run_kw": run_kw,
                    "rated_kw": round(run_kw * 1.6, 1),
                    "register": round(rng.uniform(1_000.0, 90_000.0), 3),
                    "total": rng.randint(1_000, 50_000),
                }
            )
    return params


def _plant_document(machines: int, seed: int) -> dict[str, Any]:
    """The plant model as a YAML-ready dict."""
    params = _machine_params(machines, seed)
    lines = []
    for line, ids in _machine_ids(machines):
        members = [
            {
                "id": p["id"],
                "ideal_cycle_s": p["ideal_cycle_s"],
                "rated_power_kw": p["rated_kw"],
                "signals": {
                    "state": {"role": "state", "codes": dict(STATE_CODES)},
                    "total_count": "total_count",
                    "good_count": "good_count",
                    "reject_count": "reject_count",
                    "power_kw": {"role": "power_kw", "integration": "trapezoid"},
                    "energy_kwh": "energy_kwh",
                },
            }
            for p in params
            if p["id"] in ids
        ]
        lines.append({"id": line, "machines": members})
    shifts = [
        {"name": name, "start": start, "end": end, "breaks": [{"name": "meal", "start": bs, "end": be}]}
        for name, start, end, bs, be in SHIFTS
    ]
    return {
        "sites": [
            {
                "id": "hcm",
                "timezone": TIMEZONE,
                "country": "VN",
                "calendar": "two_shift",
                "carbon": {"grid": {"country": "VN", "basis": "annual", "year": 2023}},
                "lines": lines,
            }
        ],
        "calendars": {"two_shift": {"shifts": shifts}},
        "production": {"oee_method": "iso22400", "window_s": 60, "allowed_lateness_s": 5.0},
    }


def _break_intervals_ms(first_day: date, days: int) -> list[tuple[int, int]]:
    """Every shift break from ``first_day`` on, as UTC epoch milliseconds, in order."""
    zone = ZoneInfo(TIMEZONE)
    out = []
    for d in range(days):
        day = first_day + timedelta(days=d)
        for _, _, _, bs, be in SHIFTS:
            start = datetime.combine(day, time_of_day.fromisoformat(bs), zone)
            end = datetime.combine(day, time_of_day.fromisoformat(be), zone)
            out.append((int(start.timestamp() * 1000), int(end.timestamp() * 1000)))
    return sorted(out)


def _schedule(m: _MachineSim, now: int, rng: random.Random, breaks: list[tuple[int, int]]) -> None:
    """Choose the machine's next state change after ``now``; a shift break takes precedence."""
    m.next_is_break = False
    if m.on_break:
        # Back to work a little after the break ends (the machine stopped a little after it began).
        end = next(e for s, e in breaks if s <= now < e + 60_000)
        m.next_change_ms = max(end, now + 1_000) + rng.randint(0, 120_000)
        m.next_state = _RUNNING
        return
    if m.state == _RUNNING:
        duration_s = max(60.0, rng.expovariate(1 / _MEAN_RUN_S))
        pick = rng.random()
        m.next_state = _STOPS[-1][0]
        for state, share, _ in _STOPS:
            pick -= share
            if pick <= 0:
                m.next_state = state
                break
    else:
        mean = next((mean for s, _, mean in _STOPS if s == m.state), 300.0)
        duration_s = max(20.0, rng.expovariate(1 / mean))
        m.next_state = _RUNNING
    m.next_change_ms = now + int(duration_s * 1000)
    for start, _ in breaks:
        if start > m.next_change_ms:
            break
        if now < start:
            m.next_change_ms = start + rng.randint(0, 60_000)
            m.next_state = _PLANNED
            m.next_is_break = True
            break


def _advance(m: _MachineSim, now: int, rng: random.Random) -> None:
    """Bring production and the energy register up to ``now`` under the current state and power."""
    dt_s = (now - m.last_ms) / 1000
    if dt_s <= 0:
        return
    m.register += m.kw * dt_s / 3600
    if m.state == _RUNNING:
        m.made += dt_s / m.cycle_s
        while m.total < int(m.made):
            m.total += 1
            if rng.random() < m.reject_p:
                m.reject += 1
    m.last_ms = now


def _draw_kw(m: _MachineSim, rng: random.Random) -> float:
    """A power sample for the machine's current state: its share of running power, 3 % noise."""
    return max(0.0, m.run_kw * _POWER_SHARE[m.state] * (1 + rng.gauss(0, 0.03)))


def _write_readings(path: Path, n_readings: int, machines: int, seed: int) -> None:
    """Write exactly ``n_readings`` readings of the plant to ``path``, in event-time order.

    Every machine samples its counters and power every few seconds and its energy register each
    minute, with a small jitter around a fixed schedule and its own phase, and reports its state
    on change; one heap of (time, machine, signal, nominal time) interleaves them all.
    """
    params = _machine_params(machines, seed)
    rng = random.Random(seed * 1_000_003 + 1)
    t0 = int(START_LOCAL.timestamp() * 1000)
    breaks = _break_intervals_ms(START_LOCAL.date(), 2 + n_readings // 100_000)
    sims: list[_MachineSim] = []
    heap: list[tuple[int, int, int, int]] = []
    for i, p in enumerate(params):
        m = _MachineSim(
            p["id"],
            p["ideal_cycle_s"] / p["performance"],
            p["reject_p"],
            p["run_kw"],
            made=float(p["total"]),
            total=p["total"],
            reject=int(p["total"] * p["reject_p"]),
            register=p["register"],
        )
        phase = t0 + rng.randint(0, 4_999)
        m.last_ms = phase
        m.kw = _draw_kw(m, rng)
        sims.append(m)
        # The current state first (nominal -1 marks it), so the engine knows it before the counters.
        heap.append((phase, i, _STATE, -1))
        for stream in _PERIOD_MS:
            heap.append((phase + stream, i, stream, phase + stream))
    heapq.heapify(heap)
    stamp_second = -1
    stamp_prefix = ""
    with path.open("w", encoding="utf-8") as out:
        for _ in range(n_readings):
            ts, i, stream, nominal = heapq.heappop(heap)
            m = sims[i]
            _advance(m, ts, rng)
            if stream == _STATE:
                if nominal >= 0:
                    m.state, m.on_break = m.next_state, m.next_is_break
                    m.kw = _draw_kw(m, rng)
                _schedule(m, ts, rng, breaks)
                heapq.heappush(heap, (m.next_change_ms, i, _STATE, m.next_change_ms))
                value = str(m.state)
            else:
                if stream == _TOTAL:
                    value = str(m.total)
                elif stream == _GOOD:
                    value = str(m.total - m.reject)
                elif stream == _REJECT:
                    value = str(m.reject)
                elif stream == _POWER:
                    m.kw = _draw_kw(m, rng)
                    value = repr(round(m.kw, 3))
                else:
                    value = repr(round(m.register, 3))
                nominal += _PERIOD_MS[stream]
                heapq.heappush(heap, (nominal + rng.randint(0, _JITTER_MS), i, stream, nominal))
            second = ts // 1000
            if second != stamp_second:
                stamp_second = second
                stamp_prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            out.write(
                f'{{"ts": "{stamp_prefix}.{ts % 1000:03d}Z", "machine": "{m.id}", '
                f'"signal": "{_SIGNALS[stream]}", "value": {value}, "quality": "good"}}\n'
            )


def generate(
    n_readings: int = DEFAULT_READINGS,
    machines: int = DEFAULT_MACHINES,
    seed: int = DEFAULT_SEED,
    out_dir: Path = DATA_DIR,
    *,
    force: bool = False,
) -> Dataset:
    """Write (or reuse) the plant file and ``n_readings`` readings for ``machines`` machines.

    File names carry every parameter and the generator version, so an existing file is reused
    only when it was generated from the same inputs. Files are written under a temporary name and
    renamed, so an interrupted run never leaves a truncated file to be reused.

    Args:
        n_readings: exact number of lines in the readings file.
        machines: machines in the plant, spread over up to 4 lines.
        seed: seed of every random draw; the same seed gives byte-identical files.
        out_dir: where the files go (created if missing).
        force: regenerate even if the files exist.
    """
    if n_readings < 1 or machines < 1:
        raise ValueError("n_readings and machines must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"m{machines}-s{seed}-v{GENERATOR_VERSION}"
    plant = out_dir / f"plant-{tag}.yaml"
    readings = out_dir / f"readings-n{n_readings}-{tag}.jsonl"
    if force or not plant.exists():
        header = (
            f"# Generated by bench/replay.py (machines={machines}, seed={seed}, "
            f"generator v{GENERATOR_VERSION}); do not edit.\n"
        )
        body = yaml.safe_dump(_plant_document(machines, seed), sort_keys=False, default_flow_style=None)
        tmp = plant.with_suffix(".yaml.tmp")
        tmp.write_text(header + body, encoding="utf-8")
        tmp.replace(plant)
    if force or not readings.exists():
        tmp = readings.with_suffix(".jsonl.tmp")
        _write_readings(tmp, n_readings, machines, seed)
        tmp.replace(readings)
    return Dataset(plant, readings, n_readings, machines, seed)


# -- the measurement ----------------------------------------------------------------------------


def load_lines(path: Path) -> list[str]:
    """Read the whole readings file into memory, one string per line (newline kept, as replay sees it)."""
    with path.open(encoding="utf-8") as f:
        return f.readlines()


def time_baseline(lines: Sequence[str]) -> float:
    """Decode every line with ``Reading.from_json`` and return the wall time in seconds."""
    decode = Reading.from_json
    start = time.perf_counter()
    for line in lines:
        decode(line)
    return time.perf_counter() - start


def time_replay(spec: EngineSpec, lines: Sequence[str], source: str) -> tuple[float, ReplaySummary]:
    """Replay ``lines`` once (fresh engine, points to ``os.devnull``); return (seconds, summary)."""
    engine = Engine(spec, reorder=False)
    with open(os.devnull, "w", encoding="utf-8") as out:
        start = time.perf_counter()
        summary = replay(engine, lines, out, source=source, lateness_us=spec.allowed_lateness_us)
        elapsed = time.perf_counter() - start
    return elapsed, summary


def _peak_rss_kib() -> int:
    """Peak resident set size of this process so far, in KiB (Linux reports ru_maxrss in KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


@dataclass
class BenchResult:
    """The outcome of one benchmark run: every round's time and what the replay produced."""

    dataset: Dataset
    lines: int
    baseline_s: list[float] = field(default_factory=list)
    replay_s: list[float] = field(default_factory=list)
    points: int = 0
    rejected: int = 0
    late: int = 0
    rss_loaded_kib: int = 0
    rss_peak_kib: int = 0
    tracemalloc_peak_bytes: int | None = None

    @property
    def baseline_rate(self) -> float:
        """Readings per second of the fastest baseline round."""
        return self.lines / min(self.baseline_s)

    @property
    def replay_rate(self) -> float:
        """Readings per second of the fastest replay round."""
        return self.lines / min(self.replay_s)

    @property
    def ratio(self) -> float:
        """Replay rate over baseline rate (best round of each)."""
        return self.replay_rate / self.baseline_rate

    def failures(self) -> list[str]:
        """The targets missed (empty when every target is met and the run was valid)."""
        out = []
        if self.ratio < TARGET_RATIO:
            out.append(f"ratio {self.ratio:.2f} < {TARGET_RATIO}")
        if self.replay_rate < TARGET_RATE:
            out.append(f"replay {self.replay_rate:,.0f} readings/s < {TARGET_RATE:,.0f}")
        if self.rejected:
            out.append(f"{self.rejected} readings rejected: the generated input is not valid")
        return out


def measure(
    dataset: Dataset,
    repeat: int = 3,
    *,
    with_tracemalloc: bool = False,
    log: TextIO | None = None,
) -> BenchResult:
    """Time baseline and replay rounds alternately, ``repeat`` of each, on ``dataset`` in memory.

    Args:
        dataset: what :func:`generate` returned.
        repeat: rounds of each kind; the fastest of each is reported.
        with_tracemalloc: after the timed rounds, run one more (untimed) replay under
            ``tracemalloc`` and record its peak traced memory. It slows that round several fold.
        log: where progress lines go (nothing if ``None``).
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    _, spec = load_and_resolve(dataset.plant)
    lines = load_lines(dataset.readings)
    result = BenchResult(dataset, len(lines), rss_loaded_kib=_peak_rss_kib())
    source = str(dataset.readings)
    for round_no in range(1, repeat + 1):
        gc.collect()
        result.baseline_s.append(time_baseline(lines))
        gc.collect()
        elapsed, summary = time_replay(spec, lines, source)
        result.replay_s.append(elapsed)
        result.points = summary.points
        result.rejected = summary.rejected_total
        result.late = summary.engine.get("late_readings", 0)
        if log is not None:
            print(
                f"round {round_no}/{repeat}: baseline {result.baseline_s[-1]:.2f} s, "
                f"replay {elapsed:.2f} s ({summary.points:,} points)",
                file=log,
                flush=True,
            )
    result.rss_peak_kib = _peak_rss_kib()
    if with_tracemalloc:
        gc.collect()
        tracemalloc.start()
        try:
            time_replay(spec, lines, source)
            result.tracemalloc_peak_bytes = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return result


def profile_replay(dataset: Dataset, top: int = 25) -> str:
    """Profile one replay round of ``dataset`` with cProfile; return the top entries by tottime."""
    _, spec = load_and_resolve(dataset.plant)
    lines = load_lines(dataset.readings)
    profiler = cProfile.Profile()
    profiler.enable()
    time_replay(spec, lines, str(dataset.readings))
    profiler.disable()
    return profile_text(profiler, top)


# -- the command --------------------------------------------------------------------------------

CODE_PATHS = ("plantstream", "streams", "runtimes")
"""A change to these makes the measured code ``+dirty``."""

TABLE_HEADER = (
    "| date | readings | machines | baseline readings/s | replay readings/s | ratio | peak RSS MiB |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def table_row(result: BenchResult, day: str) -> str:
    """One Markdown table row under :data:`TABLE_HEADER`."""
    return (
        f"| {day} | {result.lines:,} | {result.dataset.machines} | {result.baseline_rate:,.0f} | "
        f"{result.replay_rate:,.0f} | {result.ratio:.2f} | {result.rss_peak_kib / 1024:,.0f} |"
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=DEFAULT_READINGS, help="readings to generate")
    parser.add_argument("--machines", type=int, default=DEFAULT_MACHINES, help="machines in the plant")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the generator")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of baseline and of replay")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where generated files go")
    parser.add_argument("--regenerate", action="store_true", help="regenerate even if the files exist")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="one extra untimed replay round under tracemalloc"
    )
    parser.add_argument(
        "--profile", action="store_true", help="instead of timing, profile one replay round (top 25 tottime)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless ratio >= {TARGET_RATIO} and replay >= {TARGET_RATE:,.0f} readings/s",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate (or reuse) the input, measure, print the results; the exit status for ``--check``."""
    args = _arguments(argv)
    started = time.perf_counter()
    dataset = generate(args.readings, args.machines, args.seed, args.data_dir, force=args.regenerate)
    print(f"plant:    {dataset.plant}")
    print(f"readings: {dataset.readings} ({time.perf_counter() - started:.1f} s to generate or find)")
    if args.profile:
        print(profile_replay(dataset))
        return 0
    print(
        f"code {code_revision(CODE_PATHS)}, python {platform.python_version()}, {os.cpu_count()} CPUs; "
        "file read into memory first "
        "(disk I/O not measured); best of each kind kept",
        flush=True,
    )
    result = measure(dataset, args.repeat, with_tracemalloc=args.tracemalloc, log=sys.stdout)
    print()
    print(f"baseline (Reading.from_json only): {result.baseline_rate:12,.0f} readings/s")
    print(f"replay (engine + points to devnull): {result.replay_rate:10,.0f} readings/s")
    print(f"ratio replay/baseline: {result.ratio:.3f}  (target >= {TARGET_RATIO})")
    print(
        f"points written: {result.points:,}; readings rejected: {result.rejected}; "
        f"late readings: {result.late}"
    )
    print(
        f"peak RSS: {result.rss_peak_kib / 1024:,.0f} MiB "
        f"({result.rss_loaded_kib / 1024:,.0f} MiB after loading the lines)"
    )
    if result.tracemalloc_peak_bytes is not None:
        print(f"tracemalloc peak of one replay round: {result.tracemalloc_peak_bytes / 2**20:,.1f} MiB")
    failures = result.failures()
    print_report_tail(TABLE_HEADER, table_row(result, today()), failures, sys.stdout)
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
