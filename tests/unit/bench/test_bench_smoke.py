"""Smoke test of the replay benchmark (bench/replay.py): generator and one measured round.

No timing is asserted anywhere: the machine is shared and noisy. These tests only check that the
generated input is valid for the plant it comes with and that a replay of it produces points.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from bench.replay import generate, load_lines, measure, time_baseline, time_replay
from runtimes.plant import load_and_resolve

N = 2_000
MACHINES = 4


def test_generator_writes_exactly_n_readings_in_event_time_order(tmp_path: Path) -> None:
    dataset = generate(N, MACHINES, seed=7, out_dir=tmp_path)
    lines = load_lines(dataset.readings)
    assert len(lines) == N
    records = [json.loads(line) for line in lines]
    stamps = [r["ts"] for r in records]
    assert stamps == sorted(stamps)
    assert {r["machine"] for r in records} == {"l1-m01", "l2-m01", "l3-m01", "l4-m01"}
    assert {r["signal"] for r in records} >= {
        "state",
        "total_count",
        "good_count",
        "reject_count",
        "power_kw",
        "energy_kwh",
    }
    # Cumulative counters and the energy register never go backwards.
    last: dict[tuple[str, str], float] = {}
    for r in records:
        key = (r["machine"], r["signal"])
        if r["signal"] in {"total_count", "good_count", "reject_count", "energy_kwh"}:
            assert r["value"] >= last.get(key, r["value"])
            last[key] = r["value"]


def test_generator_is_deterministic_and_reuses_files(tmp_path: Path) -> None:
    first = generate(N, MACHINES, seed=7, out_dir=tmp_path / "a")
    second = generate(N, MACHINES, seed=7, out_dir=tmp_path / "b")
    assert first.readings.read_bytes() == second.readings.read_bytes()
    assert first.plant.read_bytes() == second.plant.read_bytes()
    stamp = first.readings.stat().st_mtime_ns
    again = generate(N, MACHINES, seed=7, out_dir=tmp_path / "a")
    assert again.readings == first.readings
    assert again.readings.stat().st_mtime_ns == stamp
    other = generate(N, MACHINES, seed=8, out_dir=tmp_path / "a")
    assert other.readings != first.readings
    assert other.readings.read_bytes() != first.readings.read_bytes()


def test_one_replay_round_turns_every_reading_into_points(tmp_path: Path) -> None:
    dataset = generate(N, MACHINES, seed=7, out_dir=tmp_path)
    _, spec = load_and_resolve(dataset.plant)
    lines = load_lines(dataset.readings)
    assert time_baseline(lines) > 0
    elapsed, summary = time_replay(spec, lines, "smoke")
    assert elapsed > 0
    assert summary.readings == N
    assert summary.rejected_total == 0
    assert summary.engine["late_readings"] == 0
    assert summary.points > 0
    shift_machines = {p.tags.get("machine") for p in summary.shift_points}
    assert {"l1-m01", "l2-m01", "l3-m01", "l4-m01"} <= shift_machines


def test_measure_reports_both_rates_and_a_ratio(tmp_path: Path) -> None:
    dataset = generate(N, MACHINES, seed=7, out_dir=tmp_path)
    log = io.StringIO()
    result = measure(dataset, repeat=1, log=log)
    assert result.lines == N
    assert len(result.baseline_s) == len(result.replay_s) == 1
    assert result.points > 0
    assert result.rejected == 0
    assert result.baseline_rate > 0
    assert result.replay_rate > 0
    assert result.ratio > 0
    assert result.rss_peak_kib > 0
    assert "round 1/1" in log.getvalue()
