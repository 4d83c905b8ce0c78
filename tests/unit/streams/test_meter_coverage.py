"""Counters and fuel meters report their coverage per window, so a silent weigh scale is a gap."""

from __future__ import annotations

import json

import pytest
from support import build_engine, plant_text, reading, select

from plantstream.records import Point
from streams.engine import ReadingRejected


def _coverage(points: list[Point]) -> dict[str, float]:
    return {
        p.time.strftime("%H:%M"): float(p.fields["count_coverage"])
        for p in select(points, "oee", window="1m")
    }


def test_a_counter_covers_the_time_between_its_readings_and_a_long_silence_is_not_covered() -> None:
    engine = build_engine(plant_text(calendar=None))  # 1-minute windows: the bound is 900 s
    engine.push(reading(0, "state", "running"))
    # Every 30 s from 08:00 to 08:02, then silent for 20 min (> 900 s), then 08:22 and 08:22:30.
    for minutes, count in ((0, 0), (0.5, 5), (1, 10), (1.5, 15), (2, 20), (22, 40), (22.5, 45)):
        engine.push(reading(minutes, "total_count", count))
    engine.flush()
    cover = _coverage(engine.take_points())
    assert cover["08:00"] == 1.0  # 08:00:00-08:00:30 and -08:01:00 covered: 60/60
    assert cover["08:01"] == 1.0
    assert cover["08:10"] == 0.0  # inside the 20-minute silence
    assert cover["08:22"] == 0.5  # 08:22:00-08:22:30 covered: 30/60


def test_a_standing_counter_taken_again_unchanged_covers_its_silence() -> None:
    # What the OPC UA collector's repeat_unchanged_s sends for a counter a live subscription has
    # not reported: its last value again, every minute. The same 20 minutes as above are covered.
    engine = build_engine(plant_text(calendar=None))
    engine.push(reading(0, "state", "running"))
    for minutes, count in ((0, 0), (0.5, 5), (1, 10), (1.5, 15), (2, 20)):
        engine.push(reading(minutes, "total_count", count))
    for minute in range(3, 22):
        engine.push(reading(minute, "total_count", 20))  # unchanged: nothing counted, time covered
    for minutes, count in ((22, 40), (22.5, 45)):
        engine.push(reading(minutes, "total_count", count))
    engine.flush()
    points = engine.take_points()
    cover = _coverage(points)
    assert cover["08:10"] == 1.0
    assert all(cover[f"08:{minute:02d}"] == 1.0 for minute in range(22))
    # The pieces are the same as without the repeats: 20 before the silence, 25 after it.
    assert sum(int(p.fields["total_count"]) for p in select(points, "oee", window="1m")) == 45


def test_a_refused_reading_covers_nothing() -> None:
    engine = build_engine(plant_text(calendar=None), reorder=False)
    engine.push(reading(0, "state", "running"))
    engine.push(reading(0, "total_count", 0))
    engine.push(reading(0.5, "total_count", 5))  # 30 s covered
    with pytest.raises(ReadingRejected, match="more than the 100 possible"):
        engine.push(reading(1.5, "total_count", 10**12))  # absurd: beyond the count bound
    engine.push(reading(3, "state", "running"))
    engine.flush()
    cover = _coverage(engine.take_points())
    assert cover["08:00"] == 0.5
    assert cover["08:01"] == 0.0


def _feed_half_a_minute(text: str) -> dict[str, object]:
    engine = build_engine(text, reorder=False)
    engine.push(reading(0, "state", "running"))
    engine.push(reading(0, "total_count", 0))
    engine.push(reading(0.5, "total_count", 5))  # 08:00:00-08:00:30 covered
    return engine.checkpoint()


def test_the_coverage_of_an_open_window_survives_a_checkpoint() -> None:
    text = plant_text(calendar=None)
    restored = build_engine(text, reorder=False)
    restored.restore(json.loads(json.dumps(_feed_half_a_minute(text))))
    restored.push(reading(1, "total_count", 10))  # 08:00:30-08:01:00 covered after the restart
    restored.push(reading(3, "state", "running"))
    restored.flush()
    assert _coverage(restored.take_points())["08:00"] == 1.0  # 30 s + 30 s of 60


def test_a_checkpoint_from_before_meter_coverage_restores_without_it() -> None:
    text = plant_text(calendar=None)
    old = json.loads(json.dumps(_feed_half_a_minute(text)))
    for window in old["machines"]["m1"]["state"]["windows"]:
        del window[11:]  # an older engine wrote 11 items per open window, without the coverage
    restored = build_engine(text, reorder=False)
    restored.restore(old)
    restored.push(reading(1, "total_count", 10))
    restored.push(reading(3, "state", "running"))
    restored.flush()
    assert _coverage(restored.take_points())["08:00"] == 0.5  # only the 30 s after the restart
