"""Counters and fuel meters report their coverage per window, so a silent weigh scale is a gap."""

from __future__ import annotations

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
