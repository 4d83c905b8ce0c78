"""The demo's live view: PLC codes shown as categories, shift OEE from summed elements."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from plantstream.plant import load_plant
from plantstream.records import Point, Reading
from runtimes.live import LiveView
from streams.config import build_spec

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo-line.yaml"
T = datetime(2026, 3, 2, 8, tzinfo=UTC)


def window(machine: str, minute: int, run_s: float, total: int) -> Point:
    fields = {
        "scheduled_s": 60.0,
        "planned_stop_s": 0.0,
        "run_s": run_s,
        "down_s": 60.0 - run_s,
        "total_count": total,
        "good_count": total,
        "reject_count": 0,
        "ideal_run_s": float(total),
    }
    tags = {"site": "hcm", "line": "line1", "machine": machine, "window": "1m", "shift": "A"}
    return Point(measurement="oee", tags=tags, fields=fields, time=T.replace(minute=minute))


def test_codes_become_categories_and_shift_oee_sums_elements() -> None:
    view = LiveView(build_spec(load_plant(DEMO, environ={}).model))
    view.on_reading(Reading(ts=T, machine="press1", signal="state", value=3))  # code 3: down
    # Two minutes: 60 s run with 60 pieces, then 30 s run with 30 pieces at an ideal 1 s.
    view.on_points([window("press1", 0, 60, 60), window("press1", 1, 30, 30)])
    assert view.machines["press1"].state == "down"
    [line] = [s for s in view.shift_summary() if s.startswith("press1")]
    # Elements summed: A = 90/120, P = 90/90, Q = 1 -> 75.0 %.
    assert "OEE 75.0%" in line
    assert "90 good of 90" in line
    oven = next(s for s in view.shift_summary() if s.startswith("oven1"))
    assert "OEE -" in oven  # no piece counter: no OEE
