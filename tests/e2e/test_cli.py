"""The installed ``plantstream`` command end to end: ``check`` and ``replay`` on the shipped examples."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "examples" / "minimal.yaml"
SHIFT = ROOT / "examples" / "minimal-shift.jsonl"
pytestmark = pytest.mark.e2e


def plantstream(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe, "the plantstream console script is not installed in this environment"
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, check=False, timeout=120)


def test_check_accepts_the_examples() -> None:
    for name in ("minimal.yaml", "demo-line.yaml"):
        result = plantstream("check", "-c", str(ROOT / "examples" / name))
        assert result.returncode == 0, result.stderr
        assert "valid" in result.stdout


def test_check_rejects_a_typo_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "plant.yaml"
    bad.write_text(
        MINIMAL.read_text()
        .replace("ideal_cycle_s: 1.0", "ideal_cycle_s: 0")
        .replace("timezone:", "time_zone:")
    )
    result = plantstream("check", "-c", str(bad))
    assert result.returncode == 2
    assert "plant.yaml:6 sites[0].time_zone: unknown key (did you mean 'timezone'?)" in result.stderr
    assert "sites[0].lines[0].machines[0].ideal_cycle_s: must be > 0" in result.stderr


def test_replay_tv_oee_1_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "points.jsonl"
    result = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "--out", str(out))
    assert result.returncode == 0, result.stderr
    points = [json.loads(line) for line in out.read_text().splitlines()]
    [shift] = [p for p in points if p["measurement"] == "oee" and p["tags"]["window"] == "shift"]
    assert shift["tags"] == {"site": "demo", "line": "l1", "machine": "m1", "window": "shift", "shift": "day"}
    assert shift["time"] == "2026-03-02T08:00:00Z"
    # TV-OEE-1 [VORNE-WS]: A 88.81 %, P 86.11 %, Q 97.80 %, OEE 74.79 %.
    f = shift["fields"]
    for key, value in {
        "availability": 0.8881,
        "performance": 0.8611,
        "quality": 0.9780,
        "oee": 0.7479,
    }.items():
        assert f[key] == pytest.approx(value, abs=0.0005), key
    assert (f["planned_busy_s"], f["run_s"], f["good_count"]) == (420 * 60, 373 * 60, 18_848)
    [energy] = [p for p in points if p["measurement"] == "energy" and p["tags"]["window"] == "shift"]
    [carbon] = [p for p in points if p["measurement"] == "carbon" and p["tags"]["window"] == "shift"]
    assert carbon["fields"]["co2e_kg"] == pytest.approx(energy["fields"]["kwh"] * 0.6592)
    assert "74.79%" in result.stderr


def test_replay_is_deterministic_and_reads_stdin() -> None:
    first = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q")
    second = plantstream("replay", "-c", str(MINIMAL), "--readings", "-", "-q", stdin=SHIFT.read_text())
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert first.stdout.count("\n") > 1_000


def test_replay_skips_bad_lines_with_their_number_and_reason(tmp_path: Path) -> None:
    lines = SHIFT.read_text().splitlines()
    lines.insert(2, "{not json")
    lines.insert(
        5, json.dumps({"ts": "2026-03-02T08:00:00", "machine": "m1", "signal": "state", "value": "running"})
    )
    lines.insert(
        7, json.dumps({"ts": "2026-03-02T08:00:01Z", "machine": "m7", "signal": "state", "value": 1})
    )
    readings = tmp_path / "readings.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead.jsonl"
    result = plantstream(
        "replay", "-c", str(MINIMAL), "--readings", str(readings), "--dead-letter", str(dead), "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "readings.jsonl:3: malformed" in result.stderr
    assert "readings.jsonl:6: malformed: ts: " in result.stderr
    assert "time zone" in result.stderr
    assert "readings.jsonl:8: unknown_machine" in result.stderr
    refused = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in refused] == [
        (3, "malformed"),
        (6, "malformed"),
        (8, "unknown_machine"),
    ]
    # Nothing else was lost: the shift's OEE is the same as without the bad lines.
    clean = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q")
    assert result.stdout == clean.stdout


def test_replay_strict_stops_at_the_first_bad_line(tmp_path: Path) -> None:
    readings = tmp_path / "readings.jsonl"
    readings.write_text(SHIFT.read_text().splitlines()[0] + "\n[1, 2]\n")
    result = plantstream("replay", "-c", str(MINIMAL), "--readings", str(readings), "--strict", "-q")
    assert result.returncode == 1
    assert "readings.jsonl:2: malformed" in result.stderr


def test_replay_of_an_invalid_plant_exits_2_before_reading(tmp_path: Path) -> None:
    result = plantstream("replay", "-c", str(tmp_path / "missing.yaml"), "--readings", str(SHIFT))
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr


def test_replay_refuses_a_reading_a_year_ahead_or_in_1970_and_writes_the_same_points(tmp_path: Path) -> None:
    # Row 1 of issue 13: one reading a year ahead made the engine fill every window in between
    # (1.2 million points, 1.5 GB). Now it is refused as a clock jump, the 1970 one as a bad time,
    # and the points are byte for byte those of the file without them.
    lines = SHIFT.read_text().splitlines()
    ahead = json.loads(lines[100]) | {"ts": "2027-03-02T08:05:00Z"}
    epoch = json.loads(lines[200]) | {"ts": "1970-01-01T00:00:00Z"}
    lines.insert(100, json.dumps(ahead))
    lines.insert(200, json.dumps(epoch))
    readings = tmp_path / "readings.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    dead = tmp_path / "dead.jsonl"
    result = plantstream(
        "replay", "-c", str(MINIMAL), "--readings", str(readings), "--dead-letter", str(dead), "-q"
    )
    assert result.returncode == 0, result.stderr
    assert "readings.jsonl:101: clock_jump" in result.stderr
    assert "readings.jsonl:201: bad_time" in result.stderr
    refused = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted((r["line"], r["reason"]) for r in refused) == [(101, "clock_jump"), (201, "bad_time")]
    clean = plantstream("replay", "-c", str(MINIMAL), "--readings", str(SHIFT), "-q")
    assert result.stdout == clean.stdout
