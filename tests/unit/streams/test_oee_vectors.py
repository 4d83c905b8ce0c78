"""OEE test vectors of docs/references.md through the engine (TV-OEE-1, TV-OEE-5) and the Vorne cap."""

from __future__ import annotations

import pytest
from support import plant_text, reading, run_engine, select

from plantstream.plant.schema import OeeMethod
from streams.oee import OeeElements, oee_kpis

# TV-OEE-1 [VORNE-WS]: shift 480 min, breaks 2 x 15 + 30, down 47, ideal 1 s, total 19 271, reject 423.
# Planned production time 480 - 60 = 420; run time 420 - 47 = 373.
EXPECTED = {"availability": 0.8881, "performance": 0.8611, "quality": 0.9780, "oee": 0.7479}


def shift_readings(stops: list[tuple[float, float]]) -> list:
    """Readings of TV-OEE-1's shift: breaks at 120, 240, 360 (15/30/15 min), the given stops."""
    events = [(0.0, "running")]
    for start, length in [(120, 15), (240, 30), (360, 15)]:
        events += [(start, "planned_stop"), (start + length, "running")]
    for start, length in stops:
        events += [(start, "down"), (start + length, "running")]
    events.sort()
    out = [reading(t, "state", s) for t, s in events]
    out += [reading(0, "total_count", 0), reading(0, "reject_count", 0), reading(0, "good_count", 0)]
    # All pieces reported by the cumulative counters at 16:00 (a sample at the shift end belongs to it).
    out += [
        reading(480, "total_count", 19_271),
        reading(480, "reject_count", 423),
        reading(480, "good_count", 18_848),
    ]
    return sorted(out, key=lambda r: r.ts)


def shift_point(points: list) -> dict:
    [point] = select(points, "oee", machine="m1", window="shift", shift="day")
    return point.fields


def test_tv_oee_1_vorne_worksheet_through_the_engine() -> None:
    # 47 min down as three stops of 20, 12 and 15 min.
    fields = shift_point(run_engine(plant_text(), shift_readings([(60, 20), (180, 12), (300, 15)])))
    for key, value in EXPECTED.items():
        assert fields[key] == pytest.approx(value, abs=0.0005), key
    assert fields["planned_busy_s"] == 420 * 60
    assert fields["run_s"] == 373 * 60
    assert fields["down_s"] == 47 * 60
    assert fields["planned_stop_s"] == 60 * 60
    assert fields["unknown_s"] == 0
    assert (fields["total_count"], fields["good_count"], fields["reject_count"]) == (19_271, 18_848, 423)
    # Simple form: 18 848 x (1/60) / 420 = 74.79 %.
    assert fields["oee"] == pytest.approx(18_848 / 60 / 420, abs=1e-12)


def test_tv_oee_5_micro_stops_move_between_availability_and_performance() -> None:
    # 10 of the 47 minutes are ten 1-minute stops <= micro_stop_max_s (60 s): they stay in APT = 383.
    micro = [(start, 1) for start in (10, 30, 50, 90, 100, 110, 150, 160, 200, 210)]
    long_stops = [(60, 20), (180, 2), (300, 15)]  # 37 minutes of real stops
    fields = shift_point(run_engine(plant_text(micro=60), shift_readings(long_stops + micro)))
    assert fields["run_s"] == 383 * 60
    assert fields["micro_stop_s"] == 10 * 60
    assert fields["down_s"] == 37 * 60
    assert fields["availability"] == pytest.approx(0.9119, abs=0.0005)
    assert fields["performance"] == pytest.approx(0.8386, abs=0.0005)
    assert fields["oee"] == pytest.approx(0.7479, abs=0.0005)
    # With the threshold at 0 the same stops are availability losses and OEE is unchanged.
    strict = shift_point(run_engine(plant_text(micro=0), shift_readings(long_stops + micro)))
    assert strict["run_s"] == 373 * 60
    assert strict["oee"] == pytest.approx(fields["oee"], abs=1e-12)


def test_iso_effectiveness_may_exceed_one_but_vorne_performance_is_capped() -> None:
    # 30 min running, 2 000 pieces at an ideal 1 s: ideal time 2 000 s > 1 800 s run time.
    e = OeeElements(scheduled=1_800_000_000, run=1_800_000_000, total=2_000, good=2_000, ideal=2_000e6)
    iso = oee_kpis(e, OeeMethod.ISO22400)
    vorne = oee_kpis(e, OeeMethod.VORNE)
    assert iso["performance"] == pytest.approx(2_000 / 1_800)
    assert vorne["performance"] == 1.0
    assert vorne["performance_uncapped"] == pytest.approx(2_000 / 1_800)
    assert vorne["oee"] == 1.0


def test_ratios_are_absent_not_nan_when_undefined() -> None:
    kpis = oee_kpis(OeeElements(), OeeMethod.ISO22400)
    assert kpis == {}
    idle = oee_kpis(OeeElements(scheduled=60_000_000, idle=60_000_000), OeeMethod.ISO22400)
    assert idle == {"availability": 0.0, "oee": 0.0}


def test_nee_does_not_count_setup_as_a_loss() -> None:
    # PBT 100 min: 60 run, 40 setup; E = QR = 1. OEE = 0.6; NEE = (60 + 40) / 100 = 1.0.
    minute = 60_000_000
    e = OeeElements(
        scheduled=100 * minute, run=60 * minute, setup=40 * minute, total=3_600, good=3_600, ideal=3_600e6
    )
    kpis = oee_kpis(e, OeeMethod.ISO22400)
    assert kpis["oee"] == pytest.approx(0.6)
    assert kpis["nee"] == pytest.approx(1.0)
